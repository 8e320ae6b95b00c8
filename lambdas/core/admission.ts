/**
 * Admission: who gets GPUs, when, in what order. Every path that admits comes here: a submit
 * (admitNewJob), a release, a raised quota or pool cap and the reconciler (drainPool, drainAfterRelease),
 * and a job no execution drives any more (redriveJob).
 *
 * An admission is one DynamoDB transaction (JobStore.admit; createAdmitted for a job admitted as it is
 * stored) with a condition on each of the job, the project's quota and budget, and the pool (invariant 1).
 * After it, and only after it, the job's workflow starts: run n of the job is execution `<jobId>-<n>`.
 *
 * Queue policy (invariant 3 of docs/concepts.md), applied by the drain, which walks the queue index
 * oldest-first in small pages:
 * - a job blocked by its own project's quota (or GPU-hour budget) is skipped, and so are younger jobs of
 *   that project (FIFO within a project), but other projects go on;
 * - a job that does not fit the pool stops the drain: younger jobs wait behind it, so a large job is never
 *   starved by a stream of small ones; unless its own project's limits hold it too (it could not start
 *   anyway, and is skipped as above), or the pool has backfill on (backfill.ts).
 */
import { backfill, type BlockedHead } from './backfill.js';
import { budgetOf, budgetReason, budgetWaitReason, worstCaseGpuMs, type BudgetState } from './budgets.js';
import type { Deps } from './deps.js';
import { JobNotFound, StaleJob } from './errors.js';
import { HOLDING_STATES, JobState, QUEUED_STATES, totalGpus, type Job } from './job.js';
import { admitted as countAdmission, METRIC, timed } from './metrics.js';
import { behindReason, DRAIN_PAGE_SIZE, poolReason, quotaReason, waitingFields } from './queue.js';
import { drainerOf } from './pool-drainer.js';
import { workflowInput } from './workflow.js';
import type { IdempotencyClaim } from '../ports/jobs.js';
import type { PoolRecord, QuotaRecord } from '../ports/limits.js';
import type { AdmitResult } from '../ports/queue.js';

/** The execution that drives run `workflowRun` of a job: one scheme for every start, so a start made twice is one. */
export function executionName(job: Pick<Job, 'id' | 'workflowRun'>): string {
  return `${job.id}-${job.workflowRun ?? 1}`;
}

/** The job an execution drives: every name starts with its job's id (j- and 16 base32 characters). */
export function executionJobId(name: string | undefined): string | undefined {
  return name ? /^(j-[0-9a-hjkmnp-tv-z]{16})(?:-|$)/.exec(name)?.[1] : undefined;
}

async function startRun(deps: Deps, job: Job): Promise<void> {
  await deps.workflows.start(executionName(job), workflowInput(job));
}

/** What a submit read before storing the job: its pool and its project's `gpus` quota and GPU-hour budget. */
export interface SubmitLimits {
  pool: PoolRecord;
  quota?: QuotaRecord;
  budget?: BudgetState;
}

/**
 * Store a new job and set it going. With room (as read) and nobody queued in its pool, it is stored admitted
 * in the same transaction, and its run starts: the submit's answer is the admitted job. Otherwise it is stored
 * WAITING, with its reason and latest start and no execution, and gets one bounded chance (admitJustQueued).
 * A replay (same idempotency claim) returns the job as stored, and makes sure an admitted job's run started:
 * the first attempt may have failed after its write.
 */
export async function admitNewJob(
  deps: Deps,
  job: Job,
  seen: SubmitLimits,
  claim?: IdempotencyClaim,
): Promise<{ job: Job; created: boolean }> {
  const held = limitReason(job, seen.quota, seen.budget);
  if (!held && totalGpus(job) <= seen.pool.availableGpus && (await nobodyQueued(deps, job.pool))) {
    const stored = await deps.jobs.createAdmitted(job, job.createdAt, claim);
    if (stored) return settle(deps, stored);
    // Another admission took the room since it was read: the job queues.
  }
  const queued: Job = { ...job, state: JobState.WAITING };
  const fields = await waitingFields(deps, queued, {
    poolBlocked: totalGpus(job) > seen.pool.availableGpus,
    pool: seen.pool,
    reason: held,
  });
  return settle(deps, await deps.jobs.createJob({ ...queued, ...fields }, claim));
}

