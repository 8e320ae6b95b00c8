/**
 * `GET /v1/pools/{name}/history`: the GPUs a pool's jobs held over the last
 * hours, by project, and when the GPUs held now come back. Computed from the
 * jobs the store keeps (admission to release, as GET /v1/stats counts
 * GPU-hours) and the pool's holding jobs' live timeouts; nothing else is
 * recorded for it. The dashboard's chart draws this.
 */
import type { Deps } from './deps.js';
import { NotFound } from './errors.js';
import { forecastBounds, holdingEnd } from './forecast.js';
import { authorize, canAccessProject, type Identity } from './identity.js';
import { JobState, totalGpus, type Job } from './job.js';
import { heldInterval, readRecentJobs } from './stats.js';

/** The series of every project the caller may not see, summed: how busy the pool is, without naming them. */
export const OTHER_PROJECTS = '(other projects)';
/** At most this many points per series, whatever the window. */
export const MAX_POINTS = 120;
export const DEFAULT_HISTORY_HOURS = 6;
export const MAX_HISTORY_HOURS = 168;

export interface PoolHistory {
  pool: string;
  maxGpus: number;
  usedGpus: number;
  availableGpus: number;
  from: string;
  to: string;
  stepSeconds: number;
  /** The start of each step. */
  times: string[];
  /** Mean GPUs held during each step, per project; projects that held none are left out. */
  series: { project: string; gpus: number[] }[];
  /** GPUs held now and when each lot comes back at the latest (a running job's expiry), soonest first. */
  releases: { at: string; gpus: number }[];
  /** True when more jobs were stored than were read (core/stats.ts MAX_STATS_JOBS): older use may be missing. */
  truncated: boolean;
}

export async function poolHistory(
  deps: Pick<Deps, 'jobs' | 'limits' | 'queue' | 'policy' | 'now'>,
  identity: Identity,
  name: string,
  hours: number = DEFAULT_HISTORY_HOURS,
): Promise<PoolHistory> {
  authorize(identity, 'read', { kind: 'pool' }, name);
  const pool = await deps.limits.getPool(name);
  if (!pool) throw new NotFound('pool', name);
  const now = deps.now().getTime();
  // Every project's jobs: the pool's use is public (usedGpus), only the names of others' projects are not.
  const [{ jobs, truncated }, holding] = await Promise.all([
    readRecentJobs(deps, undefined),
    deps.queue.listHolding(name),
  ]);
  const visible = (project: string) => (canAccessProject(identity, project) ? project : OTHER_PROJECTS);
  const history = gpuHistory(
    jobs.filter((job) => job.pool === name),
    now - hours * 3_600_000,
    now,
    visible,
  );
  const bounds = forecastBounds(deps);
  const releases = holding
    .map((job) => ({ at: releaseAt(job, now, bounds), gpus: job.heldGpus ?? totalGpus(job) }))
    .sort((a, b) => a.at - b.at)
    .map(({ at, gpus }) => ({ at: new Date(at).toISOString(), gpus }));
  return {
    pool: pool.name,
    maxGpus: pool.maxGpus,
    usedGpus: pool.usedGpus,
    availableGpus: Math.max(0, pool.availableGpus),
    ...history,
    releases,
    truncated,
  };
}

/** A running job gives its GPUs back at its expiry at the latest; others at the forecast's worst case. */
function releaseAt(job: Job, now: number, bounds: ReturnType<typeof forecastBounds>): number {
  if (job.state === JobState.RUNNING && job.expiresAt) return Date.parse(job.expiresAt);
  return holdingEnd(job, now, bounds);
}

/** Mean GPUs held per step of [from, to), by the name `seriesOf` gives each job's project. */
export function gpuHistory(
  jobs: readonly Job[],
  from: number,
  to: number,
  seriesOf: (project: string) => string,
): Pick<PoolHistory, 'from' | 'to' | 'stepSeconds' | 'times' | 'series'> {
  const stepMs = Math.max(60_000, Math.ceil((to - from) / MAX_POINTS / 60_000) * 60_000);
  const steps = Math.max(1, Math.ceil((to - from) / stepMs));
  const gpuMs = new Map<string, number[]>();
  for (const job of jobs) {
    const held = heldInterval(job, to);
    if (!held || held.to <= from || held.from >= to) continue;
    const name = seriesOf(job.project);
    let row = gpuMs.get(name);
    if (!row) gpuMs.set(name, (row = new Array<number>(steps).fill(0)));
    const gpus = totalGpus(job);
    const start = Math.max(held.from, from);
    const end = Math.min(held.to, to);
    for (let i = Math.floor((start - from) / stepMs); i < steps && from + i * stepMs < end; i++) {
      const stepStart = from + i * stepMs;
      const overlap = Math.min(end, stepStart + stepMs) - Math.max(start, stepStart);
      if (overlap > 0) row[i] += overlap * gpus;
    }
  }
  // The last step may be cut short by `to`: its mean is over the part that has passed.
  const lengthOf = (i: number) => Math.min(stepMs, to - (from + i * stepMs));
  const series = [...gpuMs.entries()]
    .sort(([a], [b]) => (a === OTHER_PROJECTS ? 1 : b === OTHER_PROJECTS ? -1 : a.localeCompare(b)))
    .map(([project, row]) => ({
      project,
      gpus: row.map((ms, i) => Math.round((ms / lengthOf(i)) * 100) / 100),
    }));
  return {
    from: new Date(from).toISOString(),
    to: new Date(to).toISOString(),
    stepSeconds: stepMs / 1000,
    times: Array.from({ length: steps }, (_, i) => new Date(from + i * stepMs).toISOString()),
    series,
  };
}
