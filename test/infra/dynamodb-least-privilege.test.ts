/**
 * Table access sized to the calls: the compute-events function reads a job by id
 * and records its outcome or a node's exit (GetItem, UpdateItem on the jobs table
 * only), the notifier claims, marks and releases deliveries (GetItem, PutItem,
 * DeleteItem on the idempotency table only). Measured: the DynamoDB commands the
 * adapters those functions use send on every path (recorded with
 * aws-sdk-client-mock) are each allowed by the IAM simulation
 * (@cloud-copilot/iam-simulate) of the synthesized roles; what the functions do
 * not call, and every other table, is refused. No role gets DescribeTable, which
 * no handler sends. The API, tasks and reconciler get per table the actions of the
 * store-port methods their handler's code can reach (test/support/port-calls.ts),
 * each method's commands listed in test/support/store-commands.ts.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoDedup } from '../../lambdas/adapters/dynamo/dynamo-dedup.js';
import { DynamoJobs } from '../../lambdas/adapters/dynamo/dynamo-jobs.js';
import type { TableNames } from '../../lambdas/adapters/dynamo/table-names.js';
import { HANDLER_ENTRIES } from '../../lib/flare-stack.js';
import { REPO_ROOT } from '../../lib/lambda-defaults.js';
import {
  API_TABLE_ACCESS,
  COMPUTE_EVENTS_TABLE_ACCESS,
  RECONCILER_TABLE_ACCESS,
  type TableAccess,
  type TableAction,
  TASKS_TABLE_ACCESS,
} from '../../lib/table-access.js';
import { TABLE_KEYS } from '../../lib/tables.js';
import { type CfnTemplate, arnOf, refOf } from '../artifact/support/cfn-resolve.js';
import { type RolePolicies, rolePolicies } from '../artifact/support/iam-check.js';
import { decide } from '../artifact/support/policy-simulation.js';
import { grantsOf } from '../support/cdk-policies.js';
import { logicalId, removeStandIns, render, synthStack, type SynthesizedStack } from '../support/cdk-synth.js';
import { storePortCalls } from '../support/port-calls.js';
import { STORE_COMMANDS } from '../support/store-commands.js';

/** The IAM action each DynamoDB document command is authorized as. */
const ACTION_OF: Record<string, string> = {
  GetCommand: 'dynamodb:GetItem',
  PutCommand: 'dynamodb:PutItem',
  UpdateCommand: 'dynamodb:UpdateItem',
  DeleteCommand: 'dynamodb:DeleteItem',
};

let synth: SynthesizedStack;
let template: CfnTemplate;
let tables: TableNames;
let computeEvents: RolePolicies;
let notifier: RolePolicies;
const tableArn = (key: keyof TableNames) => arnOf(template, logicalId(synth.stack, synth.stack.tables[key]));

const doc = DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' }));
const mock = mockClient(doc);
const conditionFailed = Object.assign(new Error('The conditional request failed'), {
  name: 'ConditionalCheckFailedException',
});

/**
 * The commands `act` sends, as `[IAM action, table ARN]`, with every command answered
 * `{}` (or `answer` for a read), or refused by its condition when `refused`.
 */
async function commandsOf(
  act: () => Promise<unknown>,
  { refused = false, answer = {} }: { refused?: boolean; answer?: object } = {},
): Promise<[string, string][]> {
  mock.reset();
  if (refused) mock.onAnyCommand().rejects(conditionFailed);
  else mock.onAnyCommand().resolves({});
  mock.on(GetCommand).resolves(answer);
  await act();
  return mock.calls().map((call) => {
    const command = call.args[0] as { constructor: { name: string }; input: { TableName: string } };
    const action = ACTION_OF[command.constructor.name];
    assert.ok(action, `no IAM action known for ${command.constructor.name}`);
    const key = (Object.keys(tables) as (keyof TableNames)[]).find((k) => tables[k] === command.input.TableName);
    assert.ok(key, `a table of the stack: ${command.input.TableName}`);
    return [action, tableArn(key)];
  });
}

