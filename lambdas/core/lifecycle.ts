/**
 * The workflow's steps, one function per Task state of
 * statemachines/job-lifecycle.asl.json. An execution starts only for a job that
 * holds its GPUs (core/admission.ts). Each step is idempotent: the workflow retries
 * them, and a re-drive runs a job's workflow again from the top.
 */
import { nodeDevices } from './accounting.js';
import type { Deps } from './deps.js';
import { CAPACITY_LIMIT_REACHED, ComputeNotReady, StaleJob } from './errors.js';
import { publishOperatorEvent } from './events.js';
import { launchBackoffSeconds, maxComputeChecks } from './policy.js';
import { isTerminal, JobState, QUEUED_STATES, terminalFor, type Job, type JobOutputsRecord } from './job.js';
import { drainAfterRelease } from './admission.js';
import { jobEnded, launchFailed } from './metrics.js';
import { JobNotFound } from './errors.js';
import type { ContainerSpec } from '../ports/compute.js';

/** The error the workflow hands to Stop/Release when a step failed for good. */
export interface StepError {
  Error: string;
  Cause?: string;
}

async function load(deps: Deps, jobId: string): Promise<Job> {
  const job = await deps.jobs.getJob(jobId);
  if (!job) throw new JobNotFound(jobId);
  return job;
}

/** Cancelled or lost before its compute was ready: nothing to launch or wait for; Run ends at once on the recorded outcome. */
function launchOver(job: Job): boolean {
  return job.state !== JobState.LAUNCHING || !!job.outcome;
}

/** Where ComputeReady goes next: StartContainer when ready, else another check after WaitForCompute. */
export interface ComputeCheck {
  ready: boolean;
  attempts: number;
}

/**
 * Launch: get compute for the admitted job, and check it once at once: compute
 * that is ready (the local driver's always is) goes straight to StartContainer,
 * without an AwaitCompute task and its transition.
 */
export async function launchStep(deps: Deps, jobId: string): Promise<ComputeCheck> {
  const job = await load(deps, jobId);
  if (launchOver(job)) return { ready: true, attempts: 0 };
  const launched = await deps.compute.launch(job);
  const stored = await deps.jobs.updateJob(jobId, [JobState.LAUNCHING], {
    instanceIds: launched.instanceIds,
    ...(launched.devices ? { devices: launched.devices } : {}),
  });
  return { ready: await deps.compute.isReady(stored), attempts: 1 };
}

/** AwaitCompute: one bounded check; the Wait state between checks costs no compute. */
export async function checkComputeStep(deps: Deps, jobId: string, attempts: number): Promise<ComputeCheck> {
  const job = await load(deps, jobId);
  if (launchOver(job)) return { ready: true, attempts };
  if (await deps.compute.isReady(job)) return { ready: true, attempts: attempts + 1 };
  const limit = maxComputeChecks(deps);
  if (attempts + 1 >= limit) {
    throw new ComputeNotReady(
      `the instance agent of job ${jobId} was not online after ${attempts + 1} checks (${Math.round(((attempts + 1) * 5) / 60)} min)`,
    );
  }
  return { ready: false, attempts: attempts + 1 };
}

/**
 * What the Run state is armed with: its timeout, and the expiry that timeout was
 * computed for (null when the job has none, so the ASL path always exists).
 */
export interface RunTimer {
  timeoutSeconds: number;
  expiresAt: string | null;
}

/** A running job's expiry: its start plus its live timeout. The one formula, so a stored expiry can be checked against it. */
export function expiryFor(startedAt: string | Date, liveTimeoutMinutes: number): string {
  const start = typeof startedAt === 'string' ? Date.parse(startedAt) : startedAt.getTime();
  return new Date(start + liveTimeoutMinutes * 60_000).toISOString();
}

/** True when the stored expiry is the one the job's start and (possibly changed) live timeout give; a job not started has nothing to check. */
function expiryCurrent(job: Job): boolean {
  return !job.startedAt || job.expiresAt === expiryFor(job.startedAt, job.liveTimeoutMinutes);
}

