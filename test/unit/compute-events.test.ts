/**
 * The compute events handler against real job records (DynamoDB Local through
 * the harness) and the real EC2+SSM adapter over aws-sdk-client-mock, fed
 * EventBridge events shaped like the ones AWS sends (test/fixtures/events).
 * Jobs run in the fixtures' timeline (2030-01-01, expiring at 01:01), so each
 * report's time (the invocation's end, else the event's) decides the verdict.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { DescribeInstancesCommand, EC2Client, EC2ServiceException } from '@aws-sdk/client-ec2';
import { GetCommandInvocationCommand, SSMClient } from '@aws-sdk/client-ssm';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { Ec2SsmCompute } from '../../lambdas/adapters/ec2-ssm-compute.js';
import { newJobId } from '../../lambdas/adapters/ids.js';
import type { Deps } from '../../lambdas/core/deps.js';
import { ValidationError } from '../../lambdas/core/errors.js';
import { JobState, type Job } from '../../lambdas/core/job.js';
import { reportOutcome } from '../../lambdas/core/jobs.js';
import { releaseStep } from '../../lambdas/core/lifecycle.js';
import { CommandNotSettled, createComputeEventsHandler } from '../../lambdas/handlers/events/compute-events.js';
import { IMAGE, startDynamo, world, type Dynamo, type World } from '../support/harness.js';
import { awsError } from '../support/aws-errors.js';
import { readFixture } from '../support/fixtures.js';

const ec2 = new EC2Client({ region: 'eu-west-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
const ssm = new SSMClient({ region: 'eu-west-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
const ec2Mock = mockClient(ec2);
const ssmMock = mockClient(ssm);
const compute = new Ec2SsmCompute({
  ec2,
  ssm,
  launchTemplateId: 'lt-0123456789abcdef0',
  subnetIds: ['subnet-a'],
  pools: { local: { instanceTypes: ['g5.xlarge'], memory: '14g' } },
});

/** The instance and command the fixtures name. */
const I1 = 'i-0abc1234def567890';
const I2 = 'i-0abc1234def567891';
const COMMAND = 'e8d3c0e4-71f7-4491-898f-c9b35bee5f3b';
/** The fixtures' timeline: every job runs from STARTED until EXPIRES. */
const STARTED = '2030-01-01T00:01:00.000Z';
const EXPIRES = '2030-01-01T01:01:00.000Z';
/** The fixtures' own event times, as core stores them. */
const COMMAND_EVENT_TIME = '2030-01-01T00:41:32.000Z';
const INSTANCE_EVENT_TIME = '2030-01-01T00:43:48.000Z';
const DELIVERY_TIMEOUT_EVENT_TIME = '2030-01-01T00:11:31.000Z';

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

function fixture(name: Fixture, detail: Record<string, string> = {}): FixtureEvent {
  const event = readFixture(`events/${name}`);
  event.detail = { ...event.detail, ...detail };
  if (detail['instance-id']) event.resources = [`arn:aws:ec2:eu-west-1:123456789012:instance/${detail['instance-id']}`];
  return event;
}

let dynamo: Dynamo;
let w: World;
let deps: Deps;
/** The workflow's Run wait, as the handler ends it. */
let ended: Array<{ token: string; output: unknown }>;
let jobReads = 0;
/** The handler's clock; undefined: the real one (years before the fixtures' timeline). */
let clock: Date | undefined;
const handler = createComputeEventsHandler(
  () => deps,
  () => compute,
);

async function deliver(event: unknown): Promise<void> {
  await handler(event, {} as Context);
}

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

