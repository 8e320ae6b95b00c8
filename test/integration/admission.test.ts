/**
 * The admission module (core/admission.ts) as a submit meets it: what a submit may admit inside its own
 * request, and the one execution-name scheme. Real ASL, DynamoDB Local, real processes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newJobId } from '../../lambdas/adapters/ids.js';
import { DRAIN_PAGE_SIZE } from '../../lambdas/core/queue.js';
import { drainPool, executionName, redriveJob } from '../../lambdas/core/admission.js';
import { JobState, type Job } from '../../lambdas/core/job.js';
import { submitJob } from '../../lambdas/core/jobs.js';
import { jobRecord } from '../support/jobs.js';
import { template, waitFor, waitForState, worldPerTest, type World } from '../support/harness.js';
import { alice } from '../support/identities.js';

const setup = worldPerTest({
  pools: [{ name: 'local', gpus: 40 }],
  templates: [template({ name: 'sleep', command: ['sleep', '30'] })],
});

/** Jobs of project audio stored WAITING behind the API's back, as if the drain that should have admitted them missed them. */
async function missedByADrain(world: World, count: number, createdFrom: number): Promise<Job[]> {
  const jobs: Job[] = [];
  for (let i = 0; i < count; i++) {
    const job = jobRecord({
      id: newJobId(),
      project: 'audio',
      owner: 'bob',
      pool: 'local',
      command: ['sleep', '30'],
      state: JobState.WAITING,
      stateReason: 'waiting',
      createdAt: new Date(createdFrom + i * 1000).toISOString(),
    });
    await world.store.createJob(job);
    jobs.push(job);
  }
  return jobs;
}

/** `target` with some of its methods replaced; the others, and `this` inside them, as they were. */
function overriding<T extends object>(target: T, methods: Partial<T>): T {
  return Object.create(target, Object.fromEntries(Object.entries(methods).map(([k, value]) => [k, { value }])));
}

/** A place where a test holds the plane: `arrived` settles when something gets there, which goes on at `open()`. */
function gate() {
  let open!: () => void;
  let reached!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  const arrived = new Promise<void>((resolve) => (reached = resolve));
  const pass = () => {
    reached();
    return opened;
  };
  return { arrived, open, pass };
}

/**
 * The world's ports as every caller in one plane shares them, watched: each queue.admit counted, and those that
 * lost; the id of the job a submit stored; each read of limits after that. `hold` keeps an admission (by its
 * number) or a read of limits after the store waiting.
 */
function watchedPorts(
  world: World,
  hold: { admission?: (n: number) => Promise<void> | undefined; limitsAfterStore?: () => Promise<void> } = {},
) {
  const { queue, jobs, limits } = world.deps;
  const seen = { admissions: 0, lost: 0, stored: undefined as string | undefined, limitsAfterStore: 0 };
  const deps: World['deps'] = {
    ...world.deps,
    queue: overriding(queue, {
      admit: async (...args: Parameters<typeof queue.admit>) => {
        seen.admissions += 1;
        await hold.admission?.(seen.admissions);
        const outcome = await queue.admit(...args);
        if (!outcome.admitted) seen.lost += 1;
        return outcome;
      },
    }),
    jobs: overriding(jobs, {
      createJob: async (...args: Parameters<typeof jobs.createJob>) => {
        const result = await jobs.createJob(...args);
        seen.stored = result.job.id;
        return result;
      },
    }),
    limits: overriding(limits, {
      getLimits: async (...args: Parameters<typeof limits.getLimits>) => {
        const afterStore = seen.stored !== undefined;
        if (afterStore) await hold.limitsAfterStore?.();
        const result = await limits.getLimits(...args);
        if (afterStore) seen.limitsAfterStore += 1;
        return result;
      },
    }),
  };
  return { deps, seen };
}

