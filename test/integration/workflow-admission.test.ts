/**
 * The real statemachines/job-lifecycle.asl.json, run by aws-local-stepfunctions, over DynamoDB Local and
 * real processes (test/support/workflow-world.ts): admission at submit: a job admitted at once or parked WAITING (FIFO, no lost wake-up, replays,
 * executions started by hand), and quotas and GPU-hour budgets that hold a project back but not the pool.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deleteJob, submitJob } from '../../lambdas/core/jobs.js';
import { JobState, type Job } from '../../lambdas/core/job.js';
import { workflowInput } from '../../lambdas/core/workflow.js';
import { executionsOf, template, usage, waitFor, waitForState, type World } from '../support/harness.js';
import { alice, bob } from '../support/identities.js';
import { TEMPLATES, workflowWorld } from '../support/workflow-world.js';

const setup = workflowWorld();

/** The world's limits, but the first read of them finds the pool full (2 GPUs in use, none free). */
function fullOnFirstRead(world: World): World['deps']['limits'] {
  let reads = 0;
  return Object.create(world.deps.limits, {
    getLimits: {
      value: async (pool: string, projects: string[]) => {
        const limits = await world.store.getLimits(pool, projects);
        return reads++ > 0 ? limits : { ...limits, pool: { ...limits.pool!, usedGpus: 2, availableGpus: 0 } };
      },
    },
  });
}

describe('job lifecycle workflow (real ASL, DynamoDB Local, real processes)', () => {
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
    const stale = {
      ...world.deps,
      limits: fullOnFirstRead(world),
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
    const lagging = {
      ...world.deps,
      limits: fullOnFirstRead(world),
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
});
