import type { Job } from './job.js';

/**
 * Names shared with statemachines/job-lifecycle.asl.json: the Task states and the
 * `task` each one asks the tasks Lambda to run. A test checks the file against these.
 */
export const WorkflowState = {
  Launch: 'Launch',
  Requeue: 'Requeue',
  Requeued: 'Requeued',
  Backoff: 'Backoff',
  AwaitCompute: 'AwaitCompute',
  ComputeReady: 'ComputeReady',
  WaitForCompute: 'WaitForCompute',
  StartContainer: 'StartContainer',
  Run: 'Run',
  RunEnded: 'RunEnded',
  Rearm: 'Rearm',
  Rearmed: 'Rearmed',
  Stop: 'Stop',
  Collected: 'Collected',
  WaitForOutputs: 'WaitForOutputs',
  AwaitOutputs: 'AwaitOutputs',
  Release: 'Release',
  ReleaseFailed: 'ReleaseFailed',
  Drain: 'Drain',
  Done: 'Done',
} as const;
export type WorkflowState = (typeof WorkflowState)[keyof typeof WorkflowState];

export const WorkflowTask = {
  launch: 'launch',
  requeue: 'requeue',
  checkCompute: 'checkCompute',
  start: 'start',
  awaitOutcome: 'awaitOutcome',
  rearm: 'rearm',
  stop: 'stop',
  awaitOutputs: 'awaitOutputs',
  release: 'release',
  drain: 'drain',
} as const;
export type WorkflowTask = (typeof WorkflowTask)[keyof typeof WorkflowTask];

/**
 * What an execution starts with; it starts only for a job that holds its GPUs (core/admission.ts).
 * Every state reads `jobId` and `error` (no Pass state sets them: one transition less per execution);
 * Drain reads `pool`, so it drains even when the job was removed right after its Release.
 */
export type WorkflowInput = {
  jobId: string;
  pool: string;
  error: null;
};

export function workflowInput(job: Pick<Job, 'id' | 'pool'>): WorkflowInput {
  return { jobId: job.id, pool: job.pool, error: null };
}
