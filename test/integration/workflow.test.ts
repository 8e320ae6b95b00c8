/**
 * The real statemachines/job-lifecycle.asl.json, run by aws-local-stepfunctions,
 * over DynamoDB Local and real processes, through every path of a job's life.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { JobNotFound, LaunchFailed } from '../../lambdas/core/errors.js';
import { runTask } from '../../lambdas/handlers/workflow/tasks.js';
import { deleteJob, getJob, submitJob } from '../../lambdas/core/jobs.js';
import { JobState, type Job } from '../../lambdas/core/job.js';
import { drainPool, redriveJob } from '../../lambdas/core/admission.js';
import { newJobId } from '../../lambdas/adapters/ids.js';
import { jobRecord, jobSequence } from '../support/jobs.js';
import { WorkflowState, workflowInput } from '../../lambdas/core/workflow.js';
import { JOB_LIFECYCLE_ASL } from '../../lambdas/local/asl.js';
import type { Compute } from '../../lambdas/ports/compute.js';
import {
  executionsOf,
  template,
  usage,
  waitFor,
  waitForEnd,
  waitForState,
  worldPerTest,
  wrapCompute,
  type World,
} from '../support/harness.js';
import { alice, bob } from '../support/identities.js';

const TEMPLATES = [
  template({ name: 'ok', command: ['sh', '-c', 'exit 0'] }),
  template({ name: 'fail', command: ['sh', '-c', 'exit 3'] }),
  template({ name: 'sleep', command: ['sleep', '30'] }),
  template({ name: 'short', command: ['sleep', '1'] }),
  template({ name: 'audio-sleep', project: 'audio', command: ['sleep', '30'] }),
  template({ name: 'big', command: ['sleep', '30'], gpus: 2 }),
];

const setup = worldPerTest({ pools: [{ name: 'local', gpus: 2 }], templates: TEMPLATES });

/** A job of `template` WAITING behind a running `big` job that holds the whole pool. */
async function behindFullPool(world: World, template: string): Promise<{ running: Job; waiting: Job }> {
  const running = (await submitJob(world.deps, alice, { template: 'big' })).job;
  await waitForState(world.store, running.id, [JobState.RUNNING]);
  const waiting = (await submitJob(world.deps, alice, { template })).job;
  await waitForState(world.store, waiting.id, [JobState.WAITING]);
  return { running, waiting };
}

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

  it('a job submitted to a pool with room and nobody waiting comes back admitted; its run 1 starts at Launch', async () => {
    const world = await setup();
    const { job } = await submitJob(world.deps, alice, { template: 'sleep' });
    assert.equal(job.state, JobState.LAUNCHING);
    assert.equal(job.admittedAt, job.createdAt);
    assert.deepEqual(await usage(world), { pool: 1, poolAvailable: 1, project: 1, jobs: 1 });
    const running = await waitForState(world.store, job.id, [JobState.RUNNING]);
    assert.equal(running.admittedAt, job.admittedAt);
    // Events as if its Admit step had admitted it: submitted, then admitted.
    await world.jobEvents.drained();
    assert.deepEqual(world.events.statesOf(job.id), ['PENDING', 'LAUNCHING', 'RUNNING']);
    assert.deepEqual(
      world.events.events
        .filter((e) => e.jobId === job.id)
        .slice(0, 2)
        .map((e) => e.previousState),
      [null, 'PENDING'],
    );
    assert.deepEqual(
      executionsOf(world, job.id).map((e) => [e.name, e.states[0]]),
      [[`${job.id}-1`, 'Launch']],
    );
    // GPUs held once, released once.
    await deleteJob(world.deps, alice, job.id);
    await waitForState(world.store, job.id, [JobState.CANCELLED]);
    await waitFor('the execution to end', async () => world.workflows.list().every((e) => e.status !== 'RUNNING'));
    assert.deepEqual(await usage(world), { pool: 0, poolAvailable: 2, project: 0, jobs: 0 });
  });

  it('a job submitted while an older one waits in its pool is not admitted at once, even where it would fit (FIFO)', async () => {
    const world = await setup();
    const holder = (await submitJob(world.deps, alice, { template: 'sleep' })).job;
    await waitForState(world.store, holder.id, [JobState.RUNNING]);
    const head = (await submitJob(world.deps, alice, { template: 'big' })).job;
    assert.equal(head.state, JobState.WAITING, 'needs 2 GPUs, 1 is free');
    assert.equal(head.stateReason, 'pool local has 1 of 2 GPUs free, needs 2');
    // One GPU is free and this job needs one, but the older big job is first in line.
    const young = (await submitJob(world.deps, bob, { template: 'audio-sleep' })).job;
    assert.equal(young.state, JobState.WAITING);
    assert.equal(young.stateReason, 'behind 1 older job in pool local');
    assert.equal((await world.store.getJob(young.id))?.stateReason, 'behind 1 older job in pool local');
    assert.equal((await world.store.getPool('local'))?.availableGpus, 1);
    // Stored WAITING at the submit: no execution until a drain admits them.
    assert.deepEqual(
      world.workflows.list().filter((e) => e.jobId === head.id || e.jobId === young.id),
      [],
    );
  });

  it('a job stored WAITING after GPUs came back since its submit read the pool is admitted by that submit (no lost wake-up)', async () => {
    const world = await setup();
    // The submit reads a full pool; by the time the job is stored, a release has given the GPUs back and its drain has run.
    let reads = 0;
    const stale = {
      ...world.deps,
      limits: Object.create(world.deps.limits, {
        getLimits: {
          value: async (pool: string, projects: string[]) => {
            const limits = await world.store.getLimits(pool, projects);
            return reads++ > 0 ? limits : { ...limits, pool: { ...limits.pool!, usedGpus: 2, availableGpus: 0 } };
          },
        },
      }),
    };
    const { job } = await submitJob(stale, alice, { template: 'sleep' });
    assert.equal(job.state, JobState.LAUNCHING);
    await waitForState(world.store, job.id, [JobState.RUNNING]);
    await world.jobEvents.drained();
    assert.deepEqual(world.events.statesOf(job.id).slice(0, 3), ['PENDING', 'WAITING', 'LAUNCHING']);
    assert.deepEqual(
      executionsOf(world, job.id).map((e) => e.name),
      [`${job.id}-1`],
    );
  });

  it('a job stored WAITING that the queue index does not show yet is admitted by its submit when nothing blocks it', async () => {
    const world = await setup();
    // As on AWS, where a GSI lags its table: the drain's queue read misses the job just stored.
    let hide = '';
    let reads = 0;
    const lagging = {
      ...world.deps,
      limits: Object.create(world.deps.limits, {
        getLimits: {
          value: async (pool: string, projects: string[]) => {
            const limits = await world.store.getLimits(pool, projects);
            return reads++ > 0 ? limits : { ...limits, pool: { ...limits.pool!, usedGpus: 2, availableGpus: 0 } };
          },
        },
      }),
      jobs: Object.create(world.deps.jobs, {
        createJob: {
          value: async (...args: Parameters<World['store']['createJob']>) => {
            hide = args[0].id;
            return world.store.createJob(...args);
          },
        },
      }),
      queue: Object.create(world.deps.queue, {
        listQueue: {
          value: async (...args: Parameters<World['store']['listQueue']>) => {
            const page = await world.store.listQueue(...args);
            return { ...page, items: page.items.filter((j) => j.id !== hide) };
          },
        },
      }),
    };
    const { job } = await submitJob(lagging, alice, { template: 'sleep' });
    assert.equal(job.state, JobState.LAUNCHING);
    assert.equal((await world.store.getPool('local'))?.availableGpus, 1, 'admitted once');
    await waitForState(world.store, job.id, [JobState.RUNNING]);
    assert.deepEqual(
      executionsOf(world, job.id).map((e) => e.name),
      [`${job.id}-1`],
    );
  });

  it('a replayed submit of a job stored WAITING gives the same job, and admits it if GPUs came back without a drain', async () => {
    const world = await setup();
    // A cap of 1 on a machine with 2 slots: the job that waits has a slot to run on once the cap is raised.
    await world.store.setPoolCap('local', 1);
    const holder = (await submitJob(world.deps, alice, { template: 'sleep' })).job;
    await waitForState(world.store, holder.id, [JobState.RUNNING]);
    const first = await submitJob(world.deps, alice, { template: 'sleep' }, 'replay-1');
    assert.deepEqual([first.created, first.job.state], [true, JobState.WAITING]);
    const again = await submitJob(world.deps, alice, { template: 'sleep' }, 'replay-1');
    assert.deepEqual([again.created, again.job.id, again.job.state], [false, first.job.id, JobState.WAITING]);
    // The cap raised behind the API's back (the API's PATCH would drain): nobody else will admit the job.
    await world.store.setPoolCap('local', 2);
    const third = await submitJob(world.deps, alice, { template: 'sleep' }, 'replay-1');
    assert.deepEqual([third.created, third.job.id, third.job.state], [false, first.job.id, JobState.LAUNCHING]);
    await waitForState(world.store, first.job.id, [JobState.RUNNING]);
    assert.deepEqual(
      executionsOf(world, first.job.id).map((e) => e.name),
      [`${first.job.id}-1`],
    );
    assert.equal((await world.store.getQuota('vision', 'jobs'))?.used, 2, 'stored once');
  });

  it('an execution started by hand for a WAITING job neither launches nor fails it; its Drain admits it, and run 1 drives it', async () => {
    const world = await setup();
    await world.store.setPoolCap('local', 1);
    const holder = (await submitJob(world.deps, alice, { template: 'sleep' })).job;
    await waitForState(world.store, holder.id, [JobState.RUNNING]);
    const { job } = await submitJob(world.deps, alice, { template: 'sleep' });
    assert.equal(job.state, JobState.WAITING);
    await world.store.setPoolCap('local', 2);
    await world.workflows.start(`${job.id}-by-hand`, workflowInput(job));
    await waitForState(world.store, job.id, [JobState.RUNNING]);
    await waitFor(
      'the execution by hand to end',
      async () => world.workflows.list().find((e) => e.name === `${job.id}-by-hand`)?.status !== 'RUNNING',
    );
    const executions = executionsOf(world, job.id);
    assert.equal(executions.find((e) => e.name === `${job.id}-by-hand`)?.status, 'SUCCEEDED');
    assert.deepEqual(
      executions
        .filter((e) => e.states.includes('StartContainer') && e.name !== `${job.id}-by-hand`)
        .map((e) => e.name),
      [`${job.id}-1`],
    );
    assert.equal((await world.store.getJob(job.id))?.state, JobState.RUNNING, 'not failed by the execution by hand');
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

  /**
   * Pool of 3 with one vision and one audio job running (1 GPU free), then vision's 2-GPU job, which fits
   * neither the pool nor (as the test set it) vision's own limit, then an audio job: it must go at once.
   */
  async function headHeldTwice(world: World): Promise<{ head: Job; next: Job }> {
    for (const [who, template] of [
      [alice, 'sleep'],
      [bob, 'audio-sleep'],
    ] as const) {
      const running = (await submitJob(world.deps, who, { template })).job;
      await waitForState(world.store, running.id, [JobState.RUNNING]);
    }
    const head = (await submitJob(world.deps, alice, { template: 'big' })).job;
    assert.equal((await world.store.getJob(head.id))?.state, JobState.WAITING);
    const next = (await submitJob(world.deps, bob, { template: 'audio-sleep' })).job;
    await waitForState(world.store, next.id, [JobState.LAUNCHING, JobState.RUNNING], 5000);
    return { head: (await world.store.getJob(head.id))!, next };
  }

  it('a head that does not fit the pool but is held by its own quota too does not hold the pool: another project goes', async () => {
    const world = await setup({
      pools: [{ name: 'local', gpus: 3 }],
      quotas: [{ project: 'vision', resource: 'gpus', hardLimit: 2 }],
    });
    const { head } = await headHeldTwice(world);
    assert.equal(head.stateReason, 'project vision has 1 of 2 GPUs free, needs 2');
  });

  it('a head that does not fit the pool but is held by its own GPU-hour budget too does not hold the pool either', async () => {
    const world = await setup({ pools: [{ name: 'local', gpus: 3 }] });
    // The running vision job reserves 1 GPU-hour (60 min): 1.5 left, the head's worst case is 2.
    await world.store.putQuota(
      { project: 'vision', resource: 'gpuHours', hardLimit: 2.5, period: 'month' },
      'new',
      new Date(),
    );
    const { head } = await headHeldTwice(world);
    assert.equal(head.stateReason, 'project vision has 1.5 of 2.5 GPU-hours left this month, needs 2');
  });

  it('GPUs a project gets back in one pool admit its job held by its quota in another pool at once', async () => {
    const world = await setup({
      pools: [
        { name: 'local', gpus: 2 },
        { name: 'other', gpus: 2 },
      ],
      quotas: [{ project: 'vision', resource: 'gpus', hardLimit: 1 }],
      templates: [...TEMPLATES, template({ name: 'elsewhere', pool: 'other', command: ['sleep', '30'] })],
    });
    const first = (await submitJob(world.deps, alice, { template: 'short' })).job;
    await waitForState(world.store, first.id, [JobState.RUNNING]);
    const held = (await submitJob(world.deps, alice, { template: 'elsewhere' })).job;
    assert.equal((await world.store.getJob(held.id))?.stateReason, 'project vision has 0 of 1 GPUs free, needs 1');

    await waitForState(world.store, first.id, [JobState.SUCCEEDED], 15_000);

    // No release happens in pool other, and no reconciler runs here: only the first job's Drain can admit it.
    await waitForState(world.store, held.id, [JobState.RUNNING], 10_000);
  });

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

  it('a project blocked by its own quota does not block another project', async () => {
    const world = await setup({ quotas: [{ project: 'vision', resource: 'gpus', hardLimit: 1 }] });
    const a = (await submitJob(world.deps, alice, { template: 'sleep' })).job;
    await waitForState(world.store, a.id, [JobState.RUNNING]);
    const b = (await submitJob(world.deps, alice, { template: 'sleep' })).job;
    const waiting = await waitForState(world.store, b.id, [JobState.WAITING]);
    assert.equal(waiting.stateReason, 'project vision has 0 of 1 GPUs free, needs 1');
    const c = (await submitJob(world.deps, bob, { template: 'audio-sleep' })).job;
    await waitForState(world.store, c.id, [JobState.RUNNING]);
    assert.equal((await world.store.getJob(b.id))?.state, JobState.WAITING);
  });

  it("a submit held back by its own project's quota, into a pool with room, runs no drain pass; the release admits the oldest", async () => {
    const world = await setup({ quotas: [{ project: 'vision', resource: 'gpus', hardLimit: 1 }] });
    const a = (await submitJob(world.deps, alice, { template: 'sleep' })).job;
    await waitForState(world.store, a.id, [JobState.RUNNING]);
    let pages = 0;
    const counting = {
      ...world.deps,
      queue: Object.create(world.deps.queue, {
        listQueue: {
          value: (...args: Parameters<World['store']['listQueue']>) => (pages++, world.store.listQueue(...args)),
        },
      }),
    };
    const held: Job[] = [];
    for (let i = 0; i < 3; i++) held.push((await submitJob(counting, alice, { template: 'sleep' })).job);
    assert.deepEqual(
      held.map((j) => j.stateReason),
      Array(3).fill('project vision has 0 of 1 GPUs free, needs 1'),
    );
    assert.equal(pages, 0, 'no drain read the queue: nothing could be admitted');
    await deleteJob(world.deps, alice, a.id);
    await waitForState(world.store, held[0].id, [JobState.RUNNING]);
    assert.deepEqual(
      [(await world.store.getJob(held[1].id))?.state, (await world.store.getJob(held[2].id))?.state],
      [JobState.WAITING, JobState.WAITING],
    );
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
