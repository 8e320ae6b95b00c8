/**
 * What the waiting queue tells a job: why it waits and the latest start promised. The queue is FIFO per pool
 * by enqueue time; core/admission.ts decides who leaves it.
 */
import type { Deps } from './deps.js';
import { forecastPool } from './forecast.js';
import { totalGpus, type Job } from './job.js';
import type { PoolRecord } from '../ports/limits.js';

/** Queued jobs the drain reads at a time. */
export const DRAIN_PAGE_SIZE = 10;
/** Queued jobs ahead read, at most, to put a latest start into a WAITING event. */
export const PROMISE_LOOKAHEAD = 100;

export function poolReason(pool: Pick<PoolRecord, 'name' | 'availableGpus' | 'maxGpus'>, needs: number): string {
  return `pool ${pool.name} has ${Math.max(0, pool.availableGpus)} of ${pool.maxGpus} GPUs free, needs ${needs}`;
}

export function quotaReason(project: string, available: number, limit: number, needs: number): string {
  return `project ${project} has ${Math.max(0, available)} of ${limit} GPUs free, needs ${needs}`;
}

export function behindReason(pool: string, older: number, { atLeast = false } = {}): string {
  return `behind ${atLeast ? 'at least ' : ''}${older} older job${older === 1 ? '' : 's'} in pool ${pool}`;
}

/**
 * What a job that must wait is stored with: why it waits (`seen.reason`, a limit the caller found, else
 * the pool at the head or its place in the queue) and the latest start promised now, for its WAITING
 * event. The queue ahead is read only up to PROMISE_LOOKAHEAD jobs, so this stays flat in queue depth.
 */
export async function waitingFields(
  deps: Deps,
  job: Job,
  seen: { poolBlocked: boolean; pool?: PoolRecord; reason?: string },
): Promise<Pick<Job, 'stateReason' | 'promisedStartAt'>> {
  const forecast = await forecastPool(deps, job.pool, [job], { maxAhead: PROMISE_LOOKAHEAD, pool: seen.pool });
  const promised = forecast.forecasts.get(job.id)?.latestStartAt;
  const reason = seen.reason ?? waitReason(job, seen.poolBlocked, forecast.positions.get(job.id), forecast.pool);
  return { stateReason: reason, ...(promised ? { promisedStartAt: promised } : {}) };
}

/**
 * Why a job the drain did not reach waits: the pool is full at its head, or
 * older jobs come first. `position` is the forecast's, absent when more than
 * PROMISE_LOOKAHEAD jobs are ahead: the queue ahead is not counted (a burst of
 * N submits would count N²/2 items), GET /v1/jobs/{id} tells the exact place.
 */
function waitReason(
  job: Job,
  poolBlocked: boolean,
  position: number | undefined,
  pool: PoolRecord | undefined,
): string {
  if (position === undefined) return behindReason(job.pool, PROMISE_LOOKAHEAD, { atLeast: true });
  return position === 0 && poolBlocked && pool ? poolReason(pool, totalGpus(job)) : behindReason(job.pool, position);
}