/**
 * Store an array's members, all or none, and set them going. As many as fit now (as read: the pool, the
 * project's quota and budget, nobody queued in the pool) are stored admitted in the same write, oldest index
 * first, and their runs start; the rest are stored WAITING behind them. One write whatever the size, so the
 * project's `jobs` limit takes all or refuses all. With none admitted, the first member gets the bounded pass
 * a single job gets (admitJustQueued); the others are the drain's.
 */
export async function admitNewArray(
  deps: Deps,
  members: Job[],
  seen: SubmitLimits,
  claim?: IdempotencyClaim,
): Promise<{ jobs: Job[]; created: boolean }> {
  const [first] = members as [Job];
  const fit = (await nobodyQueued(deps, first.pool)) ? roomFor(first, members.length, seen) : 0;
  const at = first.createdAt;
  let stored: { jobs: Job[]; created: boolean } | undefined;
  if (fit > 0) {
    const reason = fit < members.length ? heldAfter(first, fit, seen) : undefined;
    stored = await deps.jobs.createArray(queuedFrom(members, fit, { stateReason: reason }), claim, { count: fit, at });
  }
  if (!stored) {
    // None admitted (no room as read, or another admission took it meanwhile): all queue, in index order.
    const fields = await waitingFields(
      deps,
      { ...first, state: JobState.WAITING },
      {
        poolBlocked: totalGpus(first) > seen.pool.availableGpus,
        pool: seen.pool,
        reason: limitReason(first, seen.quota, seen.budget),
      },
    );
    stored = (await deps.jobs.createArray(queuedFrom(members, 0, fields), claim)) as { jobs: Job[]; created: boolean };
  }
  const { jobs, created } = stored;
  for (const job of jobs.filter((j) => j.state === JobState.LAUNCHING)) {
    if (created) countAdmission(deps, job);
    await startRun(deps, job);
  }
  const head = jobs[0];
  if (head?.state === JobState.WAITING) jobs[0] = await admitJustQueued(deps, head);
  return { jobs, created };
}

/** Members from index `from` on stored WAITING: the first with `fields`, the others behind it. */
function queuedFrom(members: Job[], from: number, fields: Pick<Job, 'stateReason' | 'promisedStartAt'>): Job[] {
  return members.map((m, i) => {
    if (i < from) return m;
    const why = i === from ? fields : { stateReason: behindReason(m.pool, i - from, { atLeast: true }) };
    return { ...m, state: JobState.WAITING, ...why };
  });
}

/** Why the next member waits once `fit` are admitted: the first of the pool, quota or budget that they filled. */
function heldAfter(job: Job, fit: number, { pool, quota, budget }: SubmitLimits): string {
  const needs = totalGpus(job);
  const left = { ...pool, availableGpus: pool.availableGpus - fit * needs };
  if (left.availableGpus < needs) return poolReason(left, needs);
  const afterQuota = quota && { ...quota, used: quota.used + fit * needs };
  const afterBudget = budget && { ...budget, availableGpuMs: budget.availableGpuMs - fit * worstCaseGpuMs(job) };
  return limitReason(job, afterQuota, afterBudget) ?? poolReason(left, needs);
}

/** How many of `count` jobs like `job` the pool, the project's `gpus` quota and its budget have room for, as read. */
function roomFor(job: Job, count: number, { pool, quota, budget }: SubmitLimits): number {
  const needs = totalGpus(job);
  let fit = Math.min(count, Math.floor(pool.availableGpus / needs));
  if (quota?.hardLimit !== undefined) fit = Math.min(fit, Math.floor((quota.hardLimit - quota.used) / needs));
  if (budget) fit = Math.min(fit, Math.floor(budget.availableGpuMs / worstCaseGpuMs(job)));
  return Math.max(0, fit);
}

async function settle(
  deps: Deps,
  { job, created }: { job: Job; created: boolean },
): Promise<{ job: Job; created: boolean }> {
  if (job.state === JobState.LAUNCHING) {
    if (created) countAdmission(deps, job);
    await startRun(deps, job);
    return { job, created };
  }
  if (job.state !== JobState.WAITING) return { job, created };
  return { job: await admitJustQueued(deps, job), created };
}

/**
 * Why the project's own limits hold a job back as read (its `gpus` quota, then its GPU-hour budget),
 * undefined when they have room for it. The admission's transaction checks them again.
 */
