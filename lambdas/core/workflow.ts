import { HOLDING_STATES, type Job } from './job.js';

/**
 * Names shared with statemachines/job-lifecycle.asl.json: the Task states and the
 * `task` each one asks the tasks Lambda to run. A test checks the file against these.
 */
export const WorkflowState = {
  Admit: 'Admit',
  Admitted: 'Admitted',
  Queued: 'Queued',
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
  Release: 'Release',
  ReleaseFailed: 'ReleaseFailed',
  Drain: 'Drain',
  Done: 'Done',
} as const;
export type WorkflowState = (typeof WorkflowState)[keyof typeof WorkflowState];

export const WorkflowTask = {
  admit: 'admit',
  launch: 'launch',
  requeue: 'requeue',
  checkCompute: 'checkCompute',
  start: 'start',
  awaitOutcome: 'awaitOutcome',
  rearm: 'rearm',
  stop: 'stop',
  release: 'release',
  drain: 'drain',
} as const;
export type WorkflowTask = (typeof WorkflowTask)[keyof typeof WorkflowTask];

/**
 * What an execution starts with: every state after Admit reads `jobId` and `error` (no Pass
 * state sets them: one transition less per execution); Drain reads `pool`, so it drains even
 * when the job was removed right after its Release; Admit reads `admitted`: a job that already
 * holds its GPUs when its execution starts (admitted at its submit, or by a drain) needs no
 * read to say so.
 */
export type WorkflowInput = {
  jobId: string;
  pool: string;
  admitted: boolean;
  error: null;
};

export function workflowInput(job: Pick<Job, 'id' | 'pool' | 'state'>): WorkflowInput {
  return { jobId: job.id, pool: job.pool, admitted: HOLDING_STATES.includes(job.state), error: null };
}
