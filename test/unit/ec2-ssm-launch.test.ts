import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DescribeInstancesCommand, EC2ServiceException, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { DescribeInstanceInformationCommand } from '@aws-sdk/client-ssm';
import { PartialLaunchView, clientToken, vcpuQuotaName } from '../../lambdas/adapters/ec2-launch.js';
import { Ec2SsmCompute, type Ec2SsmComputeProps } from '../../lambdas/adapters/ec2-ssm-compute.js';
import { LaunchFailed, NoCapacity, ValidationError } from '../../lambdas/core/errors.js';
import { awsError } from '../support/aws-errors.js';
import { BASE_TAGS, DESCRIBE_JOB_INSTANCES, PROPS, job, reservation, runInput } from '../support/ec2-ssm.js';
import { ec2Mock, ssmMock, useEc2SsmMocks } from '../support/ec2-ssm.js';

useEc2SsmMocks();

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
