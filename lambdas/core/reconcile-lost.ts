/**
 * The reconciler's lost-instance part (core/reconcile.ts): a job that runs, or
 * launched long enough ago, on instances that are no longer among the live
 * managed instances (gone, or shutting down, terminated, stopped) while no
 * event said so (EC2 forgot the instance before its state-change event could
 * be tied to the job, or the event was lost). Without it the job would keep its
 * GPUs until its live timeout.
 *
 * The listing is eventually consistent (DescribeInstances may not list an
 * instance launched moments ago), so a run marks what it sees and a later run
 * reports the loss only if it sees the same instances missing again, through
 * the compute-events handler's own path (core/completion.ts), with the first
 * sighting as the time of the loss (expiry wins when that is at or after expiresAt).
 */
import type { Deps } from './deps.js';
import { LOST_INSTANCE_STATES } from '../../contract/compute-events.js';
import { reportInstanceLost } from './completion.js';
import { publishOperatorEvent } from './events.js';
import { JobState, type Job } from './job.js';
import { COMPUTE_CHECK_INTERVAL_SECONDS, maxComputeChecks } from './policy.js';
import type { ManagedInstance } from '../ports/compute.js';
import type { Mark, MarkKind, ReconcileStore } from '../ports/reconcile-store.js';

/** Operator event kinds of this part (in core/reconcile.ts ReconcileEvent). */
export const LostEvent = {
  InstanceMissing: 'instance-missing',
  JobLost: 'job-lost',
} as const;
export type LostEvent = (typeof LostEvent)[keyof typeof LostEvent];

/** What this part needs of a reconcile run. */
export interface LostRun {
  deps: Deps;
  store: ReconcileStore;
  now: Date;
  minAgeMs: number;
  report: { lost: { marked: string[]; reported: string[] } };
  attempt(what: string, work: () => Promise<void>): Promise<void>;
  decide(mark: Mark | undefined, observed: string): 'act' | 'wait' | 'mark';
  mark(kind: MarkKind, subject: string, observed: string, event: LostEvent, reason: string): Promise<void>;
}

interface Missing {
  instanceId: string;
  /** Its state when still listed (`terminated`, ...); undefined when the listing no longer has it. */
  state?: string;
}

/** `instances`: the same listing the orphan part used in this run. */
export async function reconcileLostInstances(
  run: LostRun,
  active: readonly Job[],
  instances: readonly ManagedInstance[],
): Promise<void> {
  const listed = new Map(instances.map((i) => [i.instanceId, i]));
  const watched = active.filter((j) => watchable(run, j));
  if (!watched.length) return;
  const marks = await run.store.getMarks(
    'lost',
    watched.map((j) => j.id),
    run.now,
  );
  for (const listedJob of watched) {
    await run.attempt(`lost instance of job ${listedJob.id}`, () =>
      reconcileLostJob(run, listedJob.id, listed, marks.get(listedJob.id)),
    );
  }
}

async function reconcileLostJob(
  run: LostRun,
  jobId: string,
  listed: Map<string, ManagedInstance>,
  mark: Mark | undefined,
): Promise<void> {
  const { deps, store, report } = run;
  // The index may be behind: decide on the job as stored now.
  const job = await deps.jobs.getJob(jobId);
  const missing = job && watchable(run, job) ? missingInstances(job, listed) : [];
  // The compute already knows how the job ended (the local driver's exit record): its own report is on the way.
  if (!job || !missing.length || (await deps.compute.endedOn?.(job))) {
    if (mark) await store.clearMarks('lost', [jobId]);
    return;
  }
  const observed = missing.map((m) => m.instanceId).join(',');
  const seen = missing.map(describe).join(', ');
  const decision = run.decide(mark, observed);
  if (decision === 'wait') return;
  if (decision === 'mark') {
    await run.mark(
      'lost',
      jobId,
      observed,
      LostEvent.InstanceMissing,
      `job ${jobId} is ${job.state} but ${seen}; it is reported lost if the next run finds it so still`,
    );
    return;
  }
  // The first sighting is when the loss was known for certain: expiry wins only if that was at or after expiresAt.
  await reportInstanceLost(deps, jobId, missing[0].instanceId, describe(missing[0]), mark!.markedAt);
  report.lost.reported.push(jobId);
  await publishOperatorEvent(
    deps,
    LostEvent.JobLost,
    jobId,
    `job ${jobId} was ${job.state} but ${seen} (seen on two runs, first at ${mark!.markedAt}): reported its instance lost`,
  );
  await store.clearMarks('lost', [jobId]);
}

/**
 * A job whose instances should be listed: RUNNING, or LAUNCHING once the workflow's own wait for
 * its agent is over; with instances recorded, no outcome yet, and launched at least a mark's age
 * ago (an instance launched moments ago may not be listed yet).
 */
function watchable(run: LostRun, job: Job): boolean {
  if (!job.instanceIds?.length || job.outcome) return false;
  const since =
    job.state === JobState.RUNNING
      ? (job.startedAt ?? job.admittedAt)
      : job.state === JobState.LAUNCHING
        ? job.admittedAt
        : undefined;
  if (!since) return false;
  const grace =
    job.state === JobState.LAUNCHING
      ? Math.max(run.minAgeMs, maxComputeChecks(run.deps) * COMPUTE_CHECK_INTERVAL_SECONDS * 1000)
      : run.minAgeMs;
  return run.now.getTime() - Date.parse(since) >= grace;
}

function missingInstances(job: Job, listed: Map<string, ManagedInstance>): Missing[] {
  return (job.instanceIds ?? []).flatMap((instanceId): Missing[] => {
    const instance = listed.get(instanceId);
    if (!instance) return [{ instanceId }];
    return (LOST_INSTANCE_STATES as readonly string[]).includes(instance.state)
      ? [{ instanceId, state: instance.state }]
      : [];
  });
}

function describe(missing: Missing): string {
  return missing.state
    ? `instance ${missing.instanceId} is ${missing.state}`
    : `instance ${missing.instanceId} no longer exists`;
}
