/**
 * The deployed artifact runs a job end to end: the bundled API stores it, the
 * template's state machine launches one instance through the bundled tasks
 * function, starts the container with one SSM command, the command's Success
 * event reaches the bundled compute-events function through the template's
 * rule, and the job ends SUCCEEDED with its GPU given back once. The stream
 * publisher's events reach the chat webhook through the template's rule, queue
 * and notifier, filtered by the channel's states. The scheduled reconciler,
 * its bundle and its role, runs on what is left and repairs nothing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { artifactPerFile } from './support/artifact.js';
import { assertCallsAllowed } from './support/iam-check.js';
import {
  IMAGE,
  assertTerminatedOnce,
  callsSince,
  dockerArgv,
  expectedRunInstances,
  pool,
  setUpCatalog,
  submit,
  tasksEnvironment,
  waitFor,
  waitForState,
  withoutDeadline,
} from './support/scenario.js';

const deployed = artifactPerFile();

describe('artifact: a job that runs and exits 0', () => {
  it('is SUCCEEDED after exactly one RunInstances, one container command, one outputs upload and one TerminateInstances, its GPU released once', async () => {
    const a = deployed();
    await setUpCatalog(a);
    const from = a.mark().calls;
    const job = await submit(a, { template: 'train' });
    const running = await waitForState(a, job.id, ['RUNNING', 'FAILED']);
    assert.equal(running.state, 'RUNNING', running.stateReason);
    assert.equal((await pool(a)).usedGpus, 1, 'the running job holds its GPU');

    const [run] = callsSince(a, from, 'RunInstances', job.id);
    const { params, deadline } = withoutDeadline(run);
    assert.deepEqual(params, expectedRunInstances(a, job, 0, 0));
    assert.ok(Date.parse(deadline) > Date.now(), `the launch deadline tag ${deadline} is in the future`);

    const [sent] = callsSince(a, from, 'SendCommand', job.id);
    const [instanceId] = sent.params.InstanceIds as string[];
    const t = tasksEnvironment(a);
    assert.deepEqual(
      { ...sent.params, Parameters: undefined },
      {
        DocumentName: 'AWS-RunShellScript',
        InstanceIds: [instanceId],
        Comment: `flare:job=${job.id}`,
        TimeoutSeconds: t.agentTimeoutSeconds,
        CloudWatchOutputConfig: { CloudWatchLogGroupName: t.logGroup, CloudWatchOutputEnabled: true },
        Parameters: undefined,
      },
    );
    const argv = dockerArgv((sent.params.Parameters as { commands: string[] }).commands[0]);
    assert.deepEqual(argv.slice(argv.indexOf('--') + 1), [`${IMAGE.reference}@${IMAGE.digest}`, 'python', 'train.py']);
    assert.ok(argv.includes('--gpus="device=0"'), `the container gets exactly the one GPU charged: ${argv.join(' ')}`);

    const [command] = a.fake.commands().filter((c) => c.comment === `flare:job=${job.id}`);
    await a.compute.finishCommand(command.commandId, instanceId, { status: 'Success', responseCode: 0 });
    const done = await waitForState(a, job.id, ['SUCCEEDED', 'FAILED', 'EXPIRED']);
    assert.equal(done.state, 'SUCCEEDED', done.stateReason);
    await a.settle();

    assert.equal(callsSince(a, from, 'RunInstances').length, 1);
    // The container command, then the upload of its outputs (it wrote none) before the instance goes.
    assert.deepEqual(
      callsSince(a, from, 'SendCommand').map((c) => c.params.Comment),
      [`flare:job=${job.id}`, `flare:outputs=${job.id}`],
    );
    assert.deepEqual(done.outputs, { count: 0, bytes: 0 });
    await assertTerminatedOnce(a, from, job.id, instanceId, 'SUCCEEDED');

    // Powertools inside the bundles: log lines carry the Lambda context, and the admission (in the
    // API's submit) and the drain after the release (tasks) are written as EMF.
    const lines = (fn: { logs: string[] }) => fn.logs.flatMap((l) => (l.startsWith('{') ? [JSON.parse(l)] : []));
    const emf = (fn: { logs: string[] }, name: string) =>
      lines(fn).filter((l) => l._aws?.CloudWatchMetrics?.[0]?.Namespace === 'Flare' && l[name] !== undefined);
    assert.ok(
      a.all.flatMap(lines).some((l) => l.function_request_id && typeof l.cold_start === 'boolean'),
      'no log line with the Lambda context',
    );
    assert.equal(emf(a.fns.api, 'Admissions').length, 1, 'the submit admitted the job once');
    assert.ok(emf(a.fns.tasks, 'DrainLatencyMs').length > 0, 'the release drained the pool');
  });

  it('posts the terminal state to the chat webhook once; the RUNNING change the channel does not ask for is not posted', async () => {
    const a = deployed();
    await setUpCatalog(a);
    const mark = a.mark();
    const job = await submit(a, { template: 'train', name: 'sweep <!channel>' });
    await waitForState(a, job.id, ['RUNNING']);
    await a.settle();
    assert.equal(a.webhook.posts.length, mark.posts, 'no post while the job runs');

    const [command] = await waitFor('the container command', () =>
      a.fake.commands().filter((c) => c.comment === `flare:job=${job.id}`),
    );
    await a.compute.finishCommand(command.commandId, command.instanceIds[0], { status: 'Failed', responseCode: 3 });
    const done = await waitForState(a, job.id, ['FAILED', 'SUCCEEDED']);
    assert.equal(done.state, 'FAILED');
    await a.settle();

    const posts = a.webhook.posts.slice(mark.posts);
    assert.equal(posts.length, 1, JSON.stringify(posts));
    assert.match(posts[0].body.text, /is now \*FAILED\* \(project vision\)/);
    assert.match(posts[0].body.text, /code 3/);
    assert.doesNotMatch(JSON.stringify(posts[0].body), /<!channel>/, 'user text is escaped: no @channel ping');
    // The queue took every message: none left, none dead-lettered.
    for (const queue of a.queues.values()) assert.deepEqual([queue.messages.length, queue.deadLettered.length], [0, 0]);
    await assertCallsAllowed(a.template, a.fake.calls(), a.fake.tagsOf);
  });

  it('the scheduled reconciler, run twice after every job ended, finds nothing to repair', async () => {
    const a = deployed();
    const from = a.mark().calls;
    const runs = [...(await a.router.tick()), ...(await a.router.tick())];
    assert.ok(runs.length >= 2, 'the schedule rule targets the reconciler');
    for (const run of runs)
      assert.deepEqual(
        run.attempts?.map((o) => (o.ok ? 'ok' : `${o.error.errorType}: ${o.error.errorMessage}`)),
        ['ok'],
      );
    await a.settle();
    assert.deepEqual(callsSince(a, from, 'TerminateInstances'), []);
    assert.deepEqual(callsSince(a, from, 'StartExecution'), []);
    assert.deepEqual(a.fake.events({ detailType: 'Flare Operator Event' }), [], 'no repair reported');
    assert.ok(callsSince(a, from, 'ListExecutions').length > 0, 'it looked for running executions');
    await assertCallsAllowed(a.template, a.fake.calls(), a.fake.tagsOf);
  });
});
