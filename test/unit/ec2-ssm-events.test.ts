import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DescribeInstancesCommand, EC2ServiceException } from '@aws-sdk/client-ec2';
import { GetCommandInvocationCommand, SSMServiceException } from '@aws-sdk/client-ssm';
import { Ec2SsmCompute } from '../../lambdas/adapters/ec2-ssm-compute.js';
import { awsError } from '../support/aws-errors.js';
import { PROPS, ec2Mock, ssmMock, useEc2SsmMocks } from '../support/ec2-ssm.js';

useEc2SsmMocks();

describe('Ec2SsmCompute event lookups', () => {
  function invocationMissing(): SSMServiceException {
    return awsError(SSMServiceException, 'InvocationDoesNotExist', { message: 'mocked' });
  }

  test('commandOutcome reads Flare command invocations back to their job and exit code', async () => {
    ssmMock.on(GetCommandInvocationCommand).resolves({
      CommandId: 'c-1',
      InstanceId: 'i-1',
      Comment: 'flare:job=j-abc',
      Status: 'Failed',
      StatusDetails: 'Failed',
      ResponseCode: 42,
    });

    const outcome = await new Ec2SsmCompute(PROPS).commandOutcome('c-1', 'i-1');

    assert.deepEqual(outcome, { jobId: 'j-abc', status: 'Failed', statusDetails: 'Failed', exitCode: 42 });
    assert.deepEqual(ssmMock.commandCalls(GetCommandInvocationCommand)[0].args[0].input, {
      CommandId: 'c-1',
      InstanceId: 'i-1',
    });
  });

  test('commandOutcome has no exit code when the script never ran (-1), and exit 0 on success', async () => {
    ssmMock
      .on(GetCommandInvocationCommand)
      .resolvesOnce({ Comment: 'flare:job=j-abc', Status: 'Failed', StatusDetails: 'Undeliverable', ResponseCode: -1 })
      .resolvesOnce({ Comment: 'flare:job=j-abc', Status: 'Success', StatusDetails: 'Success', ResponseCode: 0 });
    const compute = new Ec2SsmCompute(PROPS);

    assert.deepEqual(await compute.commandOutcome('c-1', 'i-1'), {
      jobId: 'j-abc',
      status: 'Failed',
      statusDetails: 'Undeliverable',
    });
    assert.deepEqual(await compute.commandOutcome('c-2', 'i-1'), {
      jobId: 'j-abc',
      status: 'Success',
      statusDetails: 'Success',
      exitCode: 0,
    });
  });

  test("commandOutcome says when the script (so the container) ended, from the invocation's ExecutionEndDateTime; none when SSM gives none", async () => {
    ssmMock
      .on(GetCommandInvocationCommand)
      .resolvesOnce({
        Comment: 'flare:job=j-abc',
        Status: 'Failed',
        ResponseCode: 143,
        ExecutionEndDateTime: '2030-01-01T01:01:00.180Z',
      })
      .resolvesOnce({ Comment: 'flare:job=j-abc', Status: 'Failed', ResponseCode: 143, ExecutionEndDateTime: '' })
      .resolvesOnce({
        Comment: 'flare:job=j-abc',
        Status: 'Failed',
        ResponseCode: 143,
        ExecutionEndDateTime: 'not a time',
      });
    const compute = new Ec2SsmCompute(PROPS);

    assert.deepEqual(await compute.commandOutcome('c-1', 'i-1'), {
      jobId: 'j-abc',
      status: 'Failed',
      exitCode: 143,
      endedAt: '2030-01-01T01:01:00.180Z',
    });
    assert.deepEqual(await compute.commandOutcome('c-1', 'i-1'), { jobId: 'j-abc', status: 'Failed', exitCode: 143 });
    assert.deepEqual(await compute.commandOutcome('c-1', 'i-1'), { jobId: 'j-abc', status: 'Failed', exitCode: 143 });
  });

  for (const Comment of [
    undefined,
    '',
    'patching run',
    'flare:job=',
    'flare:job=J-ABC',
    'flare:job=j-abc; rm',
    'xflare:job=j-abc',
  ]) {
    test(`commandOutcome ignores a command that is not Flare's (comment ${JSON.stringify(Comment)})`, async () => {
      ssmMock.on(GetCommandInvocationCommand).resolves({ Comment, Status: 'Success', ResponseCode: 0 });
      assert.equal(await new Ec2SsmCompute(PROPS).commandOutcome('c-1', 'i-1'), undefined);
    });
  }

  test('commandOutcome throws what SSM throws, so the event is retried', async () => {
    const missing = invocationMissing();
    ssmMock.on(GetCommandInvocationCommand).rejects(missing);
    await assert.rejects(new Ec2SsmCompute(PROPS).commandOutcome('c-1', 'i-1'), (error: unknown) => error === missing);
  });

  test('jobOfInstance names the job of a Flare instance', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({
      Reservations: [
        {
          Instances: [
            {
              InstanceId: 'i-1',
              State: { Name: 'terminated' },
              Tags: [
                { Key: 'managed-by', Value: 'flare' },
                { Key: 'flare:job', Value: 'j-abc' },
              ],
            },
          ],
        },
      ],
    });

    assert.equal(await new Ec2SsmCompute(PROPS).jobOfInstance('i-1'), 'j-abc');
    assert.deepEqual(ec2Mock.commandCalls(DescribeInstancesCommand)[0].args[0].input, {
      InstanceIds: ['i-1'],
      NextToken: undefined,
    });
  });

  test('jobOfInstance is undefined for instances Flare did not launch or EC2 no longer knows', async () => {
    const compute = new Ec2SsmCompute(PROPS);
    ec2Mock
      .on(DescribeInstancesCommand)
      .resolvesOnce({
        Reservations: [{ Instances: [{ InstanceId: 'i-1', Tags: [{ Key: 'flare:job', Value: 'j-abc' }] }] }],
      })
      .resolvesOnce({
        Reservations: [{ Instances: [{ InstanceId: 'i-1', Tags: [{ Key: 'managed-by', Value: 'flare' }] }] }],
      })
      .resolvesOnce({
        Reservations: [
          {
            Instances: [
              {
                InstanceId: 'i-1',
                Tags: [
                  { Key: 'managed-by', Value: 'someone-else' },
                  { Key: 'flare:job', Value: 'j-abc' },
                ],
              },
            ],
          },
        ],
      })
      .rejectsOnce(awsError(EC2ServiceException, 'InvalidInstanceID.NotFound'));

    for (let i = 0; i < 4; i++) assert.equal(await compute.jobOfInstance('i-1'), undefined);
    assert.equal(ec2Mock.commandCalls(DescribeInstancesCommand).length, 4);
  });

  test('jobOfInstance throws other errors', async () => {
    const denied = awsError(EC2ServiceException, 'UnauthorizedOperation');
    ec2Mock.on(DescribeInstancesCommand).rejects(denied);
    await assert.rejects(new Ec2SsmCompute(PROPS).jobOfInstance('i-1'), (error: unknown) => error === denied);
  });
});