/** A job admitted and running on `instanceIds`, waiting in Run with token `token-<id>`. */
async function runningJob(instanceIds: string[]): Promise<Job> {
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

function invocation(
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

function flareInstance(jobId: string, instanceId = I1) {
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
async function verdict(job: Job): Promise<Pick<Job, 'state' | 'stateReason' | 'exitCode'>> {
  await releaseStep(deps, job.id);
  const { state, stateReason, exitCode } = (await w.store.getJob(job.id))!;
  return { state, stateReason, ...(exitCode !== undefined ? { exitCode } : {}) };
}

async function assertUnchanged(job: Job, act: () => Promise<void>): Promise<void> {
  const before = await w.store.getJob(job.id);
  await act();
  assert.deepEqual(await w.store.getJob(job.id), before);
  assert.deepEqual(ended, []);
}

describe('SSM command status events', () => {
  test('a successful command records exit 0 and ends the Run wait', async () => {
    const job = await runningJob([I1]);
    invocation(job.id, I1, { Status: 'Success', StatusDetails: 'Success', ResponseCode: 0 });

    jobReads = 0;
    await deliver(fixture('aws-ssm-command-invocation-success'));

    assert.equal(jobReads, 0, 'the exit of the only node is recorded on its condition, without reading the job first');
    assert.deepEqual(ssmMock.commandCalls(GetCommandInvocationCommand)[0].args[0].input, {
      CommandId: COMMAND,
      InstanceId: I1,
    });
    const stored = await w.store.getJob(job.id);
    assert.deepEqual(stored?.outcome, { kind: 'exited', exitCode: 0, at: COMMAND_EVENT_TIME });
    assert.deepEqual(ended, [
      { token: `token-${job.id}`, output: { outcome: { kind: 'exited', exitCode: 0, at: COMMAND_EVENT_TIME } } },
    ]);
  });

  test("a failed command records the container's exit code", async () => {
    const job = await runningJob([I1]);
    invocation(job.id, I1, { Status: 'Failed', StatusDetails: 'Failed', ResponseCode: 3 });

    await deliver(fixture('aws-ssm-command-invocation-failed'));

    assert.deepEqual((await w.store.getJob(job.id))?.outcome, { kind: 'exited', exitCode: 3, at: COMMAND_EVENT_TIME });
    assert.equal(ended.length, 1);
  });

  test('a failed command that never ran (ResponseCode -1, Undeliverable) fails the job at once: not delivered', async () => {
    const job = await runningJob([I1]);
    invocation(job.id, I1, { Status: 'Failed', StatusDetails: 'Undeliverable', ResponseCode: -1 });

    await deliver(fixture('aws-ssm-command-invocation-failed'));

    const reason = 'container command not delivered: SSM Undeliverable';
    assert.deepEqual((await w.store.getJob(job.id))?.outcome, { kind: 'failed', reason, at: COMMAND_EVENT_TIME });
    assert.equal(ended.length, 1);
    assert.deepEqual(await verdict(job), { state: JobState.FAILED, stateReason: reason });
  });

  test('a command SSM never delivered (TimedOut, DeliveryTimedOut) fails the job at once with the reason', async () => {
    const job = await runningJob([I1]);
    invocation(job.id, I1, {
      Status: 'TimedOut',
      StatusDetails: 'DeliveryTimedOut',
      ResponseCode: -1,
      ExecutionEndDateTime: '',
    });

    await deliver(fixture('aws-ssm-command-invocation-delivery-timed-out'));

    const reason = 'container command not delivered: SSM DeliveryTimedOut';
    assert.deepEqual((await w.store.getJob(job.id))?.outcome, {
      kind: 'failed',
      reason,
      at: DELIVERY_TIMEOUT_EVENT_TIME,
    });
    assert.deepEqual(ended, [
      { token: `token-${job.id}`, output: { outcome: { kind: 'failed', reason, at: DELIVERY_TIMEOUT_EVENT_TIME } } },
    ]);
    assert.deepEqual(await verdict(job), { state: JobState.FAILED, stateReason: reason });
  });

  test('a cancelled command fails the job at once: nothing would report its exit', async () => {
    const job = await runningJob([I1]);
    invocation(job.id, I1, { Status: 'Cancelled', StatusDetails: 'Cancelled', ResponseCode: -1 });

    await deliver(fixture('aws-ssm-command-invocation-cancelled'));

    assert.deepEqual(await verdict(job), {
      state: JobState.FAILED,
      stateReason: 'container command ended without an exit code: SSM Cancelled',
    });
  });

  test('a command cancelled after Flare cancelled the job leaves it CANCELLED', async () => {
    const job = await runningJob([I1]);
    await reportOutcome(deps, job.id, { kind: 'cancelled', by: 'alice', at: '2030-01-01T00:40:00.000Z' });
    ended = [];
    invocation(job.id, I1, { Status: 'Cancelled', StatusDetails: 'Cancelled', ResponseCode: -1 });

    await assertUnchanged(job, () => deliver(fixture('aws-ssm-command-invocation-cancelled')));
    assert.deepEqual(await verdict(job), { state: JobState.CANCELLED, stateReason: 'cancelled by alice' });
  });

  test('a command cancelled at or after expiresAt (the instance stopped at its expiry) ends the job EXPIRED, not FAILED', async () => {
    const job = await runningJob([I1]);
    invocation(job.id, I1, { Status: 'Cancelled', StatusDetails: 'Cancelled', ResponseCode: -1 });

    await deliver(fixture('aws-ssm-command-invocation-success-after-expiry', { status: 'Cancelled' }));

    assert.deepEqual(await verdict(job), { state: JobState.EXPIRED, stateReason: 'live timeout reached' });
  });

  test('multi-node: one node succeeding is recorded; the job ends when the last one has', async () => {
    const job = await runningJob([I1, I2]);
    invocation(job.id, I1, { Status: 'Success', ResponseCode: 0 });
    invocation(job.id, I2, { Status: 'Success', ResponseCode: 0 });

    await deliver(fixture('aws-ssm-command-invocation-success'));
    const halfway = await w.store.getJob(job.id);
    assert.deepEqual(halfway?.nodeExits, { [I1]: 0 });
    assert.equal(halfway?.outcome, undefined);
    assert.deepEqual(ended, []);

    await deliver(fixture('aws-ssm-command-invocation-success', { 'instance-id': I2 }));
    assert.deepEqual((await w.store.getJob(job.id))?.outcome, { kind: 'exited', exitCode: 0, at: COMMAND_EVENT_TIME });
    assert.equal(ended.length, 1);
  });

  test('multi-node: the first node to fail ends the job with its code', async () => {
    const job = await runningJob([I1, I2]);
    invocation(job.id, I2, { Status: 'Failed', ResponseCode: 137 });

    await deliver(fixture('aws-ssm-command-invocation-failed', { 'instance-id': I2 }));

    assert.deepEqual((await w.store.getJob(job.id))?.outcome, {
      kind: 'exited',
      exitCode: 137,
      at: COMMAND_EVENT_TIME,
    });
  });

  test("a command past SSM's execution bound (TimedOut, ExecutionTimedOut) is ignored: the container runs on detached and the live timeout rules", async () => {
    const job = await runningJob([I1]);
    invocation(job.id, I1, { Status: 'TimedOut', StatusDetails: 'ExecutionTimedOut', ResponseCode: -1 });
    await assertUnchanged(job, () => deliver(fixture('aws-ssm-command-invocation-timed-out')));
  });

  test('a status that is not final is ignored without a lookup', async () => {
    const job = await runningJob([I1]);
    await assertUnchanged(job, () =>
      deliver(fixture('aws-ssm-command-invocation-timed-out', { status: 'InProgress' })),
    );
    assert.equal(ssmMock.commandCalls(GetCommandInvocationCommand).length, 0);
  });

  test("a command that is not Flare's changes nothing", async () => {
    const job = await runningJob([I1]);
    ssmMock
      .on(GetCommandInvocationCommand)
      .resolves({ CommandId: COMMAND, InstanceId: I1, Comment: 'patch baseline', Status: 'Success', ResponseCode: 0 });
    await assertUnchanged(job, () => deliver(fixture('aws-ssm-command-invocation-success')));
  });

  test('a report from an instance the job does not hold (an earlier attempt) changes nothing', async () => {
    const job = await runningJob([I2]);
    invocation(job.id, I1, { Status: 'Failed', ResponseCode: 1 });
    await assertUnchanged(job, () => deliver(fixture('aws-ssm-command-invocation-failed')));
  });

  test('a report for a job already stopping changes nothing', async () => {
    const job = await runningJob([I1]);
    await w.store.updateJob(job.id, [JobState.RUNNING], { state: JobState.STOPPING });
    invocation(job.id, I1, { Status: 'Failed', ResponseCode: 1 });
    await assertUnchanged(job, () => deliver(fixture('aws-ssm-command-invocation-failed')));
  });

  test('a duplicate delivery records the first outcome only', async () => {
    const job = await runningJob([I1]);
    invocation(job.id, I1, { Status: 'Failed', ResponseCode: 2 });
    await deliver(fixture('aws-ssm-command-invocation-failed'));
    await deliver(fixture('aws-ssm-command-invocation-failed'));
    assert.deepEqual((await w.store.getJob(job.id))?.outcome, { kind: 'exited', exitCode: 2, at: COMMAND_EVENT_TIME });
    assert.equal(ended.length, 1);
  });

  test('an invocation SSM still shows running is thrown, so the event is retried, and changes nothing', async () => {
    const job = await runningJob([I1]);
    invocation(job.id, I1, { Status: 'InProgress', ResponseCode: -1 });
    await assertUnchanged(job, () =>
      assert.rejects(deliver(fixture('aws-ssm-command-invocation-success')), CommandNotSettled),
    );
  });
});

describe('EC2 instance state events', () => {
  for (const state of ['shutting-down', 'terminated', 'stopping', 'stopped']) {
    test(`an instance ${state} under a running job is a lost instance`, async () => {
      const job = await runningJob([I1]);
      flareInstance(job.id);

      await deliver(fixture('aws-ec2-instance-terminated', { state }));

      assert.deepEqual(ec2Mock.commandCalls(DescribeInstancesCommand)[0].args[0].input, {
        InstanceIds: [I1],
        NextToken: undefined,
      });
      assert.deepEqual((await w.store.getJob(job.id))?.outcome, {
        kind: 'lost',
        reason: `instance ${I1} is ${state}`,
        at: INSTANCE_EVENT_TIME,
      });
      assert.equal(ended.length, 1);
    });
  }

  test('the stopping fixture loses one node of a multi-node job', async () => {
    const job = await runningJob([I2, I1]);
    flareInstance(job.id);
    await deliver(fixture('aws-ec2-instance-stopping'));
    assert.deepEqual((await w.store.getJob(job.id))?.outcome, {
      kind: 'lost',
      reason: `instance ${I1} is stopping`,
      at: INSTANCE_EVENT_TIME,
    });
  });

  test('a running instance is ignored without a lookup', async () => {
    const job = await runningJob([I1]);
    await assertUnchanged(job, () => deliver(fixture('aws-ec2-instance-running')));
    assert.equal(ec2Mock.commandCalls(DescribeInstancesCommand).length, 0);
  });

  test("the termination of a job already stopping (Flare's own Stop) changes nothing", async () => {
    const job = await runningJob([I1]);
    await w.store.updateJob(job.id, [JobState.RUNNING], { state: JobState.STOPPING });
    flareInstance(job.id);
    await assertUnchanged(job, () => deliver(fixture('aws-ec2-instance-terminated')));
  });

  test('an instance the job does not hold changes nothing', async () => {
    const job = await runningJob([I2]);
    flareInstance(job.id);
    await assertUnchanged(job, () => deliver(fixture('aws-ec2-instance-terminated')));
  });

  test('an instance Flare did not launch, or EC2 no longer knows, changes nothing', async () => {
    const job = await runningJob([I1]);
    ec2Mock
      .on(DescribeInstancesCommand)
      .resolvesOnce({
        Reservations: [{ Instances: [{ InstanceId: I1, Tags: [{ Key: 'flare:job', Value: job.id }] }] }],
      })
      .rejectsOnce(awsError(EC2ServiceException, 'InvalidInstanceID.NotFound'));
    await assertUnchanged(job, async () => {
      await deliver(fixture('aws-ec2-instance-terminated'));
      await deliver(fixture('aws-ec2-instance-terminated'));
    });
  });
});

describe('expiry wins: a report carries when the exit or loss happened, not when it is handled', () => {
  test('an exit before expiresAt, handled half an hour after it (a retried event), is SUCCEEDED: the invocation end decides, not the event time or the clock', async () => {
    const job = await runningJob([I1]);
    invocation(job.id, I1, { Status: 'Success', ResponseCode: 0, ExecutionEndDateTime: '2030-01-01T01:00:59.400Z' });
    clock = new Date('2030-01-01T01:31:00.000Z');

    // The event itself was emitted just after expiresAt (01:01:01).
    await deliver(fixture('aws-ssm-command-invocation-success-after-expiry'));

    assert.deepEqual((await w.store.getJob(job.id))?.outcome, {
      kind: 'exited',
      exitCode: 0,
      at: '2030-01-01T01:00:59.400Z',
    });
    assert.deepEqual(await verdict(job), { state: JobState.SUCCEEDED, stateReason: 'exited with code 0', exitCode: 0 });
  });

  test('an exit with code 0 after expiresAt (the container outlived its timeout) is EXPIRED, even handled at once', async () => {
    const job = await runningJob([I1]);
    invocation(job.id, I1, { Status: 'Success', ResponseCode: 0, ExecutionEndDateTime: '2030-01-01T01:01:00.180Z' });

    await deliver(fixture('aws-ssm-command-invocation-success-after-expiry'));

    assert.deepEqual((await w.store.getJob(job.id))?.outcome, {
      kind: 'exited',
      exitCode: 0,
      at: '2030-01-01T01:01:00.180Z',
    });
    assert.deepEqual(await verdict(job), { state: JobState.EXPIRED, stateReason: 'live timeout reached', exitCode: 0 });
  });

  test("the container stopped by the instance's dead-man switch at expiresAt (143, no end time from SSM) is EXPIRED by the event's time", async () => {
    const job = await runningJob([I1]);
    invocation(job.id, I1, { Status: 'Failed', ResponseCode: 143, ExecutionEndDateTime: '' });

    await deliver(fixture('aws-ssm-command-invocation-success-after-expiry', { status: 'Failed' }));

    assert.deepEqual((await w.store.getJob(job.id))?.outcome, {
      kind: 'exited',
      exitCode: 143,
      at: '2030-01-01T01:01:01.000Z',
    });
    assert.deepEqual(await verdict(job), {
      state: JobState.EXPIRED,
      stateReason: 'live timeout reached',
      exitCode: 143,
    });
  });

  test('an instance its own dead-man switch shut down after expiresAt is EXPIRED, not FAILED "instance lost"', async () => {
    const job = await runningJob([I1]);
    flareInstance(job.id);

    await deliver(fixture('aws-ec2-instance-shutting-down-dead-man'));

    assert.deepEqual((await w.store.getJob(job.id))?.outcome, {
      kind: 'lost',
      reason: `instance ${I1} is shutting-down`,
      at: '2030-01-01T01:16:02.000Z',
    });
    assert.deepEqual(await verdict(job), { state: JobState.EXPIRED, stateReason: 'live timeout reached' });
  });

  test('an instance lost before expiresAt, handled after it, is still FAILED "instance lost"', async () => {
    const job = await runningJob([I1]);
    flareInstance(job.id);
    clock = new Date('2030-01-01T02:00:00.000Z');

    await deliver(fixture('aws-ec2-instance-terminated'));

    assert.deepEqual(await verdict(job), {
      state: JobState.FAILED,
      stateReason: `instance lost: instance ${I1} is terminated`,
    });
  });
});

describe('events of another shape', () => {
  for (const [what, event, field] of [
    [
      'a missing instance id',
      () => {
        const e = fixture('aws-ec2-instance-terminated');
        delete e.detail!['instance-id'];
        return e;
      },
      'detail.instance-id',
    ],
    ['an unknown instance state', () => fixture('aws-ec2-instance-terminated', { state: 'exploded' }), 'detail.state'],
    [
      'an instance id that is not one',
      () => fixture('aws-ec2-instance-terminated', { 'instance-id': 'i-../../etc' }),
      'detail.instance-id',
    ],
    [
      'a command id that is not one',
      () => fixture('aws-ssm-command-invocation-success', { 'command-id': '$(id)' }),
      'detail.command-id',
    ],
    [
      'a missing command status',
      () => {
        const e = fixture('aws-ssm-command-invocation-success');
        delete e.detail!.status;
        return e;
      },
      'detail.status',
    ],
    [
      'an unexpected detail-type',
      () => ({ ...fixture('aws-ec2-instance-terminated'), 'detail-type': 'EC2 Spot Instance Interruption Warning' }),
      'detail-type',
    ],
    [
      'an SSM detail-type from another source',
      () => ({ ...fixture('aws-ssm-command-invocation-success'), source: 'flare' }),
      'source',
    ],
    [
      'no detail',
      () => {
        const e = fixture('aws-ec2-instance-terminated');
        delete e.detail;
        return e;
      },
      'detail',
    ],
    [
      'a missing event time',
      () => {
        const e = fixture('aws-ec2-instance-terminated');
        delete e.time;
        return e;
      },
      'time',
    ],
    [
      'an event time that is not one',
      () => ({ ...fixture('aws-ssm-command-invocation-success'), time: 'yesterday' }),
      'time',
    ],
  ] as const) {
    test(`${what} is thrown as a validation error naming ${field}, and nothing is looked up`, async () => {
      await assert.rejects(deliver(event()), (error: unknown) => {
        assert.ok(error instanceof ValidationError, String(error));
        assert.ok(
          error.details.some((d) => d.field === field),
          JSON.stringify(error.details),
        );
        return true;
      });
      assert.equal(ec2Mock.calls().length + ssmMock.calls().length, 0);
    });
  }
});
