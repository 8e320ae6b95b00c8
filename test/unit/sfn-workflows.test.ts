import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import { ListExecutionsCommand, SFNClient, SFNServiceException, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { SfnWorkflows } from '../../lambdas/adapters/sfn-workflows.js';
import { workflowInput } from '../../lambdas/core/workflow.js';
import { awsError } from '../support/aws-errors.js';

const sfn = new SFNClient({ region: 'eu-west-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
const sfnMock = mockClient(sfn);
const ARN = 'arn:aws:states:eu-west-1:123456789012:stateMachine:flare-job-lifecycle';
const A = 'j-0123456789abcdef';
const B = 'j-ghjkmnpqrstvwxyz';
const C = 'j-00000000000000zz';

function execution(name: string) {
  return {
    executionArn: `${ARN.replace(':stateMachine:', ':execution:')}:${name}`,
    stateMachineArn: ARN,
    name,
    status: 'RUNNING' as const,
    startDate: new Date('2030-01-01T00:00:00Z'),
  };
}

beforeEach(() => sfnMock.reset());

describe('SfnWorkflows.runningJobIds', () => {
  test('lists RUNNING executions of the state machine page by page and reads the job id from each name', async () => {
    sfnMock
      .on(ListExecutionsCommand, { stateMachineArn: ARN, statusFilter: 'RUNNING', maxResults: 1000 })
      .resolves({ executions: [execution(A), execution(`${B}-admitted-2`)], nextToken: 'page-2' })
      .on(ListExecutionsCommand, { nextToken: 'page-2' })
      .resolves({
        executions: [execution(`${C}-recover-lx3k2`), execution(`${A}-2`), execution('hand-started-test')],
      });

    const running = await new SfnWorkflows(sfn, ARN).runningJobIds();

    assert.deepEqual([...running].sort(), [A, B, C].sort());
    const calls = sfnMock.commandCalls(ListExecutionsCommand).map((c) => c.args[0].input);
    assert.deepEqual(calls, [
      { stateMachineArn: ARN, statusFilter: 'RUNNING', maxResults: 1000 },
      { stateMachineArn: ARN, statusFilter: 'RUNNING', maxResults: 1000, nextToken: 'page-2' },
    ]);
  });

  test('no running execution: one request, an empty set', async () => {
    sfnMock.on(ListExecutionsCommand).resolves({ executions: [] });

    assert.equal((await new SfnWorkflows(sfn, ARN).runningJobIds()).size, 0);
    assert.equal(sfnMock.commandCalls(ListExecutionsCommand).length, 1);
  });

  test('a failed page fails the query: a partial list would make running jobs look stuck', async () => {
    sfnMock
      .on(ListExecutionsCommand, { nextToken: undefined })
      .resolves({ executions: [execution(A)], nextToken: 'page-2' })
      .on(ListExecutionsCommand, { nextToken: 'page-2' })
      .rejects(awsError(SFNServiceException, 'ThrottlingException'));

    await assert.rejects(new SfnWorkflows(sfn, ARN).runningJobIds(), { name: 'ThrottlingException' });
  });
});

describe('SfnWorkflows.start', () => {
  test('starts an execution named by the caller with the job id and pool as input; an existing one of that name is the same start', async () => {
    sfnMock
      .on(StartExecutionCommand)
      .resolvesOnce({ executionArn: 'x', startDate: new Date() })
      .rejectsOnce(awsError(SFNServiceException, 'ExecutionAlreadyExists'));
    const workflows = new SfnWorkflows(sfn, ARN);

    await workflows.start(`${A}-2`, workflowInput({ id: A, pool: 'a100' }));
    await workflows.start(`${A}-2`, workflowInput({ id: A, pool: 'a100' }));

    assert.deepEqual(sfnMock.commandCalls(StartExecutionCommand)[0].args[0].input, {
      stateMachineArn: ARN,
      name: `${A}-2`,
      input: JSON.stringify({ jobId: A, pool: 'a100', error: null }),
    });
    assert.equal(sfnMock.commandCalls(StartExecutionCommand).length, 2);
  });
});
