/**
 * How a job fails on the deployed artifact, each ending with the reason, no
 * instance left behind and its GPU released once: EC2 refuses the launch
 * outright, SSM never delivers the container command, EC2 takes the instance
 * away under a running job (with its events, and without: the reconciler).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { artifactPerFile } from './support/artifact.js';
import { assertCallsAllowed } from './support/iam-check.js';
import { backdate, reconcilerRun } from './support/reconciler.js';
import {
  assertReleasedOnce,
  assertTerminatedOnce,
  callsSince,
  pool,
  publishedStates,
  runningJob,
  setUpCatalog,
  submit,
  waitForState,
} from './support/scenario.js';

const deployed = artifactPerFile();

describe('artifact: failures', () => {
  it('a launch EC2 refuses (not capacity) is retried by the state machine, then FAILED with the reason, the GPU released', async () => {
    const a = deployed();
    await setUpCatalog(a);
    const refused = a.fake.inject({
      service: 'ec2',
      action: 'RunInstances',
      code: 'InvalidParameterValue',
      message: 'Value (flare-instance-profile) for parameter iamInstanceProfile.name is invalid.',
    });
    const from = a.mark().calls;
    const job = await submit(a, { template: 'train' });
    const failed = await waitForState(a, job.id, ['FAILED', 'WAITING', 'RUNNING']);
    refused.remove();
    assert.equal(failed.state, 'FAILED');
    assert.match(failed.stateReason ?? '', /for parameter iamInstanceProfile\.name is invalid/);
    await a.settle();

    // Launch's Retry on States.ALL: 1 + 4 attempts, each the same request (the same client token: EC2 would launch once).
    const launches = callsSince(a, from, 'RunInstances', job.id);
    assert.equal(launches.length, 5);
    assert.equal(new Set(launches.map((c) => c.params.ClientToken)).size, 1);
    assert.equal(callsSince(a, from, 'SendCommand', job.id).length, 0);
    assert.equal(callsSince(a, from, 'TerminateInstances').length, 0, 'nothing was launched, nothing to terminate');
    assert.equal((await pool(a)).usedGpus, 0);
    assert.deepEqual(publishedStates(a, job.id), ['PENDING', 'LAUNCHING', 'STOPPING', 'FAILED']);
    await assertCallsAllowed(a.template, a.fake.calls(), a.fake.tagsOf);
  });

  it('a container command SSM never delivers fails the job at once with the reason, the instance terminated', async () => {
    const a = deployed();
    const { job, instanceId, commandId } = await runningJob(a);
    const from = a.mark().calls;
    const [delivery] = await a.compute.finishCommand(commandId, instanceId, {
      status: 'TimedOut',
      statusDetails: 'DeliveryTimedOut',
      responseCode: -1,
    });
    assert.deepEqual(
      delivery.attempts?.map((o) => o.ok),
      [true],
      'compute-events took the event',
    );
    const failed = await waitForState(a, job.id, ['FAILED', 'EXPIRED', 'SUCCEEDED'], 20_000);
    assert.equal(failed.state, 'FAILED');
    assert.equal(failed.stateReason, 'container command not delivered: SSM DeliveryTimedOut');
    await a.settle();
    // Read once, by compute-events (the upload's own command, sent by Stop, is read apart).
    assert.deepEqual(
      callsSince(a, from, 'GetCommandInvocation', commandId).map((c) => c.params),
      [{ CommandId: commandId, InstanceId: instanceId }],
    );
    await assertTerminatedOnce(a, from, job.id, instanceId, 'FAILED');
  });

  it('an instance EC2 terminates under a running job: its state-change events end the job FAILED, instance lost', async () => {
    const a = deployed();
    const { job, instanceId } = await runningJob(a);
    const from = a.mark();
    a.fake.setInstanceState(instanceId, 'terminated');
    const failed = await waitForState(a, job.id, ['FAILED', 'EXPIRED', 'SUCCEEDED'], 20_000);
    assert.equal(failed.state, 'FAILED');
    assert.equal(failed.stateReason, `instance lost: instance ${instanceId} is terminated`);
    await a.settle();
    const deliveries = a.router.deliveries
      .slice(from.deliveries)
      .filter((d) => (d.event.detail as { 'instance-id'?: string })['instance-id'] === instanceId);
    assert.ok(
      deliveries.length > 0 && deliveries.every((d) => d.attempts?.every((o) => o.ok)),
      'the rule delivered the state change and compute-events took it',
    );
    // Stop terminates the job's instances whatever EC2 says of them: idempotent, answered without error.
    assert.deepEqual(
      callsSince(a, from.calls, 'TerminateInstances').map((c) => [c.params, c.error]),
      [[{ InstanceId: [instanceId] }, undefined]],
    );
    await assertReleasedOnce(a, job.id, 'FAILED');
  });

  it("an instance EC2 has forgotten: its late event cannot be tied to the job (ignored); the scheduled reconciler finds the job's instance missing on two runs and it ends FAILED, instance lost, long before its live timeout", async () => {
    const a = deployed();
    const { job, instanceId } = await runningJob(a);
    const from = a.mark().calls;
    a.fake.vanish(instanceId);
    const [late] = await a.compute.instanceState(instanceId, 'terminated');
    assert.deepEqual(
      late.attempts?.map((o) => o.ok),
      [true],
      'compute-events takes the event and ignores it',
    );
    assert.deepEqual(
      callsSince(a, from, 'DescribeInstances', instanceId).map((c) => c.error),
      ['InvalidInstanceID.NotFound'],
    );
    assert.equal(
      (await waitForState(a, job.id, ['RUNNING', 'FAILED', 'EXPIRED'])).state,
      'RUNNING',
      'nothing ties the event to the job',
    );

    // The deployed reconciler marks nothing younger than 30 s and confirms no mark younger than that: move
    // the job's start and then the mark back, as the minutes between scheduled runs would.
    await backdate(a, { id: job.id }, ['startedAt', 'expiresAt'], 10 * 60_000);
    const first = await reconcilerRun(a);
    assert.deepEqual(first.lost, { marked: [job.id], reported: [] });
    assert.equal(
      (await waitForState(a, job.id, ['RUNNING', 'FAILED', 'EXPIRED'])).state,
      'RUNNING',
      'nothing is reported on one observation',
    );
    await backdate(a, { key: `#reconcile#lost#${job.id}` }, ['markedAt'], 5 * 60_000, 'IDEMPOTENCY_TABLE');
    const second = await reconcilerRun(a);
    assert.deepEqual(second.lost, { marked: [], reported: [job.id] });

    const done = await waitForState(a, job.id, ['FAILED', 'EXPIRED', 'SUCCEEDED'], 20_000);
    assert.equal(done.state, 'FAILED');
    assert.equal(done.stateReason, `instance lost: instance ${instanceId} no longer exists`);
    assert.ok(
      Date.parse(String(done.expiresAt)) - Date.parse(String(done.finishedAt)) > 30 * 60_000,
      `ended at ${done.finishedAt}, its live timeout at ${done.expiresAt}`,
    );
    await a.settle();
    // Stop terminates the job's instances whatever EC2 says of them; the reconciler terminates nothing itself.
    assert.deepEqual(
      callsSince(a, from, 'TerminateInstances').map((c) => [c.params, c.error]),
      [[{ InstanceId: [instanceId] }, 'InvalidInstanceID.NotFound']],
    );
    assert.equal((await pool(a)).usedGpus, 0);
    assert.deepEqual(publishedStates(a, job.id), ['PENDING', 'LAUNCHING', 'RUNNING', 'STOPPING', 'FAILED']);
    const operator = a.fake
      .events({ detailType: 'Flare Operator Event' })
      .map(
        (e) => (typeof e.Detail === 'string' ? JSON.parse(e.Detail) : e.Detail) as { kind: string; subject: string },
      );
    assert.deepEqual(
      operator.filter((e) => e.subject === job.id).map((e) => e.kind),
      ['instance-missing', 'job-lost'],
    );
    // Released once: a third run finds the counters right and the job done.
    const third = await reconcilerRun(a);
    assert.deepEqual(
      [third.lost, third.usage],
      [
        { marked: [], reported: [] },
        { marked: [], repaired: [] },
      ],
    );
    await assertCallsAllowed(a.template, a.fake.calls(), a.fake.tagsOf);
  });
});
