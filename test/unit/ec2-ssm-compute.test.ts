import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import { DescribeInstancesCommand, EC2Client, EC2ServiceException, RunInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { DescribeInstanceInformationCommand, ListCommandsCommand, SSMClient, SendCommandCommand } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { Ec2SsmCompute, PartialLaunchView, type Ec2SsmComputeProps } from '../../lambdas/adapters/ec2-ssm-compute.js';
import { instanceScript } from '../../lambdas/core/container-command.js';
import { LaunchFailed, ValidationError } from '../../lambdas/core/errors.js';
import type { Job } from '../../lambdas/core/job.js';
import type { ContainerSpec } from '../../lambdas/ports/compute.js';

const ec2 = new EC2Client({ region: 'eu-west-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
const ssm = new SSMClient({ region: 'eu-west-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
const ec2Mock = mockClient(ec2);
const ssmMock = mockClient(ssm);

const PROPS: Ec2SsmComputeProps = {
  ec2,
  ssm,
  launchTemplateId: 'lt-0123456789abcdef0',
  subnetIds: ['subnet-a', 'subnet-b'],
  pools: { a10g: { instanceTypes: ['g5.xlarge', 'g5.2xlarge'], memory: '14g' } },
};

function job(overrides: Partial<Job> = {}): Job {
  return {
    id: 'job-7',
    name: 'train',
    project: 'vision',
    owner: 'alice',
    template: 'train',
    pool: 'a10g',
    image: `nvidia/cuda:12.4.1@sha256:${'a'.repeat(64)}`,
    command: ['nvidia-smi'],
    env: {},
    gpus: 1,
    nodeCount: 1,
    liveTimeoutMinutes: 60,
    state: 'LAUNCHING',
    createdAt: '2030-01-01T00:00:00.000Z',
    ...overrides,
  };
}

function spec(overrides: Partial<ContainerSpec> = {}): ContainerSpec {
  return { jobId: 'job-7', image: `nvidia/cuda:12.4.1@sha256:${'a'.repeat(64)}`, command: ['python', 'train.py', '$(id)'], env: { EPOCHS: '3' }, gpus: 1, expiresAt: '2030-01-01T01:00:00.000Z', ...overrides };
}

function ec2Error(code: string): EC2ServiceException {
  return new EC2ServiceException({ name: code, $fault: 'client', $metadata: { httpStatusCode: 400 }, message: `${code} (mocked)` });
}

const BASE_TAGS = [
  { Key: 'Name', Value: 'flare-job-7' },
  { Key: 'managed-by', Value: 'flare' },
  { Key: 'flare:job', Value: 'job-7' },
  { Key: 'flare:project', Value: 'vision' },
  { Key: 'flare:pool', Value: 'a10g' },
];

function runInput(instanceType: string, subnetId: string, clientToken: string, count = 1, tags = BASE_TAGS) {
  return {
    LaunchTemplate: { LaunchTemplateId: 'lt-0123456789abcdef0' },
    InstanceType: instanceType,
    MinCount: count,
    MaxCount: count,
    SubnetId: subnetId,
    ClientToken: clientToken,
    TagSpecifications: [
      { ResourceType: 'instance', Tags: tags },
      { ResourceType: 'volume', Tags: tags },
    ],
  };
}

const DESCRIBE_JOB_INSTANCES = {
  Filters: [
    { Name: 'tag:flare:job', Values: ['job-7'] },
    { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
  ],
  NextToken: undefined,
};

function reservation(...ids: string[]) {
  return { Reservations: [{ ReservationId: 'r-1', Instances: ids.map((InstanceId) => ({ InstanceId })) }] };
}

beforeEach(() => {
  ec2Mock.reset();
  ssmMock.reset();
  ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [] });
});

describe('Ec2SsmCompute.launch', () => {
  test('runs the pool instance type from the launch template in the first subnet, tagged, with the job id as ClientToken', async () => {
    ec2Mock.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-1' }, { InstanceId: 'i-2' }] });

    const launched = await new Ec2SsmCompute(PROPS).launch(job({ nodeCount: 2, expiresAt: '2030-01-01T01:00:00.000Z' }));

    assert.deepEqual(launched, { instanceIds: ['i-1', 'i-2'] });
    assert.deepEqual(ec2Mock.commandCalls(DescribeInstancesCommand)[0].args[0].input, DESCRIBE_JOB_INSTANCES);
    const calls = ec2Mock.commandCalls(RunInstancesCommand);
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0].args[0].input, runInput('g5.xlarge', 'subnet-a', 'job-7', 2, [...BASE_TAGS, { Key: 'flare:expires-at', Value: '2030-01-01T01:00:00.000Z' }]));
  });

  test('a repeated call returns the instances already launched and starts nothing new', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves(reservation('i-1'));

    const launched = await new Ec2SsmCompute(PROPS).launch(job());

    assert.deepEqual(launched, { instanceIds: ['i-1'] });
    assert.equal(ec2Mock.commandCalls(RunInstancesCommand).length, 0);
  });

  test('a repeated call that EC2 cannot show yet sends the identical request, so the ClientToken returns the same reservation', async () => {
    ec2Mock.on(RunInstancesCommand).resolves({ ReservationId: 'r-1', Instances: [{ InstanceId: 'i-1' }] });
    const compute = new Ec2SsmCompute(PROPS);

    const first = await compute.launch(job());
    const second = await compute.launch(job());

    assert.deepEqual(first, second);
    const calls = ec2Mock.commandCalls(RunInstancesCommand);
    assert.equal(calls.length, 2);
    assert.deepEqual(calls[1].args[0].input, calls[0].args[0].input);
    assert.equal(calls[1].args[0].input.ClientToken, 'job-7');
  });

  for (const code of ['InsufficientInstanceCapacity', 'Unsupported', 'InsufficientFreeAddressesInSubnet', 'InsufficientCapacity']) {
    test(`on ${code} tries the next subnet with its own ClientToken`, async () => {
      ec2Mock.on(RunInstancesCommand).rejectsOnce(ec2Error(code)).resolves({ Instances: [{ InstanceId: 'i-9' }] });

      const launched = await new Ec2SsmCompute(PROPS).launch(job());

      assert.deepEqual(launched, { instanceIds: ['i-9'] });
      const inputs = ec2Mock.commandCalls(RunInstancesCommand).map((c) => c.args[0].input);
      assert.deepEqual(inputs, [runInput('g5.xlarge', 'subnet-a', 'job-7'), runInput('g5.xlarge', 'subnet-b', 'job-7.1')]);
    });
  }

  test('falls back to the next instance type once every subnet lacks the first', async () => {
    ec2Mock
      .on(RunInstancesCommand)
      .rejectsOnce(ec2Error('InsufficientInstanceCapacity'))
      .rejectsOnce(ec2Error('InsufficientInstanceCapacity'))
      .resolves({ Instances: [{ InstanceId: 'i-3' }] });

    const launched = await new Ec2SsmCompute(PROPS).launch(job());

    assert.deepEqual(launched, { instanceIds: ['i-3'] });
    const inputs = ec2Mock.commandCalls(RunInstancesCommand).map((c) => c.args[0].input);
    assert.deepEqual(inputs, [runInput('g5.xlarge', 'subnet-a', 'job-7'), runInput('g5.xlarge', 'subnet-b', 'job-7.1'), runInput('g5.2xlarge', 'subnet-a', 'job-7.2')]);
  });

  test('throws LaunchFailed naming every attempt when all types and subnets fail', async () => {
    const last = ec2Error('InsufficientFreeAddressesInSubnet');
    ec2Mock
      .on(RunInstancesCommand)
      .rejectsOnce(ec2Error('InsufficientInstanceCapacity'))
      .rejectsOnce(ec2Error('Unsupported'))
      .rejectsOnce(ec2Error('InsufficientInstanceCapacity'))
      .rejectsOnce(last);

    await assert.rejects(new Ec2SsmCompute(PROPS).launch(job()), (error: unknown) => {
      assert.ok(error instanceof LaunchFailed);
      assert.equal(error.name, 'LaunchFailed');
      assert.equal(
        error.message,
        'no capacity for pool a10g (g5.xlarge in subnet-a: InsufficientInstanceCapacity; g5.xlarge in subnet-b: Unsupported; g5.2xlarge in subnet-a: InsufficientInstanceCapacity; g5.2xlarge in subnet-b: InsufficientFreeAddressesInSubnet)',
      );
      assert.equal(error.cause, last);
      return true;
    });
    const tokens = ec2Mock.commandCalls(RunInstancesCommand).map((c) => c.args[0].input.ClientToken);
    assert.deepEqual(tokens, ['job-7', 'job-7.1', 'job-7.2', 'job-7.3']);
  });

  test('throws other EC2 errors as they are, without trying further', async () => {
    const throttled = ec2Error('RequestLimitExceeded');
    ec2Mock.on(RunInstancesCommand).rejects(throttled);

    await assert.rejects(new Ec2SsmCompute(PROPS).launch(job()), (error: unknown) => error === throttled);
    assert.equal(ec2Mock.commandCalls(RunInstancesCommand).length, 1);
  });

  test('refuses a pool it has no EC2 configuration for, and more nodes than SSM can command', async () => {
    await assert.rejects(new Ec2SsmCompute(PROPS).launch(job({ pool: 'h100' })), LaunchFailed);
    await assert.rejects(new Ec2SsmCompute(PROPS).launch(job({ nodeCount: 51 })), LaunchFailed);
    assert.equal(ec2Mock.commandCalls(RunInstancesCommand).length, 0);
  });

  test('never runs a job on more instances than it asked for, and retries a view that shows only some', async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves(reservation('i-1', 'i-2'));
    await assert.rejects(new Ec2SsmCompute(PROPS).launch(job({ nodeCount: 1 })), LaunchFailed);
    await assert.rejects(new Ec2SsmCompute(PROPS).launch(job({ nodeCount: 3 })), PartialLaunchView);
    assert.equal(ec2Mock.commandCalls(RunInstancesCommand).length, 0);
  });
});

