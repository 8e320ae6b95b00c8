import { SendTaskSuccessCommand, StartExecutionCommand, type SFNClient } from '@aws-sdk/client-sfn';
import type { Workflows } from '../ports/workflows.js';

/** Workflows on AWS Step Functions. Execution names carry the job id (idempotent starts). */
export class SfnWorkflows implements Workflows {
  constructor(
    private readonly sfn: SFNClient,
    private readonly stateMachineArn: string,
  ) {}

  async start(name: string, input: { jobId: string }): Promise<void> {
    try {
      await this.sfn.send(new StartExecutionCommand({ stateMachineArn: this.stateMachineArn, name, input: JSON.stringify(input) }));
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
}
