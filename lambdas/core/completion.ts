/**
 * How a running job's end is reported from outside the workflow: a node's
 * container exited (SSM command status on AWS, the local runner's exit record
 * here), an instance went away (EC2 state change, a vanished local runner), or
 * the command that starts and watches the container was never delivered (SSM).
 * Each report is recorded once and ends the workflow's Run wait; reports about
 * instances the job no longer holds (our own Stop, an earlier attempt) change
 * nothing.
 */
import type { Deps } from './deps.js';
import { JobState, type Job } from './job.js';
import { reportOutcome } from './jobs.js';

/**
 * A node's container exited, at `at` (default: now). A multi-node job ends at the first failure, or when
 * every node has succeeded. `at` decides between the exit's own state and EXPIRED (core/job.ts terminalFor),
 * so a report that arrives late says when the exit happened, not when it was heard of. `expired`: the
 * job's own dead-man switch stopped it (at an expiresAt that a change racing it may since have moved).
 */
export async function reportNodeExit(
  deps: Deps,
  jobId: string,
  instanceId: string,
  exitCode: number,
  at = deps.now().toISOString(),
  expired = false,
): Promise<void> {
  const exited = { kind: 'exited' as const, exitCode, at, ...(expired ? { expired } : {}) };
  // Most reports end the job: a failure, or the exit of its only node. Recorded on that condition without
  // reading the job first (one round trip less between a job's end and its release); anything else (another
  // node still running, a stale report) takes the way below.
  if (await reportOutcome(deps, jobId, exited, { instanceId, only: exitCode === 0 })) return;
  const job = await runningWith(deps, jobId, instanceId, 'node exit');
  if (!job) return;
  if (exitCode !== 0 || (job.instanceIds?.length ?? 1) <= 1) {
    await reportOutcome(deps, jobId, exited);
    return;
  }
  const updated = await deps.jobs.recordNodeExit(jobId, instanceId, exitCode);
  if (!updated) return;
  const pending = (updated.instanceIds ?? []).filter((id) => updated.nodeExits?.[id] === undefined);
  if (pending.length === 0) await reportOutcome(deps, jobId, { ...exited, exitCode: 0 });
}

/** An instance of the job stopped existing before the job ended, at `at` (default: now; as for an exit). */
export function reportInstanceLost(deps: Deps, jobId: string, instanceId: string, reason: string, at?: string) {
  return reportEndedOn(deps, jobId, instanceId, 'instance lost', { kind: 'lost', reason, at });
}

/**
 * The container command on `instanceId` ended without the container's exit code (SSM never delivered it, or
 * it was cancelled), at `at` (as for an exit): nothing will report the job's end, so it fails with `reason`.
 * A job already cancelled or expired has its outcome, so this changes nothing there.
 */
export function reportCommandFailed(deps: Deps, jobId: string, instanceId: string, reason: string, at?: string) {
  return reportEndedOn(deps, jobId, instanceId, 'command failure', { kind: 'failed', reason, at });
}

/** An end without an exit code (`what`, for the log), recorded only while the job still runs on `instanceId`. */
async function reportEndedOn(
  deps: Deps,
  jobId: string,
  instanceId: string,
  what: string,
  ended: { kind: 'lost' | 'failed'; reason: string; at?: string },
): Promise<void> {
  const at = ended.at ?? deps.now().toISOString();
  if (await runningWith(deps, jobId, instanceId, what)) await reportOutcome(deps, jobId, { ...ended, at });
}

/** The job, if it is still launching or running on `instanceId`; otherwise the report is stale. */
async function runningWith(deps: Deps, jobId: string, instanceId: string, what: string): Promise<Job | undefined> {
  const job = await deps.jobs.getJob(jobId);
  const live = job && (job.state === JobState.LAUNCHING || job.state === JobState.RUNNING) && !job.outcome;
  if (!live || !job.instanceIds?.includes(instanceId)) {
    deps.log.info(`ignored ${what} report`, { jobId, instanceId, state: job?.state ?? 'unknown' });
    return undefined;
  }
  return job;
}
