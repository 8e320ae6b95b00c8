import type { JobState } from '../core/job.js';

/** DESIGN.md's `Job State Change` event (source `flare`). */
export interface JobStateChange {
  jobId: string;
  name: string;
  project: string;
  owner: string;
  pool: string;
  gpus: number;
  previousState: JobState | null;
  state: JobState;
  stateReason?: string;
  at: string;
}

export const EVENT_SOURCE = 'flare';
export const JOB_STATE_CHANGE = 'Job State Change';

export interface EventPublisher {
  publish(event: JobStateChange): Promise<void>;
}
