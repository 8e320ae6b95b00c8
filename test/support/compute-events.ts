/**
 * The compute events handler's world (test/unit/compute-events-*.test.ts): real job records on DynamoDB
 * Local through the harness, the real EC2+SSM adapter over aws-sdk-client-mock, EventBridge events read
 * from test/fixtures/events, and the jobs they report on. Jobs run in the fixtures' timeline (2030-01-01,
 * expiring at 01:01).
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach } from 'node:test';
import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { GetCommandInvocationCommand, SSMClient } from '@aws-sdk/client-ssm';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { Ec2SsmCompute } from '../../lambdas/adapters/ec2-ssm-compute.js';
import { newJobId } from '../../lambdas/adapters/ids.js';
import type { Deps } from '../../lambdas/core/deps.js';
import { JobState, type Job } from '../../lambdas/core/job.js';
import { releaseStep } from '../../lambdas/core/lifecycle.js';
import { createComputeEventsHandler } from '../../lambdas/handlers/events/compute-events.js';
import { IMAGE, startDynamo, world, type Dynamo, type World } from './harness.js';
import { readFixture } from './fixtures.js';

const ec2 = new EC2Client({ region: 'eu-west-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
const ssm = new SSMClient({ region: 'eu-west-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
export const ec2Mock = mockClient(ec2);
export const ssmMock = mockClient(ssm);
const compute = new Ec2SsmCompute({
  ec2,
  ssm,
  launchTemplateId: 'lt-0123456789abcdef0',
  subnetIds: ['subnet-a'],
  pools: { local: { instanceTypes: ['g5.xlarge'], memory: '14g' } },
});

/** The instance and command the fixtures name. */
export const I1 = 'i-0abc1234def567890';
export const I2 = 'i-0abc1234def567891';
export const COMMAND = 'e8d3c0e4-71f7-4491-898f-c9b35bee5f3b';
/** The fixtures' timeline: every job runs from STARTED until EXPIRES. */
const STARTED = '2030-01-01T00:01:00.000Z';
const EXPIRES = '2030-01-01T01:01:00.000Z';
/** The fixtures' own event times, as core stores them. */
export const COMMAND_EVENT_TIME = '2030-01-01T00:41:32.000Z';
export const INSTANCE_EVENT_TIME = '2030-01-01T00:43:48.000Z';
export const DELIVERY_TIMEOUT_EVENT_TIME = '2030-01-01T00:11:31.000Z';

type Fixture =
  | 'aws-ssm-command-invocation-success'
  | 'aws-ssm-command-invocation-failed'
  | 'aws-ssm-command-invocation-timed-out'
  | 'aws-ssm-command-invocation-delivery-timed-out'
  | 'aws-ssm-command-invocation-cancelled'
  | 'aws-ssm-command-invocation-success-after-expiry'
  | 'aws-ec2-instance-terminated'
  | 'aws-ec2-instance-shutting-down-dead-man'
  | 'aws-ec2-instance-stopping'
  | 'aws-ec2-instance-running';

/** An EventBridge envelope as read from a fixture; tests change or remove fields before delivering it. */
interface FixtureEvent {
  source: string;
  'detail-type': string;
  resources: string[];
  detail?: Record<string, unknown>;
  [key: string]: unknown;
}

export function fixture(name: Fixture, detail: Record<string, string> = {}): FixtureEvent {
  const event = readFixture(`events/${name}`);
  event.detail = { ...event.detail, ...detail };
  if (detail['instance-id']) event.resources = [`arn:aws:ec2:eu-west-1:123456789012:instance/${detail['instance-id']}`];
  return event;
}

let dynamo: Dynamo;
export let w: World;
export let deps: Deps;
/** The workflow's Run wait, as the handler ends it. */
export let ended: Array<{ token: string; output: unknown }>;
export let jobReads = 0;
/** The handler's clock; undefined: the real one (years before the fixtures' timeline). */
let clock: Date | undefined;
const handler = createComputeEventsHandler(
  () => deps,
  () => compute,
);

export async function deliver(event: unknown): Promise<void> {
  await handler(event, {} as Context);
}

