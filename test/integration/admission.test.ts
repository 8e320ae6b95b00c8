/**
 * The admission module (core/admission.ts) as a submit meets it: what a submit may admit inside its own
 * request, and the one execution-name scheme. Real ASL, DynamoDB Local, real processes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newJobId } from '../../lambdas/adapters/ids.js';
import { DRAIN_PAGE_SIZE } from '../../lambdas/core/queue.js';
import { executionName, redriveJob } from '../../lambdas/core/admission.js';
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

/** Every store.admit the submit makes, counted. */
function countingAdmissions(world: World): { deps: World['deps']; admissions: () => number } {
  let admissions = 0;
  const queue = Object.create(world.deps.queue, {
    admit: {
      value: async (...args: Parameters<World['deps']['queue']['admit']>) => {
        admissions += 1;
        return world.deps.queue.admit(...args);
      },
    },
  });
  return { deps: { ...world.deps, queue }, admissions: () => admissions };
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
    const { deps, admissions } = countingAdmissions(world);

    const { job } = await submitJob(deps, alice, { template: 'sleep' });

    assert.equal(admissions(), DRAIN_PAGE_SIZE, 'one admission per job of the first page, none past it');
    assert.equal(job.state, JobState.WAITING, 'behind more than a page: the next drain or the reconciler admits it');
    const after = await states(world, older);
    assert.deepEqual(after.slice(0, DRAIN_PAGE_SIZE), Array(DRAIN_PAGE_SIZE).fill(JobState.LAUNCHING));
    assert.deepEqual(after.slice(DRAIN_PAGE_SIZE), Array(15).fill(JobState.WAITING));
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
