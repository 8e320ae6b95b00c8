/**
 * The reconciler over DynamoDB Local, the real ASL and real processes: orphan
 * runners, lost runners, stuck jobs, drifted usage counters and lost drains, each repaired
 * on the second run that sees them (never the first), with operator events.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { instanceId } from '../../lambdas/adapters/local-compute.js';
import { submitJob, deleteJob } from '../../lambdas/core/jobs.js';
import { JobState, type Job } from '../../lambdas/core/job.js';
import { containerSpec } from '../../lambdas/core/lifecycle.js';
import { workflowInput } from '../../lambdas/core/workflow.js';
import { reconcile, ReconcileEvent, type ReconcileOptions } from '../../lambdas/core/reconcile.js';
import type { DynamoReconcileStore } from '../../lambdas/adapters/dynamo/dynamo-reconcile-store.js';
import {
  dynamoPerFile,
  template,
  usage,
  waitFor,
  waitForEnd,
  waitForState,
  world,
  type World,
} from '../support/harness.js';
import { admittedJob, alive, corrupt, newJob, runnerPid } from '../support/reconcile-fixtures.js';
import { alice } from '../support/identities.js';

const TEMPLATES = [template({ name: 'sleep', command: ['sleep', '30'] })];
const OPTIONS: ReconcileOptions = { markTtlSeconds: 600, minMarkAgeSeconds: 0 };

const dynamo = dynamoPerFile();
let w: World | undefined;
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  await w?.close();
  w = undefined;
});

async function setup(
  options: Partial<Parameters<typeof world>[1]> = {},
): Promise<{ world: World; store: DynamoReconcileStore }> {
  w = await world(dynamo(), { pools: [{ name: 'local', gpus: 2 }], templates: TEMPLATES, ...options });
  return { world: w, store: w.reconcileStore };
}

/** Launch and start `command` for `job` on the local driver, outside any workflow; returns the runner's pid. */
async function startRunner(world: World, job: Job, command: string[]): Promise<number> {
  const launched = await world.compute.launch(job);
  const held: Job = { ...job, command, devices: launched.devices };
  await world.compute.start(held, containerSpec(held, new Date(Date.now() + 600_000).toISOString()));
  cleanups.push(() => world.compute.stop(held));
  return waitFor(`runner of ${job.id}`, () => runnerPid(world, job.id), 5000);
}

/** An admitted job marked RUNNING on its local instance id, as StartContainer leaves it, with no runner started. */
async function startedWithoutRunner(world: World, job: Job): Promise<void> {
  const startedAt = new Date();
  await world.store.updateJob(job.id, [JobState.LAUNCHING], {
    state: JobState.RUNNING,
    startedAt: startedAt.toISOString(),
    expiresAt: new Date(startedAt.getTime() + 600_000).toISOString(),
    instanceIds: [instanceId(job.id)],
  });
}

function operatorEvents(world: World, kind: string) {
  return world.events.operatorEvents.filter((e) => e.kind === kind);
}