/** A job admitted and running on `instanceIds`, waiting in Run with token `token-<id>`. */
export async function runningJob(instanceIds: string[]): Promise<Job> {
  const now = new Date(STARTED);
  const job: Job = {
    id: newJobId(),
    name: 'train',
    project: 'vision',
    owner: 'alice',
    template: 'train',
    pool: 'local',
    image: `${IMAGE.reference}@${IMAGE.digest}`,
    command: ['true'],
    env: {},
    gpus: 1,
    nodeCount: instanceIds.length,
    liveTimeoutMinutes: 60,
    state: JobState.PENDING,
    createdAt: now.toISOString(),
  };
  await w.store.createJob(job);
  assert.ok((await w.store.admit(job, now.toISOString())).admitted);
  await w.store.updateJob(job.id, [JobState.LAUNCHING], {
    state: JobState.RUNNING,
    instanceIds,
    startedAt: now.toISOString(),
    expiresAt: EXPIRES,
  });
  return w.store.setTaskToken(job.id, `token-${job.id}`);
}

export function invocation(
  jobId: string,
  instanceId: string,
  result: { Status: string; StatusDetails?: string; ResponseCode: number; ExecutionEndDateTime?: string },
) {
  ssmMock.on(GetCommandInvocationCommand, { CommandId: COMMAND, InstanceId: instanceId }).resolves({
    CommandId: COMMAND,
    InstanceId: instanceId,
    Comment: `flare:job=${jobId}`,
    DocumentName: 'AWS-RunShellScript',
    ...result,
  } as never);
}

export function flareInstance(jobId: string, instanceId = I1) {
  ec2Mock.on(DescribeInstancesCommand, { InstanceIds: [instanceId] }).resolves({
    Reservations: [
      {
        Instances: [
          {
            InstanceId: instanceId,
            State: { Name: 'terminated' },
            Tags: [
              { Key: 'managed-by', Value: 'flare' },
              { Key: 'flare:job', Value: jobId },
            ],
          },
        ],
      },
    ],
  });
}

/** The job's end as the workflow's Release decides it, at the handler's clock. */
export async function verdict(job: Job): Promise<Pick<Job, 'state' | 'stateReason' | 'exitCode'>> {
  await releaseStep(deps, job.id);
  const { state, stateReason, exitCode } = (await w.store.getJob(job.id))!;
  return { state, stateReason, ...(exitCode !== undefined ? { exitCode } : {}) };
}

export async function assertUnchanged(job: Job, act: () => Promise<void>): Promise<void> {
  const before = await w.store.getJob(job.id);
  await act();
  assert.deepEqual(await w.store.getJob(job.id), before);
  assert.deepEqual(ended, []);
}

/** Sets the handler's clock; undefined: the real one. */
export function setClock(at: Date | undefined): void {
  clock = at;
}

export function resetJobReads(): void {
  jobReads = 0;
}

/** Forgets the Run waits ended so far. */
export function resetEnded(): void {
  ended = [];
}

/** Starts DynamoDB Local and the handler's deps before the file's tests, and resets the mocks, the clock and the ended waits before each. */
export function useComputeEvents(): void {
  before(async () => {
    dynamo = await startDynamo();
    w = await world(dynamo, { pools: [{ name: 'local', gpus: 64 }] });
    const store = w.deps.jobs;
    deps = {
      ...w.deps,
      now: () => clock ?? new Date(),
      // Counts the handler's reads of jobs (the test's own go through w.store).
      jobs: new Proxy(store, {
        get(target, property, receiver) {
          const value = Reflect.get(target, property, receiver);
          if (typeof value !== 'function') return value;
          return (...args: unknown[]) => {
            if (property === 'getJob') jobReads += 1;
            return value.apply(target, args);
          };
        },
      }),
      workflows: {
        start: async () => undefined,
        sendTaskSuccess: async (token, output) => {
          ended.push({ token, output });
        },
        runningJobIds: async () => new Set<string>(),
      },
    };
  });

  after(async () => {
    await w?.close();
    await dynamo?.local.stop();
  });

  beforeEach(() => {
    ec2Mock.reset();
    ssmMock.reset();
    ended = [];
    clock = undefined;
  });
}
