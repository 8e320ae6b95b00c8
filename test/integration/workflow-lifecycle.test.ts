/**
 * The real statemachines/job-lifecycle.asl.json, run by aws-local-stepfunctions, over DynamoDB Local and
 * real processes (test/support/workflow-world.ts): a job's life from admission to its end (success, exit code, expiry, cancel, launch failure)
 * and the executions that carry it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { JobNotFound, LaunchFailed } from '../../lambdas/core/errors.js';
import { runTask } from '../../lambdas/handlers/workflow/tasks.js';
import { deleteJob, submitJob } from '../../lambdas/core/jobs.js';
import { JobState } from '../../lambdas/core/job.js';
import { WorkflowState } from '../../lambdas/core/workflow.js';
import { JOB_LIFECYCLE_ASL } from '../../lambdas/local/asl.js';
import type { Compute } from '../../lambdas/ports/compute.js';
import { usage, waitFor, waitForEnd, waitForState, wrapCompute } from '../support/harness.js';
import { alice } from '../support/identities.js';
import { behindFullPool, workflowWorld } from '../support/workflow-world.js';

const setup = workflowWorld();

describe('job lifecycle workflow (real ASL, DynamoDB Local, real processes)', () => {
  it('the ASL defines exactly the states core names', () => {
    const asl = JSON.parse(readFileSync(JOB_LIFECYCLE_ASL, 'utf8')) as {
      States: Record<
        string,
        { Type: string; Retry?: unknown[]; Catch?: unknown[]; TimeoutSeconds?: number; TimeoutSecondsPath?: string }
      >;
    };
    assert.deepEqual(Object.keys(asl.States).sort(), Object.values(WorkflowState).sort());
    for (const [name, state] of Object.entries(asl.States)) {
      if (state.Type !== 'Task') continue;
      assert.ok(state.Retry?.length, `${name} has Retry`);
      assert.ok(state.Catch?.length, `${name} has Catch`);
      assert.ok(state.TimeoutSeconds || state.TimeoutSecondsPath, `${name} has a timeout`);
    }
  });

  it('admits, runs and succeeds; releases the GPU; publishes every change', async () => {
    const world = await setup();
    const { job } = await submitJob(world.deps, alice, { template: 'ok' });
    const done = await waitForEnd(world.store, job.id);
    assert.equal(done.state, JobState.SUCCEEDED);
    assert.equal(done.exitCode, 0);
    assert.ok(done.startedAt && done.expiresAt && done.finishedAt && done.admittedAt);
    // The event follows the stored state: wait for it before reading the whole list.
    await waitFor('the SUCCEEDED event of job.id', async () => world.events.statesOf(job.id).includes('SUCCEEDED'));
    assert.deepEqual(world.events.statesOf(job.id), ['PENDING', 'LAUNCHING', 'RUNNING', 'STOPPING', 'SUCCEEDED']);
    assert.deepEqual(await usage(world), { pool: 0, poolAvailable: 2, project: 0, jobs: 0 });
  });

  it('a non-zero exit fails the job with its exit code', async () => {
    const world = await setup();
    const { job } = await submitJob(world.deps, alice, { template: 'fail' });
    const done = await waitForEnd(world.store, job.id);
    assert.equal(done.state, JobState.FAILED);
    assert.equal(done.exitCode, 3);
    assert.equal(done.stateReason, 'exited with code 3');
    assert.equal((await usage(world)).pool, 0);
  });

  it('expires a job at its live timeout and stops its process', async () => {
    const world = await setup();
    const { job } = await submitJob(world.deps, alice, { template: 'sleep', liveTimeoutMinutes: 0.03 });
    const running = await waitForState(world.store, job.id, [JobState.RUNNING]);
    const done = await waitForEnd(world.store, job.id, 15_000);
    assert.equal(done.state, JobState.EXPIRED);
    assert.equal(done.stateReason, 'live timeout reached');
    assert.ok(Date.parse(done.finishedAt!) >= Date.parse(running.expiresAt!), 'not stopped before expiresAt');
    assert.deepEqual(await usage(world), { pool: 0, poolAvailable: 2, project: 0, jobs: 0 });
  });

  it('a job that exited before its expiry, whose report could not be recorded in time, ends by its exit, not EXPIRED', async () => {
    const world = await setup();
    // Its exit (code 0 after 1 s) cannot be recorded until well after its 2.4 s live timeout (the store "down" for it).
    const recordOutcome = world.deps.jobs.recordOutcome.bind(world.deps.jobs);
    let refusedUntil = Infinity;
    world.deps.jobs.recordOutcome = async (id, outcome, on) => {
      if (Date.now() < refusedUntil) throw new Error('the store is down');
      return recordOutcome(id, outcome, on);
    };
    const { job } = await submitJob(world.deps, alice, {
      template: 'sleep',
      command: ['sleep', '1'],
      liveTimeoutMinutes: 0.04,
    });
    const running = await waitForState(world.store, job.id, [JobState.RUNNING]);
    refusedUntil = Date.parse(running.expiresAt!) + 3000;

    const done = await waitForEnd(world.store, job.id, 20_000);

    assert.equal(done.state, JobState.SUCCEEDED, done.stateReason);
    assert.ok(
      Date.parse(done.finishedAt!) >= Date.parse(running.expiresAt!),
      'decided after the expiry, by the exit that came before it',
    );
  });

  it('cancels a waiting job: nothing held, removed from the queue', async () => {
    const world = await setup();
    const { waiting: queued } = await behindFullPool(world, 'short');
    const result = await deleteJob(world.deps, alice, queued.id);
    assert.equal(result.removed, false);
    const cancelled = await world.store.getJob(queued.id);
    assert.equal(cancelled?.state, JobState.CANCELLED);
    assert.equal(cancelled?.stateReason, 'cancelled by alice');
    assert.equal(await world.store.queueLength('local'), 0);
    assert.deepEqual(await usage(world), { pool: 2, poolAvailable: 0, project: 2, jobs: 1 });
  });

  it('cancels a running job: its process is stopped and its GPUs released', async () => {
    const world = await setup();
    const { job } = await submitJob(world.deps, alice, { template: 'sleep' });
    await waitForState(world.store, job.id, [JobState.RUNNING]);
    await deleteJob(world.deps, alice, job.id);
    const done = await waitForEnd(world.store, job.id, 15_000);
    assert.equal(done.state, JobState.CANCELLED);
    assert.deepEqual(await usage(world), { pool: 0, poolAvailable: 2, project: 0, jobs: 0 });
    // A terminal job is removed by a second DELETE.
    assert.deepEqual(await deleteJob(world.deps, alice, job.id), { removed: true });
    assert.equal(await world.store.getJob(job.id), undefined);
  });

  it('every execution is a run of a job holding its GPUs, named <jobId>-<run>, with the job id and pool as input', async () => {
    const world = await setup();
    const { running, waiting } = await behindFullPool(world, 'short');
    const inputs = new Map<string, unknown>();
    const start = world.workflows.start.bind(world.workflows);
    world.workflows.start = async (name, input) => {
      inputs.set(name, input);
      return start(name, input);
    };
    assert.equal(running.state, JobState.LAUNCHING);
    await deleteJob(world.deps, alice, running.id);
    await waitForState(world.store, waiting.id, [JobState.RUNNING], 15_000);
    assert.deepEqual([...inputs], [[`${waiting.id}-1`, { jobId: waiting.id, pool: 'local', error: null }]]);
    assert.equal((await world.store.getJob(waiting.id))?.workflowRun, 1);
  });

  it('executions of the definition before this one, in their Admit state: a holding job goes on, a queued one is drained', async () => {
    const world = await setup();
    const { running, waiting } = await behindFullPool(world, 'short');
    assert.deepEqual(await runTask(world.deps, { task: 'admit', jobId: running.id, admitted: true }), {
      admitted: true,
    });
    assert.deepEqual(await runTask(world.deps, { task: 'admit', jobId: waiting.id }), { admitted: false });
    assert.equal((await world.store.getJob(waiting.id))?.state, JobState.WAITING);
    await assert.rejects(runTask(world.deps, { task: 'admit', jobId: 'j-00000000000000zz' }), JobNotFound);
  });

  it('a launch failure fails the job with the reason and releases its GPUs', async () => {
    const world = await setup({
      wrapCompute: (real: Compute): Compute =>
        wrapCompute(real, {
          launch: async () => {
            throw new LaunchFailed('no capacity for g5.xlarge in any subnet');
          },
        }),
    });
    const { job } = await submitJob(world.deps, alice, { template: 'ok' });
    const done = await waitForEnd(world.store, job.id);
    assert.equal(done.state, JobState.FAILED);
    assert.match(done.stateReason ?? '', /LaunchFailed: no capacity for g5.xlarge in any subnet/);
    // The event follows the stored state: wait for it before reading the whole list.
    await waitFor('the FAILED event of job.id', async () => world.events.statesOf(job.id).includes('FAILED'));
    assert.deepEqual(world.events.statesOf(job.id), ['PENDING', 'LAUNCHING', 'STOPPING', 'FAILED']);
    assert.deepEqual(await usage(world), { pool: 0, poolAvailable: 2, project: 0, jobs: 0 });
  });

  it('takes the same number of state transitions for a 1 s and a 3 s job', async () => {
    const world = await setup();
    const one = (await submitJob(world.deps, alice, { template: 'ok', command: ['sleep', '1'] })).job;
    const three = (await submitJob(world.deps, alice, { template: 'ok', command: ['sleep', '3'] })).job;
    await waitForState(world.store, one.id, [JobState.SUCCEEDED]);
    await waitForState(world.store, three.id, [JobState.SUCCEEDED]);
    await world.workflows.idle();
    const transitions = (id: string) => world.workflows.list().find((e) => e.jobId === id)!.transitions;
    assert.equal(transitions(one.id), transitions(three.id));
    // Every state entered is billed: no Pass or Succeed state on the way of a job that starts at once.
    // Launch checks the compute once itself: ready at once (the local driver), no AwaitCompute.
    assert.deepEqual(world.workflows.list().find((e) => e.jobId === one.id)!.states, [
      'Launch',
      'ComputeReady',
      'StartContainer',
      'Run',
      'RunEnded',
      'Stop',
      // Outputs are kept as the job runs locally: nothing to wait for before Release.
      'Collected',
      'Release',
      'Drain',
    ]);
    assert.equal(transitions(one.id), 9);
  });

  it('an exit reported twice finishes and releases once', async () => {
    const world = await setup();
    const { job } = await submitJob(world.deps, alice, { template: 'sleep' });
    await waitForState(world.store, job.id, [JobState.RUNNING]);
    const { reportOutcome } = await import('../../lambdas/core/jobs.js');
    await Promise.all([
      reportOutcome(world.deps, job.id, { kind: 'exited', exitCode: 0 }),
      reportOutcome(world.deps, job.id, { kind: 'exited', exitCode: 1 }),
    ]);
    const done = await waitForState(world.store, job.id, [JobState.SUCCEEDED, JobState.FAILED]);
    await waitFor('workflow to end', async () => world.workflows.running() === 0);
    await waitFor('the done.state event of job.id', async () => world.events.statesOf(job.id).includes(done.state));
    assert.equal(world.events.statesOf(job.id).filter((s) => s === done.state).length, 1);
    assert.deepEqual(await usage(world), { pool: 0, poolAvailable: 2, project: 0, jobs: 0 });
  });
});
