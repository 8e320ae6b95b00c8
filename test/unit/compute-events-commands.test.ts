/**
 * The compute events handler fed SSM command status events shaped like the ones AWS sends
 * (test/fixtures/events), against real job records and the real EC2+SSM adapter over aws-sdk-client-mock
 * (test/support/compute-events.ts): each final status of a job's command, on one node or several.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GetCommandInvocationCommand } from '@aws-sdk/client-ssm';
import { JobState } from '../../lambdas/core/job.js';
import { reportOutcome } from '../../lambdas/core/jobs.js';
import { CommandNotSettled } from '../../lambdas/handlers/events/compute-events.js';
import {
  COMMAND,
  COMMAND_EVENT_TIME,
  DELIVERY_TIMEOUT_EVENT_TIME,
  I1,
  I2,
  assertUnchanged,
  deliver,
  deps,
  ended,
  fixture,
  invocation,
  jobReads,
  resetEnded,
  resetJobReads,
  runningJob,
  ssmMock,
  useComputeEvents,
  verdict,
  w,
} from '../support/compute-events.js';

useComputeEvents();

describe('SSM command status events', () => {
  test('a successful command records exit 0 and ends the Run wait', async () => {
    const job = await runningJob([I1]);
    invocation(job.id, I1, { Status: 'Success', StatusDetails: 'Success', ResponseCode: 0 });

    resetJobReads();
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
    resetEnded();
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
