/**
 * What the GPU-hour budget tests (test/integration/gpu-hour-budgets-*.test.ts) share: the units, the
 * fixtures' clock (T0, a Monday, and times after it), and the budget row as the store holds it.
 */
import assert from 'node:assert/strict';
import { GetCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { StoreView } from './stores.js';
import type { TableNames } from '../../lambdas/adapters/dynamo/table-names.js';
import { GPU_MS_PER_HOUR } from '../../lambdas/core/budgets.js';

export const HOUR = GPU_MS_PER_HOUR;
export const MINUTE = 60_000;
/** A Monday. */
export const T0 = '2031-03-10T10:00:00.000Z';
export const at = (base: string, minutes: number) => new Date(Date.parse(base) + minutes * MINUTE).toISOString();

/** The budget row as stored, `available` and `reserved` included (the API shows hours). */
export async function budgetRow(store: StoreView, project = 'vision') {
  const { doc, tables } = store as unknown as { doc: DynamoDBDocumentClient; tables: TableNames };
  const { Item } = await doc.send(
    new GetCommand({ TableName: tables.quotas, Key: { project, resource: 'gpuHours' }, ConsistentRead: true }),
  );
  assert.ok(Item, `a gpuHours row for ${project}`);
  return {
    used: Number(Item.used ?? 0),
    reserved: Number(Item.reserved ?? 0),
    available: Item.available === undefined ? undefined : Number(Item.available),
    hardLimit: Item.hardLimit === undefined ? undefined : Number(Item.hardLimit),
    periodStart: Item.periodStart as string | undefined,
    periodEnd: Item.periodEnd as string | undefined,
  };
}
