/**
 * The waiting queue: FIFO per pool by enqueue time. The drain walks the queue
 * index oldest-first in small pages and admits with the admission transaction.
 *
 * Policy (DESIGN.md invariant 3):
 * - a job blocked by its own project's quota (or GPU-hour budget) is skipped, and so
 *   are younger jobs of that project (FIFO within a project), but other projects go on;
 * - a job that does not fit the pool stops the drain: younger jobs wait behind it,
 *   so a large job is never starved by a stream of small ones; unless its own
 *   project's quota or budget holds it too: it could not start anyway, and is skipped as above;
 * - unless the pool has backfill on: then a younger job may start ahead of that head
 *   when its own worst case ends before the head's latest start (`backfill` below;
 *   docs/architecture.md, Guarantees).
 */
import { budgetOf, budgetReason, budgetWaitReason, worstCaseGpuMs } from './budgets.js';
import type { Deps } from './deps.js';
import { StaleJob } from './errors.js';
import { forecastBounds, forecastPool, forecastQueue, projectLimits, worstCaseEnd } from './forecast.js';
import { JobState, totalGpus, type Job } from './job.js';
import { METRIC, timed } from './metrics.js';
import { workflowInput } from './workflow.js';
import type { PoolRecord } from '../ports/job-store.js';

export const DRAIN_PAGE_SIZE = 10;
/** Queued jobs ahead read, at most, to put a latest start into a WAITING event. */
export const PROMISE_LOOKAHEAD = 100;
/** How many jobs behind a blocked head backfill looks at, at most: the drain never walks the whole queue. */
export const BACKFILL_WINDOW = 20;

export interface DrainResult {
  admitted: Job[];
  /** Why each job examined and left queued is waiting. */
  reasons: Map<string, string>;
  /** True when the head of the queue did not fit the pool. */
  poolBlocked: boolean;
  /** Ids of the admitted jobs that started ahead of a blocked head (backfill). */
  backfilled: string[];
  /** The pool as the pass last saw it, its own admissions counted; absent when there is no such pool or the pass backfilled. */
  pool?: PoolRecord;
}

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
 * Admit queued jobs of `poolName` in FIFO order while they fit. Jobs whose
 * workflow ended while they waited get a new workflow execution; a job that is
 * still PENDING has one running already (it is in its Admit step).
 *
 * Drains of one pool in one process do not run at once: concurrent passes
 * fight over the same head job and pool row, and each lost transaction costs
 * retries (measured: 30 admission transactions per admitted job in a
 * 1,000-job burst). A drain asked for while one runs is served by the next
 * pass, which starts after the running one ends and is shared by everyone who
 * asked meanwhile, so every caller still gets a full pass that began after it
 * asked. Separate processes (Lambda instances) still race, safely: every
 * admission is a conditional transaction.
 */
export function drainPool(deps: Deps, poolName: string, options: DrainOptions = {}): Promise<DrainResult> {
  let pools = drainers.get(deps.store);
  if (!pools) drainers.set(deps.store, (pools = new Map()));
  let drainer = pools.get(poolName);
  if (!drainer) pools.set(poolName, (drainer = new PoolDrainer()));
  return drainer.request(() => timed(deps, METRIC.drainLatency, () => drainPoolOnce(deps, poolName, options)));
}

export interface DrainOptions {
  /**
   * GPUs were just given back (a job's Drain step): read the pool and the queue's first page at once,
   * one round trip less before the next job is admitted. Otherwise the queue is read only when the pool
   * has room (an Admit step behind a full pool reads no queue). @default false
   */
  readonly released?: boolean;
}

/** Per store (one plane), per pool. */
const drainers = new WeakMap<object, Map<string, PoolDrainer>>();

class PoolDrainer {
  private running?: Promise<DrainResult>;
  private next?: Promise<DrainResult>;

  request(pass: () => Promise<DrainResult>): Promise<DrainResult> {
    const current = this.running;
    if (!current) return this.start(pass);
    this.next ??= current.then(ignore, ignore).then(() => {
      this.next = undefined;
      return this.start(pass);
    });
    // What the running pass admitted counts too: a caller looks for its job among the admitted.
    return Promise.all([current.catch(() => undefined), this.next]).then(([before, after]) =>
      before ? mergeResults(before, after) : after,
    );
  }

  private start(pass: () => Promise<DrainResult>): Promise<DrainResult> {
    const run = pass();
    this.running = run;
    run.then(ignore, ignore).then(() => {
      if (this.running === run) this.running = undefined;
    });
    return run;
  }
}

function ignore(): void {}

function mergeResults(before: DrainResult, after: DrainResult): DrainResult {
  return {
    ...after,
    admitted: [...before.admitted, ...after.admitted],
    backfilled: [...before.backfilled, ...after.backfilled],
  };
}