/** Each job's state, with LAUNCHING and RUNNING both read as admitted: a job admitted moments ago may be running already. */
const states = async (world: World, jobs: Job[]) =>
  Promise.all(
    jobs.map(async (j) => {
      const state = (await world.store.getJob(j.id))?.state;
      return state === JobState.RUNNING ? JobState.LAUNCHING : state;
    }),
  );

describe('admission at a submit (real ASL, DynamoDB Local)', () => {
  it("a submit admits older jobs FIFO puts before its own, then its own, and never a younger one: it runs no other project's drain", async () => {
    const world = await setup();
    const older = await missedByADrain(world, 3, Date.now() - 60_000);
    const [younger] = await missedByADrain(world, 1, Date.now() + 3_600_000);

    const { job } = await submitJob(world.deps, alice, { template: 'sleep' });

    assert.equal(job.state, JobState.LAUNCHING, 'room for it, and its turn came within the page');
    assert.deepEqual(await states(world, older), [JobState.LAUNCHING, JobState.LAUNCHING, JobState.LAUNCHING]);
    assert.deepEqual(
      await states(world, [younger]),
      [JobState.WAITING],
      'younger than the submitted job: not its to admit',
    );
    assert.equal((await world.store.getPool('local'))?.usedGpus, 4);
  });

  it('a submit reads one page of its pool’s queue at most, however deep the queue behind which it is stored', async () => {
    const world = await setup();
    const older = await missedByADrain(world, DRAIN_PAGE_SIZE + 15, Date.now() - 600_000);
    const { deps, seen } = watchedPorts(world);

    const { job } = await submitJob(deps, alice, { template: 'sleep' });

    assert.equal(seen.admissions, DRAIN_PAGE_SIZE, 'one admission per job of the first page, none past it');
    assert.equal(job.state, JobState.WAITING, 'behind more than a page: the next drain or the reconciler admits it');
    const after = await states(world, older);
    assert.deepEqual(after.slice(0, DRAIN_PAGE_SIZE), Array(DRAIN_PAGE_SIZE).fill(JobState.LAUNCHING));
    assert.deepEqual(after.slice(DRAIN_PAGE_SIZE), Array(15).fill(JobState.WAITING));
  });

  it('a submit beside its pool’s drains loses no admission transaction: their passes run one after the other', async () => {
    const world = await setup();
    const older = await missedByADrain(world, 2, Date.now() - 60_000);
    const first = gate();
    const { deps, seen } = watchedPorts(world, { admission: (n) => (n === 1 ? first.pass() : undefined) });

    // A release's drain has read the queue (the two older jobs) and waits at its first admission.
    const release = drainPool(deps, 'local', { released: true });
    await first.arrived;
    // A submit stores its job WAITING behind them, reads room for it, and asks for its bounded pass.
    const submit = submitJob(deps, alice, { template: 'sleep' });
    await waitFor('the submit to read room for its stored job', async () => seen.limitsAfterStore > 0);
    await new Promise(setImmediate);
    // Another release asks for a drain meanwhile.
    const another = drainPool(deps, 'local', { released: true });
    first.open();
    const [{ job }] = await Promise.all([submit, release, another]);

    assert.equal(seen.lost, 0, 'no pass tried to admit a job another had admitted, nor GPUs another had taken');
    assert.equal(seen.admissions, 3, 'one transaction per job admitted');
    assert.equal(job.state, JobState.LAUNCHING, 'the submit answers with its job admitted');
    assert.deepEqual(await states(world, older), [JobState.LAUNCHING, JobState.LAUNCHING]);
    assert.equal((await world.store.getPool('local'))?.usedGpus, 3);
  });

  it('submits whose bounded passes wait in line behind a drain share one pass, and both are admitted in their submits', async () => {
    const world = await setup();
    const older = await missedByADrain(world, 2, Date.now() - 60_000);
    const first = gate();
    const watched = watchedPorts(world, { admission: (n) => (n === 1 ? first.pass() : undefined) });
    const { limits } = watched.deps;
    const reads = { room: 0, pool: 0 };
    const deps: World['deps'] = {
      ...watched.deps,
      limits: overriding(limits, {
        getLimits: async (...args: Parameters<typeof limits.getLimits>) => {
          const result = await limits.getLimits(...args);
          // A submit reads its pool's room twice: before its write, and after it, just before it asks for its
          // pass (the forecast of its wait reads projects' limits only, with no pool).
          if (args[0] !== undefined) reads.room += 1;
          return result;
        },
        getPool: async (...args: Parameters<typeof limits.getPool>) => {
          reads.pool += 1;
          return limits.getPool(...args);
        },
      }),
    };

    // A release's drain has read the queue (the two older jobs) and waits at its first admission.
    const release = drainPool(deps, 'local', { released: true });
    await first.arrived;
    // Two submits store their jobs WAITING behind them, read room after their writes and ask for their bounded
    // passes, which wait in line behind the drain.
    const submits = [submitJob(deps, alice, { template: 'sleep' }), submitJob(deps, alice, { template: 'sleep' })];
    await waitFor('both submits to read room after their writes', async () => reads.room >= 4 || undefined, 120_000);
    await new Promise(setImmediate);
    const poolReads = reads.pool;
    first.open();
    const answers = await Promise.all(submits);
    await release;

    assert.deepEqual(
      answers.map((a) => a.job.state),
      [JobState.LAUNCHING, JobState.LAUNCHING],
      'both admitted in their submits',
    );
    assert.equal(reads.pool - poolReads, 1, 'one pass after the drain, shared by the two submits');
    assert.equal(watched.seen.lost, 0);
    assert.equal(watched.seen.admissions, 4, 'one transaction per job admitted');
    assert.deepEqual(await states(world, older), [JobState.LAUNCHING, JobState.LAUNCHING]);
  });

  it('a submit whose job a drain admitted before its own pass answers with the job admitted, and tries no admission of it', async () => {
    const world = await setup();
    // An older job queued: the submitted one is stored WAITING behind it, though the pool has room.
    const [older] = await missedByADrain(world, 1, Date.now() - 60_000);
    const read = gate();
    const { deps, seen } = watchedPorts(world, { limitsAfterStore: read.pass });

    // The submit's read of room after its write waits until a drain has admitted its job.
    const submit = submitJob(deps, alice, { template: 'sleep' });
    await read.arrived;
    const drained = await drainPool(deps, 'local', { released: true });
    assert.deepEqual(
      drained.admitted.map((j) => j.id).sort(),
      [older!.id, seen.stored].sort(),
      'the drain admitted the older job and the stored one',
    );
    read.open();
    const { job } = await submit;

    assert.equal(job.state, JobState.LAUNCHING, 'its answer says what the drain did');
    assert.equal(seen.lost, 0);
    assert.equal((await world.store.getPool('local'))?.usedGpus, 2);
  });

  it('every run of a job has its own execution, <jobId>-<run>: admitted at its submit it is run 1, re-driven run 2', async () => {
    const world = await setup();
    const { job } = await submitJob(world.deps, alice, { template: 'sleep' });
    const running = await waitForState(world.store, job.id, [JobState.RUNNING]);
    assert.equal(running.workflowRun, 1);
    assert.equal(executionName(running), `${job.id}-1`);

    // As the reconciler or start-up recovery does for a job no execution drives (here run 1 still waits on it:
    // both steps are idempotent, and the test only follows the names).
    const redriven = await redriveJob(world.deps, running);
    assert.equal(redriven, `${job.id}-2`);
    assert.equal((await world.store.getJob(job.id))?.workflowRun, 2);
    await waitFor('run 2 to wait on the job', async () =>
      world.workflows.list().some((e) => e.name === `${job.id}-2` && e.states.includes('Run')),
    );
    assert.deepEqual(
      world.workflows
        .list()
        .filter((e) => e.jobId === job.id)
        .map((e) => [e.name, e.states[0]]),
      [
        [`${job.id}-1`, 'Launch'],
        [`${job.id}-2`, 'Launch'],
      ],
    );
  });
});
