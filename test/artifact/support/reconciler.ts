/**
 * The deployed reconciler as its schedule runs it, and the clock it reads:
 * it acts only on a second observation at least 30 s after the first, so a
 * test moves stored times back instead of sleeping through the minutes
 * between scheduled runs.
 */
import assert from 'node:assert/strict';
import { GetItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import type { ReconcileReport } from '../../../lambdas/core/reconcile.js';
import type { Artifact } from './artifact.js';

/** One scheduled run of the deployed reconciler (the schedule rule's event to its target): its report. */
export async function reconcilerRun(a: Artifact): Promise<ReconcileReport> {
  const [run, ...others] = await a.router.tick();
  assert.equal(others.length, 0, 'one schedule rule');
  const [attempt] = run.attempts ?? [];
  assert.ok(
    attempt?.ok,
    `the reconciler failed: ${attempt && !attempt.ok ? `${attempt.error.errorType}: ${attempt.error.errorMessage}` : 'not invoked'}`,
  );
  return attempt.result as ReconcileReport;
}

/** Move ISO time attributes of one item back by `ms`, in the table the functions know as `tableVariable`. */
export async function backdate(
  a: Artifact,
  key: Record<string, string>,
  attributes: string[],
  ms: number,
  tableVariable = 'JOBS_TABLE',
): Promise<void> {
  const TableName = a.fns.tasks.spec.environment[tableVariable];
  const Key = Object.fromEntries(Object.entries(key).map(([k, v]) => [k, { S: v }]));
  const { Item } = await a.dynamo.client.send(new GetItemCommand({ TableName, Key, ConsistentRead: true }));
  assert.ok(Item, `${TableName} has ${JSON.stringify(key)}`);
  const moved = attributes.map((name) => [name, new Date(Date.parse(Item[name].S!) - ms).toISOString()]);
  await a.dynamo.client.send(
    new UpdateItemCommand({
      TableName,
      Key,
      UpdateExpression: `SET ${moved.map((_, i) => `#a${i} = :v${i}`).join(', ')}`,
      ExpressionAttributeNames: Object.fromEntries(moved.map(([name], i) => [`#a${i}`, name])),
      ExpressionAttributeValues: Object.fromEntries(moved.map(([, value], i) => [`:v${i}`, { S: value }])),
    }),
  );
}
