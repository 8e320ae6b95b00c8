/**
 * The tasks Lambda: every Task state of the job lifecycle workflow calls this
 * with `{ task, jobId, ... }`. Thin: validate, call the step in core, return.
 * Errors propagate by name so the ASL's Retry/Catch can match them.
 */
import middy from '@middy/core';
import { z } from 'zod';
import type { Deps } from '../../core/deps.js';
import { admitOfEarlierDefinition } from '../../core/admission.js';
import {
  awaitOutcomeStep,
  awaitOutputsStep,
  checkComputeStep,
  drainStep,
  launchStep,
  rearmStep,
  releaseStep,
  requeueStep,
  startStep,
  stopStep,
} from '../../core/lifecycle.js';
import { parse } from '../../core/schemas.js';
import { WorkflowTask } from '../../core/workflow.js';
import { awsDeps } from '../aws-deps.js';
import { awsUploadingCompute } from '../aws-outputs.js';
import { jobIdOfTask, observed } from '../aws-observability.js';

const jobId = z.string().min(1).max(128);
const stepError = z.object({ Error: z.string(), Cause: z.string().optional() }).nullish();

export const TaskEvent = z.discriminatedUnion('task', [
  // Only executions started by the definition before this one, which began with an Admit state.
  z.object({ task: z.literal('admit'), jobId, admitted: z.boolean().optional() }),
  z.object({ task: z.literal(WorkflowTask.launch), jobId }),
  z.object({ task: z.literal(WorkflowTask.requeue), jobId, error: stepError }),
  z.object({ task: z.literal(WorkflowTask.checkCompute), jobId, attempts: z.number().int().min(0) }),
  z.object({ task: z.literal(WorkflowTask.start), jobId }),
  // expiresAt: what Run was armed for (null: the job has no expiry); absent in executions started before it was passed.
  z.object({
    task: z.literal(WorkflowTask.awaitOutcome),
    jobId,
    taskToken: z.string().min(1),
    timeoutSeconds: z.number().optional(),
    expiresAt: z.string().nullable().optional(),
  }),
  z.object({ task: z.literal(WorkflowTask.rearm), jobId }),
  z.object({ task: z.literal(WorkflowTask.stop), jobId, error: stepError }),
  // until: the bound Stop set on the wait for the job's outputs (ISO 8601).
  z.object({ task: z.literal(WorkflowTask.awaitOutputs), jobId, until: z.string().min(1) }),
  z.object({ task: z.literal(WorkflowTask.release), jobId, error: stepError }),
  // pool: absent in executions started before the input carried it.
  z.object({ task: z.literal(WorkflowTask.drain), jobId, pool: z.string().min(1).optional() }),
]);
export type TaskEvent = z.infer<typeof TaskEvent>;

export async function runTask(deps: Deps, raw: unknown): Promise<unknown> {
  const event = parse(TaskEvent, raw);
  switch (event.task) {
    case 'admit':
      return admitOfEarlierDefinition(deps, event.jobId);
    case 'launch':
      return launchStep(deps, event.jobId);
    case 'requeue':
      return requeueStep(deps, event.jobId, event.error);
    case 'checkCompute':
      return checkComputeStep(deps, event.jobId, event.attempts);
    case 'start':
      return startStep(deps, event.jobId);
    case 'awaitOutcome':
      await awaitOutcomeStep(deps, event.jobId, event.taskToken, event.expiresAt);
      return {};
    case 'rearm':
      return rearmStep(deps, event.jobId);
    case 'stop':
      return stopStep(deps, event.jobId, event.error);
    case 'awaitOutputs':
      return awaitOutputsStep(deps, event.jobId, event.until);
    case 'release':
      return releaseStep(deps, event.jobId, event.error);
    case 'drain':
      return drainStep(deps, event.jobId, event.pool);
  }
}

export function createTasksHandler(deps: () => Deps) {
  return middy<unknown, unknown>().handler((event) => runTask(deps(), event));
}

export const handler = observed(createTasksHandler(awsDeps({ compute: awsUploadingCompute })), {
  metrics: true,
  correlationId: jobIdOfTask,
});
