import type { Job } from './job.js';
import { byName } from './names.js';

/**
 * Names shared with statemachines/job-lifecycle.asl.json: the Task states and the
 * `task` each one asks the tasks Lambda to run. A test checks the file against these.
 */
export const WorkflowState = byName([
  'Launch',
  'Requeue',
  'Requeued',
  'Backoff',
  'AwaitCompute',
  'ComputeReady',
  'WaitForCompute',
  'StartContainer',
  'Run',
  'RunEnded',
  'Rearm',
  'Rearmed',
  'Stop',
  'Collected',
  'WaitForOutputs',
  'AwaitOutputs',
  'Release',
  'ReleaseFailed',
  'Drain',
  'Done',
]);
export type WorkflowState = (typeof WorkflowState)[keyof typeof WorkflowState];

export const WorkflowTask = byName([
  'launch',
  'requeue',
  'checkCompute',
  'start',
  'awaitOutcome',
  'rearm',
  'stop',
  'awaitOutputs',
  'release',
  'drain',
]);
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
