/**
 * The AWS shape of keeping a job's outputs, through the real ASL
 * (aws-local-stepfunctions) over DynamoDB Local: Stop begins the upload while
 * the job's compute is still there (a cancelled job's process still runs), the
 * workflow checks it after each WaitForOutputs until it ended or its bound
 * passed, and only then is the compute stopped; Release records what was kept.
 * The compute is the local driver with the upload of Ec2SsmCompute stood in
 * (test/unit/ssm-outputs.test.ts holds its exact SSM requests).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deleteJob, getJob, submitJob } from '../../lambdas/core/jobs.js';
import { JobState, type JobOutputsRecord } from '../../lambdas/core/job.js';
import { gpusHeld, template, waitForEnd, waitForState, worldPerTest, wrapCompute } from '../support/harness.js';
import { alice } from '../support/identities.js';

const setup = worldPerTest({
  pools: [{ name: 'local', gpus: 1 }],
  templates: [template({ name: 'sleep', command: ['sleep', '60'] })],
});

/** The steps of the upload as the compute sees them, in order. */
function uploadingCompute(calls: string[], checks: boolean[], record: JobOutputsRecord, untilMs: number) {
  return (real: Parameters<typeof wrapCompute>[0]) =>
    wrapCompute(real, {
      collectOutputs: async (job) => {
        // Still running: the upload (not the workflow) stops a cancelled job's container.
        calls.push(`collect:${(await real.endedOn?.(job)) ? 'ended' : 'running'}`);
        return { until: new Date(Date.now() + untilMs).toISOString() };
      },
      outputsCollected: async () => {
        const ended = checks.shift() ?? false;
        calls.push(`check:${ended}`);
        return ended;
      },
      stop: async (job) => {
        calls.push('stop');
        await real.stop(job);
      },
      keptOutputs: async () => {
        calls.push('kept');
        return record;
      },
    });
}

describe('outputs kept before the compute goes (real ASL, DynamoDB Local)', () => {
  it('a cancelled job: the upload begins while it runs, is waited for, then the compute stops and the record is kept', async () => {
    const calls: string[] = [];
    const world = await setup({
      wrapCompute: uploadingCompute(calls, [false, true], { count: 1, bytes: 3 }, 600_000),
    });
    const { job } = await submitJob(world.deps, alice, { template: 'sleep' });
    await waitForState(world.store, job.id, [JobState.RUNNING]);
    await deleteJob(world.deps, alice, job.id);
    const done = await waitForEnd(world.store, job.id, 60_000);
    assert.equal(done.state, JobState.CANCELLED);
    assert.deepEqual(done.outputs, { count: 1, bytes: 3 });
    assert.deepEqual((await getJob(world.deps, alice, job.id)).outputs, { count: 1, bytes: 3 });
    assert.deepEqual(calls, ['collect:running', 'check:false', 'check:true', 'stop', 'kept']);
    await world.workflows.idle();
    const states = world.workflows.list().find((e) => e.jobId === job.id)!.states;
    assert.deepEqual(states.slice(states.indexOf('Stop')), [
      'Stop',
      'Collected',
      'WaitForOutputs',
      'AwaitOutputs',
      'Collected',
      'WaitForOutputs',
      'AwaitOutputs',
      'Collected',
      'Release',
      'Drain',
    ]);
    assert.deepEqual(await gpusHeld(world), { pool: 0, project: 0 });
  });

  it('an upload that does not end by its bound is not waited for longer: the compute stops, the record says why', async () => {
    const calls: string[] = [];
    const record = { count: 0, bytes: 0, error: 'outputs upload did not end within 660 s (InProgress)' };
    const world = await setup({ wrapCompute: uploadingCompute(calls, [], record, 1_000) });
    const { job } = await submitJob(world.deps, alice, { template: 'sleep' });
    await waitForState(world.store, job.id, [JobState.RUNNING]);
    await deleteJob(world.deps, alice, job.id);
    const done = await waitForEnd(world.store, job.id, 60_000);
    assert.equal(done.state, JobState.CANCELLED);
    assert.deepEqual(done.outputs, record);
    // The bound passed during the first WaitForOutputs: no check, straight to stop.
    assert.deepEqual(calls, ['collect:running', 'stop', 'kept']);
  });
});