function limitReason(job: Job, quota: QuotaRecord | undefined, budget: BudgetState | undefined): string | undefined {
  const needs = totalGpus(job);
  if (quota?.hardLimit !== undefined && needs > quota.hardLimit - quota.used)
    return quotaReason(job.project, quota.hardLimit - quota.used, quota.hardLimit, needs);
  if (budget && worstCaseGpuMs(job) > budget.availableGpuMs)
    return budgetReason(job.project, budget, worstCaseGpuMs(job));
  return undefined;
}

/** Whether nobody waits in the pool, read from the index the drain admits from: behind a queued job of any project, a new one queues. */
async function nobodyQueued(deps: Deps, pool: string): Promise<boolean> {
  return (await deps.queue.listQueueSummaries(pool, 1)).items.length === 0;
}

/**
 * A job just stored WAITING goes now if FIFO lets it. A drain running meanwhile may have read the queue before
 * the job was in it, so when its pool and its project's limits, read again after the write, have room for it,
 * one pass over the first page of the queue admits the jobs ahead of it that fit, oldest first, and then it.
 * Bounded, whatever the queue's depth: one page, no backfill, no other pool, nothing younger than the job, or
 * than the youngest job of the submits that share the pass (in line together, pool-drainer.ts: one read of the
 * pool and the page for all of them).
 * Without room nothing is read: whatever gives room back later drains with the job in the table.
 */
async function admitJustQueued(deps: Deps, job: Job): Promise<Job> {
  const { pool, quotas } = await deps.limits.getLimits(job.pool, [job.project]);
  const { gpus: quota, gpuHours } = quotas.get(job.project) ?? {};
  if (!pool) return job;
  const held = limitReason(job, quota, budgetOf(gpuHours, deps.now()));
  if (held || totalGpus(job) > pool.availableGpus) {
    // Stored with what the submit read; the limits read now may say more (another submit took the room meanwhile).
    const reason =
      held ?? (job.stateReason === behindReason(job.pool, 0) ? poolReason(pool, totalGpus(job)) : job.stateReason);
    if (!reason || reason === job.stateReason) return job;
    return (await updateUnlessStale(deps, job.id, [JobState.WAITING], { stateReason: reason })) ?? job;
  }
  // In line with the pool's drains in this process (pool-drainer.ts): beside one, the two would fight over the
  // same head job and pool row.
  const pass = await drainerOf<DrainResult>(deps.queue, job.pool).exclusive(
    (until) => drainOnce(deps, job.pool, { until }),
    job.id,
  );
  const admitted = pass.admitted.find((j) => j.id === job.id);
  if (admitted) return admitted;
  // The pass read the whole queue, with room to the end, and the job was not in it: a pass that ended before
  // this one was asked for admitted it (or it was cancelled), or the queue index does not show it yet (on AWS
  // a GSI lags its table). One read tells which, where a blind admission would be a lost transaction in the
  // first case; in the second it is the youngest: admitted now, as the pass would have.
  if (pass.complete && !pass.reasons.has(job.id)) {
    const stored = await deps.jobs.getJob(job.id);
    if (stored?.state !== JobState.WAITING) return stored ?? job;
    const direct = await admitQueued(deps, stored);
    if (direct.admitted) return direct.job;
  }
  return { ...job, stateReason: pass.reasons.get(job.id) ?? job.stateReason };
}

/** Admit a queued job as read, counted, and start its run. */
async function admitQueued(deps: Deps, job: Job): Promise<AdmitResult> {
  const outcome = await deps.queue.admit(job, deps.now().toISOString());
  if (outcome.admitted) {
    countAdmission(deps, outcome.job);
    await startRun(deps, outcome.job);
  }
  return outcome;
}

/**
 * A job that no execution drives (start-up recovery, the reconciler) goes on: one that holds GPUs on its next
 * run, whose idempotent steps pick up where the last stopped; a queued one is the drain's. Returns the
 * execution started, if any.
 */
export async function redriveJob(deps: Deps, job: Job): Promise<string | undefined> {
  if (job.state === JobState.PENDING) {
    // Stored by an earlier version, whose workflow admitted from PENDING: from now on the drain's.
    await updateUnlessStale(deps, job.id, [JobState.PENDING], { state: JobState.WAITING });
    return undefined;
  }
  if (!HOLDING_STATES.includes(job.state)) return undefined;
  const next = await updateUnlessStale(deps, job.id, [job.state], { workflowRun: (job.workflowRun ?? 0) + 1 });
  if (!next) return undefined; // it moved on meanwhile: something drives it
  await startRun(deps, next);
  return executionName(next);
}

