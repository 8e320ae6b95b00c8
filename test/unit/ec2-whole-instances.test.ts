/**
 * Ec2SsmCompute and whole instances, with aws-sdk-client-mock asserting exact requests:
 * each node's container is started with exactly the devices its job is charged for;
 * a job whose gpus per node is not the pool's gpusPerInstance, or whose root volume is
 * below the AMI's root snapshot (DescribeImages, once per process), fails at launch
 * with its reason and no RunInstances.
 */
import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import {
  DescribeImagesCommand,
  DescribeInstancesCommand,
  EC2Client,
  EC2ServiceException,
  RunInstancesCommand,
} from '@aws-sdk/client-ec2';
import { ListCommandsCommand, SSMClient, SendCommandCommand } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { Ec2SsmCompute, type Ec2SsmComputeProps } from '../../lambdas/adapters/ec2-ssm-compute.js';
import { LaunchFailed } from '../../lambdas/core/errors.js';
import type { Job } from '../../lambdas/core/job.js';
import { containerSpec } from '../../lambdas/core/lifecycle.js';
import { launchingJob } from '../support/jobs.js';
import { awsError } from '../support/aws-errors.js';

const ec2 = new EC2Client({ region: 'eu-west-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
const ssm = new SSMClient({ region: 'eu-west-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
const ec2Mock = mockClient(ec2);
const ssmMock = mockClient(ssm);

const IMAGE_ID = 'ami-0123456789abcdef0';
const PROPS: Ec2SsmComputeProps = {
  ec2,
  ssm,
  launchTemplateId: 'lt-0123456789abcdef0',
  subnetIds: ['subnet-a'],
  pools: { a100: { instanceTypes: ['p4d.24xlarge'], gpusPerInstance: 8, memory: '1000g' } },
  imageId: IMAGE_ID,
  now: () => new Date('2030-01-01T00:00:00.000Z'),
};

const job = (overrides: Partial<Job> = {}): Job =>
  launchingJob({ pool: 'a100', command: ['python', 'train.py'], gpus: 8, ...overrides });

/** The Deep Learning Base AMI as DescribeImages shows it: a 75 GB root snapshot on /dev/sda1. */
const DLAMI = {
  Images: [
    {
      ImageId: IMAGE_ID,
      RootDeviceName: '/dev/sda1',
      BlockDeviceMappings: [
        { DeviceName: '/dev/sda1', Ebs: { SnapshotId: 'snap-1', VolumeSize: 75, VolumeType: 'gp3' as const } },
        { DeviceName: '/dev/sdb', VirtualName: 'ephemeral0' },
      ],
    },
  ],
};

/** The docker argv the instance script carries (base64 of JSON between its heredoc markers). */
function argvOf(script: string): string[] {
  const [, block] = /<<'FLARE_ARGV_BASE64'\n([\s\S]*?)\nFLARE_ARGV_BASE64\n/.exec(script) ?? [];
  assert.ok(block, 'the script carries an argv block');
  return JSON.parse(Buffer.from(block.replace(/\n/g, ''), 'base64').toString('utf8')) as string[];
}

beforeEach(() => {
  ec2Mock.reset();
  ssmMock.reset();
  ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [] });
  ec2Mock.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-1' }] });
  ec2Mock.on(DescribeImagesCommand).resolves(DLAMI);
});

describe('the devices a node is given', () => {
  test("each instance's container gets the charged devices by index, not --gpus=all", async () => {
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
    ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: 'c-1' } });
    const running = job({ instanceIds: ['i-1'] });

    await new Ec2SsmCompute(PROPS).start(running, containerSpec(running, '2030-01-01T01:00:00.000Z'));

    const sends = ssmMock.commandCalls(SendCommandCommand);
    assert.equal(sends.length, 1);
    assert.deepEqual(sends[0].args[0].input.InstanceIds, ['i-1']);
    const argv = argvOf(sends[0].args[0].input.Parameters!.commands![0]);
    assert.ok(argv.includes('--gpus="device=0,1,2,3,4,5,6,7"'), argv.join(' '));
    assert.ok(argv.includes('--env=NVIDIA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7'));
    assert.ok(!argv.some((a) => a === '--gpus=all' || a === '--env=NVIDIA_VISIBLE_DEVICES=all'));
  });
});

