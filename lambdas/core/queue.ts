/**
 * The waiting queue: FIFO per pool by enqueue time. The drain walks the queue
 * index oldest-first in small pages and admits with the admission transaction.
 *
 * Policy (DESIGN.md invariant 3):
 * - a job blocked by its own project's quota is skipped, and so are younger jobs of
 *   that project (FIFO within a project), but other projects go on;
 * - a job that does not fit the pool stops the drain: younger jobs wait behind it,
 *   so a large job is never starved by a stream of small ones.
 */
import type { Deps } from './deps.js';
import { publishChange } from './events.js';
import { StaleJob } from './errors.js';
import { JobState, totalGpus, type Job } from './job.js';
import type { PoolRecord } from '../ports/job-store.js';

export const DRAIN_PAGE_SIZE = 10;

export interface DrainResult {
  admitted: Job[];
  /** Why each job examined and left queued is waiting. */
  reasons: Map<string, string>;
  /** True when the head of the queue did not fit the pool. */
  poolBlocked: boolean;
}

export function poolReason(pool: Pick<PoolRecord, 'name' | 'availableGpus' | 'maxGpus'>, needs: number): string {
  return `pool ${pool.name} has ${Math.max(0, pool.availableGpus)} of ${pool.maxGpus} GPUs free, needs ${needs}`;
}

export function quotaReason(project: string, available: number, limit: number, needs: number): string {
  return `project ${project} has ${Math.max(0, available)} of ${limit} GPUs free, needs ${needs}`;
}

export function behindReason(pool: string, older: number): string {
  return `behind ${older} older job${older === 1 ? '' : 's'} in pool ${pool}`;
}

/**
 * Admit queued jobs of `poolName` in FIFO order while they fit. Jobs whose
 * workflow ended while they waited get a new workflow execution; a job that is
 * still PENDING has one running already (it is in its Admit step).
 */
export async function drainPool(deps: Deps, poolName: string): Promise<DrainResult> {
  const result: DrainResult = { admitted: [], reasons: new Map(), poolBlocked: false };
  let pool = await deps.store.getPool(poolName);
  if (!pool) return result;
  const blockedProjects = new Map<string, string>();
  const seen = new Map<string, Job>();
  let cursor: string | undefined;
  do {
    if (pool.availableGpus <= 0) {
      result.poolBlocked = true;
      break;
    }
    const page = await deps.store.listQueue(poolName, DRAIN_PAGE_SIZE, cursor);
    cursor = page.next;
    for (const job of page.items) {
      seen.set(job.id, job);
      const blocked = blockedProjects.get(job.project);
      if (blocked) {
        result.reasons.set(job.id, blocked);
        continue;
      }
      // Requeued after no capacity: it keeps the head until its backoff is over, so younger jobs do not
      // take the pool meanwhile (they would find no capacity either), and its reason says why it waits.
      if (job.retryAt && Date.parse(job.retryAt) > deps.now().getTime()) {
        result.poolBlocked = true;
        if (job.stateReason) result.reasons.set(job.id, job.stateReason);
        break;
      }
      const needs = totalGpus(job);
      if (needs > pool.availableGpus) {
        result.poolBlocked = true;
        result.reasons.set(job.id, poolReason(pool, needs));
        break;
      }
      let candidate = job;
      let outcome = await deps.store.admit(candidate, deps.now().toISOString());
      if (!outcome.admitted && outcome.blockedBy === 'job' && candidate.state === JobState.PENDING) {
        // Its own Admit step found no room and moved it to WAITING (its workflow has ended) since we
        // read it: admit it as it is now, and start its workflow below.
        const fresh = await deps.store.getJob(candidate.id);
        if (fresh?.state === JobState.WAITING) {
          candidate = fresh;
          outcome = await deps.store.admit(candidate, deps.now().toISOString());
        }
      }
      if (outcome.admitted) {
        result.admitted.push(outcome.job);
        pool = { ...pool, availableGpus: pool.availableGpus - needs, usedGpus: pool.usedGpus + needs };
        await publishChange(deps, outcome.job, candidate.state);
        if (candidate.state === JobState.WAITING) await deps.workflows.start(admittedExecutionName(candidate), { jobId: candidate.id });
      } else if (outcome.blockedBy === 'quota') {
        const quota = await deps.store.getQuota(job.project, 'gpus');
        const limit = quota?.hardLimit ?? 0;
        const reason = quotaReason(job.project, limit - (quota?.used ?? 0), limit, needs);
        blockedProjects.set(job.project, reason);
        result.reasons.set(job.id, reason);
      } else if (outcome.blockedBy === 'pool') {
        // Another drain took GPUs since we read the pool: re-read and stop here.
        pool = (await deps.store.getPool(poolName)) ?? pool;
        result.poolBlocked = true;
        result.reasons.set(job.id, poolReason(pool, needs));
        break;
      }
    }
    if (result.poolBlocked) break;
  } while (cursor);
  await recordReasons(deps, result.reasons, seen);
  return result;
}

/** One execution per admission from the queue: a job requeued after no capacity is admitted again under a new name. */
export function admittedExecutionName(job: Pick<Job, 'id' | 'launchAttempt'>): string {
  return `${job.id}-admitted-${job.launchAttempt ?? 0}`;
}

/** Keep WAITING jobs' reasons current; PENDING ones are set by their own Admit step. */
async function recordReasons(deps: Deps, reasons: Map<string, string>, seen: Map<string, Job>): Promise<void> {
  for (const [id, reason] of reasons) {
    const job = seen.get(id);
    if (job?.state !== JobState.WAITING || job.stateReason === reason) continue;
    try {
      await deps.store.updateJob(id, [JobState.WAITING], { stateReason: reason });
    } catch (error) {
      // Admitted or cancelled meanwhile: its reason no longer matters.
      if (!(error instanceof StaleJob)) throw error;
    }
  }
}
