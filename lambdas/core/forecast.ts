/**
 * Latest start times: every holding job has a hard end (its live timeout), so
 * the latest time a queued job is admitted follows from the pool's holding jobs
 * and the queue ahead of it. docs/architecture.md ("Guarantees") states the
 * model, its bounds and what it assumes; this module is that model.
 *
 * The simulation is the drain's own FIFO run forward from `now` with every job
 * taking its worst case: the launch bound, its whole live timeout, the stop
 * bound. It gives a promise only where the drain is pure FIFO for the jobs up to
 * the one asked about: where a `gpus` quota could hold one of them back, the
 * drain lets younger jobs of other projects pass it (invariant 3 of docs/concepts.md), and
 * no start can be promised from what is known now.
 */
import { budgetOf, gpuHours, worstCaseGpuMs } from './budgets.js';
import type { Deps } from './deps.js';
import { HOLDING_STATES, JobState, QUEUED_STATES, totalGpus, type Job } from './job.js';
import { COMPUTE_CHECK_INTERVAL_SECONDS, maxComputeChecks, OUTPUTS_CHECK_INTERVAL_SECONDS } from './policy.js';
import type { PoolRecord, QuotaRecord } from '../ports/limits.js';
import type { QueuedJobSummary } from '../ports/queue.js';

/** TimeoutSeconds of the workflow's steps (statemachines/job-lifecycle.asl.json; test/unit/forecast.test.ts keeps them equal). */
export const STEP_TIMEOUT_SECONDS = {
  Launch: 300,
  StartContainer: 300,
  Stop: 300,
  AwaitOutputs: 120,
  Release: 60,
  Drain: 120,
} as const;

/** How long the steps around a job's run may take, in ms. */
export interface ForecastBounds {
  /** Admission to container start: Launch, the agent wait (checks x 5 s), StartContainer. */
  launchMs: number;
  /** Expiry (or cancel, exit, failure) to the drain after the release: Stop, the outputs wait (AWS), Release, Drain. */
  stopMs: number;
}

export function forecastBounds(deps: Pick<Deps, 'policy'>): ForecastBounds {
  const t = STEP_TIMEOUT_SECONDS;
  const wait = deps.policy?.outputsWaitSeconds ?? 0;
  // The check that finds the bound passed comes one WaitForOutputs later and may take its whole timeout.
  const outputsWait = wait > 0 ? wait + OUTPUTS_CHECK_INTERVAL_SECONDS + t.AwaitOutputs : 0;
  return {
    launchMs: (t.Launch + maxComputeChecks(deps) * COMPUTE_CHECK_INTERVAL_SECONDS + t.StartContainer) * 1000,
    stopMs: (t.Stop + outputsWait + t.Release + t.Drain) * 1000,
  };
}

/** A queued job's promise: when it is admitted at the latest, or null and why none can be given. */
export type Forecast = { latestStartAt: string } | { latestStartAt: null; reason: string };

/** The longest a job admitted at `startMs` holds its GPUs: launch, its whole live timeout, stop. */
export function worstCaseEnd(job: Pick<Job, 'liveTimeoutMinutes'>, startMs: number, bounds: ForecastBounds): number {
  return startMs + bounds.launchMs + job.liveTimeoutMinutes * 60_000 + bounds.stopMs;
}

/**
 * When a holding job gives its GPUs back at the latest. A job past that bound
 * (a step overran it) is taken to need one more stop bound from now.
 */
export function holdingEnd(job: Job, now: number, bounds: ForecastBounds): number {
  const liveMs = job.liveTimeoutMinutes * 60_000;
  const admitted = job.admittedAt ? Date.parse(job.admittedAt) : now;
  // A timeout changed and not yet rearmed counts with its larger value.
  const expiry = job.startedAt
    ? Math.max(job.expiresAt ? Date.parse(job.expiresAt) : 0, Date.parse(job.startedAt) + liveMs)
    : undefined;
  let end: number;
  if (job.state === JobState.LAUNCHING) end = admitted + bounds.launchMs + liveMs + bounds.stopMs;
  else if (expiry !== undefined) end = expiry + bounds.stopMs;
  // STOPPING without having started: it stopped within the launch bound.
  else end = admitted + bounds.launchMs + bounds.stopMs;
  return end > now ? end : now + bounds.stopMs;
}

export interface ForecastInput {
  now: number;
  pool: Pick<PoolRecord, 'name' | 'maxGpus' | 'usedGpus'>;
  /** The pool's jobs holding GPUs (LAUNCHING, RUNNING, STOPPING). */
  holding: readonly Job[];
  /** Queued jobs of the pool, oldest first, from the head up to the last job asked about. */
  queue: readonly QueuedJobSummary[];
  /** `gpus` quota rows of the projects in `queue`; a project without a row or limit is unlimited. */
  quotas: ReadonlyMap<string, Pick<QuotaRecord, 'hardLimit' | 'used'>>;
  /** GPU-ms left now in the `gpuHours` budgets of the projects in `queue` that have one (core/budgets.ts). */
  budgets?: ReadonlyMap<string, number>;
  bounds: ForecastBounds;
}