describe('Ec2SsmCompute.isReady', () => {
  const ready = job({ instanceIds: ['i-1', 'i-2'], nodeCount: 2 });

  test('is true when SSM reports every instance Online', async () => {
    ssmMock
      .on(DescribeInstanceInformationCommand)
      .resolvesOnce({ InstanceInformationList: [{ InstanceId: 'i-1', PingStatus: 'Online' }], NextToken: 'page-2' })
      .resolvesOnce({ InstanceInformationList: [{ InstanceId: 'i-2', PingStatus: 'Online' }] });

    assert.equal(await new Ec2SsmCompute(PROPS).isReady(ready), true);
    const inputs = ssmMock.commandCalls(DescribeInstanceInformationCommand).map((c) => c.args[0].input);
    assert.deepEqual(inputs, [
      { Filters: [{ Key: 'InstanceIds', Values: ['i-1', 'i-2'] }], MaxResults: 50, NextToken: undefined },
      { Filters: [{ Key: 'InstanceIds', Values: ['i-1', 'i-2'] }], MaxResults: 50, NextToken: 'page-2' },
    ]);
  });

  test('is false while an instance is not registered yet', async () => {
    ssmMock.on(DescribeInstanceInformationCommand).resolves({ InstanceInformationList: [{ InstanceId: 'i-1', PingStatus: 'Online' }] });
    assert.equal(await new Ec2SsmCompute(PROPS).isReady(ready), false);
  });

  test('is false while an instance has lost its connection', async () => {
    ssmMock.on(DescribeInstanceInformationCommand).resolves({
      InstanceInformationList: [
        { InstanceId: 'i-1', PingStatus: 'Online' },
        { InstanceId: 'i-2', PingStatus: 'ConnectionLost' },
      ],
    });
    assert.equal(await new Ec2SsmCompute(PROPS).isReady(ready), false);
  });

  test('a job without instances is a launch failure, not a wait', async () => {
    await assert.rejects(new Ec2SsmCompute(PROPS).isReady(job()), LaunchFailed);
    assert.equal(ssmMock.calls().length, 0);
  });
});

