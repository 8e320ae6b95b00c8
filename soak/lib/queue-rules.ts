/**
 * The queue's rules checked on the jobs' own timestamps (createdAt,
 * admittedAt, finishedAt as the API gave them at the end): FIFO per pool
 * (invariant 3 of docs/concepts.md; these pools have no backfill) and no job left
 * waiting while it was due. Pure.
 */
import type { SubmittedJob } from './record.js';

/** An admission this close to an older job's submit, or to the moment its project got room, is not called unfair. */
export const FIFO_TOLERANCE_MS = 500;
/** A job due (room in its pool and its project, nobody ahead of it that fits) this long without being admitted has stalled. */
export const STALL_MS = 5_000;
/** After an outage, the plane gets this long to drain before a wait counts again. */
const OUTAGE_GRACE_MS = 1_000;
const STEP_MS = 250;

const ms = (iso: string | undefined) => (iso === undefined ? undefined : Date.parse(iso));

interface Span {
  job: SubmittedJob;
  created: number;
  admittedAt: number;
  /** When its GPUs came back: its terminal time, or never. */
  releasedAt: number;
}

function admittedSpans(jobs: readonly SubmittedJob[]): Span[] {
  return jobs.flatMap((job) => {
    const created = ms(job.final?.createdAt);
    const admittedAt = ms(job.final?.admittedAt);
    if (!job.id || created === undefined || admittedAt === undefined) return [];
    return [{ job, created, admittedAt, releasedAt: ms(job.final?.finishedAt) ?? Infinity }];
  });
}

/** GPUs held at `t`, by pool and by project. */
function heldAt(spans: readonly Span[], t: number): { pools: Map<string, number>; projects: Map<string, number> } {
  const pools = new Map<string, number>();
  const projects = new Map<string, number>();
  for (const s of spans) {
    if (s.admittedAt > t || t >= s.releasedAt) continue;
    pools.set(s.job.pool, (pools.get(s.job.pool) ?? 0) + s.job.gpus);
    projects.set(s.job.project, (projects.get(s.job.project) ?? 0) + s.job.gpus);
  }
  return { pools, projects };
}

/**
 * invariant 3 of docs/concepts.md (no backfill here): job B admitted before an older job
 * A of the same pool is a violation when A had been submitted before B's
 * admission and A was held by nothing but the queue: same project (FIFO
 * within a project), or A's project had room for A's GPUs then. A job that
 * did not fit the pool blocks younger ones, so the pool's room is not asked.
 */
export function fifoViolations(
  jobs: readonly SubmittedJob[],
  quotas: ReadonlyMap<string, number>,
  toleranceMs = FIFO_TOLERANCE_MS,
): string[] {
  const admitted = admittedSpans(jobs);
  const held = (project: string, t: number) => heldAt(admitted, t).projects.get(project) ?? 0;
  const problems: string[] = [];
  for (const b of admitted) {
    const jumped = admitted.find((a) => {
      if (a === b || a.job.pool !== b.job.pool || a.created >= b.created || a.admittedAt <= b.admittedAt) return false;
      if (a.created > b.admittedAt - toleranceMs) return false;
      if (a.job.project === b.job.project) return true;
      // Only the oldest waiting job of its project in the pool is asked: the ones behind it wait with it (FIFO within a project).
      const behindOwn = admitted.some(
        (o) =>
          o.job.project === a.job.project &&
          o.job.pool === a.job.pool &&
          o.created < a.created &&
          o.admittedAt > b.admittedAt,
      );
      if (behindOwn) return false;
      const limit = quotas.get(a.job.project) ?? Infinity;
      return [b.admittedAt - toleranceMs, b.admittedAt].every((t) => held(a.job.project, t) + a.job.gpus <= limit);
    });
    if (jumped) {
      problems.push(
        `${b.job.name} (${b.job.project}, pool ${b.job.pool}) admitted at ${new Date(b.admittedAt).toISOString()} ahead of older ${jumped.job.name} (${jumped.job.project}, ${jumped.job.gpus} GPUs, admitted ${((jumped.admittedAt - b.admittedAt) / 1000).toFixed(1)} s later)`,
      );
    }
  }
  return problems;
}

/**
 * A job that waited over STALL_MS while it was due, with the plane up: its
 * pool and its project had room for it, and no older job of its pool was
 * waiting that its project's quota let through (that one would go first, or
 * block the pool) or that was of its own project.
 */
export function stalledWaits(
  jobs: readonly SubmittedJob[],
  pools: readonly { name: string; gpus: number }[],
  quotas: ReadonlyMap<string, number>,
  outages: readonly { from: number; to: number }[],
  stallMs = STALL_MS,
): string[] {
  const spans = admittedSpans(jobs);
  const cap = new Map(pools.map((p) => [p.name, p.gpus]));
  const limit = (project: string) => quotas.get(project) ?? Infinity;
  const down = (t: number) => outages.some((o) => t >= o.from && t <= o.to + OUTAGE_GRACE_MS);
  const problems: string[] = [];
  for (const a of spans) {
    let run = 0;
    let worst = 0;
    let worstEnd = 0;
    for (let t = a.created + STEP_MS; t < a.admittedAt; t += STEP_MS) {
      const held = heldAt(spans, t);
      const room = (s: Span) => (held.projects.get(s.job.project) ?? 0) + s.job.gpus <= limit(s.job.project);
      const due =
        !down(t) &&
        (held.pools.get(a.job.pool) ?? 0) + a.job.gpus <= (cap.get(a.job.pool) ?? Infinity) &&
        room(a) &&
        !spans.some(
          (o) =>
            o !== a &&
            o.job.pool === a.job.pool &&
            o.created < a.created &&
            o.admittedAt > t &&
            (o.job.project === a.job.project || room(o)),
        );
      run = due ? run + STEP_MS : 0;
      if (run > worst) (worst = run), (worstEnd = t);
    }
    if (worst > stallMs) {
      problems.push(
        `${a.job.name} (${a.job.project}, ${a.job.gpus} GPUs, pool ${a.job.pool}) was due for ${(worst / 1000).toFixed(1)} s until ${new Date(worstEnd).toISOString()}, admitted ${new Date(a.admittedAt).toISOString()}`,
      );
    }
  }
  return problems;
}