/** A min-heap of (time, gpus) releases. */
class Releases {
  private readonly heap: Array<[number, number]> = [];
  get size(): number {
    return this.heap.length;
  }
  peek(): number {
    return this.heap[0]![0];
  }
  push(at: number, gpus: number): void {
    const h = this.heap;
    h.push([at, gpus]);
    for (let i = h.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (h[parent]![0] <= h[i]![0]) break;
      [h[parent], h[i]] = [h[i]!, h[parent]!];
      i = parent;
    }
  }
  pop(): [number, number] {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l]![0] < h[m]![0]) m = l;
        if (r < h.length && h[r]![0] < h[m]![0]) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }
}

/**
 * Each queued job's forecast, by id. Jobs start in queue order; each at the
 * first time at or after the previous one's start (and its `retryAt`) when the
 * pool's cap leaves room for it, then holds its GPUs until its worst-case end.
 * GPUs the pool counts as held but no holding job accounts for (an admission the
 * index does not show yet) are taken as never given back.
 */
export function forecastQueue(input: ForecastInput): Map<string, Forecast> {
  const { now, pool, bounds } = input;
  const result = new Map<string, Forecast>();
  const releases = new Releases();
  let held = 0;
  for (const job of input.holding) {
    const gpus = job.heldGpus ?? totalGpus(job);
    releases.push(holdingEnd(job, now, bounds), gpus);
    held += gpus;
  }
  const unaccounted = Math.max(0, pool.usedGpus - held);
  const room = pool.maxGpus - unaccounted;
  const demand = new Map<string, number>();
  const spend = new Map<string, number>();
  let t = now;
  let stopped: string | undefined;
  for (const job of input.queue) {
    if (stopped) {
      result.set(job.id, { latestStartAt: null, reason: stopped });
      continue;
    }
    const needs = totalGpus(job);
    const quota = input.quotas.get(job.project);
    const wanted = (demand.get(job.project) ?? 0) + needs;
    demand.set(job.project, wanted);
    if (quota?.hardLimit !== undefined && wanted > quota.hardLimit - quota.used) {
      const free = Math.max(0, quota.hardLimit - quota.used);
      const reason = `project ${job.project}'s gpus quota (${free} of ${quota.hardLimit} free) has no room for all its queued jobs up to this one (${wanted} GPUs): other projects' jobs may pass them meanwhile`;
      result.set(job.id, { latestStartAt: null, reason });
      stopped = `job ${job.id} ahead of it may be held back by project ${job.project}'s gpus quota, and other projects' jobs may pass it meanwhile`;
      continue;
    }
    const budget = input.budgets?.get(job.project);
    const worst = (spend.get(job.project) ?? 0) + worstCaseGpuMs(job);
    spend.set(job.project, worst);
    if (budget !== undefined && worst > budget) {
      const reason = `project ${job.project}'s GPU-hour budget (${gpuHours(Math.max(0, budget))} left) has no room for the worst case of all its queued jobs up to this one (${gpuHours(worst)}): other projects' jobs may pass them meanwhile`;
      result.set(job.id, { latestStartAt: null, reason });
      stopped = `job ${job.id} ahead of it may be held back by project ${job.project}'s GPU-hour budget, and other projects' jobs may pass it meanwhile`;
      continue;
    }
    if (needs > room) {
      const reason =
        unaccounted > 0
          ? `needs ${needs} GPUs; pool ${pool.name} can count on ${Math.max(0, room)} of its ${pool.maxGpus} (${unaccounted} held by jobs not yet seen)`
          : `needs ${needs} GPUs but pool ${pool.name} holds at most ${pool.maxGpus}`;
      result.set(job.id, { latestStartAt: null, reason });
      stopped = `job ${job.id} ahead of it can never start: ${reason}`;
      continue;
    }
    if (job.retryAt) t = Math.max(t, Date.parse(job.retryAt));
    while (releases.size > 0 && releases.peek() <= t) held -= releases.pop()[1];
    // Only releases happen after the previous start, so room only grows: wait for the next one until it fits.
    while (room - held < needs) {
      const [at, gpus] = releases.pop();
      t = Math.max(t, at);
      held -= gpus;
    }
    result.set(job.id, { latestStartAt: new Date(t).toISOString() });
    releases.push(worstCaseEnd(job, t, bounds), needs);
    held += needs;
  }
  return result;
}

/** Jobs read per page when the queue ahead of a job is read for its forecast (summaries: ~150 bytes each). */
export const FORECAST_PAGE_SIZE = 200;

export interface PoolForecast {
  forecasts: Map<string, Forecast>;
  /** Queued jobs older than each target (its queue position), by id. */
  positions: Map<string, number>;
  /** The pool as the forecast took it (absent when there was nothing to forecast). */
  pool?: PoolRecord;
}