/** StartContainer: run the job; from here its live timeout counts. */
export async function startStep(deps: Deps, jobId: string): Promise<RunTimer> {
  let job = await load(deps, jobId);
  if (job.state === JobState.LAUNCHING && !job.outcome) {
    const startedAt = deps.now();
    // A live-timeout change landing after this read is seen by AwaitOutcome (expiryCurrent) and rearmed.
    const expiresAt = expiryFor(startedAt, job.liveTimeoutMinutes);
    await deps.compute.start(job, containerSpec(job, expiresAt));
    try {
      job = await deps.jobs.updateJob(jobId, [JobState.LAUNCHING], {
        state: JobState.RUNNING,
        startedAt: startedAt.toISOString(),
        expiresAt,
      });
    } catch (error) {
      if (!(error instanceof StaleJob)) throw error;
      job = await load(deps, jobId);
    }
  }
  return runTimer(deps, job);
}

function runTimer(deps: Deps, job: Job): RunTimer {
  return { timeoutSeconds: secondsUntil(deps, job.expiresAt), expiresAt: job.expiresAt ?? null };
}

export function containerSpec(job: Job, expiresAt: string): ContainerSpec {
  return {
    jobId: job.id,
    image: job.image,
    command: job.command,
    env: job.env,
    gpus: job.gpus,
    devices: nodeDevices(job),
    expiresAt,
    ...(job.allowRoot ? { allowRoot: true } : {}),
    ...(job.secrets && Object.keys(job.secrets).length > 0 ? { secrets: job.secrets, project: job.project } : {}),
    ...(job.arrayId !== undefined && job.arrayIndex !== undefined && job.arraySize !== undefined
      ? { array: { id: job.arrayId, index: job.arrayIndex, size: job.arraySize } }
      : {}),
  };
}

/**
 * The Run state's callback registration: store the token; end at once if the job
 * already ended. `armedFor` is the expiry the wait's timeout was computed for: when
 * the live timeout changed in between (its PATCH found no token, or the previous
 * one), nobody else will end this wait, so it ends itself with `{ rearm: true }`.
 */
export async function awaitOutcomeStep(
  deps: Deps,
  jobId: string,
  taskToken: string,
  armedFor?: string | null,
): Promise<void> {
  const job = await deps.jobs.setTaskToken(jobId, taskToken);
  if (job.outcome || !isRunning(deps, job)) {
    await deps.workflows.sendTaskSuccess(taskToken, { outcome: job.outcome ?? null });
    return;
  }
  if (armedFor !== undefined && (armedFor !== (job.expiresAt ?? null) || !expiryCurrent(job))) {
    await deps.workflows.sendTaskSuccess(taskToken, { rearm: true });
  }
}

/**
 * Rearm: Run's wait ended because the live timeout changed, or its timer fired
 * (a change may have raced it). Make the stored expiry agree with the live timeout,
 * move the instances' own deadline there, and arm Run again for it. `running`
 * false ends the run: the job no longer runs, has an outcome, or its time is up
 * (shortened into the past: it expires now).
 */
export async function rearmStep(deps: Deps, jobId: string): Promise<RunTimer & { running: boolean }> {
  let job = await load(deps, jobId);
  if (job.state === JobState.RUNNING && !job.outcome && job.startedAt && !expiryCurrent(job)) {
    try {
      job = await deps.jobs.updateJob(jobId, [JobState.RUNNING], {
        expiresAt: expiryFor(job.startedAt, job.liveTimeoutMinutes),
      });
    } catch (error) {
      if (!(error instanceof StaleJob)) throw error;
      job = await load(deps, jobId);
    }
  }
  const running = !job.outcome && isRunning(deps, job);
  // Serialised by the workflow: the last Rearm after the last change pushes the final expiry.
  if (running) await deps.compute.updateExpiry(job, job.expiresAt!);
  deps.log.info('run rearmed', { jobId, expiresAt: job.expiresAt, running });
  return { ...runTimer(deps, job), running };
}