before(() => {
  synth = synthStack({ 'flare:notifications': [{ id: 'ops', type: 'slack', secretName: 'flare/ops' }] });
  template = synth.template.toJSON() as CfnTemplate;
  tables = Object.fromEntries(
    TABLE_KEYS.map((k) => [k, refOf(template, logicalId(synth.stack, synth.stack.tables[k]))]),
  ) as unknown as TableNames;
  const roles = rolePolicies(template);
  computeEvents = roles.get(logicalId(synth.stack, synth.stack.computeEvents.handler.role))!;
  notifier = roles.get(logicalId(synth.stack, synth.stack.notifier!.handler.role))!;
});
afterEach(() => mock.reset());
after(removeStandIns);

describe('DynamoDB access sized to what each function calls', () => {
  it('grants compute-events GetItem and UpdateItem on the jobs table, and the notifier GetItem, PutItem, DeleteItem on the idempotency table, nothing else', () => {
    const dynamo = (grants: Map<string, string[]>) =>
      Object.fromEntries(
        [...grants]
          .filter(([action]) => action.startsWith('dynamodb:'))
          .map(([action, on]) => [action, on.map((r) => render(JSON.parse(r))).filter((r) => !r.includes('NoValue'))]),
      );
    const { stack, resources } = synth;
    const jobs = `<${logicalId(stack, stack.tables.jobs)}.Arn>`;
    const idempotency = `<${logicalId(stack, stack.tables.idempotency)}.Arn>`;
    assert.deepEqual(dynamo(grantsOf(stack, resources, stack.computeEvents.handler)), {
      'dynamodb:GetItem': [jobs],
      'dynamodb:UpdateItem': [jobs],
    });
    assert.deepEqual(dynamo(grantsOf(stack, resources, stack.notifier!.handler)), {
      'dynamodb:GetItem': [idempotency],
      'dynamodb:PutItem': [idempotency],
      'dynamodb:DeleteItem': [idempotency],
    });
  });

  it('grants no role DescribeTable, which no Lambda handler sends (only the local runner and the test harness do)', () => {
    const { stack, resources } = synth;
    for (const fn of [
      stack.api,
      stack.tasks,
      stack.computeEvents.handler,
      stack.reconciler.handler,
      stack.notifier!.handler,
    ])
      assert.equal(grantsOf(stack, resources, fn).get('dynamodb:DescribeTable'), undefined, fn.node.path);
    const sources = readdirSync(path.join(REPO_ROOT, 'lambdas'), { recursive: true, encoding: 'utf8' }).filter(
      (f) => /\.(ts|mjs)$/.test(f) && !f.startsWith(`local${path.sep}`),
    );
    assert.ok(sources.length > 20);
    for (const file of sources)
      assert.doesNotMatch(readFileSync(path.join(REPO_ROOT, 'lambdas', file), 'utf8'), /DescribeTable/, file);
  });

  // compute-events reaches the store only through lambdas/core/completion.ts: getJob, recordOutcome, recordNodeExit.
  it('allows compute-events every command of the job store calls it makes, and refuses it the rest and the other tables', async () => {
    const jobs = new DynamoJobs(doc, tables, {} as never);
    const exited = { kind: 'exited', exitCode: 0, at: '2030-01-01T00:00:00.000Z' } as const;
    const calls = [
      ...(await commandsOf(() => jobs.getJob('job-1'))),
      ...(await commandsOf(
        () => jobs.recordOutcome('job-1', exited, { instanceId: 'i-0aaaaaaaaaaaaaaa1', only: true }),
        {
          refused: true,
        },
      )),
      ...(await commandsOf(() => jobs.recordOutcome('job-1', exited), { refused: true })),
      ...(await commandsOf(() => jobs.recordNodeExit('job-1', 'i-0aaaaaaaaaaaaaaa1', 3), { refused: true })),
    ];
    assert.deepEqual([...new Set(calls.map(([action]) => action))].sort(), ['dynamodb:GetItem', 'dynamodb:UpdateItem']);
    for (const [action, on] of calls) assert.equal(await decide(computeEvents, action, on), 'Allowed', action);
    for (const action of ['dynamodb:PutItem', 'dynamodb:DeleteItem', 'dynamodb:Query', 'dynamodb:Scan'])
      assert.equal(await decide(computeEvents, action, tableArn('jobs')), 'ImplicitlyDenied', action);
    assert.equal(await decide(computeEvents, 'dynamodb:Query', `${tableArn('jobs')}/index/queue`), 'ImplicitlyDenied');
    for (const key of ['quotas', 'pools', 'idempotency', 'catalog'] as const)
      assert.equal(await decide(computeEvents, 'dynamodb:GetItem', tableArn(key)), 'ImplicitlyDenied', key);
  });

  it('allows the notifier every command of its delivery ledger (claim, claim taken, mark sent, release), and refuses it the rest and the other tables', async () => {
    const ledger = new DynamoDedup(doc, tables.idempotency);
    const calls = [
      ...(await commandsOf(async () => {
        assert.equal(await ledger.claim('ops/event-1'), 'claimed');
        await ledger.release('ops/event-1');
        assert.equal(await ledger.claim('ops/event-2'), 'claimed');
        await ledger.markSent('ops/event-2');
      })),
      // Another copy sent it: the claim's put fails its condition and the ledger reads the item.
      ...(await commandsOf(async () => assert.equal(await ledger.claim('ops/event-2'), 'sent'), {
        refused: true,
        answer: { Item: { key: 'ops/event-2', status: 'sent' } },
      })),
    ];
    assert.deepEqual([...new Set(calls.map(([action]) => action))].sort(), [
      'dynamodb:DeleteItem',
      'dynamodb:GetItem',
      'dynamodb:PutItem',
    ]);
    for (const [action, on] of calls) assert.equal(await decide(notifier, action, on), 'Allowed', action);
    for (const action of ['dynamodb:UpdateItem', 'dynamodb:Query', 'dynamodb:Scan', 'dynamodb:BatchWriteItem'])
      assert.equal(await decide(notifier, action, tableArn('idempotency')), 'ImplicitlyDenied', action);
    for (const key of ['jobs', 'quotas', 'pools', 'catalog'] as const)
      assert.equal(await decide(notifier, 'dynamodb:GetItem', tableArn(key)), 'ImplicitlyDenied', key);
  });
});