describe('reconciler (DynamoDB Local, real ASL, real processes)', { timeout: 120_000 }, () => {
  it('marks an orphan runner on one run and terminates it on the next; a live job keeps its runner, even before it records it', async () => {
    const { world, store } = await setup({ pools: [{ name: 'local', gpus: 4 }] });
    // A live job with its workflow.
    const live = (await submitJob(world.deps, alice, { template: 'sleep' })).job;
    await waitForState(world.store, live.id, [JobState.RUNNING]);
    const livePid = await waitFor('live runner', () => runnerPid(world, live.id), 5000);
    // A job that ended while its runner kept going.
    const ended = await admittedJob(world);
    const endedPid = await startRunner(world, ended, ['sleep', '60']);
    assert.ok(
      await world.store.finishJob(ended, {
        state: JobState.FAILED,
        stateReason: 'workflow lost the instance',
        finishedAt: new Date().toISOString(),
      }),
    );
    // A runner of a job the store never heard of.
    const stranger = newJob();
    const strangerPid = await startRunner(world, stranger, ['sleep', '60']);
    // Admitted, runner up, instance ids not yet on the job (the Launch step's write was lost).
    const launching = await admittedJob(world, { command: ['sleep', '30'] });
    const launchingPid = await startRunner(world, launching, ['sleep', '30']);

    const first = await reconcile(world.deps, store, OPTIONS);

    assert.deepEqual(first.orphans.marked.sort(), [instanceId(ended.id), instanceId(stranger.id)].sort());
    assert.deepEqual(first.orphans.terminated, []);
    assert.ok(alive(endedPid) && alive(strangerPid), 'nothing is terminated on the first sighting');
    const marked = operatorEvents(world, ReconcileEvent.OrphanMarked);
    assert.match(
      marked.find((e) => e.subject === instanceId(ended.id))?.reason ?? '',
      new RegExp(`job ${ended.id}, which is FAILED`),
    );
    assert.match(marked.find((e) => e.subject === instanceId(stranger.id))?.reason ?? '', /which does not exist/);

    const second = await reconcile(world.deps, store, OPTIONS);

    assert.deepEqual(second.orphans.terminated.sort(), [instanceId(ended.id), instanceId(stranger.id)].sort());
    await waitFor('orphan runners to be gone', async () => !alive(endedPid) && !alive(strangerPid), 5000);
    const managed = (await world.compute.listManaged()).map((i) => i.jobId);
    assert.ok(!managed.includes(ended.id) && !managed.includes(stranger.id));
    assert.equal(operatorEvents(world, ReconcileEvent.OrphanTerminated).length, 2);
    // The live jobs kept their runners through both runs.
    assert.ok(alive(livePid), 'the live job runner survives');
    assert.ok(alive(launchingPid), 'the LAUNCHING job runner survives');
    assert.equal((await world.store.getJob(live.id))?.state, JobState.RUNNING);
    // The LAUNCHING job had no execution: run 2 re-drove it, and it carried on with the same runner.
    assert.deepEqual(second.stuck.redriven, [launching.id]);
    await waitForState(world.store, launching.id, [JobState.RUNNING]);
    assert.equal(await runnerPid(world, launching.id), launchingPid);

    const third = await reconcile(world.deps, store, OPTIONS);
    assert.deepEqual(third.orphans, { marked: [], terminated: [] });
  });

  it('reports a running job whose runner is gone lost on the second run: its workflow ends it FAILED and releases its GPU once; a job whose runner lives is untouched', async () => {
    const { world, store } = await setup();
    const live = (await submitJob(world.deps, alice, { template: 'sleep' })).job;
    await waitForState(world.store, live.id, [JobState.RUNNING]);
    const livePid = await waitFor('live runner', () => runnerPid(world, live.id), 5000);
    // RUNNING on a runner this machine has no trace of (gone with no exit record), its workflow waiting on it.
    const gone = await admittedJob(world);
    await startedWithoutRunner(world, gone);
    await world.workflows.start(gone.id, workflowInput(gone));
    await waitFor(
      'the workflow to wait on the job',
      async () => (await world.store.getJob(gone.id))?.taskToken,
      10_000,
    );
    assert.deepEqual(await usage(world), { pool: 2, poolAvailable: 0, project: 2, jobs: 2 });

    const first = await reconcile(world.deps, store, OPTIONS);

    assert.deepEqual(first.lost, { marked: [gone.id], reported: [] });
    assert.equal(
      (await world.store.getJob(gone.id))?.state,
      JobState.RUNNING,
      'nothing is reported on one observation',
    );
    assert.match(
      operatorEvents(world, ReconcileEvent.InstanceMissing)[0]?.reason ?? '',
      new RegExp(`instance ${instanceId(gone.id)} no longer exists`),
    );

    const second = await reconcile(world.deps, store, OPTIONS);

    assert.deepEqual(second.lost, { marked: [], reported: [gone.id] });
    const ended = await waitForEnd(world.store, gone.id);
    assert.equal(ended.state, JobState.FAILED);
    assert.equal(ended.stateReason, `instance lost: instance ${instanceId(gone.id)} no longer exists`);
    assert.equal(operatorEvents(world, ReconcileEvent.JobLost).length, 1);
    assert.deepEqual(second.stuck.redriven, [], 'its own workflow ended it');
    await waitFor(
      'the workflow to finish',
      async () => world.workflows.list().find((e) => e.name === gone.id && e.status !== 'RUNNING'),
      10_000,
    );
    // The live job kept its runner through both runs; only the lost job's GPU came back, once.
    assert.ok(alive(livePid), 'the live job runner survives');
    assert.equal((await world.store.getJob(live.id))?.state, JobState.RUNNING);
    assert.deepEqual(await usage(world), { pool: 1, poolAvailable: 1, project: 1, jobs: 1 });
    const third = await reconcile(world.deps, store, OPTIONS);
    assert.deepEqual(third.lost, { marked: [], reported: [] });
  });

  it('re-drives jobs stuck in LAUNCHING and RUNNING with no execution on the second run, and they finish with their GPUs released', async () => {
    const { world, store } = await setup();
    const launching = await admittedJob(world);
    const running = await admittedJob(world);
    await startedWithoutRunner(world, running);
    // Its process exited while no workflow was waiting for it.
    assert.ok(await world.store.recordOutcome(running.id, { kind: 'exited', exitCode: 0 }));
    assert.deepEqual(await usage(world), { pool: 2, poolAvailable: 0, project: 2, jobs: 2 });

    const first = await reconcile(world.deps, store, OPTIONS);

    assert.deepEqual(first.stuck.marked.sort(), [launching.id, running.id].sort());
    assert.deepEqual(first.stuck.redriven, []);
    assert.equal(world.workflows.list().length, 0, 'no execution is started on the first sighting');
    assert.equal((await world.store.getJob(launching.id))?.state, JobState.LAUNCHING);
    assert.equal(operatorEvents(world, ReconcileEvent.JobStuck).length, 2);

    const second = await reconcile(world.deps, store, OPTIONS);

    assert.deepEqual(second.stuck.redriven.sort(), [launching.id, running.id].sort());
    const done = await Promise.all(
      [launching.id, running.id].map((id) =>
        waitForState(world.store, id, [JobState.SUCCEEDED, JobState.FAILED, JobState.EXPIRED]),
      ),
    );
    assert.deepEqual(
      done.map((j) => j.state),
      [JobState.SUCCEEDED, JobState.SUCCEEDED],
    );
    await world.workflows.idle();
    assert.deepEqual(await usage(world), { pool: 0, poolAvailable: 2, project: 0, jobs: 0 });
    const redriven = operatorEvents(world, ReconcileEvent.JobRedriven);
    assert.equal(redriven.length, 2);
    assert.match(
      redriven.find((e) => e.subject === launching.id)?.reason ?? '',
      /was LAUNCHING with no workflow execution \(seen on two runs\): started execution j-[0-9a-z]{16}-\d+$/,
    );
    // Each on its next run: the job's stored run number, one more than the run that was lost.
    for (const e of world.workflows.list())
      assert.equal(e.name, `${e.jobId}-${(await world.store.getJob(e.jobId))?.workflowRun}`);
  });

  it('does not re-drive a job whose state changed between the two runs', async () => {
    const { world, store } = await setup();
    const job = await admittedJob(world);
    await reconcile(world.deps, store, OPTIONS);
    await world.store.updateJob(job.id, [JobState.LAUNCHING], {
      state: JobState.RUNNING,
      startedAt: new Date().toISOString(),
      expiresAt: new Date(Date.now() + 600_000).toISOString(),
    });

    const second = await reconcile(world.deps, store, OPTIONS);

    assert.deepEqual(second.stuck.redriven, []);
    assert.deepEqual(second.stuck.marked, [job.id], 'a new state is a new first sighting');
    assert.equal(world.workflows.list().length, 0);
  });

  it('repairs a corrupted pool counter on the second run only, with a reason, and releases exactly after', async () => {
    const { world, store } = await setup({ quotas: [{ project: 'vision', resource: 'gpus', hardLimit: 4 }] });
    const job = (await submitJob(world.deps, alice, { template: 'sleep' })).job;
    await waitForState(world.store, job.id, [JobState.RUNNING]);
    await corrupt(dynamo(), world, { pool: 'local' }, 2);
    assert.deepEqual(await usage(world), { pool: 3, poolAvailable: -1, project: 1, jobs: 1 });

    const first = await reconcile(world.deps, store, OPTIONS);

    assert.deepEqual(first.usage, { marked: ['pool/local'], repaired: [] });
    assert.equal((await usage(world)).pool, 3, 'not repaired on one observation');

    const second = await reconcile(world.deps, store, OPTIONS);

    assert.deepEqual(second.usage.repaired, [{ counter: 'pool/local', from: 3, to: 1 }]);
    assert.deepEqual(await usage(world), { pool: 1, poolAvailable: 1, project: 1, jobs: 1 });
    const [repaired] = operatorEvents(world, ReconcileEvent.UsageRepaired);
    assert.equal(repaired?.subject, 'pool/local');
    assert.equal(
      repaired?.reason,
      'pool local GPUs: used 3, available -1 of 2, while live jobs hold 1; seen on two runs, set used 1, available 1',
    );

    await deleteJob(world.deps, alice, job.id);
    await waitForState(world.store, job.id, [JobState.CANCELLED]);
    await world.workflows.idle();
    assert.deepEqual(await usage(world), { pool: 0, poolAvailable: 2, project: 0, jobs: 0 });
    const third = await reconcile(world.deps, store, OPTIONS);
    assert.deepEqual(third.usage, { marked: [], repaired: [] });
  });

  it('needs the same drift on two consecutive runs: a counter that moved is marked again', async () => {
    const { world, store } = await setup();
    const job = (await submitJob(world.deps, alice, { template: 'sleep' })).job;
    await waitForState(world.store, job.id, [JobState.RUNNING]);
    await corrupt(dynamo(), world, { project: 'vision', resource: 'jobs' }, 5);
    await reconcile(world.deps, store, OPTIONS);
    await corrupt(dynamo(), world, { project: 'vision', resource: 'jobs' }, 1);

    const second = await reconcile(world.deps, store, OPTIONS);

    assert.deepEqual(second.usage, { marked: ['quota/vision/jobs'], repaired: [] });
    assert.equal((await world.store.getQuota('vision', 'jobs'))?.used, 7);

    const third = await reconcile(world.deps, store, OPTIONS);

    assert.deepEqual(third.usage.repaired, [{ counter: 'quota/vision/jobs', from: 7, to: 1 }]);
    assert.equal((await world.store.getQuota('vision', 'jobs'))?.used, 1);
    await deleteJob(world.deps, alice, job.id);
    await waitForState(world.store, job.id, [JobState.CANCELLED]);
    assert.equal((await world.store.getQuota('vision', 'jobs'))?.used, 0);
  });

  it('admits a WAITING job behind free GPUs (a lost drain) and it runs to the end', async () => {
    const { world, store } = await setup();
    const { job } = await world.store.createJob(newJob());
    await world.store.updateJob(job.id, [JobState.PENDING], {
      state: JobState.WAITING,
      stateReason: 'pool local has 0 of 2 GPUs free, needs 1',
    });

    const report = await reconcile(world.deps, store, OPTIONS);

    assert.deepEqual(report.drained, [{ pool: 'local', admitted: [job.id] }]);
    assert.deepEqual(report.stuck.marked, [], "a WAITING job is the drain's, not a stuck job");
    const done = await waitForEnd(world.store, job.id);
    assert.equal(done.state, JobState.SUCCEEDED);
    await world.workflows.idle();
    assert.deepEqual(await usage(world), { pool: 0, poolAvailable: 2, project: 0, jobs: 0 });
  });
});

