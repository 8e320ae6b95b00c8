/**
 * The DynamoDB stores (DynamoJobs, DynamoQueue, DynamoLimits) on real DynamoDB Local: admission never overshoots a pool or
 * quota under concurrency, release happens once, the queue index is FIFO,
 * idempotent creation, and newest-first listing across pages.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IdempotencyConflict, QuotaExceeded } from '../../lambdas/core/errors.js';
import { JobState, type Job } from '../../lambdas/core/job.js';
import { DynamoLimits } from '../../lambdas/adapters/dynamo/dynamo-limits.js';
import { jobSequence } from '../support/jobs.js';
import { dynamoPerFile, freshStore } from '../support/harness.js';

const makeJob = jobSequence(new Date(Date.UTC(2024, 0, 1)));

const POOL = { name: 'p', instanceType: 'local', gpusPerInstance: 1, maxGpus: 16 };

describe('DynamoDB stores on DynamoDB Local', { timeout: 180_000 }, () => {
  const dynamo = dynamoPerFile();

  async function createPending(store: Awaited<ReturnType<typeof freshStore>>['store'], count: number): Promise<Job[]> {
    const jobs = Array.from({ length: count }, () => makeJob());
    for (const job of jobs) await store.createJob(job);
    return jobs;
  }

  async function countState(
    store: Awaited<ReturnType<typeof freshStore>>['store'],
    jobs: Job[],
    state: JobState,
  ): Promise<number> {
    const stored = await Promise.all(jobs.map((j) => store.getJob(j.id)));
    return stored.filter((j) => j?.state === state).length;
  }

  it('200 concurrent admissions fill a 16-GPU pool exactly', async () => {
    const { store } = await freshStore(dynamo());
    await store.putPool(POOL);
    const jobs = await createPending(store, 200);
    const at = new Date().toISOString();
    const results = await Promise.all(jobs.map((job) => store.admit(job, at)));
    const admitted = results.filter((r) => r.admitted);
    assert.equal(admitted.length, 16);
    for (const r of results) if (!r.admitted) assert.equal(r.blockedBy, 'pool');
    const pool = await store.getPool('p');
    assert.equal(pool?.usedGpus, 16);
    assert.equal(pool?.availableGpus, 0);
    assert.equal(await countState(store, jobs, JobState.LAUNCHING), 16);
    assert.equal(await countState(store, jobs, JobState.PENDING), 184);
    assert.equal(await store.queueLength('p'), 184);
    assert.equal((await store.getQuota('vision', 'gpus'))?.used, 16);
  });

  it('200 concurrent admissions stop at a project gpu quota of 5', async () => {
    const { store } = await freshStore(dynamo());
    await store.putPool(POOL);
    await store.putQuota({ project: 'vision', resource: 'gpus', hardLimit: 5 });
    const jobs = await createPending(store, 200);
    const at = new Date().toISOString();
    const results = await Promise.all(jobs.map((job) => store.admit(job, at)));
    assert.equal(results.filter((r) => r.admitted).length, 5);
    const blocked = results.filter((r): r is { admitted: false; blockedBy: 'job' | 'quota' | 'pool' } => !r.admitted);
    assert.equal(blocked.length, 195);
    assert.ok(
      blocked.every((r) => r.blockedBy === 'quota'),
      `blockedBy: ${[...new Set(blocked.map((r) => r.blockedBy))].join(',')}`,
    );
    const pool = await store.getPool('p');
    assert.equal(pool?.usedGpus, 5);
    assert.equal(pool?.availableGpus, 11);
    assert.equal((await store.getQuota('vision', 'gpus'))?.used, 5);
    assert.equal(await countState(store, jobs, JobState.LAUNCHING), 5);
  });

  it('releases GPUs and the jobs slot exactly once when finished twice concurrently', async () => {
    const { store } = await freshStore(dynamo());
    await store.putPool(POOL);
    await store.putQuota({ project: 'vision', resource: 'gpus', hardLimit: 8 });
    const job = makeJob({ gpus: 2 });
    await store.createJob(job);
    assert.equal((await store.getQuota('vision', 'jobs'))?.used, 1);
    const result = await store.admit(job, new Date().toISOString());
    assert.ok(result.admitted);
    assert.equal((await store.getPool('p'))?.usedGpus, 2);
    assert.equal((await store.getJob(job.id))?.workflowRun, 1, 'each admission is the next workflow run');
    const finishedAt = new Date().toISOString();
    const outcomes = await Promise.all([
      store.finishJob(result.job, { state: JobState.SUCCEEDED, stateReason: 'x', finishedAt }),
      store.finishJob(result.job, { state: JobState.SUCCEEDED, stateReason: 'x', finishedAt }),
    ]);
    assert.equal(outcomes.filter((o) => o !== undefined).length, 1);
    assert.equal(outcomes.filter((o) => o === undefined).length, 1);
    const winner = outcomes.find((o) => o !== undefined)!;
    assert.equal(winner.state, JobState.SUCCEEDED);
    assert.equal(winner.heldGpus, undefined);
    const pool = await store.getPool('p');
    assert.equal(pool?.usedGpus, 0);
    assert.equal(pool?.availableGpus, 16);
    const gpus = await store.getQuota('vision', 'gpus');
    assert.equal(gpus?.used, 0);
    assert.equal((await store.getQuota('vision', 'jobs'))?.used, 0);
    const stored = await store.getJob(job.id);
    assert.equal(stored?.state, JobState.SUCCEEDED);
    assert.equal(stored?.heldGpus, undefined);
    assert.deepEqual(await store.listActiveJobs(), []);
    // A third, late finish is also a no-op.
    assert.equal(
      await store.finishJob(result.job, { state: JobState.FAILED, stateReason: 'late', finishedAt }),
      undefined,
    );
    assert.equal((await store.getPool('p'))?.usedGpus, 0);
  });

  it('lists a pool queue oldest first from the index', async () => {
    const { store } = await freshStore(dynamo());
    await store.putPool(POOL);
    const base = Date.UTC(2024, 5, 1);
    const at = (minutes: number) => new Date(base + minutes * 60_000).toISOString();
    // Created out of order so the index, not insertion order, decides.
    const queued = [0, 1, 2, 3, 4].map((i) =>
      makeJob({ createdAt: at(i * 10), state: i % 2 ? JobState.WAITING : JobState.PENDING }),
    );
    const other = makeJob({ pool: 'other', createdAt: at(1) });
    const done = makeJob({ createdAt: at(2), state: JobState.SUCCEEDED, finishedAt: at(3) });
    for (const job of [queued[3], other, queued[0], done, queued[4], queued[1], queued[2]]) await store.createJob(job);

    const seen: string[] = [];
    let next: string | undefined;
    let pages = 0;
    do {
      const page = await store.listQueue('p', 2, next);
      assert.ok(page.items.length <= 2);
      seen.push(...page.items.map((j) => j.id));
      for (const item of page.items) {
        assert.equal((item as unknown as Record<string, unknown>).queueKey, undefined, 'index attributes stay inside');
        assert.equal(item.pool, 'p');
      }
      next = page.next;
      pages += 1;
    } while (next && pages < 10);
    assert.deepEqual(
      seen,
      queued.map((j) => j.id),
    );
    // Summaries: the same order and pages, only what a forecast reads.
    const first = await store.listQueueSummaries('p', 3);
    const rest = await store.listQueueSummaries('p', 3, first.next);
    assert.deepEqual(
      [...first.items, ...rest.items].map((j) => j.id),
      seen,
    );
    assert.equal(rest.next, undefined);
    const { id, pool, project, state, createdAt, gpus, nodeCount, liveTimeoutMinutes } = queued[0];
    assert.deepEqual(first.items[0], { id, pool, project, state, createdAt, gpus, nodeCount, liveTimeoutMinutes });
    assert.equal(await store.queuePosition(queued[3]), 3);
    assert.equal(await store.queuePosition(queued[0]), 0);
    assert.equal(await store.queueLength('p'), 5);
    assert.equal(await store.queueLength('other'), 1);

    // Admitted jobs leave the queue.
    const r = await store.admit(queued[0], at(100));
    assert.ok(r.admitted);
    assert.equal(await store.queueLength('p'), 4);
    assert.equal(await store.queuePosition(queued[3]), 2);
  });

  it('createJob honours the idempotency claim and the jobs quota', async () => {
    const { store } = await freshStore(dynamo());
    const first = makeJob();
    const claim = { key: 'vision:key-1', bodyHash: 'hash-a' };
    const created = await store.createJob(first, claim);
    assert.equal(created.created, true);
    assert.equal(created.job.id, first.id);

    const retry = makeJob();
    const replayed = await store.createJob(retry, claim);
    assert.equal(replayed.created, false);
    assert.equal(replayed.job.id, first.id);
    assert.deepEqual(replayed.job, first);
    assert.equal(await store.getJob(retry.id), undefined);

    await assert.rejects(store.createJob(makeJob(), { key: 'vision:key-1', bodyHash: 'hash-b' }), IdempotencyConflict);
    assert.equal((await store.getQuota('vision', 'jobs'))?.used, 1);

    const { store: limited } = await freshStore(dynamo());
    await limited.putQuota({ project: 'vision', resource: 'jobs', hardLimit: 1 });
    const one = makeJob();
    await limited.createJob(one);
    const two = makeJob();
    await assert.rejects(limited.createJob(two, { key: 'vision:key-2', bodyHash: 'h' }), QuotaExceeded);
    assert.equal(await limited.getJob(two.id), undefined);
    assert.equal((await limited.getQuota('vision', 'jobs'))?.used, 1);
    // The claim was not stored either: the same key can be used once a slot frees up.
    const finished = await limited.finishJob(one, {
      state: JobState.CANCELLED,
      stateReason: 'x',
      finishedAt: new Date().toISOString(),
    });
    assert.ok(finished);
    const again = await limited.createJob(two, { key: 'vision:key-2', bodyHash: 'h' });
    assert.equal(again.created, true);
  });

  it('createAdmitted stores the job admitted in the same transaction, on its first run: pool, gpus quota and jobs slot taken', async () => {
    const { store } = await freshStore(dynamo());
    await store.putPool({ ...POOL, maxGpus: 4 });
    await store.putQuota({ project: 'vision', resource: 'gpus', hardLimit: 3 });
    const job = makeJob({ gpus: 2 });
    const at = job.createdAt;
    const stored = await store.createAdmitted(job, at);
    assert.ok(stored);
    assert.equal(stored.created, true);
    assert.equal(stored.job.state, JobState.LAUNCHING);
    assert.equal(stored.job.admittedAt, at);
    assert.equal(stored.job.workflowRun, 1);
    assert.equal(stored.job.heldGpus, 2);
    assert.deepEqual(await store.getJob(job.id), stored.job);
    assert.equal((await store.getPool('p'))?.availableGpus, 2);
    assert.equal((await store.getQuota('vision', 'gpus'))?.used, 2);
    assert.equal((await store.getQuota('vision', 'jobs'))?.used, 1);
    // Not queued, but holding: the forecast sees it, the drain does not.
    assert.equal(await store.queueLength('p'), 0);
    assert.deepEqual(
      (await store.listHolding('p')).map((j) => j.id),
      [job.id],
    );
    // It releases like any admitted job.
    const finished = await store.finishJob(stored.job, { state: JobState.SUCCEEDED, stateReason: 'x', finishedAt: at });
    assert.ok(finished);
    assert.equal((await store.getPool('p'))?.availableGpus, 4);
    assert.equal((await store.getQuota('vision', 'gpus'))?.used, 0);
    assert.equal((await store.getQuota('vision', 'jobs'))?.used, 0);
  });

  it('createAdmitted stores nothing and takes nothing when the pool or the quota has no room; a claim made replays', async () => {
    const { store } = await freshStore(dynamo());
    await store.putPool({ ...POOL, maxGpus: 2 });
    await store.putQuota({ project: 'vision', resource: 'gpus', hardLimit: 1 });
    const at = new Date().toISOString();
    const overQuota = makeJob({ gpus: 2 });
    assert.equal(await store.createAdmitted(overQuota, at), undefined);
    assert.equal(await store.getJob(overQuota.id), undefined);
    assert.equal((await store.getQuota('vision', 'gpus'))?.used ?? 0, 0);
    assert.equal((await store.getQuota('vision', 'jobs'))?.used ?? 0, 0);
    assert.equal((await store.getPool('p'))?.availableGpus, 2);

    const { store: full } = await freshStore(dynamo());
    await full.putPool({ ...POOL, maxGpus: 1 });
    const claim = { key: 'vision:full', bodyHash: 'h' };
    const [first, second] = await Promise.all([
      full.createAdmitted(makeJob(), at),
      full.createAdmitted(makeJob(), at, claim),
    ]);
    // One took the GPU; the other stored nothing, its claim included.
    assert.equal([first, second].filter((r) => r?.job.state === JobState.LAUNCHING).length, 1);
    assert.equal([first, second].filter((r) => r === undefined).length, 1);
    assert.equal((await full.getPool('p'))?.availableGpus, 0);
    assert.equal((await full.getQuota('vision', 'jobs'))?.used, 1);
    if (second) {
      const replayed = await full.createAdmitted(makeJob(), at, claim);
      assert.equal(replayed?.created, false);
      assert.equal(replayed?.job.id, second.job.id);
    }
  });

  it("getLimits reads the pool and every project's gpus and gpuHours rows at once, past 100 keys too", async () => {
    const { store } = await freshStore(dynamo());
    await store.putPool(POOL);
    await store.putQuota({ project: 'vision', resource: 'gpus', hardLimit: 3 });
    await store.putQuota(
      { project: 'vision', resource: 'gpuHours', hardLimit: 10, period: 'week' },
      'new',
      new Date('2031-03-12T00:00:00.000Z'),
    );
    const projects = ['vision', 'audio', ...Array.from({ length: 60 }, (_, i) => `p${i}`)];
    await store.putQuota({ project: 'p59', resource: 'gpus', hardLimit: 7 });
    const limits = await store.getLimits('p', projects);
    assert.deepEqual(limits.pool, await store.getPool('p'));
    assert.equal(limits.quotas.size, projects.length);
    assert.equal(limits.quotas.get('vision')?.gpus?.hardLimit, 3);
    assert.deepEqual(limits.quotas.get('vision')?.gpuHours, await store.getQuota('vision', 'gpuHours'));
    assert.deepEqual(limits.quotas.get('audio'), {});
    assert.equal(limits.quotas.get('p59')?.gpus?.hardLimit, 7);
    assert.deepEqual(await store.getLimits('nope', []), { quotas: new Map() });
    assert.equal((await store.getLimits(undefined, ['vision'])).pool, undefined);
  });

  it('listJobs pages newest first with nextToken', async () => {
    const { store } = await freshStore(dynamo());
    const base = Date.UTC(2024, 2, 1);
    const jobs = [0, 1, 2, 3, 4].map((i) => makeJob({ createdAt: new Date(base + i * 1000).toISOString() }));
    for (const job of jobs) await store.createJob(job);
    await store.createJob(makeJob({ project: 'audio', createdAt: new Date(base + 2500).toISOString() }));

    const seen: string[] = [];
    let nextToken: string | undefined;
    let pages = 0;
    do {
      const page = await store.listJobs({ projects: ['vision'] }, { limit: 2, nextToken });
      assert.ok(page.items.length <= 2);
      seen.push(...page.items.map((j) => j.id));
      nextToken = page.nextToken;
      pages += 1;
    } while (nextToken && pages < 10);
    assert.deepEqual(
      seen,
      [...jobs].reverse().map((j) => j.id),
    );
    assert.equal(pages, 3);

    const both = await store.listJobs({ projects: ['vision', 'audio'] }, { limit: 10 });
    assert.equal(both.items.length, 6);
    assert.equal(both.nextToken, undefined);
  });

  it('lists every project newest first for an admin (no projects given), page after page, with a state filter too', async () => {
    const { store } = await freshStore(dynamo());
    const base = Date.UTC(2024, 4, 1);
    // Ids in no relation to age, projects interleaved, stored out of order: only the index can order them.
    const ages = [7, 2, 11, 0, 5, 9, 1, 10, 3, 8, 6, 4];
    const projects = ['vision', 'audio', 'text'];
    const jobs = ages.map((age, i) =>
      makeJob({
        id: `j-${(age * 7919 + 13).toString(36)}`,
        project: projects[i % 3],
        createdAt: new Date(base + age * 1000).toISOString(),
        state: age % 3 === 0 ? JobState.SUCCEEDED : JobState.PENDING,
      }),
    );
    for (const job of jobs) await store.createJob(job);
    await store.putQuota({ project: 'idle', resource: 'gpus', hardLimit: 4 }); // a project with no job at all
    const newestFirst = (list: Job[]) =>
      [...list].sort((a, b) => b.createdAt.localeCompare(a.createdAt)).map((j) => j.id);

    const pages = async (state?: JobState) => {
      const seen: string[] = [];
      let nextToken: string | undefined;
      let count = 0;
      do {
        const page = await store.listJobs({ state }, { limit: 5, nextToken });
        assert.ok(page.items.length <= 5);
        seen.push(...page.items.map((j) => j.id));
        nextToken = page.nextToken;
        count += 1;
      } while (nextToken && count < 10);
      return { seen, count };
    };
    const all = await pages();
    assert.deepEqual(all.seen, newestFirst(jobs));
    assert.equal(all.count, 3);
    const succeeded = await pages(JobState.SUCCEEDED);
    assert.deepEqual(succeeded.seen, newestFirst(jobs.filter((j) => j.state === JobState.SUCCEEDED)));
  });

  it('listPools reads every page of the pools Scan', async () => {
    const { doc } = dynamo();
    const { store, tables } = await freshStore(dynamo());
    const names = ['a100', 'h100', 'l4', 'l40s', 't4', 'v100', 'a10g'];
    for (const name of names) await store.putPool({ ...POOL, name, maxGpus: 2 });

    // Two pools a page: seven take four pages, as a table past DynamoDB's 1 MB page would take two.
    const pools = await new DynamoLimits(doc, tables, 2).listPools();

    assert.deepEqual(
      pools.map((p) => p.name),
      [...names].sort((a, b) => a.localeCompare(b)),
    );
  });
});
