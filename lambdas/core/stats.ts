/**
 * `GET /v1/stats`: jobs by state, GPU-hours held, and how long jobs waited to be
 * admitted. The arithmetic is pure (computeStats); jobStats reads the jobs the
 * caller may see and hands them over.
 */
import type { Deps } from './deps.js';
import { visibleProjects, type Identity } from './identity.js';
import { HOLDING_STATES, JOB_STATES, totalGpus, type Job, type JobState } from './job.js';

/** Jobs read per stats request at most; beyond it the answer says `truncated`. */
export const MAX_STATS_JOBS = 10_000;
const PAGE_SIZE = 1000;

export interface JobStats {
  /** The projects counted; null means every project (an admin asking for all). */
  projects: string[] | null;
  totalJobs: number;
  jobsByState: Record<JobState, number>;
  /** GPU-hours held (LAUNCHING until release), including jobs still holding GPUs up to now. */
  gpuHours: number;
  /** Seconds from submission to admission, over the jobs that were admitted. */
  waitingSeconds: { count: number; p50: number | null; p95: number | null };
  /** True when there were more jobs than MAX_STATS_JOBS and only the newest were counted. */
  truncated: boolean;
}

export async function jobStats(deps: Pick<Deps, 'store' | 'now'>, identity: Identity, project?: string): Promise<JobStats> {
  const projects = visibleProjects(identity, project);
  const jobs: Job[] = [];
  let truncated = false;
  if (projects?.length !== 0) {
    let nextToken: string | undefined;
    do {
      const page = await deps.store.listJobs({ projects }, { limit: PAGE_SIZE, nextToken });
      jobs.push(...page.items);
      nextToken = page.nextToken;
      if (jobs.length >= MAX_STATS_JOBS) {
        truncated = nextToken !== undefined || jobs.length > MAX_STATS_JOBS;
        jobs.length = Math.min(jobs.length, MAX_STATS_JOBS);
        break;
      }
    } while (nextToken);
  }
  return { projects: projects ?? null, ...computeStats(jobs, deps.now()), truncated };
}

export function computeStats(jobs: readonly Job[], now: Date): Omit<JobStats, 'projects' | 'truncated'> {
  const jobsByState = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>;
  let gpuMs = 0;
  const waits: number[] = [];
  for (const job of jobs) {
    jobsByState[job.state] += 1;
    if (!job.admittedAt) continue;
    const admitted = Date.parse(job.admittedAt);
    waits.push(Math.max(0, admitted - Date.parse(job.createdAt)) / 1000);
    const end = job.finishedAt ? Date.parse(job.finishedAt) : HOLDING_STATES.includes(job.state) ? now.getTime() : admitted;
    gpuMs += Math.max(0, end - admitted) * totalGpus(job);
  }
  waits.sort((a, b) => a - b);
  return {
    totalJobs: jobs.length,
    jobsByState,
    gpuHours: round(gpuMs / 3_600_000, 4),
    waitingSeconds: { count: waits.length, p50: percentile(waits, 50), p95: percentile(waits, 95) },
  };
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