describe('Ec2SsmCompute.start', () => {
  const running = job({ instanceIds: ['i-1', 'i-2'], nodeCount: 2 });
  const LIST_INPUT = { InstanceId: 'i-1', Filters: [{ key: 'DocumentName', value: 'AWS-RunShellScript' }], MaxResults: 50, NextToken: undefined };

  test('sends the instance script to every instance with the job in the comment and the longest execution timeout', async () => {
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
    ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: 'c-1' } });

    await new Ec2SsmCompute({ ...PROPS, logGroupName: '/flare/jobs' }).start(running, spec());

    assert.deepEqual(ssmMock.commandCalls(ListCommandsCommand)[0].args[0].input, LIST_INPUT);
    const sends = ssmMock.commandCalls(SendCommandCommand);
    assert.equal(sends.length, 1);
    const expectedScript = instanceScript(spec(), {
      memory: '14g',
      scratchDir: '/var/lib/flare/scratch',
      logDriver: 'awslogs',
      logOptions: { 'awslogs-group': '/flare/jobs', 'awslogs-stream': 'job-7' },
    });
    assert.deepEqual(sends[0].args[0].input, {
      DocumentName: 'AWS-RunShellScript',
      InstanceIds: ['i-1', 'i-2'],
      Comment: 'flare:job=job-7',
      Parameters: { commands: [expectedScript], executionTimeout: ['172800'] },
      CloudWatchOutputConfig: { CloudWatchLogGroupName: '/flare/jobs', CloudWatchOutputEnabled: true },
    });
    assert.ok(!expectedScript.includes('$(id)'), 'job text travels encoded');
  });

  test('without a log group sends no CloudWatch config and leaves the log driver to docker', async () => {
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
    ssmMock.on(SendCommandCommand).resolves({});

    await new Ec2SsmCompute({ ...PROPS, agentDocument: 'Flare-RunJob', dockerOptions: { memory: '99g', shmSize: '8g', scratchDir: '/mnt/nvme/scratch' } }).start(running, spec());

    assert.deepEqual(ssmMock.commandCalls(ListCommandsCommand)[0].args[0].input, { ...LIST_INPUT, Filters: [{ key: 'DocumentName', value: 'Flare-RunJob' }] });
    assert.deepEqual(ssmMock.commandCalls(SendCommandCommand)[0].args[0].input, {
      DocumentName: 'Flare-RunJob',
      InstanceIds: ['i-1', 'i-2'],
      Comment: 'flare:job=job-7',
      // The pool's memory wins over the deployment-wide one.
      Parameters: { commands: [instanceScript(spec(), { memory: '14g', shmSize: '8g', scratchDir: '/mnt/nvme/scratch' })], executionTimeout: ['172800'] },
    });
  });

  test('a repeated call finds its command by comment and sends nothing', async () => {
    ssmMock
      .on(ListCommandsCommand)
      .resolvesOnce({ Commands: [{ CommandId: 'c-0', Comment: 'flare:job=job-70' }], NextToken: 'next' })
      .resolvesOnce({ Commands: [{ CommandId: 'c-1', Comment: 'flare:job=job-7', Status: 'InProgress' }] });

    await new Ec2SsmCompute(PROPS).start(running, spec());

    assert.deepEqual(
      ssmMock.commandCalls(ListCommandsCommand).map((c) => c.args[0].input.NextToken),
      [undefined, 'next'],
    );
    assert.equal(ssmMock.commandCalls(SendCommandCommand).length, 0);
  });

  test('refuses a spec for another job and a job without instances', async () => {
    await assert.rejects(new Ec2SsmCompute(PROPS).start(running, spec({ jobId: 'job-8' })), ValidationError);
    await assert.rejects(new Ec2SsmCompute(PROPS).start(job(), spec()), LaunchFailed);
    assert.equal(ssmMock.commandCalls(SendCommandCommand).length, 0);
  });

  test('refuses hostile input before anything is sent', async () => {
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
    await assert.rejects(new Ec2SsmCompute(PROPS).start(running, spec({ image: '--privileged' })), ValidationError);
    assert.equal(ssmMock.commandCalls(SendCommandCommand).length, 0);
  });
});

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
    ec2Mock.on(TerminateInstancesCommand).rejects(ec2Error('InvalidInstanceID.NotFound'));
    await new Ec2SsmCompute(PROPS).stop(job({ instanceIds: ['i-1'] }));
    await new Ec2SsmCompute(PROPS).stop(job({ instanceIds: ['i-1'] }));
    assert.equal(ec2Mock.commandCalls(TerminateInstancesCommand).length, 2);
  });

  test('when one of several ids is unknown, still terminates the others one by one', async () => {
    ec2Mock
      .on(TerminateInstancesCommand)
      .rejectsOnce(ec2Error('InvalidInstanceID.NotFound'))
      .rejectsOnce(ec2Error('InvalidInstanceID.NotFound'))
      .resolves({});

    await new Ec2SsmCompute(PROPS).stop(job({ instanceIds: ['i-gone', 'i-2'] }));

    const inputs = ec2Mock.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input);
    assert.deepEqual(inputs, [{ InstanceIds: ['i-gone', 'i-2'] }, { InstanceIds: ['i-gone'] }, { InstanceIds: ['i-2'] }]);
  });

  test('throws any other error so the workflow retries', async () => {
    const denied = ec2Error('UnauthorizedOperation');
    ec2Mock.on(TerminateInstancesCommand).rejects(denied);
    await assert.rejects(new Ec2SsmCompute(PROPS).stop(job({ instanceIds: ['i-1'] })), (error: unknown) => error === denied);
  });
});

describe('Ec2SsmCompute configuration', () => {
  test('fails fast naming a pool without a container memory limit', () => {
    assert.throws(
      () => new Ec2SsmCompute({ ...PROPS, pools: { t4: { instanceTypes: ['g4dn.xlarge'] } } }),
      (error: unknown) => error instanceof ValidationError && error.details.some((d) => d.field === 'pools.t4.memory'),
    );
    assert.doesNotThrow(() => new Ec2SsmCompute({ ...PROPS, pools: { t4: { instanceTypes: ['g4dn.xlarge'] } }, dockerOptions: { memory: '14g' } }));
  });

  test('fails fast without subnets or instance types', () => {
    assert.throws(() => new Ec2SsmCompute({ ...PROPS, subnetIds: [] }), ValidationError);
    assert.throws(() => new Ec2SsmCompute({ ...PROPS, pools: { a10g: { instanceTypes: [], memory: '14g' } } }), ValidationError);
  });
});