/** The control-plane functions whose table access is sized from their code: handler entry, access granted, function. */
const SIZED = {
  api: { entry: HANDLER_ENTRIES.api, access: API_TABLE_ACCESS, fn: () => synth.stack.api },
  tasks: { entry: HANDLER_ENTRIES.tasks, access: TASKS_TABLE_ACCESS, fn: () => synth.stack.tasks },
  reconciler: {
    entry: HANDLER_ENTRIES.reconciler,
    access: RECONCILER_TABLE_ACCESS,
    fn: () => synth.stack.reconciler.handler,
  },
  computeEvents: {
    entry: HANDLER_ENTRIES.computeEvents,
    access: COMPUTE_EVENTS_TABLE_ACCESS,
    fn: () => synth.stack.computeEvents.handler,
  },
};
const TABLE_ACTIONS: readonly TableAction[] = [
  'GetItem',
  'BatchGetItem',
  'Query',
  'Scan',
  'ConditionCheckItem',
  'PutItem',
  'UpdateItem',
  'DeleteItem',
  'BatchWriteItem',
];
const INDEXES = Object.fromEntries(
  TABLE_KEYS.map((key) => [
    key,
    (
      (JSON.parse(readFileSync(path.join(REPO_ROOT, 'schema', 'tables.json'), 'utf8'))[key].GlobalSecondaryIndexes ??
        []) as { IndexName: string }[]
    ).map((g) => g.IndexName),
  ]),
) as Record<keyof TableNames, string[]>;

