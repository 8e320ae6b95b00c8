/**
 * GPU-hour budgets: the quota resource `gpuHours`, a limit of GPU-hours per
 * calendar period (UTC day, ISO week from Monday, month) for a project.
 *
 * The arithmetic is integer GPU-milliseconds; the API shows hours. The budget
 * row (quotas table, resource `gpuHours`) keeps
 * - `used` = what this period has spent + what holding jobs have reserved,
 * - `reserved` = the reservations of the jobs holding GPUs now,
 * - `available` = hardLimit − used (a condition cannot add attributes),
 * - `period`, `periodStart`, `periodEnd`.
 *
 * - **Admission** reserves the job's worst case (GPUs × nodes × live timeout) in
 *   the admission transaction, conditioned on `available` and on the period not
 *   being over; every admission reserves, with or without a limit, so a budget
 *   created later counts the jobs already running. The job records the amount
 *   (`reservedGpuMs`).
 * - **Release** (the one transaction that ends the job, exactly once) charges
 *   what the job held, from admission to release, at most its reservation, and
 *   gives the rest back. A launch that found no capacity and went back to the
 *   queue is given its whole reservation back: it had no GPU.
 * - **A changed live timeout** (PATCH) moves the reservation with it, in one
 *   transaction with the job: more needs room in the budget (429 otherwise),
 *   less gives some back, never below what the job has already held.
 * - **A new period**: the first admission that finds the period over rolls the
 *   row over (spent back to 0; reservations of holding jobs carry over and are
 *   charged to the period in which they are released). No GPU-millisecond is
 *   charged twice or lost, and no scheduled job is needed.
 * - A job whose worst case exceeds the limit itself could never run: 422 at
 *   submit (and on a PATCH that would make it so).
 */
import type { Deps } from './deps.js';
import { QuotaExceeded, StaleJob, Unprocessable } from './errors.js';
import { totalGpus, type Job } from './job.js';
import type { QuotaRecord } from '../ports/limits.js';

export const BUDGET_PERIODS = ['day', 'week', 'month'] as const;
export type BudgetPeriod = (typeof BUDGET_PERIODS)[number];

export const GPU_MS_PER_HOUR = 3_600_000;

/** The calendar period (UTC) that `at` falls in: days from 00:00, weeks from Monday 00:00, months from the 1st. */
export function periodBounds(period: BudgetPeriod, at: Date): { periodStart: string; periodEnd: string } {
  const [y, m, d] = [at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate()];
  const monday = d - ((at.getUTCDay() + 6) % 7);
  const [start, end] =
    period === 'day'
      ? [Date.UTC(y, m, d), Date.UTC(y, m, d + 1)]
      : period === 'week'
        ? [Date.UTC(y, m, monday), Date.UTC(y, m, monday + 7)]
        : [Date.UTC(y, m, 1), Date.UTC(y, m + 1, 1)];
  return { periodStart: new Date(start).toISOString(), periodEnd: new Date(end).toISOString() };
}

/** The most a job can hold: GPUs × nodes × live timeout, in GPU-ms (rounded to the millisecond the timer runs on). */
export function worstCaseGpuMs(job: Pick<Job, 'gpus' | 'nodeCount' | 'liveTimeoutMinutes'>): number {
  return totalGpus(job) * Math.round(job.liveTimeoutMinutes * 60_000);
}

/** What the job has held from admission until `at`, in GPU-ms. */
function heldGpuMs(job: Pick<Job, 'gpus' | 'nodeCount' | 'admittedAt'>, at: string): number {
  if (!job.admittedAt) return 0;
  return totalGpus(job) * Math.max(0, Date.parse(at) - Date.parse(job.admittedAt));
}

/** What a release at `releasedAt` charges: the GPU-ms held since admission, at most the reservation. */
export function chargedGpuMs(
  job: Pick<Job, 'gpus' | 'nodeCount' | 'admittedAt' | 'reservedGpuMs'>,
  releasedAt: string,
): number {
  return Math.min(job.reservedGpuMs ?? 0, heldGpuMs(job, releasedAt));
}

/** A holding job's reservation once its live timeout is `minutes`: the new worst case, never below what it has already held. */
export function reservationAfterChange(job: Job, minutes: number, at: string): number {
  return Math.max(worstCaseGpuMs({ ...job, liveTimeoutMinutes: minutes }), heldGpuMs(job, at));
}

/** A budget as it stands at `now`: a period that is over counts as the current one, with nothing spent yet (as the next admission will store it). */
export interface BudgetState {
  hardLimit: number;
  period: BudgetPeriod;
  periodStart: string;
  periodEnd: string;
  spentGpuMs: number;
  reservedGpuMs: number;
  /** hardLimit − spent − reserved; negative when a limit was lowered below them. */
  availableGpuMs: number;
}

