import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NotFound } from '../../lambdas/core/errors.js';
import type { Job, JobState } from '../../lambdas/core/job.js';
import { computeStats, jobStats, MAX_STATS_JOBS, percentile } from '../../lambdas/core/stats.js';
import type { JobRecords, Page } from '../../lambdas/ports/jobs.js';
import type { LimitStore } from '../../lambdas/ports/limits.js';
import { jobRecord } from '../support/jobs.js';

const T0 = Date.parse('2025-02-03T10:00:00.000Z');
const at = (minutes: number) => new Date(T0 + minutes * 60_000).toISOString();

function job(
  id: string,
  state: JobState,
  times: { created: number; admitted?: number; finished?: number },
  gpus = 1,
  nodeCount = 1,
  project = 'vision',
  pool = 'local',
): Job {
  return jobRecord({
    id,
    name: id,
    project,
    pool,
    image: 'img@sha256:x',
    gpus,
    nodeCount,
    state,
    createdAt: at(times.created),
    ...(times.admitted !== undefined ? { admittedAt: at(times.admitted) } : {}),
    ...(times.finished !== undefined ? { finishedAt: at(times.finished) } : {}),
  });
}

describe('computeStats', () => {
  it('counts jobs by state, every state present', () => {
    const stats = computeStats(
      [
        job('a', 'RUNNING', { created: 0, admitted: 1 }),
        job('b', 'WAITING', { created: 0 }),
        job('c', 'WAITING', { created: 0 }),
      ],
      new Date(at(10)),
    );
    assert.equal(stats.totalJobs, 3);
    assert.equal(stats.jobsByState.WAITING, 2);
    assert.equal(stats.jobsByState.RUNNING, 1);
    assert.equal(stats.jobsByState.SUCCEEDED, 0);
    assert.equal(Object.keys(stats.jobsByState).length, 9);
  });

  it('adds GPU-hours from admission to release, and to now for jobs still holding GPUs', () => {
    const stats = computeStats(
      [
        job('done', 'SUCCEEDED', { created: 0, admitted: 0, finished: 60 }, 2), // 2 GPU-hours
        job('multi', 'FAILED', { created: 0, admitted: 30, finished: 60 }, 1, 2), // 0.5 h x 2 nodes = 1
        job('live', 'RUNNING', { created: 0, admitted: 90 }, 4), // 0.5 h x 4 until now (120) = 2
        job('never', 'CANCELLED', { created: 0, finished: 5 }, 8), // never admitted: 0
      ],
      new Date(at(120)),
    );
    assert.equal(stats.gpuHours, 5);
  });

  it('takes waiting times from submission to admission, over admitted jobs only', () => {
    const jobs = Array.from({ length: 20 }, (_, i) =>
      job(`j${i}`, 'SUCCEEDED', { created: 0, admitted: i + 1, finished: 30 }),
    );
    jobs.push(job('queued', 'WAITING', { created: 0 }));
    const stats = computeStats(jobs, new Date(at(60)));
    assert.deepEqual(stats.waitingSeconds, { count: 20, p50: 10 * 60, p95: 19 * 60 });
  });

  it('has no percentiles without admitted jobs', () => {
    assert.deepEqual(computeStats([], new Date(T0)).waitingSeconds, { count: 0, p50: null, p95: null });
    assert.equal(computeStats([], new Date(T0)).gpuHours, 0);
    assert.deepEqual(computeStats([], new Date(T0)).byPool, {});
    assert.deepEqual(computeStats([], new Date(T0)).byProject, {});
  });

  it('breaks the same figures down by pool and by project', () => {
    const stats = computeStats(
      [
        job('v1', 'SUCCEEDED', { created: 0, admitted: 2, finished: 62 }, 1, 1, 'vision', 'a10g'), // waited 120 s, 1 GPU-hour
        job('v2', 'RUNNING', { created: 10, admitted: 20 }, 2, 1, 'vision', 'local'), // waited 600 s, 2 GPUs to now (50) = 1
        job('v3', 'WAITING', { created: 30 }, 1, 1, 'vision', 'local'), // never admitted
        job('a1', 'EXPIRED', { created: 0, admitted: 4, finished: 34 }, 4, 1, 'audio', 'a10g'), // waited 240 s, 2 GPU-hours
        job('a2', 'CANCELLED', { created: 0, finished: 1 }, 8, 1, 'audio', 'a10g'), // never admitted: no hours, no wait
      ],
      new Date(at(50)),
    );
    assert.equal(stats.gpuHours, 4);
    assert.deepEqual(Object.keys(stats.byPool), ['a10g', 'local']);
    assert.deepEqual(Object.keys(stats.byProject), ['audio', 'vision']);

    const a10g = stats.byPool.a10g;
    assert.equal(a10g.totalJobs, 3);
    assert.deepEqual(
      [a10g.jobsByState.SUCCEEDED, a10g.jobsByState.EXPIRED, a10g.jobsByState.CANCELLED, a10g.jobsByState.RUNNING],
      [1, 1, 1, 0],
    );
    assert.equal(a10g.gpuHours, 3);
    assert.deepEqual(a10g.waitingSeconds, { count: 2, p50: 120, p95: 240 });

    const local = stats.byPool.local;
    assert.equal(local.totalJobs, 2);
    assert.deepEqual([local.jobsByState.RUNNING, local.jobsByState.WAITING], [1, 1]);
    assert.equal(local.gpuHours, 1);
    assert.deepEqual(local.waitingSeconds, { count: 1, p50: 600, p95: 600 });

    const vision = stats.byProject.vision;
    assert.equal(vision.totalJobs, 3);
    assert.equal(vision.gpuHours, 2);
    assert.deepEqual(vision.waitingSeconds, { count: 2, p50: 120, p95: 600 });
    const audio = stats.byProject.audio;
    assert.equal(audio.totalJobs, 2);
    assert.equal(audio.gpuHours, 2);
    assert.deepEqual(audio.waitingSeconds, { count: 1, p50: 240, p95: 240 });
    assert.equal(Object.keys(audio.jobsByState).length, 9, 'every state present in each breakdown');
  });
});

