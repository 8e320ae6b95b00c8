import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DescribeInstancesCommand,
  EC2ServiceException,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { Ec2SsmCompute } from '../../lambdas/adapters/ec2-ssm-compute.js';
import { awsError } from '../support/aws-errors.js';
import { BASE_TAGS, DESCRIBE_JOB_INSTANCES, PROPS, TAGS, job, reservation } from '../support/ec2-ssm.js';
import { ec2Mock, useEc2SsmMocks } from '../support/ec2-ssm.js';

useEc2SsmMocks();

describe('Ec2SsmCompute.stop', () => {
  test('terminates the job instances and any EC2 tagged for the job', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves(reservation('i-2', 'i-3'));
    ec2Mock.on(TerminateInstancesCommand).resolves({});

    await new Ec2SsmCompute(PROPS).stop(job({ instanceIds: ['i-1', 'i-2'] }));

    assert.deepEqual(ec2Mock.commandCalls(DescribeInstancesCommand)[0].args[0].input, DESCRIBE_JOB_INSTANCES);
    const calls = ec2Mock.commandCalls(TerminateInstancesCommand);
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0].args[0].input, { InstanceIds: ['i-1', 'i-2', 'i-3'] });
  });

  test('terminates an instance the job record never saw (crash after RunInstances)', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves(reservation('i-9'));
    ec2Mock.on(TerminateInstancesCommand).resolves({});

    await new Ec2SsmCompute(PROPS).stop(job());

    assert.deepEqual(ec2Mock.commandCalls(TerminateInstancesCommand)[0].args[0].input, { InstanceIds: ['i-9'] });
  });

  test('does nothing for a job with no instances', async () => {
    await new Ec2SsmCompute(PROPS).stop(job());
    assert.equal(ec2Mock.commandCalls(TerminateInstancesCommand).length, 0);
  });

  test('is idempotent: terminating an instance EC2 no longer knows succeeds', async () => {
    ec2Mock.on(TerminateInstancesCommand).rejects(awsError(EC2ServiceException, 'InvalidInstanceID.NotFound'));
    await new Ec2SsmCompute(PROPS).stop(job({ instanceIds: ['i-1'] }));
    await new Ec2SsmCompute(PROPS).stop(job({ instanceIds: ['i-1'] }));
    assert.equal(ec2Mock.commandCalls(TerminateInstancesCommand).length, 2);
  });

  test('when one of several ids is unknown, still terminates the others one by one', async () => {
    ec2Mock
      .on(TerminateInstancesCommand)
      .rejectsOnce(awsError(EC2ServiceException, 'InvalidInstanceID.NotFound'))
      .rejectsOnce(awsError(EC2ServiceException, 'InvalidInstanceID.NotFound'))
      .resolves({});

    await new Ec2SsmCompute(PROPS).stop(job({ instanceIds: ['i-gone', 'i-2'] }));

    const inputs = ec2Mock.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input);
    assert.deepEqual(inputs, [
      { InstanceIds: ['i-gone', 'i-2'] },
      { InstanceIds: ['i-gone'] },
      { InstanceIds: ['i-2'] },
    ]);
  });

  test('throws any other error so the workflow retries', async () => {
    const denied = awsError(EC2ServiceException, 'UnauthorizedOperation');
    ec2Mock.on(TerminateInstancesCommand).rejects(denied);
    await assert.rejects(
      new Ec2SsmCompute(PROPS).stop(job({ instanceIds: ['i-1'] })),
      (error: unknown) => error === denied,
    );
  });
});