describe('launch: whole instances', () => {
  test('launches nodeCount instances of the pool for a job of gpusPerInstance GPUs per node', async () => {
    await new Ec2SsmCompute(PROPS).launch(job({ nodeCount: 2 }));
    const runs = ec2Mock.commandCalls(RunInstancesCommand);
    assert.equal(runs.length, 1);
    assert.equal(runs[0].args[0].input.InstanceType, 'p4d.24xlarge');
    assert.equal(runs[0].args[0].input.MinCount, 2);
    assert.equal(runs[0].args[0].input.MaxCount, 2);
  });

  test("fails a job whose gpus per node is not the pool's gpusPerInstance (admitted before a deploy changed the pool), launching nothing", async () => {
    await assert.rejects(
      new Ec2SsmCompute(PROPS).launch(job({ gpus: 1 })),
      (error: unknown) =>
        error instanceof LaunchFailed && /gpus must be 8 \(not 1\).*gpusPerInstance 8/.test(error.message),
    );
    assert.equal(ec2Mock.commandCalls(RunInstancesCommand).length, 0);
  });
});

describe("launch: the root volume against the AMI's snapshot", () => {
  test('fails at once, naming both sizes, when volumeSizeGb is below the root snapshot; no RunInstances', async () => {
    await assert.rejects(
      new Ec2SsmCompute(PROPS).launch(job({ volumeSizeGb: 50 })),
      (error: unknown) =>
        error instanceof LaunchFailed &&
        /50 GB root volume, but image ami-0123456789abcdef0's root snapshot is 75 GB/.test(error.message),
    );
    assert.deepEqual(
      ec2Mock.commandCalls(DescribeImagesCommand).map((c) => c.args[0].input),
      [{ ImageIds: [IMAGE_ID] }],
    );
    assert.equal(ec2Mock.commandCalls(RunInstancesCommand).length, 0);
  });

  test('launches a volume at least the snapshot, reading the image once per process', async () => {
    const compute = new Ec2SsmCompute(PROPS);
    await compute.launch(job({ volumeSizeGb: 75 }));
    await compute.launch(job({ id: 'job-8', volumeSizeGb: 500 }));

    assert.equal(ec2Mock.commandCalls(DescribeImagesCommand).length, 1);
    const runs = ec2Mock.commandCalls(RunInstancesCommand);
    assert.deepEqual(
      runs.map((c) => c.args[0].input.BlockDeviceMappings),
      [75, 500].map((VolumeSize) => [
        { DeviceName: '/dev/sda1', Ebs: { VolumeSize, VolumeType: 'gp3', Encrypted: true, DeleteOnTermination: true } },
      ]),
    );
  });

  test('a job without volumeSizeGb keeps the launch template root volume and reads no image', async () => {
    await new Ec2SsmCompute(PROPS).launch(job());
    assert.equal(ec2Mock.commandCalls(DescribeImagesCommand).length, 0);
    assert.equal(ec2Mock.commandCalls(RunInstancesCommand)[0].args[0].input.BlockDeviceMappings, undefined);
  });

  test("fails when the AMI's root device is not the one volumeSizeGb would size", async () => {
    const compute = new Ec2SsmCompute({ ...PROPS, rootDeviceName: '/dev/xvda' });
    await assert.rejects(
      compute.launch(job({ volumeSizeGb: 100 })),
      (error: unknown) =>
        error instanceof LaunchFailed && /boots from \/dev\/sda1, not \/dev\/xvda/.test(error.message),
    );
    assert.equal(ec2Mock.commandCalls(RunInstancesCommand).length, 0);
  });

  test('a failed read is not kept: throttled once, the retry reads the image again and launches', async () => {
    ec2Mock
      .on(DescribeImagesCommand)
      .rejectsOnce(awsError(EC2ServiceException, 'RequestLimitExceeded'))
      .resolves(DLAMI);
    const compute = new Ec2SsmCompute(PROPS);
    await assert.rejects(
      compute.launch(job({ volumeSizeGb: 100 })),
      (error: unknown) => !(error instanceof LaunchFailed) && (error as Error).name === 'RequestLimitExceeded',
    );
    await compute.launch(job({ volumeSizeGb: 100 }));
    assert.equal(ec2Mock.commandCalls(DescribeImagesCommand).length, 2);
    assert.equal(ec2Mock.commandCalls(RunInstancesCommand).length, 1);
  });

  test('an image EC2 does not know fails the job with the reason', async () => {
    ec2Mock.on(DescribeImagesCommand).rejects(awsError(EC2ServiceException, 'InvalidAMIID.NotFound'));
    await assert.rejects(
      new Ec2SsmCompute(PROPS).launch(job({ volumeSizeGb: 100 })),
      (error: unknown) =>
        error instanceof LaunchFailed && /does not exist \(InvalidAMIID\.NotFound\)/.test(error.message),
    );
    assert.equal(ec2Mock.commandCalls(RunInstancesCommand).length, 0);
  });
});
