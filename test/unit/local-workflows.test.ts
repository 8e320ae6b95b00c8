/**
 * The local Step Functions binding on its own, with a one-state ASL: what its
 * emulated `.waitForTaskToken` leaves behind when the plane closes.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { LocalWorkflows } from '../../lambdas/local/local-workflows.js';
import { workflowInput } from '../../lambdas/core/workflow.js';

const quiet = { info() {}, warn() {}, error() {} };
let dir: string;
let definition: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flare-local-workflows-'));
  definition = join(dir, 'wait.asl.json');
  await writeFile(
    definition,
    JSON.stringify({
      StartAt: 'Run',
      States: {
        Run: {
          Type: 'Task',
          Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
          Parameters: {
            FunctionName: '${TasksFunctionArn}',
            Payload: { 'taskToken.$': '$$.Task.Token', timeoutSeconds: 600 },
          },
          TimeoutSeconds: 600,
          End: true,
        },
      },
    }),
  );
});

after(() => rm(dir, { recursive: true, force: true }));

/** Workflows over the one-state ASL, and the task token its wait hands the runner. */
function waitingWorkflows(): { workflows: LocalWorkflows; taskCalled: Promise<string> } {
  let handed: (token: string) => void;
  const taskCalled = new Promise<string>((resolve) => (handed = resolve));
  const workflows = new LocalWorkflows(
    async (event) => void handed((event as { taskToken: string }).taskToken),
    quiet,
    definition,
  );
  return { workflows, taskCalled };
}

const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;

test('close() ends the waits of aborted executions, so no task timeout keeps the process alive', async () => {
  const { workflows, taskCalled } = waitingWorkflows();
  const before = timers();

  await workflows.start('j-0123456789abcdef', workflowInput({ id: 'j-0123456789abcdef', pool: 'local' }));
  const token = await taskCalled;
  assert.ok(timers() > before, 'the wait arms the task timeout');

  await workflows.close();
  await new Promise((resolve) => setImmediate(resolve));

  assert.equal(timers(), before);
  assert.deepEqual(
    workflows.list().map((e) => e.status),
    ['ABORTED'],
  );
  await workflows.sendTaskSuccess(token, {}); // a late report after close is ignored
});

test('sendTaskSuccess ends the wait with its output', async () => {
  const { workflows, taskCalled } = waitingWorkflows();

  await workflows.start('j-ghjkmnpqrstvwxyz', workflowInput({ id: 'j-ghjkmnpqrstvwxyz', pool: 'local' }));
  await workflows.sendTaskSuccess(await taskCalled, { exitCode: 0 });
  await workflows.idle();

  assert.deepEqual(
    workflows.list().map((e) => [e.status, e.states]),
    [['SUCCEEDED', ['Run']]],
  );
});

test('a filled-in definition runs each Task on the runner of the function it names, callback waits included', async () => {
  const [first, second] = [
    'arn:aws:lambda:us-east-1:123456789012:function:first',
    'arn:aws:lambda:us-east-1:123456789012:function:second',
  ];
  const calls: string[] = [];
  let handed: (token: string) => void;
  const waiting = new Promise<string>((resolve) => (handed = resolve));
  const workflows = new LocalWorkflows(
    async () => assert.fail('a definition with runners never uses the default runner'),
    quiet,
    {
      definition: {
        StartAt: 'Plain',
        States: {
          Plain: { Type: 'Task', Resource: first, Next: 'Wait' },
          Wait: {
            Type: 'Task',
            Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
            Parameters: { FunctionName: second, Payload: { 'taskToken.$': '$$.Task.Token' } },
            End: true,
          },
        },
      },
      runners: {
        [first]: async () => void calls.push('first'),
        [second]: async (event) => {
          calls.push('second');
          handed((event as { taskToken: string }).taskToken);
        },
      },
    },
  );
  await workflows.start('j-abcdefghjkmnpqrs', workflowInput({ id: 'j-abcdefghjkmnpqrs', pool: 'local' }));
  await workflows.sendTaskSuccess(await waiting, {});
  await workflows.idle();
  assert.deepEqual(calls, ['first', 'second']);
  assert.deepEqual(
    workflows.list().map((e) => e.status),
    ['SUCCEEDED'],
  );

  const unbound = {
    StartAt: 'Plain',
    States: { Plain: { Type: 'Task', Resource: 'arn:aws:lambda:us-east-1:123456789012:function:other', End: true } },
  };
  assert.throws(
    () => new LocalWorkflows(async () => undefined, quiet, { definition: unbound, runners: {} }),
    /Task state Plain names arn:aws:lambda:us-east-1:123456789012:function:other, which has no runner/,
  );
});
