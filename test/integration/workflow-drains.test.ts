/**
 * The real statemachines/job-lifecycle.asl.json, run by aws-local-stepfunctions, over DynamoDB Local and
 * real processes (test/support/workflow-world.ts): the queue and its drains: a waiting job drained when GPUs come back, no starvation, queue
 * positions, re-driven jobs, one drain pass at a time.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JobNotFound } from '../../lambdas/core/errors.js';
import { runTask } from '../../lambdas/handlers/workflow/tasks.js';
import { deleteJob, getJob, submitJob } from '../../lambdas/core/jobs.js';
import { JobState, type Job } from '../../lambdas/core/job.js';
import { drainPool, redriveJob } from '../../lambdas/core/admission.js';
import { newJobId } from '../../lambdas/adapters/ids.js';
import { jobRecord, jobSequence } from '../support/jobs.js';
import { usage, waitFor, waitForEnd, waitForState } from '../support/harness.js';
import { alice, bob } from '../support/identities.js';
import { behindFullPool, workflowWorld } from '../support/workflow-world.js';

const setup = workflowWorld();

describe('job lifecycle workflow (real ASL, DynamoDB Local, real processes)', () => {
  it('queues a job the pool cannot hold, then drains it when GPUs come back', async () => {
    const world = await setup();
    const first = (await submitJob(world.deps, alice, { template: 'big', command: ['sleep', '1'] })).job;
    const running = await waitForState(world.store, first.id, [JobState.RUNNING]);
    const second = (await submitJob(world.deps, alice, { template: 'short' })).job;
    const waiting = await waitForState(world.store, second.id, [JobState.WAITING]);
    assert.equal(waiting.stateReason, 'pool local has 0 of 2 GPUs free, needs 1');
    const shown = await getJob(world.deps, alice, second.id);
    assert.equal(shown.queuePosition, 0);
    // The waiting notification carries the latest start promised when the job was stored, as the job does.
    await world.jobEvents.drained();
    const event = world.events.events.find((e) => e.jobId === second.id && e.state === JobState.WAITING)!;
    assert.deepEqual([event.previousState, event.stateReason], [JobState.PENDING, waiting.stateReason]);
    assert.ok(
      event.latestStartAt && Date.parse(event.latestStartAt) >= Date.parse(running.expiresAt!),
      'no earlier than the running job can end',
    );
    assert.equal(event.latestStartAt, waiting.promisedStartAt);
    const done = await waitForEnd(world.store, second.id, 20_000);
    assert.equal(done.state, JobState.SUCCEEDED);
    // The event follows the stored state: wait for it before reading the whole list.
    await waitFor('the SUCCEEDED event of second.id', async () =>
      world.events.statesOf(second.id).includes('SUCCEEDED'),
    );
    assert.deepEqual(world.events.statesOf(second.id), [
      'PENDING',
      'WAITING',
      'LAUNCHING',
      'RUNNING',
      'STOPPING',
      'SUCCEEDED',
    ]);
    assert.ok(
      world.workflows.list().some((e) => e.name === `${second.id}-1`),
      'the drain started a new execution',
    );
  });

  it('a job removed between its Release and its Drain (DELETE right after it ended) still lets the next job in', async () => {
    const world = await setup();
    const { running: first, waiting: next } = await behindFullPool(world, 'big');
    // The owner removes the job the moment it is terminal: before the workflow's Drain reads it.
    const store = world.deps.jobs;
    world.deps.jobs = new Proxy(store, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver);
        if (property !== 'finishJob') return typeof value === 'function' ? value.bind(target) : value;
        return async (...args: Parameters<typeof store.finishJob>) => {
          const finished = await store.finishJob(...args);
          if (finished?.id === first.id)
            assert.deepEqual(await deleteJob(world.deps, alice, first.id), { removed: true });
          return finished;
        };
      },
    });

    await deleteJob(world.deps, alice, first.id); // cancel: Stop, Release, then Drain, which no longer finds the job
    await waitForState(world.store, next.id, [JobState.RUNNING], 15_000);
    assert.equal(await world.store.getJob(first.id), undefined);
    // The drain is the first job's own, from the pool its execution was started with: no one else drained.
    assert.ok(
      world.workflows.list().some((e) => e.jobId === first.id && e.states.includes('Drain')),
      "the first job's workflow reached Drain",
    );
    assert.ok(
      world.workflows.list().some((e) => e.name === `${next.id}-1`),
      'the drain started the next job',
    );
  });

  it('the drain task drains the pool it is given without reading the job; without one (older executions) it reads the job', async () => {
    const world = await setup();
    const { running } = await behindFullPool(world, 'short');
    const gone = 'j-00000000000000zz';
    assert.deepEqual(await runTask(world.deps, { task: 'drain', jobId: gone, pool: 'local' }), { admitted: 0 });
    await assert.rejects(runTask(world.deps, { task: 'drain', jobId: gone }), JobNotFound);
    assert.deepEqual(await runTask(world.deps, { task: 'drain', jobId: running.id }), { admitted: 0 });
  });

  it('a job that does not fit the pool blocks younger jobs (no starvation)', async () => {
    const world = await setup();
    const small = (await submitJob(world.deps, alice, { template: 'sleep' })).job;
    await waitForState(world.store, small.id, [JobState.RUNNING]);
    const big = (await submitJob(world.deps, alice, { template: 'big' })).job;
    await waitForState(world.store, big.id, [JobState.WAITING]);
    const younger = (await submitJob(world.deps, bob, { template: 'audio-sleep' })).job;
    const waiting = await waitForState(world.store, younger.id, [JobState.WAITING]);
    assert.match(waiting.stateReason ?? '', /pool local has 1 of 2 GPUs free|behind 1 older job in pool local/);
    assert.equal((await getJob(world.deps, bob, younger.id)).queuePosition, 1);
    // The small job ends: the big one (oldest) goes first, the younger keeps waiting.
    await deleteJob(world.deps, alice, small.id);
    await waitForState(world.store, big.id, [JobState.RUNNING, JobState.LAUNCHING]);
    assert.equal((await world.store.getJob(younger.id))?.state, JobState.WAITING);
  });

  it('a job far back in the queue is told it waits behind at least 100 older jobs, and GET tells its exact place', async () => {
    const world = await setup();
    const big = (await submitJob(world.deps, alice, { template: 'big' })).job;
    await waitForState(world.store, big.id, [JobState.RUNNING]);
    // 101 older jobs wait (seeded in the store: Admit must not count them one by one).
    const older = jobSequence(new Date(Date.now() - 3_600_000));
    for (let i = 0; i < 101; i++) {
      const queued = older({ pool: 'local', template: 'sleep', state: JobState.PENDING });
      await world.store.createJob(queued);
      await world.store.updateJob(queued.id, [JobState.PENDING], { state: JobState.WAITING, stateReason: 'seeded' });
    }
    const late = (await submitJob(world.deps, alice, { template: 'sleep' })).job;
    const waiting = await waitForState(world.store, late.id, [JobState.WAITING]);
    assert.equal(waiting.stateReason, 'behind at least 100 older jobs in pool local');
    assert.equal((await getJob(world.deps, alice, late.id)).queuePosition, 101);
  });

  it('a job an earlier version stored PENDING, with no execution, is re-driven: parked WAITING, then drained and run', async () => {
    const world = await setup();
    const job: Job = {
      id: newJobId(),
      name: 'legacy',
      project: 'vision',
      owner: 'alice',
      template: 'ok',
      pool: 'local',
      image: `docker.io/library/busybox:1.36@sha256:${'a'.repeat(64)}`,
      command: ['sh', '-c', 'exit 0'],
      env: {},
      gpus: 1,
      nodeCount: 1,
      liveTimeoutMinutes: 5,
      state: JobState.PENDING,
      createdAt: new Date().toISOString(),
    };
    await world.store.createJob(job);
    assert.equal(await redriveJob(world.deps, job), undefined, 'a queued job gets no execution of its own');
    assert.equal((await world.store.getJob(job.id))?.state, JobState.WAITING);
    const drained = await drainPool(world.deps, 'local');
    assert.deepEqual(
      drained.admitted.map((j) => j.id),
      [job.id],
    );
    const done = await waitForEnd(world.store, job.id, 30_000);
    assert.equal(done.state, JobState.SUCCEEDED, 'its run was started and ran it');
    assert.deepEqual(await usage(world), { pool: 0, poolAvailable: 2, project: 0, jobs: 0 });
  });

  it('drains of one pool asked for at once run one pass at a time, and every caller gets a pass that began after it asked', async () => {
    const world = await setup();
    for (let i = 0; i < 4; i++) {
      const job = jobRecord({
        id: `queued-${i}`,
        pool: 'local',
        command: ['sleep', '30'],
        createdAt: new Date(Date.now() - 60_000 + i * 1000).toISOString(),
      });
      await world.store.createJob(job);
      await world.store.updateJob(job.id, [JobState.PENDING], { state: JobState.WAITING, stateReason: 'waiting' });
    }
    let inFlight = 0;
    let most = 0;
    const metered = Object.create(world.deps.queue, {
      admit: {
        value: async (job: Job, at: string) => {
          most = Math.max(most, ++inFlight);
          try {
            return await world.store.admit(job, at);
          } finally {
            inFlight -= 1;
          }
        },
      },
    });
    const deps = { ...world.deps, queue: metered };
    const results = await Promise.all(Array.from({ length: 10 }, () => drainPool(deps, 'local')));
    assert.equal(most, 1, 'no two admission transactions of the pool at once');
    const admitted = new Set(results.flatMap((r) => r.admitted.map((j) => j.id)));
    assert.deepEqual([...admitted].sort(), ['queued-0', 'queued-1'], 'the two oldest, once each');
    assert.ok(
      results.every((r) => r.poolBlocked),
      'every caller saw the pool full after its pass',
    );
    assert.equal((await world.store.getPool('local'))?.usedGpus, 2);
  });
});