function isRunning(deps: Deps, job: Job): boolean {
  return job.state === JobState.RUNNING && secondsUntil(deps, job.expiresAt, 0) > 0;
}

/** Where Collected goes next: WaitForOutputs while the job's outputs are being kept (until `until`), else Release. */
export interface OutputsCollection {
  collecting: boolean;
  until: string | null;
}

const COLLECTED: OutputsCollection = { collecting: false, until: null };

/**
 * Stop: decide the verdict once, mark STOPPING; then, for a job that started, begin keeping its
 * outputs where they are (the upload runs before its instances go, so cancel and expiry keep them
 * too) and wait for that in AwaitOutputs; else give the compute back at once.
 */
export async function stopStep(deps: Deps, jobId: string, error?: StepError | null): Promise<OutputsCollection> {
  let job = await load(deps, jobId);
  if (job.state === JobState.LAUNCHING || job.state === JobState.RUNNING) job = await markStopping(deps, job, error);
  if (job.state !== JobState.STOPPING || !job.instanceIds?.length) return COLLECTED;
  const collecting = job.startedAt ? await deps.compute.collectOutputs?.(job) : undefined;
  if (collecting) return { collecting: true, until: collecting.until };
  await deps.compute.stop(job);
  return COLLECTED;
}

/**
 * AwaitOutputs: one check of the upload Stop began; once it ended or `until` passed, give the compute
 * back (Release then records what was kept, or why not). The Wait between checks costs no compute.
 */
export async function awaitOutputsStep(deps: Deps, jobId: string, until: string): Promise<OutputsCollection> {
  const job = await load(deps, jobId);
  if (job.state !== JobState.STOPPING || !job.instanceIds?.length) return COLLECTED;
  const due = !(deps.now().getTime() < Date.parse(until));
  if (!due && !((await deps.compute.outputsCollected?.(job)) ?? true)) return { collecting: true, until };
  await deps.compute.stop(job);
  return COLLECTED;
}

/**
 * What a job that started kept of its output directory (its compute has stopped: Stop ran), recorded by Release
 * in the write that ends the job: never silent, even over the cap or when the files cannot be read.
 */
async function keptOutputs(deps: Deps, job: Job): Promise<JobOutputsRecord | undefined> {
  if (!job.startedAt || !deps.compute.keptOutputs) return undefined;
  try {
    return await deps.compute.keptOutputs(job);
  } catch (error) {
    // The job still ends; its record says its files could not be accounted for.
    deps.log.error('outputs not recorded', { jobId: job.id, error: String(error) });
    return { count: 0, bytes: 0, error: `outputs could not be read: ${(error as Error).message ?? String(error)}` };
  }
}

/** Release: terminal state and GPUs back, in one transaction, exactly once. */
export async function releaseStep(deps: Deps, jobId: string, error?: StepError | null): Promise<{ pool: string }> {
  let job = await load(deps, jobId);
  const ending = !isTerminal(job.state) && !QUEUED_STATES.includes(job.state);
  const outputs = ending ? await keptOutputs(deps, job) : undefined;
  // Queued: it holds nothing (requeued, or an execution started for a job not admitted), and the drain admits it.
  for (let attempt = 0; attempt < 5 && !isTerminal(job.state) && !QUEUED_STATES.includes(job.state); attempt++) {
    if (job.state === JobState.LAUNCHING || job.state === JobState.RUNNING) job = await markStopping(deps, job, error);
    const verdict = job.verdict ?? terminalFor(job, deps.now(), describe(error));
    const finished = await deps.jobs.finishJob(job, {
      state: verdict.state,
      stateReason: verdict.reason,
      finishedAt: deps.now().toISOString(),
      ...(verdict.exitCode !== undefined ? { exitCode: verdict.exitCode } : {}),
      ...(outputs ? { outputs } : {}),
    });
    if (finished) {
      jobEnded(deps, finished, error);
      break;
    }
    job = await load(deps, jobId);
  }
  return { pool: job.pool };
}