/** What `access` grants, as store-commands.ts names commands: `Action table`, `Query table/index/name`. */
function commandsGranted(access: TableAccess): string[] {
  return TABLE_KEYS.flatMap((key) => [
    ...(access[key]?.actions ?? []).map((action) => `${action} ${key}`),
    ...(access[key]?.queries ?? []).map((index) => `Query ${key}/index/${index}`),
  ]).sort();
}

describe('the API, tasks, reconciler and compute-events get the table actions their code can send', () => {
  let reached: Map<string, Set<string>>;
  before(() => {
    reached = storePortCalls(Object.values(SIZED).map((f) => f.entry));
  });

  it('reads from the code the store methods each handler can reach', () => {
    // Against what is known of two handlers: compute-events as 25d4732 measured it; tasks moves jobs but never creates or removes one.
    assert.deepEqual([...reached.get(HANDLER_ENTRIES.computeEvents)!].sort(), [
      'JobRecords.getJob',
      'JobRecords.recordNodeExit',
      'JobRecords.recordOutcome',
    ]);
    const tasks = reached.get(HANDLER_ENTRIES.tasks)!;
    for (const method of ['JobRecords.finishJob', 'JobRecords.requeueJob', 'JobQueue.admit', 'LimitStore.listPools'])
      assert.ok(tasks.has(method), method);
    for (const method of ['JobRecords.createJob', 'JobRecords.deleteJob', 'Catalog.getTemplate'])
      assert.ok(!tasks.has(method), method);
    assert.ok(reached.get(HANDLER_ENTRIES.reconciler)!.has('ReconcileStore.clearMarks'));
    assert.ok(reached.get(HANDLER_ENTRIES.api)!.has('Catalog.createTemplate'));
  });

  it('grants each exactly the commands of the store methods its handler can reach', () => {
    for (const [name, { entry, access }] of Object.entries(SIZED)) {
      const methods = [...reached.get(entry)!].sort();
      for (const method of methods)
        assert.ok(
          STORE_COMMANDS[method],
          `${name} can call ${method}: list its commands in test/support/store-commands.ts`,
        );
      const needed = [...new Set(methods.flatMap((method) => STORE_COMMANDS[method]!))].sort();
      assert.deepEqual(commandsGranted(access), needed, `${name}: lib/table-access.ts`);
    }
  });

  it('has the synthesized roles allow exactly those commands: every other table action, on every table and index, is refused', async () => {
    const roles = rolePolicies(template);
    const { stack, resources } = synth;
    for (const [name, { access, fn }] of Object.entries(SIZED)) {
      const role = roles.get(logicalId(stack, fn().role))!;
      const granted = new Set(commandsGranted(access));
      for (const key of TABLE_KEYS) {
        for (const on of [key, ...INDEXES[key].map((index) => `${key}/index/${index}`)]) {
          const arn = on === key ? tableArn(key) : `${tableArn(key)}${on.slice(key.length)}`;
          for (const action of TABLE_ACTIONS) {
            const expected = granted.has(`${action} ${on}`) ? 'Allowed' : 'ImplicitlyDenied';
            assert.equal(await decide(role, `dynamodb:${action}`, arn), expected, `${name}: ${action} ${on}`);
          }
        }
      }
      const dynamo = [...grantsOf(stack, resources, fn()).keys()].filter((a) => a.startsWith('dynamodb:'));
      assert.deepEqual(
        dynamo.filter((a) => !TABLE_ACTIONS.includes(a.slice('dynamodb:'.length) as TableAction)),
        [],
        `${name}: no other DynamoDB action`,
      );
    }
  });
});
