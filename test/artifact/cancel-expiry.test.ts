/**
 * A running job's two other ends on the deployed artifact: the owner cancels
 * it over the API (the API function ends the state machine's wait with the
 * task token), or its live timeout passes (the Run state's own timer). Both
 * terminate the instance once and give the GPU back once.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { artifactPerFile } from './support/artifact.js';
import { assertTerminatedOnce, callsSince, cancelJob, runningJob, waitForState } from './support/scenario.js';

const deployed = artifactPerFile();

describe('artifact: cancel and expiry', () => {
  it('DELETE on a running job: 202, then CANCELLED by its owner, the instance terminated, the GPU released', async () => {
    const a = deployed();
    const { job, instanceId } = await runningJob(a, { template: 'train' });
    const from = a.mark().calls;
    const done = await cancelJob(a, job.id);
    assert.equal(done.stateReason, 'cancelled by alice');
    await a.settle();
    // The API's role ended the wait with the token the tasks function stored.
    const [success] = callsSince(a, from, 'SendTaskSuccess');
    assert.equal(success.principal, a.fns.api.spec.roleLogicalId);
    assert.match(JSON.parse(String(success.params.output)).outcome?.kind ?? '', /^cancelled$/);
    await assertTerminatedOnce(a, from, job.id, instanceId, 'CANCELLED');
  });

  it('a live timeout that passes: EXPIRED by the Run state timer, the instance terminated, the GPU released', async () => {
    const a = deployed();
    // 0.05 minutes: 3 s of run time.
    const { job, instanceId } = await runningJob(a, { template: 'train', liveTimeoutMinutes: 0.05 });
    const from = a.mark().calls;
    const done = await waitForState(a, job.id, ['EXPIRED', 'FAILED', 'SUCCEEDED'], 30_000);
    assert.equal(done.state, 'EXPIRED');
    assert.equal(done.stateReason, 'live timeout reached');
    assert.ok(
      Date.parse(String(done.finishedAt)) >= Date.parse(String(job.expiresAt)),
      `finished ${String(done.finishedAt)}, not before its expiry ${String(job.expiresAt)}`,
    );
    await a.settle();
    assert.ok(
      a.workflow.workflows
        .list()
        .find((e) => e.name === `${job.id}-1`)
        ?.states.includes('Rearm'),
      'the timer went through Rearm, which found the expiry passed',
    );
    await assertTerminatedOnce(a, from, job.id, instanceId, 'EXPIRED');
  });
});
