/**
 * JobRecords, JobQueue and LimitStore in memory over shared maps, for unit tests of the API and core. Each fake
 * has only the methods its callers use so far (any other throws, naming itself: fakes.ts partialPort); what the
 * stores guarantee (transactions, conditions, indexes) is tested on DynamoDB Local.
 */
import { IdempotencyConflict, QuotaExceeded } from '../../lambdas/core/errors.js';
import { HOLDING_STATES, isTerminal, JobState, QUEUED_STATES, type Job } from '../../lambdas/core/job.js';
import type { QuotaResource } from '../../lambdas/core/schemas.js';
import type { JobRecords, Page } from '../../lambdas/ports/jobs.js';
import type { LimitStore, PoolRecord, QuotaRecord } from '../../lambdas/ports/limits.js';
import type { JobQueue } from '../../lambdas/ports/queue.js';
import { partialPort } from './fakes.js';

const clone = <T>(value: T): T => structuredClone(value);

/** The rows the three fakes share; tests arrange and read them directly. */
export class MemoryTables {
  readonly jobs = new Map<string, Job>();
  readonly claims = new Map<string, { bodyHash: string; jobId: string }>();
  readonly pools = new Map<string, PoolRecord>();
  /** Keyed `project#resource`. */
  readonly quotas = new Map<string, QuotaRecord>();

  /** A pool with nothing in use. */
  putPool(pool: Omit<PoolRecord, 'usedGpus' | 'availableGpus' | 'backfill'>): void {
    this.pools.set(pool.name, { ...pool, usedGpus: 0, availableGpus: pool.maxGpus, backfill: false });
  }

  /** A quota row keeping its usage; no `hardLimit`: counted, unlimited. */
  putQuota(project: string, resource: QuotaResource, hardLimit?: number): void {
    const used = this.quotas.get(`${project}#${resource}`)?.used ?? 0;
    this.quotas.set(`${project}#${resource}`, {
      project,
      resource,
      used,
      ...(hardLimit === undefined ? {} : { hardLimit }),
    });
  }

  /** Queued jobs of a pool, oldest first. */
  queued(pool: string): Job[] {
    return [...this.jobs.values()]
      .filter((j) => j.pool === pool && QUEUED_STATES.includes(j.state))
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }
}

export function memoryJobs(t: MemoryTables): JobRecords {
  const createJob: JobRecords['createJob'] = async (job, claim) => {
    if (claim) {
      const previous = t.claims.get(claim.key);
      if (previous && previous.bodyHash !== claim.bodyHash)
        throw new IdempotencyConflict(`Idempotency-Key was used with another body`);
      if (previous) return { job: clone(t.jobs.get(previous.jobId)!), created: false };
    }
    const jobs = t.quotas.get(`${job.project}#jobs`);
    if (jobs?.hardLimit !== undefined && jobs.used >= jobs.hardLimit)
      throw new QuotaExceeded(
        job.project,
        'jobs',
        `project ${job.project} has ${jobs.used} of ${jobs.hardLimit} active jobs`,
      );
    if (jobs) jobs.used += 1;
    t.jobs.set(job.id, clone(job));
    if (claim) t.claims.set(claim.key, { bodyHash: claim.bodyHash, jobId: job.id });
    return { job: clone(job), created: true };
  };
  return partialPort<JobRecords>('jobs', {
    createJob,
    async createAdmitted(job, admittedAt, claim) {
      const pool = t.pools.get(job.pool)!;
      const needs = job.gpus * job.nodeCount;
      if (pool.availableGpus < needs) return undefined;
      const stored = await createJob(
        { ...job, state: JobState.LAUNCHING, admittedAt, heldGpus: needs, workflowRun: 1 },
        claim,
      );
      if (stored.created) {
        pool.availableGpus -= needs;
        pool.usedGpus += needs;
      }
      return stored;
    },
    async getJob(id) {
      const job = t.jobs.get(id);
      return job && clone(job);
    },
    async listJobs(filter, page): Promise<Page<Job>> {
      const all = [...t.jobs.values()]
        .filter(
          (j) =>
            (!filter.projects || filter.projects.includes(j.project)) && (!filter.state || j.state === filter.state),
        )
        .sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id));
      const start = page.nextToken ? Number(page.nextToken) : 0;
      const items = all.slice(start, start + page.limit).map(clone);
      return start + page.limit < all.length ? { items, nextToken: String(start + page.limit) } : { items };
    },
    async recordOutcome(id, outcome, on) {
      const job = t.jobs.get(id);
      if (!job || job.outcome || ![JobState.LAUNCHING, JobState.RUNNING].includes(job.state as 'RUNNING'))
        return undefined;
      if (on && (!job.instanceIds?.includes(on.instanceId) || (on.only && job.instanceIds.length !== 1)))
        return undefined;
      job.outcome = outcome;
      return clone(job);
    },
    async finishJob(job, change) {
      const stored = t.jobs.get(job.id);
      if (!stored || stored.state !== job.state) return undefined;
      Object.assign(stored, change);
      delete stored.heldGpus;
      const jobs = t.quotas.get(`${job.project}#jobs`);
      if (jobs) jobs.used -= 1;
      return clone(stored);
    },
    async deleteJob(id) {
      const job = t.jobs.get(id);
      if (!job || !isTerminal(job.state)) return false;
      return t.jobs.delete(id);
    },
  });
}

export function memoryQueue(t: MemoryTables): JobQueue {
  return partialPort<JobQueue>('queue', {
    async listQueueSummaries(pool, limit, startAfter) {
      const queue = t.queued(pool);
      const start = startAfter ? queue.findIndex((j) => j.id === startAfter) + 1 : 0;
      const items = queue.slice(start, start + limit).map(clone);
      return start + limit < queue.length ? { items, next: items.at(-1)!.id } : { items };
    },
    async listHolding(pool) {
      return [...t.jobs.values()].filter((j) => j.pool === pool && HOLDING_STATES.includes(j.state)).map(clone);
    },
    async queueLength(pool) {
      return t.queued(pool).length;
    },
  });
}

export function memoryLimits(t: MemoryTables): LimitStore {
  const getPool = async (name: string) => {
    const pool = t.pools.get(name);
    return pool && clone(pool);
  };
  const getQuota = async (project: string, resource: QuotaResource) => {
    const quota = t.quotas.get(`${project}#${resource}`);
    return quota && clone(quota);
  };
  return partialPort<LimitStore>('limits', {
    getPool,
    getQuota,
    async getLimits(pool, projects) {
      const quotas = new Map(
        await Promise.all(
          projects.map(
            async (p) => [p, { gpus: await getQuota(p, 'gpus'), gpuHours: await getQuota(p, 'gpuHours') }] as const,
          ),
        ),
      );
      const read = pool === undefined ? undefined : await getPool(pool);
      return { ...(read ? { pool: read } : {}), quotas };
    },
    async listPools() {
      return [...t.pools.values()].map(clone);
    },
    async listQuotas(project) {
      return [...t.quotas.values()].filter((q) => !project || q.project === project).map(clone);
    },
  });
}
