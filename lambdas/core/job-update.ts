/**
 * `PATCH /v1/jobs/{id}`: rename a job, or change its live timeout (extend or
 * shorten, never past its template's max).
 *
 * - Queued or launching: the new live timeout is stored; StartContainer counts
 *   the expiry from it.
 * - Running: `expiresAt = startedAt + liveTimeoutMinutes`, written with it in one
 *   write conditioned on RUNNING. startedAt is fixed once a job runs, so the two
 *   fields always agree and concurrent changes are last-writer-wins; no
 *   condition on the old expiry is needed. The workflow's Run wait is then
 *   ended with `{ rearm: true }`: its Rearm step re-reads the job, moves the
 *   instances' dead-man deadline (Compute.updateExpiry) and arms Run again.
 *   When this change lands before Run has stored a token, AwaitOutcome sees the
 *   expiry it was armed for differ from the stored one and rearms itself. A new
 *   expiry already past ends the run at once: EXPIRED.
 * - Holding GPUs (launching, running): the job's GPU-hour reservation moves with
 *   its live timeout in the same transaction (core/budgets.ts): more needs room
 *   in the project's gpuHours budget (QuotaExceeded, 429). Any state: a new worst
 *   case beyond the budget itself is Unprocessable (422).
 * - Stopping or finished (or an outcome already recorded): a timeout change is
 *   a Conflict. A rename is allowed in every state: it is only a label.
 *
 * No state changes, so no event is published; the change is logged.
 */
import { changeReservedJob, refuseBeyondBudget } from './budgets.js';
import type { Deps } from './deps.js';
import { Conflict, JobNotFound, StaleJob, Unprocessable, ValidationError } from './errors.js';
import { authorize, type Identity } from './identity.js';
import { isTerminal, JobState, QUEUED_STATES, type Job } from './job.js';
import { expiryFor } from './lifecycle.js';
import type { ChangeJobInput } from './job-schemas.js';

/** States whose live timeout may still change. */
export const TIMEOUT_CHANGEABLE_STATES: readonly JobState[] = [
  JobState.PENDING,
  JobState.WAITING,
  JobState.LAUNCHING,
  JobState.RUNNING,
];

/** Conditional writes lost to other writers before giving up with the StaleJob (409). */
const MAX_ATTEMPTS = 5;

export async function changeJob(deps: Deps, identity: Identity, id: string, input: ChangeJobInput): Promise<Job> {
  for (let attempt = 1; ; attempt++) {
    const job = await deps.jobs.getJob(id);
    if (!job) throw new JobNotFound(id);
    authorize(identity, 'write', { kind: 'job', project: job.project }, id);
    const set = await changesFor(deps, job, input);
    if (Object.keys(set).length === 0) {
      // Stored before, but its wake-up may have been lost (Step Functions refused it: the caller got a 503 and
      // repeats the change); without it the run would hold the old expiry. Rearm with nothing new is harmless.
      if (input.liveTimeoutMinutes !== undefined && job.state === JobState.RUNNING && job.taskToken) {
        await deps.workflows.sendTaskSuccess(job.taskToken, { rearm: true });
      }
      return withQueuePosition(deps, job);
    }

    let changed: Job;
    try {
      // Conditioned on the state read: a job admitted or started meanwhile is decided again. A job holding
      // GPUs moves its GPU-hour reservation with its live timeout, in the same write (429 when it does not fit).
      changed =
        set.liveTimeoutMinutes !== undefined && job.reservedGpuMs !== undefined
          ? await changeReservedJob(deps, job, { ...set, liveTimeoutMinutes: set.liveTimeoutMinutes })
          : await deps.jobs.updateJob(id, [job.state], set);
    } catch (error) {
      if (error instanceof StaleJob && attempt < MAX_ATTEMPTS) continue;
      throw error;
    }
    deps.log.info('job changed', { jobId: id, by: identity.name, state: changed.state, ...set });
    // The token may belong to a wait that already ended: the adapters ignore such a token.
    if (set.expiresAt && changed.taskToken) await deps.workflows.sendTaskSuccess(changed.taskToken, { rearm: true });
    return withQueuePosition(deps, changed);
  }
}

/** The fields to write; throws when the change is not allowed for the job as it is now. */
async function changesFor(deps: Deps, job: Job, input: ChangeJobInput): Promise<Partial<Job>> {
  const set: Partial<Job> = {};
  if (input.name !== undefined && input.name !== job.name) set.name = input.name;
  const minutes = input.liveTimeoutMinutes;
  if (minutes === undefined) return set;

  if (!TIMEOUT_CHANGEABLE_STATES.includes(job.state) || job.outcome) {
    const now = isTerminal(job.state) ? job.state : 'stopping';
    throw new Conflict(`job ${job.id} is ${now}: its live timeout can no longer change`);
  }
  const max = await maxLiveTimeoutMinutes(deps, job);
  if (minutes > max)
    throw new ValidationError([
      { field: 'liveTimeoutMinutes', reason: `must be at most ${max} (the max of template ${job.template})` },
    ]);
  if (minutes > job.liveTimeoutMinutes)
    await refuseBeyondBudget(deps, job.project, { ...job, liveTimeoutMinutes: minutes });
  if (minutes !== job.liveTimeoutMinutes) set.liveTimeoutMinutes = minutes;
  if (job.state === JobState.RUNNING && job.startedAt) {
    const expiresAt = expiryFor(job.startedAt, minutes);
    if (expiresAt !== job.expiresAt) set.expiresAt = expiresAt;
  }
  return set;
}

/** The bound recorded at submit; for jobs stored before it was, the template's as it is now (by id, else by name as submit resolves it). */
async function maxLiveTimeoutMinutes(deps: Deps, job: Job): Promise<number> {
  if (job.maxLiveTimeoutMinutes !== undefined) return job.maxLiveTimeoutMinutes;
  const template = job.templateId
    ? await deps.catalog.getTemplate(job.templateId)
    : await deps.catalog.findTemplateIn([job.project, undefined], job.template);
  if (!template) {
    throw new Unprocessable(
      `job ${job.id} has no recorded maximum live timeout and its template ${job.template} no longer exists, so its live timeout cannot be changed`,
    );
  }
  return template.maxLiveTimeoutMinutes;
}

async function withQueuePosition(deps: Deps, job: Job): Promise<Job> {
  if (QUEUED_STATES.includes(job.state)) job.queuePosition = await deps.queue.queuePosition(job);
  return job;
}
