/**
 * The local reader of the jobs table's stream (lambdas/local/jobs-stream.ts)
 * against DynamoDB Local's real stream: a record the handler reports failed is
 * delivered again with those after it, the checkpoint never moves past an
 * undelivered record, and a new poller resumes after the checkpoint. A jobs
 * table made before the schema gave it a stream gets one at start.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CreateTableCommand, DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import type { DynamoDBRecord } from 'aws-lambda';
import { memoryCheckpoints, StreamPoller, type StreamHandler } from '../../lambdas/local/jobs-stream.js';
import { createTables, defaultTableNames, loadTableSpecs } from '../../lambdas/local/tables.js';
import { dynamoPerFile, freshStore, quietLog } from '../support/harness.js';

describe('jobs stream poller', () => {
  const dynamo = dynamoPerFile();

  const ids = (records: DynamoDBRecord[]) => records.map((r) => r.dynamodb?.NewImage?.id?.S);
  const setup = async (handler: StreamHandler, checkpoints = memoryCheckpoints()) => {
    const { tables } = await freshStore(dynamo());
    const poller = (h = handler) =>
      new StreamPoller({
        dynamodb: dynamo().client,
        streams: dynamo().streams,
        tableName: tables.jobs,
        handler: h,
        checkpoints,
        log: quietLog,
      });
    const put = (id: string) =>
      dynamo().doc.send(new PutCommand({ TableName: tables.jobs, Item: { id, state: 'PENDING' } }));
    return { poller, put, checkpoints };
  };

  it('delivers a failed record and those after it again, in order, and checkpoints only what was delivered', async () => {
    const seen: DynamoDBRecord[][] = [];
    let failOnce = true;
    const { poller, put, checkpoints } = await setup(async (event) => {
      seen.push(event.Records);
      if (!failOnce) return { batchItemFailures: [] };
      failOnce = false;
      return { batchItemFailures: [{ itemIdentifier: event.Records[1].dynamodb!.SequenceNumber! }] };
    });
    for (const id of ['a', 'b', 'c']) await put(id);
    const reader = poller();
    assert.equal(await reader.poll(), 1, 'only the record before the failed one is delivered');
    const afterFailure = await checkpoints.load();
    assert.equal(Object.values(afterFailure!.shards).length, 1);
    assert.equal(await reader.poll(), 2);
    assert.deepEqual(seen.map(ids), [
      ['a', 'b', 'c'],
      ['b', 'c'],
    ]);
    const [shard, last] = Object.entries((await checkpoints.load())!.shards)[0];
    assert.ok(
      BigInt(last) > BigInt(afterFailure!.shards[shard]),
      'the checkpoint moved past b and c once they were delivered',
    );
  });

  it('gives an existing jobs table without a stream the stream of the schema', async () => {
    const tables = defaultTableNames('old');
    const { StreamSpecification: _stream, TimeToLiveAttribute: _ttl, ...spec } = loadTableSpecs().jobs;
    await dynamo().client.send(
      new CreateTableCommand({ TableName: tables.jobs, BillingMode: 'PAY_PER_REQUEST', ...spec }),
    );
    await createTables(dynamo().client, tables);
    const { Table } = await dynamo().client.send(new DescribeTableCommand({ TableName: tables.jobs }));
    assert.deepEqual(Table?.StreamSpecification, { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' });
    assert.ok(Table?.LatestStreamArn);
  });

  it('a new poller resumes after the checkpoint; a handler that throws fails the whole batch', async () => {
    const delivered: DynamoDBRecord[] = [];
    const { poller, put } = await setup(async (event) => void delivered.push(...event.Records));
    await put('a');
    await poller().drained();
    await put('b');
    let threw = 0;
    const failing = poller(async () => {
      threw += 1;
      throw new Error('bus down');
    });
    assert.equal(await failing.poll(), 0);
    assert.equal(threw, 1);
    await poller().drained();
    assert.deepEqual(ids(delivered), ['a', 'b']);
  });
});
