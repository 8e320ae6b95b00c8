/**
 * `GET /v1/stats`: jobs by state, GPU-hours held, and how long jobs waited to be
 * admitted, overall and broken down by pool and by project. The arithmetic is
 * pure (computeStats); jobStats decides what the caller may see, reads those
 * jobs and hands them over. GPU-hour budgets come from the budget rows
 * themselves (core/budgets.ts): the counters admission is conditioned on.
 */
import { budgetState, gpuHours, type BudgetPeriod } from './budgets.js';
import type { Deps } from './deps.js';
import { authorize, visibleProjects, type Identity } from './identity.js';
import { HOLDING_STATES, JOB_STATES, totalGpus, type Job, type JobState } from './job.js';

/** Jobs read per stats request at most; beyond it the answer says `truncated`. */
export const MAX_STATS_JOBS = 10_000;
const PAGE_SIZE = 1000;

/** The figures for one set of jobs. */
export interface StatsFigures {
  totalJobs: number;
  jobsByState: Record<JobState, number>;
  /** GPU-hours held (LAUNCHING until release), including jobs still holding GPUs up to now. */
  gpuHours: number;
  /** Seconds from submission to admission, over the jobs that were admitted. */
  waitingSeconds: { count: number; p50: number | null; p95: number | null };
}

export interface ComputedStats extends StatsFigures {
  /** The same figures per pool and per project (only those with jobs counted). */
  byPool: Record<string, StatsFigures>;
  byProject: Record<string, StatsFigures>;
}

/** A project's GPU-hour budget now, in GPU-hours. */
export interface BudgetFigures {
  hardLimit: number;
  period: BudgetPeriod;
  periodStart: string;
  periodEnd: string;
  /** Charged this period to jobs that have ended. */
  spent: number;
  /** Reserved by jobs holding GPUs now (their worst case). */
  reserved: number;
}

export interface BudgetStats {
  /** Over the projects below. */
  spent: number;
  reserved: number;
  /** Every project counted that has a gpuHours budget. */
  byProject: Record<string, BudgetFigures>;
}

export interface JobStats extends ComputedStats {
  /** The projects counted; null means every project (an admin asking for all). */
  projects: string[] | null;
  /** True when there were more jobs than MAX_STATS_JOBS and only the newest were counted. */
  truncated: boolean;
  budgets: BudgetStats;
}

/**
 * An admin sees every project, a member their own; `project` narrows to one,
 * and another project's figures are a 404 like everything else of it.
 */
export async function jobStats(
  deps: Pick<Deps, 'jobs' | 'limits' | 'now'>,
  identity: Identity,
  project?: string,
): Promise<JobStats> {
  if (project !== undefined) authorize(identity, 'read', { kind: 'stats', project }, project);
  const projects = visibleProjects(identity, project);
  const { jobs, truncated } = await readRecentJobs(deps, projects);
  return {
    projects: projects ?? null,
    ...computeStats(jobs, deps.now()),
    truncated,
    budgets: await budgetStats(deps, projects),
  };
}

/** The newest MAX_STATS_JOBS jobs of `projects` (every project's when undefined), newest first. */
export async function readRecentJobs(
  deps: Pick<Deps, 'jobs'>,
  projects: string[] | undefined,
): Promise<{ jobs: Job[]; truncated: boolean }> {
  const jobs: Job[] = [];
  let truncated = false;
  if (projects?.length === 0) return { jobs, truncated };
  let nextToken: string | undefined;
  do {
    const page = await deps.jobs.listJobs({ projects }, { limit: PAGE_SIZE, nextToken });
    jobs.push(...page.items);
    nextToken = page.nextToken;
    if (jobs.length >= MAX_STATS_JOBS) {
      truncated = nextToken !== undefined || jobs.length > MAX_STATS_JOBS;
      jobs.length = Math.min(jobs.length, MAX_STATS_JOBS);
      break;
    }
  } while (nextToken);
  return { jobs, truncated };
}

/** The gpuHours budgets of the projects counted (every project's when `projects` is undefined). */
async function budgetStats(deps: Pick<Deps, 'limits' | 'now'>, projects: string[] | undefined): Promise<BudgetStats> {
  const rows =
    projects === undefined
      ? await deps.limits.listQuotas()
      : (await Promise.all(projects.map((p) => deps.limits.listQuotas(p)))).flat();
  const now = deps.now();
  const byProject: Record<string, BudgetFigures> = {};
  let spentGpuMs = 0;
  let reservedGpuMs = 0;
  for (const row of rows.filter((r) => r.resource === 'gpuHours').sort((a, b) => a.project.localeCompare(b.project))) {
    if (row.hardLimit === undefined) continue;
    const budget = budgetState({ ...row, hardLimit: row.hardLimit }, now);
    spentGpuMs += budget.spentGpuMs;
    reservedGpuMs += budget.reservedGpuMs;
    const { hardLimit, period, periodStart, periodEnd } = budget;
    byProject[row.project] = {
      hardLimit,
      period,
      periodStart,
      periodEnd,
      spent: gpuHours(budget.spentGpuMs),
      reserved: gpuHours(budget.reservedGpuMs),
    };
  }
  return { spent: gpuHours(spentGpuMs), reserved: gpuHours(reservedGpuMs), byProject };
}

export function computeStats(jobs: readonly Job[], now: Date): ComputedStats {
  return {
    ...figures(jobs, now),
    byPool: figuresBy(jobs, (job) => job.pool, now),
    byProject: figuresBy(jobs, (job) => job.project, now),
  };
}

function figuresBy(jobs: readonly Job[], key: (job: Job) => string, now: Date): Record<string, StatsFigures> {
  const groups = new Map<string, Job[]>();
  for (const job of jobs) {
    const group = groups.get(key(job));
    if (group) group.push(job);
    else groups.set(key(job), [job]);
  }
  return Object.fromEntries([...groups.keys()].sort().map((name) => [name, figures(groups.get(name)!, now)]));
}

function figures(jobs: readonly Job[], now: Date): StatsFigures {
  const jobsByState = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>;
  let gpuMs = 0;
  const waits: number[] = [];
  for (const job of jobs) {
    jobsByState[job.state] += 1;
    const held = heldInterval(job, now.getTime());
    if (!held) continue;
    waits.push(Math.max(0, held.from - Date.parse(job.createdAt)) / 1000);
    gpuMs += (held.to - held.from) * totalGpus(job);
  }
  waits.sort((a, b) => a - b);
  return {
    totalJobs: jobs.length,
    jobsByState,
    gpuHours: round(gpuMs / 3_600_000, 4),
    waitingSeconds: { count: waits.length, p50: percentile(waits, 50), p95: percentile(waits, 95) },
  };
}

/** When a job held its GPUs, in epoch ms: admission to release (now while it still holds); none if never admitted. */
export function heldInterval(job: Job, now: number): { from: number; to: number } | undefined {
  if (!job.admittedAt) return undefined;
  const from = Date.parse(job.admittedAt);
  const to = job.finishedAt ? Date.parse(job.finishedAt) : HOLDING_STATES.includes(job.state) ? now : from;
  return { from, to: Math.max(from, to) };
}

/** Nearest-rank percentile of an ascending list; null when it is empty. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return round(sorted[rank - 1], 3);
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
