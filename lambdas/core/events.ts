import { createHash } from 'node:crypto';
import type { Deps } from './deps.js';
import { JobState, totalGpus, type Job } from './job.js';
import type { JobStateChange, OperatorEvent } from '../ports/events.js';

/**
 * The `Job State Change` event for a job that has just entered `job.state`.
 * Each state is entered once per admission attempt (`launchAttempt`), so the
 * id is the same for every delivery of one transition and differs between
 * transitions: consumers deduplicate on it.
 */
export function stateChange(job: Job, previousState: JobState | null, at: string): JobStateChange {
  return {
    eventId: digest(`${job.id}|${job.launchAttempt ?? 0}|${previousState ?? '-'}|${job.state}`),
    jobId: job.id,
    name: job.name,
    project: job.project,
    owner: job.owner,
    pool: job.pool,
    gpus: totalGpus(job),
    previousState,
    state: job.state,
    ...(job.stateReason ? { stateReason: job.stateReason } : {}),
    ...(job.state === 'WAITING' && job.promisedStartAt ? { latestStartAt: job.promisedStartAt } : {}),
    at,
  };
}

/**
 * The changes a new job's first write makes. A job is stored as the submit
 * found it: admitted (room in its pool and nobody waiting, core/jobs.ts) or
 * WAITING; either way it was submitted first, and says both, as a job moved
 * on by a workflow step does. Only a job stored PENDING says one.
 */
export function creationChanges(job: Job, at: string): JobStateChange[] {
  if (job.state === JobState.PENDING) return [stateChange(job, null, at)];
  const submitted: Job = { ...job, state: JobState.PENDING, stateReason: undefined, promisedStartAt: undefined };
  return [stateChange(submitted, null, at), stateChange(job, JobState.PENDING, at)];
}

/**
 * The events for a stored change from `before` to `after` (a DynamoDB stream
 * record's old and new images): none when the state did not change.
 */
export function stateChangesBetween(before: Job | undefined, after: Job | undefined, at: string): JobStateChange[] {
  if (!after || before?.state === after.state) return [];
  return before ? [stateChange(after, before.state, at)] : creationChanges(after, at);
}

/** Publish a repair or an operator problem; logged as well, so it is seen even when publishing fails. */
export async function publishOperatorEvent(
  deps: Pick<Deps, 'events' | 'log' | 'now'>,
  kind: string,
  subject: string,
  reason: string,
): Promise<void> {
  const at = deps.now().toISOString();
  const event: OperatorEvent = { eventId: digest(`${kind}|${subject}|${at}`), kind, subject, reason, at };
  deps.log.warn('operator event', { ...event });
  try {
    await deps.events.publishOperatorEvent(event);
  } catch (error) {
    deps.log.error('operator event publish failed', { kind, subject, error: String(error) });
  }
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}
