/**
 * Re-derives test/support/store-commands.ts: preloaded into a test run, it records every DynamoDB
 * command with the adapter method that sent it (the outermost DynamoJobs, DynamoQueue, DynamoLimits,
 * DynamoCatalog or DynamoReconcileStore method on the stack) and, when the process exits, fails it
 * naming each command store-commands.ts does not list for that method:
 *   node --import tsx --import ./test/support/store-recorder.ts --test test/integration/job-store.test.ts
 * STORE_RECORD_FILE=<path> also appends each `{ method, call }` to that file (JSON lines).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { appendFileSync } from 'node:fs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoCatalog } from '../../lambdas/adapters/dynamo/dynamo-catalog.js';
import { DynamoJobs } from '../../lambdas/adapters/dynamo/dynamo-jobs.js';
import { DynamoLimits } from '../../lambdas/adapters/dynamo/dynamo-limits.js';
import { DynamoQueue } from '../../lambdas/adapters/dynamo/dynamo-queue.js';
import { DynamoReconcileStore } from '../../lambdas/adapters/dynamo/dynamo-reconcile-store.js';
import { TABLE_KEYS } from '../../lib/tables.js';
import { STORE_COMMANDS } from './store-commands.js';

const sender = new AsyncLocalStorage<string>();
const unlisted = new Set<string>();
const ADAPTERS = [
  ['JobRecords', DynamoJobs],
  ['JobQueue', DynamoQueue],
  ['LimitStore', DynamoLimits],
  ['Catalog', DynamoCatalog],
  ['ReconcileStore', DynamoReconcileStore],
] as const;

for (const [port, adapter] of ADAPTERS) {
  const proto = adapter.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const name of Object.getOwnPropertyNames(proto)) {
    const original = proto[name]!;
    if (name === 'constructor' || typeof original !== 'function') continue;
    proto[name] = function (this: unknown, ...args: unknown[]) {
      return sender.getStore()
        ? original.apply(this, args)
        : sender.run(`${port}.${name}`, () => original.apply(this, args));
    };
  }
}

/** A table's key in TableNames from its name (the harness prefixes each: `t1a2b3c4d-jobs`). */
const tableKey = (name: string) => TABLE_KEYS.find((key) => name.endsWith(key)) ?? name;

/** As store-commands.ts names them: one per item of a transaction and per table of a batch. */
function commandsOf(command: { constructor: { name: string }; input: Record<string, any> }): string[] {
  const name = command.constructor.name.replace(/Command$/, '');
  const input = command.input;
  if (name === 'TransactWrite' || name === 'TransactGet')
    return (input.TransactItems as Record<string, { TableName: string }>[]).map((item) => {
      const [kind, body] = Object.entries(item)[0]!;
      return `${kind}Item ${tableKey(body.TableName)}`;
    });
  if (name === 'BatchWrite' || name === 'BatchGet')
    return Object.keys(input.RequestItems).map((table) => `${name}Item ${tableKey(table)}`);
  if (name === 'Query' || name === 'Scan')
    return [`${name} ${tableKey(input.TableName)}${input.IndexName ? `/index/${input.IndexName}` : ''}`];
  return [`${name}Item ${tableKey(input.TableName)}`];
}

const send = DynamoDBDocumentClient.prototype.send as (...args: unknown[]) => Promise<unknown>;
(DynamoDBDocumentClient.prototype as unknown as { send: typeof send }).send = function (
  this: DynamoDBDocumentClient,
  ...args: unknown[]
) {
  const method = sender.getStore();
  // Outside an adapter method: a test seeding its tables, or the pool seed (not a store port).
  if (method && method !== 'LimitStore.putPool') {
    for (const call of commandsOf(args[0] as Parameters<typeof commandsOf>[0])) {
      if (!STORE_COMMANDS[method]?.includes(call)) unlisted.add(`${method}: ${call}`);
      if (process.env.STORE_RECORD_FILE)
        appendFileSync(process.env.STORE_RECORD_FILE, `${JSON.stringify({ method, call })}\n`);
    }
  }
  return send.apply(this, args);
};

process.on('exit', () => {
  if (unlisted.size === 0) return;
  console.error(`store-recorder: sent, and not in test/support/store-commands.ts:\n  ${[...unlisted].join('\n  ')}`);
  process.exitCode = 1;
});
