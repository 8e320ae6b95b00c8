/**
 * What the Ec2SsmCompute tests (test/unit/ec2-ssm-*.test.ts) share: EC2 and SSM clients behind
 * aws-sdk-client-mock, the adapter's props, the container spec and job they start from, and the exact
 * RunInstances and DescribeInstances requests a launch of job-7 sends.
 */
import { beforeEach } from 'node:test';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import type { Ec2SsmComputeProps } from '../../lambdas/adapters/ec2-ssm-compute.js';
import type { ContainerSpec } from '../../lambdas/ports/compute.js';
import { launchingJob } from './jobs.js';

const ec2 = new EC2Client({ region: 'eu-west-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
const ssm = new SSMClient({ region: 'eu-west-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
export const ec2Mock = mockClient(ec2);
export const ssmMock = mockClient(ssm);

export const PROPS: Ec2SsmComputeProps = {
  ec2,
  ssm,
  launchTemplateId: 'lt-0123456789abcdef0',
  subnetIds: ['subnet-a', 'subnet-b'],
  pools: { a10g: { instanceTypes: ['g5.xlarge', 'g5.2xlarge'], memory: '14g' } },
  now: () => new Date('2030-01-01T00:00:00.000Z'),
};

export const job = launchingJob;

export function spec(overrides: Partial<ContainerSpec> = {}): ContainerSpec {
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

export const BASE_TAGS = [
  { Key: 'Name', Value: 'flare-job-7' },
  { Key: 'managed-by', Value: 'flare' },
  { Key: 'flare:job', Value: 'job-7' },
  { Key: 'flare:project', Value: 'vision' },
  { Key: 'flare:owner', Value: 'alice' },
  { Key: 'flare:pool', Value: 'a10g' },
];

/** Attempt 0, launched at PROPS.now() (00:00): + 600 s agent timeout + 60 min live timeout. */
export const TAGS = [
  ...BASE_TAGS,
  { Key: 'flare:attempt', Value: '0' },
  { Key: 'flare:expires-at', Value: '2030-01-01T01:10:00.000Z' },
];

export function runInput(instanceType: string, subnetId: string, clientToken: string, count = 1, tags = TAGS) {
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

export const DESCRIBE_JOB_INSTANCES = {
  Filters: [
    { Name: 'tag:flare:job', Values: ['job-7'] },
    { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
  ],
  NextToken: undefined,
};

export function reservation(...ids: string[]) {
  return { Reservations: [{ ReservationId: 'r-1', Instances: ids.map((InstanceId) => ({ InstanceId })) }] };
}

/** Before each test: no recorded calls, and EC2 knows no instance of the job. */
export function useEc2SsmMocks(): void {
  beforeEach(() => {
    ec2Mock.reset();
    ssmMock.reset();
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [] });
  });
}
