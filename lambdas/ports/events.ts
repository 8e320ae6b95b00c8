import type { JobState } from '../core/job.js';

/** docs/concepts.md's `Job State Change` event (source `flare`). */
export interface JobStateChange {
  /** Stable for one transition however often it is delivered: consumers deduplicate on it. */
  eventId: string;
  jobId: string;
  name: string;
  project: string;
  owner: string;
  pool: string;
  gpus: number;
  previousState: JobState | null;
  state: JobState;
  stateReason?: string;
  /** WAITING only: the latest start promised when it began to wait (core/forecast.ts), when one could be given. */
  latestStartAt?: string;
  at: string;
}

export const EVENT_SOURCE = 'flare';
export const JOB_STATE_CHANGE = 'Job State Change';

/** Reconciler repairs and operator problems (e.g. an account vCPU limit), source `flare`. */
export const OPERATOR_EVENT = 'Flare Operator Event';

export interface OperatorEvent {
  eventId: string;
  /** What kind of repair or problem: `orphan-marked`, `orphan-terminated`, `job-redriven`, `usage-repaired`, `vcpu-limit`, ... */
  kind: string;
  /** The job, instance, quota or pool it is about. */
  subject: string;
  reason: string;
  at: string;
}

export interface EventPublisher {
  publish(event: JobStateChange): Promise<void>;
  publishOperatorEvent(event: OperatorEvent): Promise<void>;
}
