/**
 * Backfill (pools with `backfill` on): behind a head that does not fit, a younger job may start when it fits
 * now and its worst case (now + launch bound + its live timeout + stop bound) ends no later than the head's
 * latest start, computed from the holding jobs (those just admitted included) without it. So the head and
 * every job behind it start no later than promised: from that time on the backfilled job holds nothing
 * (docs/architecture.md, Guarantees). A job whose project has an older job still queued is passed over
 * (taking that project's quota could hold the older one back, and then others would pass it), and so is one
 * in its launch backoff. At most BACKFILL_WINDOW jobs behind the head are looked at.
 */
import type { Deps } from './deps.js';
import { forecastBounds, forecastQueue, projectLimits, worstCaseEnd } from './forecast.js';
import { totalGpus, type Job } from './job.js';
import { DRAIN_PAGE_SIZE } from './queue.js';
import type { PoolRecord } from '../ports/limits.js';
import type { AdmitResult } from '../ports/queue.js';

/** How many jobs behind a blocked head backfill looks at, at most: the drain never walks the whole queue. */
export const BACKFILL_WINDOW = 20;

/** The oldest queued job, which does not fit the pool, and where the queue goes on behind it. */
export interface BlockedHead {
  job: Job;
  /** The rest of the page it was read in. */
  rest: Job[];
  /** The page after that one. */
  cursor?: string;
}

/**
 * Admit what may start ahead of `head`, each through `admit` (the admission module's one admission of a
 * queued job); returns the jobs admitted. `admitted` are the jobs this drain admitted before (the holding
 * index may not show them yet); `seen` collects every job looked at.
 */
export async function backfill(
  deps: Deps,
  pool: PoolRecord,
  head: BlockedHead,
  admitted: readonly Job[],
  seen: Map<string, Job>,
  admit: (job: Job) => Promise<AdmitResult>,
): Promise<Job[]> {
  const now = deps.now().getTime();
  const bounds = forecastBounds(deps);
  const [listed, limits] = await Promise.all([
    deps.queue.listHolding(pool.name),
    projectLimits(deps, [head.job.project]),
  ]);
  const holding = new Map(listed.map((j) => [j.id, j]));
  for (const job of admitted) holding.set(job.id, job);
  const forecast = forecastQueue({
    now,
    pool,
    holding: [...holding.values()],
    queue: [head.job],
    ...limits,
    bounds,
  }).get(head.job.id);
  const backfilled: Job[] = [];
  if (!forecast?.latestStartAt) return backfilled;
  const guaranteed = Date.parse(forecast.latestStartAt);
  const waiting = new Set([head.job.project]);
  let available = pool.availableGpus;
  let items = head.rest;
  let cursor = head.cursor;
  let examined = 0;
  for (;;) {
    for (const job of items) {
      if (available <= 0 || examined++ >= BACKFILL_WINDOW) return backfilled;
      seen.set(job.id, job);
      const needs = totalGpus(job);
      const fits =
        !waiting.has(job.project) &&
        needs <= available &&
        !(job.retryAt && Date.parse(job.retryAt) > now) &&
        worstCaseEnd(job, now, bounds) <= guaranteed;
      if (!fits) {
        waiting.add(job.project);
        continue;
      }
      const outcome = await admit(job);
      if (!outcome.admitted) {
        if (outcome.blockedBy === 'pool') return backfilled;
        waiting.add(job.project);
        continue;
      }
      available -= needs;
      backfilled.push(outcome.job);
      deps.log.info('backfilled', {
        jobId: job.id,
        pool: pool.name,
        head: head.job.id,
        headLatestStartAt: forecast.latestStartAt,
      });
    }
    if (!cursor) return backfilled;
    const page = await deps.queue.listQueue(pool.name, DRAIN_PAGE_SIZE, cursor);
    items = page.items;
    cursor = page.next;
  }
}