/**
 * Requeue: the launch found no capacity anywhere. The job gives its GPUs back
 * and waits at its old place in the queue until `retryAt`; the workflow waits
 * out the backoff and drains the pool. A job cancelled or lost meanwhile is
 * not requeued: it goes on to Stop.
 */
export async function requeueStep(
  deps: Deps,
  jobId: string,
  error?: StepError | null,
): Promise<{ requeued: boolean; backoffSeconds: number }> {
  let job = await load(deps, jobId);
  for (let attempt = 0; attempt < 5; attempt++) {
    if (job.state !== JobState.LAUNCHING || job.outcome) return { requeued: false, backoffSeconds: 0 };
    if (job.instanceIds?.length) await deps.compute.stop(job);
    const launchAttempt = (job.launchAttempt ?? 0) + 1;
    const backoffSeconds = launchBackoffSeconds(deps, launchAttempt);
    const retryAt = new Date(deps.now().getTime() + backoffSeconds * 1000).toISOString();
    const cause = describeCause(error) ?? 'no capacity';
    const requeued = await deps.jobs.requeueJob(job, {
      stateReason: `${cause}; next launch attempt after ${retryAt}`,
      retryAt,
      launchAttempt,
    });
    if (requeued) {
      launchFailed(deps, error);
      if (error?.Error === CAPACITY_LIMIT_REACHED)
        await publishOperatorEvent(deps, 'capacity-limit', `pool/${job.pool}`, cause);
      return { requeued: true, backoffSeconds };
    }
    job = await load(deps, jobId);
  }
  return { requeued: false, backoffSeconds: 0 };
}

/**
 * Drain: GPUs came back; admit who waits for them, in the job's pool and, when its project has limits,
 * in the pools where those limits held its jobs back. The pool comes with the execution, so the drain
 * does not depend on the job still being there (its owner may remove it once it ended); executions
 * started before the input carried it name only the job.
 */
export async function drainStep(deps: Deps, jobId: string, pool?: string): Promise<{ admitted: number }> {
  const job = await deps.jobs.getJob(jobId);
  const name = pool ?? job?.pool;
  if (!name) throw new JobNotFound(jobId);
  const results = await drainAfterRelease(deps, name, job?.project);
  return { admitted: results.reduce((n, r) => n + r.admitted.length, 0) };
}

async function markStopping(deps: Deps, job: Job, error?: StepError | null): Promise<Job> {
  // No outcome recorded: the job's end may be known to its instances and its report still on its way
  // (a restart, a store that was down). Decide from that end, not from the clock.
  const ended = job.outcome ?? (job.state === JobState.RUNNING ? await deps.compute.endedOn?.(job) : undefined);
  const verdict = terminalFor({ ...job, outcome: ended }, deps.now(), describe(error));
  try {
    return await deps.jobs.updateJob(job.id, [JobState.LAUNCHING, JobState.RUNNING], {
      state: JobState.STOPPING,
      stateReason: verdict.reason,
      verdict,
    });
  } catch (e) {
    if (!(e instanceof StaleJob)) throw e;
    return load(deps, job.id);
  }
}

/** The error's own message, without its name. */
function describeCause(error?: StepError | null): string | undefined {
  return error?.Cause ? parseCause(error.Cause) : error?.Error;
}

function describe(error?: StepError | null): string | undefined {
  if (!error) return undefined;
  const cause = error.Cause ? parseCause(error.Cause) : undefined;
  return cause ? `${error.Error}: ${cause}` : error.Error;
}

/** Lambda errors arrive as a JSON Cause ({errorMessage}); local ones as plain text. */
function parseCause(cause: string): string {
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: string };
    return parsed.errorMessage ?? cause;
  } catch {
    return cause;
  }
}

function secondsUntil(deps: Deps, iso: string | undefined, floor = 1): number {
  if (!iso) return floor;
  return Math.max(floor, Math.ceil((Date.parse(iso) - deps.now().getTime()) / 1000));
}
