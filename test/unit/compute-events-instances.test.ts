/**
 * The compute events handler fed EC2 instance state events and events of another shape
 * (test/fixtures/events), against real job records and the real EC2+SSM adapter over aws-sdk-client-mock
 * (test/support/compute-events.ts). Jobs run in the fixtures' timeline (2030-01-01, expiring at 01:01), so
 * each report's time (the invocation's end, else the event's) decides the verdict: expiry wins.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DescribeInstancesCommand, EC2ServiceException } from '@aws-sdk/client-ec2';
import { ValidationError } from '../../lambdas/core/errors.js';
import { JobState } from '../../lambdas/core/job.js';
import { awsError } from '../support/aws-errors.js';
import {
  I1,
  I2,
  INSTANCE_EVENT_TIME,
  assertUnchanged,
  deliver,
  ec2Mock,
  ended,
  fixture,
  flareInstance,
  invocation,
  runningJob,
  setClock,
  ssmMock,
  useComputeEvents,
  verdict,
  w,
} from '../support/compute-events.js';

useComputeEvents();

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
    setClock(new Date('2030-01-01T01:31:00.000Z'));

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
    setClock(new Date('2030-01-01T02:00:00.000Z'));

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