/**
 * The Admit state of the workflow's definition before this one, for its executions still running when this
 * version was deployed: a job holding GPUs goes on to Launch; a queued one is the drain's, and that
 * execution ends (Queued).
 */
export async function admitOfEarlierDefinition(deps: Deps, jobId: string): Promise<{ admitted: boolean }> {
  const job = await deps.jobs.getJob(jobId);
  if (!job) throw new JobNotFound(jobId);
  if (HOLDING_STATES.includes(job.state)) return { admitted: true };
  await redriveJob(deps, job);
  if (QUEUED_STATES.includes(job.state)) await drainPool(deps, job.pool);
  return { admitted: false };
}

async function updateUnlessStale(
  deps: Deps,
  id: string,
  from: readonly JobState[],
  set: Partial<Job>,
): Promise<Job | undefined> {
  try {
    return await deps.jobs.updateJob(id, from, set);
  } catch (error) {
    if (error instanceof StaleJob) return undefined;
    throw error;
  }
}

// --- the drain ---

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
  /** The pass read the queue to its end and the pool still had room there. */
  complete: boolean;
}

export interface DrainOptions {
  /**
   * GPUs were just given back (a job's Drain step): read the pool and the queue's first page at once,
   * one round trip less before the next job is admitted. Otherwise the queue is read only when the pool
   * has room. @default false
   */
  readonly released?: boolean;
}

/**
 * Admit queued jobs of `poolName` in FIFO order while they fit, and start their runs.
 *
 * Passes of one pool in one process (these and submits' bounded ones) run one after another (pool-drainer.ts).
 * A drain asked for while one runs is served by the next full pass in line, shared by everyone who asks
 * before it starts, so every caller still gets a full pass that began after it asked.
 */
export function drainPool(deps: Deps, poolName: string, options: DrainOptions = {}): Promise<DrainResult> {
  return drainerOf<DrainResult>(deps.queue, poolName).request(() =>
    timed(deps, METRIC.drainLatency, () => drainOnce(deps, poolName, options)),
  );
}

/**
 * GPUs came back from `released` (a job of `project`, or undefined when that job is gone): drain its pool,
 * then, when the project has a `gpus` quota or a GPU-hour budget, the other pools with room too: its jobs
 * waiting there were held by that limit, which the release just eased. A project without limits holds
 * nobody back in another pool, so then only the one pool is read.
 */
export async function drainAfterRelease(
  deps: Deps,
  released: string,
  project: string | undefined,
): Promise<DrainResult[]> {
  const results = [await drainPool(deps, released, { released: true })];
  if (project === undefined) return results;
  const limits = (await deps.limits.getLimits(undefined, [project])).quotas.get(project);
  if (limits?.gpus?.hardLimit === undefined && limits?.gpuHours?.hardLimit === undefined) return results;
  for (const pool of await deps.limits.listPools()) {
    if (pool.name !== released && pool.availableGpus > 0) results.push(await drainPool(deps, pool.name));
  }
  return results;
}

/**
 * One pass. `until`: a submit's bounded pass (shared by the submits in line together), which reads one page,
 * stops once it has examined each of those jobs and never backfills.
 */
