/** Job records for store and core tests: plain data, no DynamoDB or workflow needed. */
import { JobState, type Job } from '../../lambdas/core/job.js';

/** A small queued job of project vision in pool `p`; `overrides` win. */
export function jobRecord(overrides: Partial<Job> = {}): Job {
  return {
    id: 'job-00001',
    name: 'job 00001',
    project: 'vision',
    owner: 'alice',
    template: 'train',
    pool: 'p',
    image: 'tools',
    command: ['true'],
    env: {},
    gpus: 1,
    nodeCount: 1,
    liveTimeoutMinutes: 60,
    state: JobState.PENDING,
    createdAt: '2024-01-01T00:00:00.000Z',
    ...overrides,
  };
}

/**
 * Numbered jobs (`job-00001`, `job-00002`, ...) created one second apart from
 * `from`, so their queue order is their creation order.
 */
export function jobSequence(from: Date): (overrides?: Partial<Job>) => Job {
  let seq = 0;
  return (overrides = {}) => {
    seq += 1;
    const n = String(seq).padStart(5, '0');
    return jobRecord({
      id: `job-${n}`,
      name: `job ${n}`,
      createdAt: new Date(from.getTime() + seq * 1000).toISOString(),
      ...overrides,
    });
  };
}

/** A job admitted to pool a10g, as the compute adapters see it at launch; `overrides` win. */
export function launchingJob(overrides: Partial<Job> = {}): Job {
  return jobRecord({
    id: 'job-7',
    name: 'train',
    pool: 'a10g',
    image: `nvidia/cuda:12.4.1@sha256:${'a'.repeat(64)}`,
    command: ['nvidia-smi'],
    state: JobState.LAUNCHING,
    createdAt: '2030-01-01T00:00:00.000Z',
    ...overrides,
  });
}
