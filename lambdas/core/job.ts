/**
 * The job's life, as data: states, which moves between them are legal, and the
 * job record itself. Everything else asks this module before changing a state.
 */
import { JOB_STATES, QUEUED_STATES, TERMINAL_STATES, type JobStateName } from '../../contract/vocabulary.js';
import { InvalidTransition } from './errors.js';
import { byName } from './names.js';

export type JobState = JobStateName;
/** `JobState.RUNNING` and so on: the shared states by name. */
export const JobState = byName(JOB_STATES);

export { JOB_STATES, QUEUED_STATES, TERMINAL_STATES };

/** Admitted: GPUs are held from LAUNCHING until the job leaves STOPPING. */
export const HOLDING_STATES: readonly JobState[] = [JobState.LAUNCHING, JobState.RUNNING, JobState.STOPPING];

const LEGAL: Record<JobState, readonly JobState[]> = {
  PENDING: [JobState.WAITING, JobState.LAUNCHING, JobState.CANCELLED, JobState.FAILED],
  WAITING: [JobState.LAUNCHING, JobState.CANCELLED, JobState.FAILED],
  // Back to WAITING when no capacity could be had: the GPUs go back and the job keeps its place.
  LAUNCHING: [JobState.RUNNING, JobState.STOPPING, JobState.WAITING],
  RUNNING: [JobState.STOPPING],
  STOPPING: [JobState.SUCCEEDED, JobState.FAILED, JobState.EXPIRED, JobState.CANCELLED],
  SUCCEEDED: [],
  FAILED: [],
  EXPIRED: [],
  CANCELLED: [],
};

export function isTerminal(state: JobState): boolean {
  return TERMINAL_STATES.includes(state);
}

export function canTransition(from: JobState, to: JobState): boolean {
  return LEGAL[from].includes(to);
}

export function assertTransition(jobId: string, from: JobState, to: JobState): void {
  if (!canTransition(from, to)) throw new InvalidTransition(jobId, from, to);
}

/** States that may move to `to`: the condition a store puts on a conditional write. */
export function statesBefore(to: JobState): JobState[] {
  return JOB_STATES.filter((from) => LEGAL[from].includes(to));
}

/**
 * Why a job stopped running: recorded once, first writer wins, read by Finalize.
 * `at` is when it happened (the exit, the cancel, the loss), which may be long
 * before the control plane learns of it; outcomes recorded before it existed lack it.
 */
export type Outcome = (
  | {
      kind: 'exited';
      exitCode: number /** Stopped by its own dead-man switch at an expiresAt (which a later change may have moved). */;
      expired?: boolean;
    }
  | { kind: 'cancelled'; by: string }
  | { kind: 'lost'; reason: string }
  /** Its container command ended without the container's exit (never delivered, cancelled): FAILED with this reason. */
  | { kind: 'failed'; reason: string }
) & { at?: string };

export interface Job {
  id: string;
  name: string;
  project: string;
  owner: string;
  /** The template's name as the job was submitted. */
  template: string;
  /** The template's id: a template with active jobs cannot be deleted. Absent on jobs stored before templates had ids. */
  templateId?: string;
  pool: string;
  image: string;
  command: string[];
  env: Record<string, string>;
  /** Env names taken from the project's secrets: env name -> secret name, never a value (core/secrets.ts). */
  secrets?: Record<string, string>;
  gpus: number;
  nodeCount: number;
  liveTimeoutMinutes: number;
  /** The template's max when the job was submitted: the bound for later changes of liveTimeoutMinutes. */
  maxLiveTimeoutMinutes?: number;
  state: JobState;
  stateReason?: string;
  queuePosition?: number;
  /** While queued, on reads (core/forecast.ts): the latest time it is admitted, or null when none can be promised. */
  latestStartAt?: string | null;
  /** Why latestStartAt is null. */
  latestStartReason?: string;
  /** Stored when it started waiting: the latest start promised then, for its WAITING event. */
  promisedStartAt?: string;
  createdAt: string;
  admittedAt?: string;
  startedAt?: string;
  expiresAt?: string;
  finishedAt?: string;
  instanceIds?: string[];
  /** GPU slots on the host (local driver); devices handed to the container. */
  devices?: number[];
  exitCode?: number;
  /** What it kept of $FLARE_OUTPUT_DIR, recorded when it stopped (core/outputs.ts); absent when it never started. */
  outputs?: JobOutputsRecord;
  /** GPUs this job holds against its project and pool; absent once released. */
  heldGpus?: number;
  /** GPU-milliseconds reserved against the project's gpuHours budget while holding (core/budgets.ts); absent once released. */
  reservedGpuMs?: number;
  outcome?: Outcome;
  /** Exit codes per instance of a multi-node job, recorded as nodes finish. */
  nodeExits?: Record<string, number>;
  /** Launches tried so far; bumped each time a launch found no capacity and the job was requeued. */
  launchAttempt?: number;
  /** Requeued after no capacity: the drain does not admit it before this time. */
  retryAt?: string;
  /** A member of an array (one submit of `array.size` jobs): the array's id and this job's 0-based index. */
  arrayId?: string;
  arrayIndex?: number;
  /** How many jobs its array has. */
  arraySize?: number;
  /** Which run of the job its workflow execution drives (core/admission.ts executionName): set to 1 by its
   *  first admission, bumped by each later admission and each re-drive, so every execution has a new name. */
  workflowRun?: number;
  /** Root volume size for each instance (from the template). */
  volumeSizeGb?: number;
  /** The template lets the container run as the image's own user (see TemplateSpec.allowRoot). */
  allowRoot?: boolean;
  /** The terminal state decided when the job entered STOPPING, applied by Release. */
  verdict?: Verdict;
  taskToken?: string;
}

