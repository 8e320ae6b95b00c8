import type { WorkflowInput } from '../core/workflow.js';

/** The job lifecycle workflow: Step Functions on AWS, aws-local-stepfunctions here. */
export interface Workflows {
  /** Start an execution; a second start with the same name is a no-op. */
  start(name: string, input: WorkflowInput): Promise<void>;
  /** End a callback wait. A token that no longer waits is ignored. */
  sendTaskSuccess(token: string, output: unknown): Promise<void>;
  /**
   * Ids of the jobs that have an execution running now (the reconciler's view).
   * May lag a just-started execution by a little: callers confirm before acting.
   */
  runningJobIds(): Promise<Set<string>>;
}