describe('Ec2SsmCompute.terminate', () => {
  test('terminates in batches of 100, without duplicates', async () => {
    ec2Mock.on(TerminateInstancesCommand).resolves({});
    const ids = Array.from({ length: 205 }, (_, i) => `i-${String(i).padStart(8, '0')}`);

    await new Ec2SsmCompute(PROPS).terminate([...ids, ids[0]]);

    const inputs = ec2Mock.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input);
    assert.deepEqual(inputs, [
      { InstanceIds: ids.slice(0, 100) },
      { InstanceIds: ids.slice(100, 200) },
      { InstanceIds: ids.slice(200) },
    ]);
  });

  test('ignores ids EC2 no longer knows, one batch at a time, and sends nothing for none', async () => {
    ec2Mock
      .on(TerminateInstancesCommand)
      .rejectsOnce(awsError(EC2ServiceException, 'InvalidInstanceID.NotFound'))
      .rejectsOnce(awsError(EC2ServiceException, 'InvalidInstanceID.NotFound'))
      .resolves({});

    await new Ec2SsmCompute(PROPS).terminate([]);
    await new Ec2SsmCompute(PROPS).terminate(['i-gone', 'i-2']);

    const inputs = ec2Mock.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input);
    assert.deepEqual(inputs, [
      { InstanceIds: ['i-gone', 'i-2'] },
      { InstanceIds: ['i-gone'] },
      { InstanceIds: ['i-2'] },
    ]);
  });

  test('throws any other error', async () => {
    const denied = awsError(EC2ServiceException, 'UnauthorizedOperation');
    ec2Mock.on(TerminateInstancesCommand).rejects(denied);
    await assert.rejects(new Ec2SsmCompute(PROPS).terminate(['i-1']), (error: unknown) => error === denied);
  });
});

describe('Ec2SsmCompute.listManaged', () => {
  test('lists every live instance marked managed-by=flare across pages, with its job and launch time', async () => {
    ec2Mock
      .on(DescribeInstancesCommand)
      .resolvesOnce({
        Reservations: [
          {
            Instances: [
              {
                InstanceId: 'i-1',
                State: { Name: 'running' },
                LaunchTime: new Date('2030-01-01T00:00:00.000Z'),
                Tags: [
                  { Key: 'managed-by', Value: 'flare' },
                  { Key: 'flare:job', Value: 'j-abc' },
                ],
              },
              { InstanceId: 'i-2', State: { Name: 'pending' }, Tags: [{ Key: 'managed-by', Value: 'flare' }] },
            ],
          },
        ],
        NextToken: 'page-2',
      })
      .resolvesOnce({
        Reservations: [
          {
            Instances: [
              {
                InstanceId: 'i-3',
                State: { Name: 'stopped' },
                LaunchTime: new Date('2030-01-02T00:00:00.000Z'),
                Tags: [{ Key: 'flare:job', Value: 'j-def' }],
              },
            ],
          },
        ],
      });

    const managed = await new Ec2SsmCompute(PROPS).listManaged();

    assert.deepEqual(managed, [
      { instanceId: 'i-1', jobId: 'j-abc', state: 'running', launchedAt: '2030-01-01T00:00:00.000Z' },
      { instanceId: 'i-2', state: 'pending' },
      { instanceId: 'i-3', jobId: 'j-def', state: 'stopped', launchedAt: '2030-01-02T00:00:00.000Z' },
    ]);
    const filters = [
      { Name: 'tag:managed-by', Values: ['flare'] },
      { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
    ];
    assert.deepEqual(
      ec2Mock.commandCalls(DescribeInstancesCommand).map((c) => c.args[0].input),
      [
        { Filters: filters, NextToken: undefined },
        { Filters: filters, NextToken: 'page-2' },
      ],
    );
  });

  test('is empty when Flare runs nothing', async () => {
    assert.deepEqual(await new Ec2SsmCompute(PROPS).listManaged(), []);
  });

  test("with a deployment name, lists only that deployment's instances (two stacks in one account never reap each other's)", async () => {
    await new Ec2SsmCompute({ ...PROPS, deployment: 'FlareStaging' }).listManaged();
    assert.deepEqual(ec2Mock.commandCalls(DescribeInstancesCommand)[0].args[0].input, {
      Filters: [
        { Name: 'tag:managed-by', Values: ['flare'] },
        { Name: 'tag:flare:deployment', Values: ['FlareStaging'] },
        { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
      ],
      NextToken: undefined,
    });
  });

  test('with a deployment name, launches carry it as a tag', async () => {
    ec2Mock.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-1' }] });
    await new Ec2SsmCompute({ ...PROPS, deployment: 'FlareStaging' }).launch(job());
    const tags = [
      BASE_TAGS[0],
      BASE_TAGS[1],
      { Key: 'flare:deployment', Value: 'FlareStaging' },
      ...BASE_TAGS.slice(2),
      ...TAGS.slice(BASE_TAGS.length),
    ];
    assert.deepEqual(ec2Mock.commandCalls(RunInstancesCommand)[0].args[0].input.TagSpecifications, [
      { ResourceType: 'instance', Tags: tags },
      { ResourceType: 'volume', Tags: tags },
    ]);
  });
});
