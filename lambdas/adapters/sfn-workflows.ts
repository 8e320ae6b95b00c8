import {
  ListExecutionsCommand,
  SendTaskSuccessCommand,
  StartExecutionCommand,
  type SFNClient,
} from '@aws-sdk/client-sfn';
import { executionJobId } from '../core/admission.js';
import type { WorkflowInput } from '../core/workflow.js';
import type { Workflows } from '../ports/workflows.js';

/** ListExecutions' largest page. */
const LIST_PAGE_SIZE = 1000;

/** Workflows on AWS Step Functions. Execution names carry the job id (idempotent starts). */
export class SfnWorkflows implements Workflows {
  constructor(
    private readonly sfn: SFNClient,
    private readonly stateMachineArn: string,
  ) {}

  async start(name: string, input: WorkflowInput): Promise<void> {
    try {
      await this.sfn.send(
        new StartExecutionCommand({ stateMachineArn: this.stateMachineArn, name, input: JSON.stringify(input) }),
      );
    } catch (error) {
      // Same name and input while it runs is accepted by Step Functions; a finished
      // execution of that name means this start already happened.
      if ((error as { name?: string }).name !== 'ExecutionAlreadyExists') throw error;
    }
  }

  async sendTaskSuccess(token: string, output: unknown): Promise<void> {
    try {
      await this.sfn.send(new SendTaskSuccessCommand({ taskToken: token, output: JSON.stringify(output ?? {}) }));
    } catch (error) {
      // The wait already ended (timeout, or the other side of the race sent first).
      const name = (error as { name?: string }).name;
      if (name !== 'TaskTimedOut' && name !== 'InvalidToken' && name !== 'TaskDoesNotExist') throw error;
    }
  }

  /** Every RUNNING execution of the state machine, page by page; the job id leads each execution's name. */
  async runningJobIds(): Promise<Set<string>> {
    const jobIds = new Set<string>();
    let nextToken: string | undefined;
    do {
      const page = await this.sfn.send(
        new ListExecutionsCommand({
          stateMachineArn: this.stateMachineArn,
          statusFilter: 'RUNNING',
          maxResults: LIST_PAGE_SIZE,
          ...(nextToken ? { nextToken } : {}),
        }),
      );
      for (const execution of page.executions ?? []) {
        const jobId = executionJobId(execution.name);
        if (jobId) jobIds.add(jobId);
      }
      nextToken = page.nextToken;
    } while (nextToken);
    return jobIds;
  }
}