async function drainPoolOnce(deps: Deps, poolName: string, options: DrainOptions): Promise<DrainResult> {
  const result: DrainResult = { admitted: [], reasons: new Map(), poolBlocked: false, backfilled: [] };
  const [read, firstPage] = await Promise.all([
    deps.store.getPool(poolName),
    options.released ? deps.store.listQueue(poolName, DRAIN_PAGE_SIZE) : undefined,
  ]);
  let pool = read;
  if (!pool) return result;
  const blockedProjects = new Map<string, string>();
  const seen = new Map<string, Job>();
  let cursor: string | undefined;
  let head: BlockedHead | undefined;
  do {
    if (pool.availableGpus <= 0) {
      result.poolBlocked = true;
      break;
    }
    const page = !cursor && firstPage ? firstPage : await deps.store.listQueue(poolName, DRAIN_PAGE_SIZE, cursor);
    cursor = page.next;
    for (const [index, job] of page.items.entries()) {
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
        // Held by its own project's quota or budget as well: it could not start even with room in the pool, so
        // it is skipped like any quota-blocked job rather than hold the pool ("the oldest that its quota allows").
        const held = await quotaHold(deps, job, needs);
        if (held) {
          blockedProjects.set(job.project, held);
          result.reasons.set(job.id, held);
          continue;
        }
        result.poolBlocked = true;
        result.reasons.set(job.id, poolReason(pool, needs));
        // Backfill only behind the oldest queued job: none older was skipped for its project's limits.
        if (pool.backfill && blockedProjects.size === 0 && pool.availableGpus > 0)
          head = { job, rest: page.items.slice(index + 1), cursor };
        break;
      }
      const { candidate, outcome } = await admitQueued(deps, job);
      if (outcome.admitted) {
        result.admitted.push(outcome.job);
        pool = { ...pool, availableGpus: pool.availableGpus - needs, usedGpus: pool.usedGpus + needs };
        await announceAdmission(deps, outcome.job, candidate);
      } else if (outcome.blockedBy === 'quota') {
        const quota = await deps.store.getQuota(job.project, 'gpus');
        const limit = quota?.hardLimit ?? 0;
        const reason = quotaReason(job.project, limit - (quota?.used ?? 0), limit, needs);
        blockedProjects.set(job.project, reason);
        result.reasons.set(job.id, reason);
      } else if (outcome.blockedBy === 'budget') {
        // Like a quota: the project's budget, not the pool, holds it back; other projects go on.
        const reason = await budgetWaitReason(deps, job);
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
  if (head) await backfill(deps, pool, head, result, seen);
  await recordReasons(deps, result.reasons, seen);
  // Backfill does not keep this view current: then the caller reads the pool itself.
  if (result.backfilled.length === 0) result.pool = pool;
  return result;
}

/**
 * Why the project's own limits cannot take `job` now (its `gpus` quota, else its GPU-hour budget), or
 * undefined when they can or it has none. One read of both rows.
 */
async function quotaHold(deps: Deps, job: Job, needs: number): Promise<string | undefined> {
  const rows = (await deps.store.getLimits(undefined, [job.project])).quotas.get(job.project);
  const quota = rows?.gpus;
  if (quota?.hardLimit !== undefined && quota.hardLimit - quota.used < needs)
    return quotaReason(job.project, quota.hardLimit - quota.used, quota.hardLimit, needs);
  const budget = budgetOf(rows?.gpuHours, deps.now());
  if (budget && budget.availableGpuMs < worstCaseGpuMs(job))
    return budgetReason(job.project, budget, worstCaseGpuMs(job));
  return undefined;
}

/**
 * GPUs came back from `released` (a job of `project`, or undefined when that job is gone): drain its pool,
 * then, when the project has a `gpus` quota or a GPU-hour budget, the other pools with room too: its jobs
 * waiting there were held by that limit, which the release just eased (DESIGN.md invariant 3). A project
 * without limits holds nobody back in another pool, so then only the one pool is read.
 */
export async function drainAfterRelease(
  deps: Deps,
  released: string,
  project: string | undefined,
): Promise<DrainResult[]> {
  const results = [await drainPool(deps, released, { released: true })];
  if (project === undefined) return results;
  const limits = (await deps.store.getLimits(undefined, [project])).quotas.get(project);
  if (limits?.gpus?.hardLimit === undefined && limits?.gpuHours?.hardLimit === undefined) return results;
  for (const pool of await deps.store.listPools()) {
    if (pool.name !== released && pool.availableGpus > 0) results.push(await drainPool(deps, pool.name));
  }
  return results;
}

/**
 * A job just queued (stored WAITING at its submit, or PENDING in its Admit step) goes now if the queue
 * lets it: a drain pass, and, when the pass neither saw the job (the queue index may not show a job just
 * stored yet) nor stopped at a full pool, an admission of the job itself, then another pass if that lost.
 * `admitted` is the job as admitted, undefined when it waits; a job that was WAITING has its workflow
 * started (announceAdmission), a PENDING one is in its own.
 */
export async function admitIfDue(deps: Deps, job: Job): Promise<{ admitted?: Job; drained: DrainResult }> {
  let drained = await drainPool(deps, job.pool);
  const admittedBy = (result: DrainResult) => result.admitted.find((j) => j.id === job.id);
  if (admittedBy(drained) || drained.poolBlocked || drained.reasons.has(job.id))
    return { admitted: admittedBy(drained), drained };
  const direct = await deps.store.admit(job, deps.now().toISOString());
  if (direct.admitted) {
    await announceAdmission(deps, direct.job, job);
    return { admitted: direct.job, drained };
  }
  drained = await drainPool(deps, job.pool);
  return { admitted: admittedBy(drained), drained };
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

/** Admit a queued job as read; one the drain read as PENDING may have been parked as WAITING meanwhile. */
async function admitQueued(
  deps: Deps,
  job: Job,
): Promise<{ candidate: Job; outcome: Awaited<ReturnType<Deps['store']['admit']>> }> {
  let candidate = job;
  let outcome = await deps.store.admit(candidate, deps.now().toISOString());
  if (!outcome.admitted && outcome.blockedBy === 'job' && candidate.state === JobState.PENDING) {
    // Its own Admit step found no room and moved it to WAITING (its workflow has ended) since we
    // read it: admit it as it is now, and start its workflow (announceAdmission).
    const fresh = await deps.store.getJob(candidate.id);
    if (fresh?.state === JobState.WAITING) {
      candidate = fresh;
      outcome = await deps.store.admit(candidate, deps.now().toISOString());
    }
  }
  return { candidate, outcome };
}

/** A job admitted from WAITING has no workflow running: start one. (Its event comes from the jobs table's stream.) */
async function announceAdmission(deps: Deps, admitted: Job, candidate: Job): Promise<void> {
  if (candidate.state === JobState.WAITING)
    await deps.workflows.start(admittedExecutionName(candidate), workflowInput(admitted));
}

/** The oldest queued job, which does not fit the pool, and where the queue goes on behind it. */
interface BlockedHead {
  job: Job;
  /** The rest of the page it was read in. */
  rest: Job[];
  /** The page after that one. */
  cursor?: string;
}

/**
 * Backfill (pools with `backfill` on): behind a head that does not fit, admit a
 * younger job only if it fits now and its worst case (now + launch bound + its
 * live timeout + stop bound) ends no later than the head's latest start, computed
 * from the holding jobs (those just admitted included) without it. So the head
 * and every job behind it start no later than promised: from that time on the
 * backfilled job holds nothing. A job whose project has an older job still queued
 * is passed over (taking that project's quota could hold the older one back, and
 * then others would pass it), and so is one in its launch backoff. At most
 * BACKFILL_WINDOW jobs behind the head are looked at.
 */
async function backfill(
  deps: Deps,
  pool: NonNullable<Awaited<ReturnType<Deps['store']['getPool']>>>,
  head: BlockedHead,
  result: DrainResult,
  seen: Map<string, Job>,
): Promise<void> {
  const now = deps.now().getTime();
  const bounds = forecastBounds(deps);
  const [listed, limits] = await Promise.all([
    deps.store.listHolding(pool.name),
    projectLimits(deps, [head.job.project]),
  ]);
  // Jobs admitted by this drain may not be in the index yet.
  const holding = new Map(listed.map((j) => [j.id, j]));
  for (const job of result.admitted) holding.set(job.id, job);
  const forecast = forecastQueue({
    now,
    pool,
    holding: [...holding.values()],
    queue: [head.job],
    ...limits,
    bounds,
  }).get(head.job.id);
  if (!forecast?.latestStartAt) return;
  const guaranteed = Date.parse(forecast.latestStartAt);
  const waiting = new Set([head.job.project]);
  let available = pool.availableGpus;
  let items = head.rest;
  let cursor = head.cursor;
  let examined = 0;
  for (;;) {
    for (const job of items) {
      if (available <= 0 || examined++ >= BACKFILL_WINDOW) return;
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
      const { candidate, outcome } = await admitQueued(deps, job);
      if (!outcome.admitted) {
        if (outcome.blockedBy === 'pool') return;
        waiting.add(job.project);
        continue;
      }
      available -= needs;
      result.admitted.push(outcome.job);
      result.backfilled.push(job.id);
      deps.log.info('backfilled', {
        jobId: job.id,
        pool: pool.name,
        head: head.job.id,
        headLatestStartAt: forecast.latestStartAt,
      });
      await announceAdmission(deps, outcome.job, candidate);
    }
    if (!cursor) return;
    const page = await deps.store.listQueue(pool.name, DRAIN_PAGE_SIZE, cursor);
    items = page.items;
    cursor = page.next;
  }
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
