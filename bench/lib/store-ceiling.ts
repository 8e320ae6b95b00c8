/**
 * What DynamoDB Local itself can do on this machine, measured apart from the
 * plane: single-item writes and reads per second from 4 concurrent clients.
 * DynamoDB Local applies writes one at a time (more clients do not raise the
 * write rate), so its write rate over the write calls a job makes bounds the
 * jobs per second of figure 2, whatever the control plane does. Measured on a
 * DynamoDB Local of its own, on disk, before the plane starts.
 */
import { join } from 'node:path';
import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { startDynamoDbLocal } from '../../lambdas/local/dynamodb-local.js';
import { makeDynamoClients } from '../../lambdas/local/tables.js';

export interface StoreCeiling {
  /** UpdateItem calls per second (an item of ~500 bytes, 4 clients). */
  writesPerS: number;
  /** Consistent GetItem calls per second (4 clients). */
  readsPerS: number;
  clients: number;
  calls: number;
}

const TABLE = 'ceiling';
const ITEMS = 200;
const CLIENTS = 4;

export async function measureStoreCeiling(dir: string, calls: number): Promise<StoreCeiling> {
  const dynamo = await startDynamoDbLocal({ dataDir: join(dir, 'ceiling-dynamodb') });
  const { client, doc } = makeDynamoClients(dynamo.endpoint);
  try {
    await client.send(
      new CreateTableCommand({
        TableName: TABLE,
        BillingMode: 'PAY_PER_REQUEST',
        KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
        AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
      }),
    );
    for (let i = 0; i < ITEMS; i++)
      await doc.send(new PutCommand({ TableName: TABLE, Item: { id: `item-${i}`, body: 'x'.repeat(500), n: 0 } }));
    const write = (i: number) =>
      doc.send(
        new UpdateCommand({
          TableName: TABLE,
          Key: { id: `item-${i % ITEMS}` },
          UpdateExpression: 'ADD n :one',
          ExpressionAttributeValues: { ':one': 1 },
        }),
      );
    const read = (i: number) =>
      doc.send(new GetCommand({ TableName: TABLE, Key: { id: `item-${i % ITEMS}` }, ConsistentRead: true }));
    // The JVM compiles its hot paths first: a warm-up round of each is not counted.
    await rate(write, calls / 4);
    await rate(read, calls / 4);
    const writesPerS = await rate(write, calls);
    const readsPerS = await rate(read, calls);
    return { writesPerS, readsPerS, clients: CLIENTS, calls };
  } finally {
    client.destroy();
    await dynamo.stop();
  }
}

async function rate(call: (i: number) => Promise<unknown>, calls: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next < calls) await call(next++);
    }),
  );
  return calls / ((performance.now() - started) / 1000);
}