/** Files and bytes kept; `truncated` when the per-job cap left files out, `error` why (or why the upload failed). */
export interface JobOutputsRecord {
  count: number;
  bytes: number;
  truncated?: boolean;
  error?: string;
}

export interface Verdict {
  state: JobState;
  reason: string;
  exitCode?: number;
}

/** GPUs a job holds across all its nodes. */
export function totalGpus(job: Pick<Job, 'gpus' | 'nodeCount'>): number {
  return job.gpus * job.nodeCount;
}

/** What the API shows: internal bookkeeping stays inside. */
export function publicJob(
  job: Job,
): Omit<
  Job,
  | 'heldGpus'
  | 'reservedGpuMs'
  | 'outcome'
  | 'taskToken'
  | 'devices'
  | 'verdict'
  | 'nodeExits'
  | 'promisedStartAt'
  | 'workflowRun'
> {
  const {
    heldGpus: _h,
    reservedGpuMs: _r,
    outcome: _o,
    taskToken: _t,
    devices: _d,
    verdict: _v,
    nodeExits: _n,
    promisedStartAt: _p,
    workflowRun: _w,
    ...shown
  } = job;
  return shown;
}

/**
 * The terminal state and reason a job ends with. Expiry wins: a job still running
 * at its expiresAt ends EXPIRED whatever its exit code, however late the control
 * plane learns of it. So the outcome's own time decides, not the time it is read;
 * `now` stands for the end of a job with no outcome (its timer ran out, or a step failed).
 */
export function terminalFor(job: Pick<Job, 'outcome' | 'expiresAt'>, now: Date, error?: string): Verdict {
  const { outcome } = job;
  if (ranPastExpiry(job, now)) {
    const code = outcome?.kind === 'exited' ? outcome.exitCode : undefined;
    return {
      state: JobState.EXPIRED,
      reason: 'live timeout reached',
      ...(code !== undefined ? { exitCode: code } : {}),
    };
  }
  if (outcome?.kind === 'cancelled') return { state: JobState.CANCELLED, reason: `cancelled by ${outcome.by}` };
  if (outcome?.kind === 'exited') {
    return outcome.exitCode === 0
      ? { state: JobState.SUCCEEDED, reason: 'exited with code 0', exitCode: 0 }
      : { state: JobState.FAILED, reason: `exited with code ${outcome.exitCode}`, exitCode: outcome.exitCode };
  }
  if (outcome?.kind === 'lost') return { state: JobState.FAILED, reason: `instance lost: ${outcome.reason}` };
  if (outcome?.kind === 'failed') return { state: JobState.FAILED, reason: outcome.reason };
  return { state: JobState.FAILED, reason: error ?? 'failed' };
}

/** The job was still running at its expiresAt: its outcome came then or later, or it has none yet and the time has come. */
function ranPastExpiry(job: Pick<Job, 'outcome' | 'expiresAt'>, now: Date): boolean {
  if (job.outcome?.kind === 'exited' && job.outcome.expired) return true;
  if (!job.expiresAt) return false;
  const end = job.outcome ? job.outcome.at : now.toISOString();
  return end !== undefined && Date.parse(end) >= Date.parse(job.expiresAt);
}