async function drainOnce(
  deps: Deps,
  poolName: string,
  options: DrainOptions & { until?: ReadonlySet<string> },
): Promise<DrainResult> {
  const result: DrainResult = {
    admitted: [],
    reasons: new Map(),
    poolBlocked: false,
    backfilled: [],
    complete: false,
  };
  const [read, firstPage] = await Promise.all([
    deps.limits.getPool(poolName),
    options.released ? deps.queue.listQueue(poolName, DRAIN_PAGE_SIZE) : undefined,
  ]);
  let pool = read;
  if (!pool) return result;
  const blockedProjects = new Map<string, string>();
  const seen = new Map<string, Job>();
  let cursor: string | undefined;
  let head: BlockedHead | undefined;
  const ahead = new Set(options.until);
  /** Whether the bounded pass has examined the last of its jobs with `job`. */
  const reached = (job: Job) => ahead.delete(job.id) && ahead.size === 0;
  walk: do {
    if (pool.availableGpus <= 0) {
      result.poolBlocked = true;
      break;
    }
    const page = !cursor && firstPage ? firstPage : await deps.queue.listQueue(poolName, DRAIN_PAGE_SIZE, cursor);
    cursor = page.next;
    for (const [index, job] of page.items.entries()) {
      seen.set(job.id, job);
      const blocked = blockedProjects.get(job.project);
      if (blocked) {
        result.reasons.set(job.id, blocked);
        if (reached(job)) break walk;
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
        // Held by its own project's limits as well: it could not start even with room in the pool, so it is
        // skipped like any quota-blocked job rather than hold the pool ("the oldest that its quota allows").
        const held = await quotaHold(deps, job, needs);
        if (held) {
          blockedProjects.set(job.project, held);
          result.reasons.set(job.id, held);
          if (reached(job)) break walk;
          continue;
        }
        result.poolBlocked = true;
        result.reasons.set(job.id, poolReason(pool, needs));
        // Backfill only behind the oldest queued job: none older was skipped for its project's limits.
        if (pool.backfill && !options.until && blockedProjects.size === 0 && pool.availableGpus > 0)
          head = { job, rest: page.items.slice(index + 1), cursor };
        break;
      }
      const outcome = await admitQueued(deps, job);
      if (outcome.admitted) {
        result.admitted.push(outcome.job);
        pool = { ...pool, availableGpus: pool.availableGpus - needs, usedGpus: pool.usedGpus + needs };
      } else if (outcome.blockedBy === 'quota' || outcome.blockedBy === 'budget') {
        // The project's own limits, not the pool, hold it back: other projects go on.
        const reason =
          outcome.blockedBy === 'quota' ? await quotaWaitReason(deps, job) : await budgetWaitReason(deps, job);
        blockedProjects.set(job.project, reason);
        result.reasons.set(job.id, reason);
      } else if (outcome.blockedBy === 'pool') {
        // Another drain took GPUs since we read the pool: re-read and stop here.
        pool = (await deps.limits.getPool(poolName)) ?? pool;
        result.poolBlocked = true;
        result.reasons.set(job.id, poolReason(pool, needs));
        break;
      }
      if (reached(job)) break walk;
    }
    if (result.poolBlocked) break;
    if (!cursor) result.complete = true;
  } while (cursor && !options.until);
  if (head) {
    const backfilled = await backfill(deps, pool, head, result.admitted, seen, (job) => admitQueued(deps, job));
    result.admitted.push(...backfilled);
    result.backfilled.push(...backfilled.map((j) => j.id));
  }
  await recordReasons(deps, result.reasons, seen);
  // Backfill does not keep this view current: then the caller reads the pool itself.
  if (result.backfilled.length === 0) result.pool = pool;
  return result;
}

async function quotaWaitReason(deps: Deps, job: Job): Promise<string> {
  const quota = await deps.limits.getQuota(job.project, 'gpus');
  const limit = quota?.hardLimit ?? 0;
  return quotaReason(job.project, limit - (quota?.used ?? 0), limit, totalGpus(job));
}

/**
 * Why the project's own limits cannot take `job` now (its `gpus` quota, else its GPU-hour budget), or
 * undefined when they can or it has none. One read of both rows.
 */
async function quotaHold(deps: Deps, job: Job, needs: number): Promise<string | undefined> {
  const rows = (await deps.limits.getLimits(undefined, [job.project])).quotas.get(job.project);
  const quota = rows?.gpus;
  if (quota?.hardLimit !== undefined && quota.hardLimit - quota.used < needs)
    return quotaReason(job.project, quota.hardLimit - quota.used, quota.hardLimit, needs);
  const budget = budgetOf(rows?.gpuHours, deps.now());
  if (budget && budget.availableGpuMs < worstCaseGpuMs(job))
    return budgetReason(job.project, budget, worstCaseGpuMs(job));
  return undefined;
}

/** Keep WAITING jobs' reasons current. */
async function recordReasons(deps: Deps, reasons: Map<string, string>, seen: Map<string, Job>): Promise<void> {
  for (const [id, reason] of reasons) {
    const job = seen.get(id);
    if (job?.state !== JobState.WAITING || job.stateReason === reason) continue;
    // Admitted or cancelled meanwhile: its reason no longer matters.
    await updateUnlessStale(deps, id, [JobState.WAITING], { stateReason: reason });
  }
}
