/** Consistent BatchGetItem across tables: chunks of at most 100 keys, keys DynamoDB leaves unprocessed asked again. */
import { BatchGetCommand, type BatchGetCommandOutput, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

type Item = Record<string, unknown>;

/** BatchGetItem's limit of keys per request. */
const BATCH_GET_MAX = 100;
/** Rounds for keys left unprocessed (throttling) before giving up. */
const UNPROCESSED_ATTEMPTS = 8;

/** The items that exist under `keys`, per table (in no particular order), read with ConsistentRead. */
export async function batchGetAll(
  doc: DynamoDBDocumentClient,
  keys: Readonly<Record<string, readonly Item[]>>,
): Promise<Map<string, Item[]>> {
  const found = new Map<string, Item[]>(Object.keys(keys).map((table) => [table, []]));
  const all = Object.entries(keys).flatMap(([table, list]) => list.map((key) => ({ table, key })));
  for (let i = 0; i < all.length; i += BATCH_GET_MAX) {
    let pending: Record<string, { Keys: Item[]; ConsistentRead: true }> | undefined = requestOf(
      all.slice(i, i + BATCH_GET_MAX),
    );
    for (let attempt = 1; pending && Object.keys(pending).length; attempt++) {
      if (attempt > UNPROCESSED_ATTEMPTS)
        throw new Error(
          `BatchGetItem left keys of ${Object.keys(pending).join(', ')} unprocessed after ${UNPROCESSED_ATTEMPTS} rounds`,
        );
      if (attempt > 1)
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * 2 ** Math.min(attempt, 6)));
      const { Responses, UnprocessedKeys }: BatchGetCommandOutput = await doc.send(
        new BatchGetCommand({ RequestItems: pending }),
      );
      for (const [table, items] of Object.entries(Responses ?? {})) found.get(table)?.push(...items);
      pending =
        UnprocessedKeys && Object.keys(UnprocessedKeys).length
          ? mapValues(UnprocessedKeys, (v) => ({ Keys: (v.Keys ?? []) as Item[], ConsistentRead: true as const }))
          : undefined;
    }
  }
  return found;
}

function requestOf(keys: { table: string; key: Item }[]): Record<string, { Keys: Item[]; ConsistentRead: true }> {
  const request: Record<string, { Keys: Item[]; ConsistentRead: true }> = {};
  for (const { table, key } of keys) (request[table] ??= { Keys: [], ConsistentRead: true }).Keys.push(key);
  return request;
}

function mapValues<V, W>(record: Record<string, V>, f: (v: V) => W): Record<string, W> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, f(v)]));
}