describe('percentile', () => {
  it('is the nearest rank', () => {
    assert.equal(percentile([1, 2, 3, 4], 50), 2);
    assert.equal(percentile([1, 2, 3, 4], 95), 4);
    assert.equal(percentile([7], 50), 7);
    assert.equal(percentile([], 50), null);
  });
});

describe('jobStats', () => {
  /** The two reads jobStats makes: the jobs, page by page, and the projects' budgets. */
  function storesOf(jobs: Job[], calls: Array<{ projects?: string[] }> = []): { jobs: JobRecords; limits: LimitStore } {
    const listJobs: JobRecords['listJobs'] = async (filter, page): Promise<Page<Job>> => {
      calls.push({ projects: filter.projects });
      const visible = jobs.filter((j) => !filter.projects || filter.projects.includes(j.project));
      const start = Number(page.nextToken ?? 0);
      const items = visible.slice(start, start + page.limit);
      return start + page.limit < visible.length ? { items, nextToken: String(start + page.limit) } : { items };
    };
    return { jobs: { listJobs } as JobRecords, limits: { listQuotas: async () => [] } as unknown as LimitStore };
  }
  const now = () => new Date(at(0));

  it('counts a member’s own projects, an admin every project, across pages', async () => {
    const jobs = [
      ...Array.from({ length: 1500 }, (_, i) => job(`v${i}`, 'SUCCEEDED', { created: 0 })),
      job('a', 'FAILED', { created: 0 }, 1, 1, 'audio'),
    ];
    const calls: Array<{ projects?: string[] }> = [];
    const member = await jobStats(
      { ...storesOf(jobs, calls), now },
      { name: 'alice', projects: ['vision'], admin: false },
    );
    assert.equal(member.totalJobs, 1500);
    assert.deepEqual(member.projects, ['vision']);
    assert.equal(member.truncated, false);
    assert.deepEqual(calls[0].projects, ['vision']);
    const admin = await jobStats({ ...storesOf(jobs), now }, { name: 'root', projects: [], admin: true });
    assert.equal(admin.totalJobs, 1501);
    assert.equal(admin.projects, null);
  });

  it("answers another project's figures with a 404, without reading", async () => {
    const calls: Array<{ projects?: string[] }> = [];
    const stores = storesOf([job('a', 'FAILED', { created: 0 }, 1, 1, 'audio')], calls);
    await assert.rejects(
      jobStats({ ...stores, now }, { name: 'alice', projects: ['vision'], admin: false }, 'audio'),
      (error: unknown) => error instanceof NotFound && error.kind === 'stats',
    );
    assert.deepEqual(calls, []);
  });

  it('narrows to one project: a member to one of theirs, an admin to any', async () => {
    const jobs = [
      job('v', 'SUCCEEDED', { created: 0 }),
      job('s', 'FAILED', { created: 0 }, 1, 1, 'speech'),
      job('a', 'FAILED', { created: 0 }, 1, 1, 'audio'),
    ];
    const calls: Array<{ projects?: string[] }> = [];
    const member = await jobStats(
      { ...storesOf(jobs, calls), now },
      { name: 'alice', projects: ['vision', 'speech'], admin: false },
      'speech',
    );
    assert.deepEqual(member.projects, ['speech']);
    assert.deepEqual(Object.keys(member.byProject), ['speech']);
    assert.deepEqual(calls, [{ projects: ['speech'] }]);
    const admin = await jobStats({ ...storesOf(jobs), now }, { name: 'root', projects: [], admin: true }, 'audio');
    assert.deepEqual(admin.projects, ['audio']);
    assert.equal(admin.totalJobs, 1);
  });

  it('gives a member of no project empty figures, not an error', async () => {
    const calls: Array<{ projects?: string[] }> = [];
    const stats = await jobStats(
      { ...storesOf([job('a', 'FAILED', { created: 0 })], calls), now },
      { name: 'nobody', projects: [], admin: false },
    );
    assert.deepEqual(stats.projects, []);
    assert.equal(stats.totalJobs, 0);
    assert.deepEqual(calls, []);
  });

  it('stops at MAX_STATS_JOBS and says so', async () => {
    const jobs = Array.from({ length: MAX_STATS_JOBS + 5 }, (_, i) => job(`v${i}`, 'SUCCEEDED', { created: 0 }));
    const stats = await jobStats({ ...storesOf(jobs), now }, { name: 'root', projects: [], admin: true });
    assert.equal(stats.totalJobs, MAX_STATS_JOBS);
    assert.equal(stats.truncated, true);
  });
});