describe('DynamoReconcileStore (DynamoDB Local)', { timeout: 60_000 }, () => {
  it('a repair read before an admission does not apply after it, so the admission cannot overshoot', async () => {
    const { world, store } = await setup();
    const read = (await store.listCounters()).find((c) => c.ref.kind === 'pool');
    assert.deepEqual(read, { ref: { kind: 'pool', pool: 'local' }, used: 0, available: 2, limit: 2 });
    await admittedJob(world);

    assert.equal(await store.repairCounter(read!, 0), false);
    assert.deepEqual(await usage(world), { pool: 1, poolAvailable: 1, project: 1, jobs: 1 });

    const fresh = (await store.listCounters()).find((c) => c.ref.kind === 'pool')!;
    assert.equal(await store.repairCounter(fresh, 2), true);
    assert.deepEqual((await usage(world)).poolAvailable, 0, 'available follows maxGpus - used');
  });

  it('keeps marks until they expire or are cleared; an expired mark not yet deleted by TTL reads as absent', async () => {
    const { store } = await setup();
    const now = new Date();
    await store.putMark(
      'orphan',
      'local-a',
      { observed: 'j-a', markedAt: now.toISOString() },
      new Date(now.getTime() + 60_000),
    );
    await store.putMark(
      'orphan',
      'local-b',
      { observed: 'j-b', markedAt: now.toISOString() },
      new Date(now.getTime() - 1000),
    );
    await store.putMark(
      'stuck',
      'local-a',
      { observed: 'other kind', markedAt: now.toISOString() },
      new Date(now.getTime() + 60_000),
    );

    const marks = await store.getMarks('orphan', ['local-a', 'local-b', 'local-c'], now);

    assert.deepEqual([...marks], [['local-a', { observed: 'j-a', markedAt: now.toISOString() }]]);
    await store.clearMarks('orphan', ['local-a', 'local-c']);
    assert.equal((await store.getMarks('orphan', ['local-a'], now)).size, 0);
    assert.equal((await store.getMarks('stuck', ['local-a'], now)).size, 1);
  });

  it('reads and clears marks in batches larger than one request holds', async () => {
    const { store } = await setup();
    const now = new Date();
    const subjects = Array.from({ length: 130 }, (_, i) => `s${i}`);
    for (const s of subjects)
      await store.putMark('usage', s, { observed: s, markedAt: now.toISOString() }, new Date(now.getTime() + 60_000));

    assert.equal((await store.getMarks('usage', subjects, now)).size, 130);
    await store.clearMarks('usage', subjects);
    assert.equal((await store.getMarks('usage', subjects, now)).size, 0);
  });
});