export interface ForecastOptions {
  /** Targets with more queued jobs ahead get no forecast (absent from the map); the queue is read no further. @default Infinity */
  readonly maxAhead?: number;
  /** The pool as the caller has just read it: not read again. */
  readonly pool?: PoolRecord;
}

/**
 * Forecasts for `targets` (queued jobs of one pool): reads the pool, its holding
 * jobs, the queue from the head up to the youngest target (never further), and
 * the `gpus` quotas of the projects in it. `maxAhead` caps the read: targets
 * further back get no forecast (absent from the map).
 */
export async function forecastPool(
  deps: Pick<Deps, 'limits' | 'queue' | 'now' | 'policy'>,
  poolName: string,
  targets: readonly Job[],
  options: ForecastOptions = {},
): Promise<PoolForecast> {
  const out: PoolForecast = { forecasts: new Map(), positions: new Map() };
  const queued = targets.filter((j) => QUEUED_STATES.includes(j.state) && j.pool === poolName);
  if (queued.length === 0) return out;
  const key = (j: Pick<Job, 'createdAt' | 'id'>) => `${j.createdAt}#${j.id}`;
  const lastKey = queued.map(key).sort().at(-1)!;
  const maxAhead = options.maxAhead ?? Infinity;
  // Capped: the queue first, and nothing else when every target is further back than the cap (a deep queue
  // costs the Admit step one read, not four). Uncapped (GET): everything at once.
  const queueRead = readQueueUpTo(deps, poolName, lastKey, maxAhead);
  if (Number.isFinite(maxAhead)) {
    const ahead = await queueRead;
    if (!ahead.complete && queued.every((j) => key(j) >= ahead.lastKey)) return out;
  }
  const [pool, holding, ahead] = await Promise.all([
    options.pool ?? deps.limits.getPool(poolName),
    deps.queue.listHolding(poolName),
    queueRead,
  ]);
  if (!pool) return out;
  out.pool = pool;
  // A target the index does not show yet goes in at its place by age; one it shows is taken as read from it.
  const byId = new Map(ahead.jobs.map((j) => [j.id, j]));
  for (const j of queued) if (!byId.has(j.id) && (ahead.complete || key(j) < ahead.lastKey)) byId.set(j.id, j);
  const queue = [...byId.values()]
    .filter((j) => QUEUED_STATES.includes(j.state))
    .sort((a, b) => (key(a) < key(b) ? -1 : 1));
  const limits = await projectLimits(deps, [...new Set(queue.map((j) => j.project))]);
  const all = forecastQueue({
    now: deps.now().getTime(),
    pool,
    holding: holding.filter((j) => HOLDING_STATES.includes(j.state)),
    queue,
    ...limits,
    bounds: forecastBounds(deps),
  });
  const wanted = new Set(queued.map((j) => j.id));
  queue.forEach((j, i) => {
    if (!wanted.has(j.id)) return;
    out.forecasts.set(j.id, all.get(j.id)!);
    out.positions.set(j.id, i);
  });
  return out;
}

/** The `gpus` quotas and `gpuHours` budgets (GPU-ms left now) of `projects`, as a forecast takes them. */
export async function projectLimits(
  deps: Pick<Deps, 'limits' | 'now'>,
  projects: readonly string[],
): Promise<Pick<ForecastInput, 'quotas' | 'budgets'>> {
  const quotas = new Map<string, QuotaRecord>();
  const budgets = new Map<string, number>();
  if (projects.length === 0) return { quotas, budgets };
  const now = deps.now();
  for (const [project, rows] of (await deps.limits.getLimits(undefined, projects)).quotas) {
    if (rows.gpus) quotas.set(project, rows.gpus);
    const budget = budgetOf(rows.gpuHours, now);
    if (budget) budgets.set(project, budget.availableGpuMs);
  }
  return { quotas, budgets };
}

/** The pool's queue from the head through `lastKey`, at most `max` jobs (`complete` false when it stopped short). */
async function readQueueUpTo(
  deps: Pick<Deps, 'queue'>,
  pool: string,
  lastKey: string,
  max: number,
): Promise<{ jobs: QueuedJobSummary[]; complete: boolean; lastKey: string }> {
  const jobs: QueuedJobSummary[] = [];
  let cursor: string | undefined;
  let seenKey = '';
  do {
    const page = await deps.queue.listQueueSummaries(
      pool,
      Math.min(FORECAST_PAGE_SIZE, Math.max(1, max - jobs.length + 1)),
      cursor,
    );
    for (const job of page.items) {
      seenKey = `${job.createdAt}#${job.id}`;
      if (seenKey > lastKey) return { jobs, complete: true, lastKey: seenKey };
      if (jobs.length >= max) return { jobs, complete: false, lastKey: seenKey };
      jobs.push(job);
    }
    cursor = page.next;
  } while (cursor);
  return { jobs, complete: true, lastKey: seenKey };
}
