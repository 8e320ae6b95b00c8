/**
 * The DynamoDB adapters' shared helpers against DynamoDB Local: the one conditional write
 * (transactions.ts) and reading a Query or Scan to its end (paging.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { readAll, pages } from '../../lambdas/adapters/dynamo/paging.js';
import { conditionalWrite } from '../../lambdas/adapters/dynamo/transactions.js';
import { StaleJob } from '../../lambdas/core/errors.js';
import { dynamoPerFile, freshStore } from '../support/harness.js';

describe('DynamoDB adapter helpers', { timeout: 90_000 }, () => {
  const dynamo = dynamoPerFile();

  it('conditionalWrite gives the item a write left, undefined when its condition failed, or the conflict error asked for', async () => {
    const { doc } = dynamo();
    const { tables } = await freshStore(dynamo());
    const Key = { name: 'l4' };
    await doc.send(new PutCommand({ TableName: tables.pools, Item: { name: 'l4', used: 1 } }));
    const bump = (expected: number) => ({
      Update: {
        TableName: tables.pools,
        Key,
        UpdateExpression: 'SET used = :next',
        ConditionExpression: 'used = :expected',
        ExpressionAttributeValues: { ':expected': expected, ':next': expected + 1 },
        ReturnValues: 'ALL_NEW' as const,
      },
    });

    assert.deepEqual(await conditionalWrite(doc, bump(1)), { name: 'l4', used: 2 });
    assert.equal(await conditionalWrite(doc, bump(1)), undefined, 'the condition no longer holds');
    await assert.rejects(
      conditionalWrite(doc, bump(1), () => new StaleJob('j-1')),
      StaleJob,
    );
    assert.deepEqual(
      (await doc.send(new GetCommand({ TableName: tables.pools, Key }))).Item,
      { name: 'l4', used: 2 },
      'the failed writes changed nothing',
    );

    const put = {
      Put: {
        TableName: tables.pools,
        Item: { name: 'h100' },
        ConditionExpression: 'attribute_not_exists(#name)',
        ExpressionAttributeNames: { '#name': 'name' },
      },
    };
    assert.deepEqual(
      await conditionalWrite(doc, put),
      {},
      'no ReturnValues: an empty item, which still says it was written',
    );
    assert.equal(await conditionalWrite(doc, put), undefined);
    const remove = {
      Delete: {
        TableName: tables.pools,
        Key: { name: 'h100' },
        ConditionExpression: 'attribute_exists(#name)',
        ExpressionAttributeNames: { '#name': 'name' },
      },
    };
    assert.deepEqual(await conditionalWrite(doc, remove), {});
    assert.equal(await conditionalWrite(doc, remove), undefined);

    await assert.rejects(
      conditionalWrite(
        doc,
        { Put: { TableName: `${tables.pools}-missing`, Item: { name: 'x' } } },
        () => new StaleJob('j-1'),
      ),
      (error: Error) => error.name === 'ResourceNotFoundException',
      'an error other than a failed condition comes through as it is',
    );
  });

  it('readAll follows every page of a Query and of a Scan', async () => {
    const { doc } = dynamo();
    const { tables } = await freshStore(dynamo());
    const resources = ['gpus', 'gpuHours', 'jobs', 'templates', 'z-other'];
    for (const resource of resources)
      await doc.send(new PutCommand({ TableName: tables.quotas, Item: { project: 'vision', resource, used: 0 } }));
    await doc.send(new PutCommand({ TableName: tables.quotas, Item: { project: 'audio', resource: 'gpus', used: 0 } }));
    const query = {
      Query: {
        TableName: tables.quotas,
        KeyConditionExpression: '#project = :p',
        ExpressionAttributeNames: { '#project': 'project' },
        ExpressionAttributeValues: { ':p': 'vision' },
        Limit: 2,
      },
    };

    let read = 0;
    for await (const _page of pages(doc, query)) read++;
    assert.ok(read >= 3, `five items two at a time take three pages at least (read ${read})`);
    assert.deepEqual((await readAll(doc, query)).map((item) => item.resource).sort(), [...resources].sort());
    assert.equal((await readAll(doc, { Scan: { TableName: tables.quotas, Limit: 2 } })).length, 6);
  });
});