export function budgetState(row: QuotaRecord & { hardLimit: number }, now: Date): BudgetState {
  const reservedGpuMs = row.budget?.reservedGpuMs ?? 0;
  const period = row.budget?.period ?? 'month';
  const over = !row.budget?.periodEnd || row.budget.periodEnd <= now.toISOString();
  const bounds = over
    ? periodBounds(period, now)
    : { periodStart: row.budget!.periodStart!, periodEnd: row.budget!.periodEnd! };
  const spentGpuMs = over ? 0 : Math.max(0, row.used - reservedGpuMs);
  return {
    hardLimit: row.hardLimit,
    period,
    ...bounds,
    spentGpuMs,
    reservedGpuMs,
    availableGpuMs: row.hardLimit * GPU_MS_PER_HOUR - spentGpuMs - reservedGpuMs,
  };
}

/** The budget of a project at `now`, undefined when it has none. */
export async function projectBudget(
  deps: Pick<Deps, 'limits' | 'now'>,
  project: string,
): Promise<BudgetState | undefined> {
  return budgetOf(await deps.limits.getQuota(project, 'gpuHours'), deps.now());
}

/** The budget a project's `gpuHours` row (as read) sets at `now`, undefined when it sets none. */
export function budgetOf(row: QuotaRecord | undefined, now: Date): BudgetState | undefined {
  return row?.hardLimit === undefined ? undefined : budgetState({ ...row, hardLimit: row.hardLimit }, now);
}

/** GPU-ms as GPU-hours for the API: four decimals (0.36 GPU-seconds). */
export function gpuHours(ms: number): number {
  return Math.round((ms / GPU_MS_PER_HOUR) * 10_000) / 10_000;
}

/** GPU-hours for a sentence: at most 3 decimals, rounded down for what is left and up for what is needed, so it never reads as if it fit. */
function showHours(ms: number, round: 'down' | 'up'): string {
  const thousandths = (round === 'down' ? Math.floor : Math.ceil)(Number(((ms / GPU_MS_PER_HOUR) * 1000).toFixed(6)));
  return String(thousandths / 1000);
}

const THIS: Record<BudgetPeriod, string> = { day: 'today', week: 'this week', month: 'this month' };

/** `project vision has 3.5 of 100 GPU-hours left this month, needs 8`. */
export function budgetReason(project: string, budget: BudgetState, needsGpuMs: number): string {
  return `project ${project} has ${showHours(Math.max(0, budget.availableGpuMs), 'down')} of ${budget.hardLimit} GPU-hours left ${THIS[budget.period]}, needs ${showHours(needsGpuMs, 'up')}`;
}

/** Why the drain left a job that the budget refused waiting. */
export async function budgetWaitReason(deps: Pick<Deps, 'limits' | 'now'>, job: Job): Promise<string> {
  const budget = await projectBudget(deps, job.project);
  const needs = worstCaseGpuMs(job);
  // The limit went away since the admission read it: the next drain admits the job.
  if (!budget) return `project ${job.project}'s GPU-hour budget changed; needs ${showHours(needs, 'up')} GPU-hours`;
  return budgetReason(job.project, budget, needs);
}

/** 422 for a job whose worst case exceeds the project's budget itself: it could never be admitted. */
export async function refuseBeyondBudget(
  deps: Pick<Deps, 'limits' | 'now'>,
  project: string,
  job: Pick<Job, 'gpus' | 'nodeCount' | 'liveTimeoutMinutes'>,
): Promise<void> {
  refuseBeyond(await projectBudget(deps, project), project, job);
}

/** refuseBeyondBudget on a budget already read. */
export function refuseBeyond(
  budget: BudgetState | undefined,
  project: string,
  job: Pick<Job, 'gpus' | 'nodeCount' | 'liveTimeoutMinutes'>,
): void {
  const needs = worstCaseGpuMs(job);
  if (!budget || needs <= budget.hardLimit * GPU_MS_PER_HOUR) return;
  throw new Unprocessable(
    `job needs up to ${showHours(needs, 'up')} GPU-hours (${totalGpus(job)} GPU${totalGpus(job) === 1 ? '' : 's'} for ${job.liveTimeoutMinutes} minutes) but project ${project}'s budget is ${budget.hardLimit} GPU-hours per ${budget.period}`,
  );
}

/**
 * Change a holding job's live timeout (and expiry) together with its reservation.
 * Throws StaleJob when the job changed since it was read (the caller reads again)
 * and QuotaExceeded (429) when the budget has no room for the extra worst case.
 */
export async function changeReservedJob(
  deps: Pick<Deps, 'jobs' | 'limits' | 'now'>,
  job: Job,
  set: Partial<Job> & { liveTimeoutMinutes: number },
): Promise<Job> {
  const at = deps.now().toISOString();
  const reservedGpuMs = reservationAfterChange(job, set.liveTimeoutMinutes, at);
  const result = await deps.jobs.changeReservation(job, set, reservedGpuMs, at);
  if (result.changed) return result.job;
  if (result.blockedBy === 'job') throw new StaleJob(job.id);
  const budget = await projectBudget(deps, job.project);
  const extra = reservedGpuMs - (job.reservedGpuMs ?? 0);
  const left = budget
    ? budgetReason(job.project, budget, extra).replace(/, needs [^,]+$/, '')
    : `project ${job.project}'s GPU-hour budget has no room`;
  throw new QuotaExceeded(
    job.project,
    'gpuHours',
    `${left}; a live timeout of ${set.liveTimeoutMinutes} minutes for job ${job.id} needs ${showHours(extra, 'up')} more`,
  );
}
