/**
 * InsufficientInstanceCapacity, the most common GPU launch error, as the
 * deployed artifact meets it: the bundled tasks function throws NoCapacity,
 * the template's state machine must route that name to Requeue (not to its
 * generic retry and Stop), the job waits at the head of its pool with the
 * reason and its GPU back, and after the backoff it launches on a new attempt.
 *
 * This is the test that fails when the bundles lose their class names
 * (lib/lambda-defaults.ts without keepNames: the error's name is minified,
 * no Catch matches it, and the job ends FAILED after four retries).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { artifactPerFile } from './support/artifact.js';
import { assertCallsAllowed } from './support/iam-check.js';
import {
  callsSince,
  expectedRunInstances,
  pool,
  publishedStates,
  setUpCatalog,
  submit,
  tasksEnvironment,
  waitForState,
  withoutDeadline,
} from './support/scenario.js';

const deployed = artifactPerFile();

describe('artifact: no capacity', () => {
  it('requeues the job with its GPU back, then launches it on the next attempt', async () => {
    const a = deployed();
    await setUpCatalog(a);
    const subnets = tasksEnvironment(a).subnets;
    const noCapacity = a.fake.inject({
      service: 'ec2',
      action: 'RunInstances',
      code: 'InsufficientInstanceCapacity',
      message: 'We currently do not have sufficient g5.xlarge capacity.',
    });
    const from = a.mark().calls;
    const job = await submit(a, { template: 'train' });

    const waiting = await waitForState(a, job.id, ['WAITING', 'FAILED', 'RUNNING']);
    assert.equal(
      waiting.state,
      'WAITING',
      `a capacity error requeues the job (got ${waiting.state}: ${waiting.stateReason})`,
    );
    assert.match(
      waiting.stateReason ?? '',
      /^no capacity for pool a10g \(g5\.xlarge in subnet-[0-9a-f]+: InsufficientInstanceCapacity; g5\.xlarge in subnet-[0-9a-f]+: InsufficientInstanceCapacity\); next launch attempt after /,
    );
    assert.equal((await pool(a)).usedGpus, 0, 'the GPU goes back while the job waits');
    // One attempt tried every subnet, in order, each with its own client token, each once: EC2 answers
    // capacity errors with HTTP 500, which the SDK's standard retries would resend to the subnet that refused.
    const first = callsSince(a, from, 'RunInstances', job.id).map((c) => withoutDeadline(c).params);
    assert.deepEqual(
      first,
      subnets.map((_, i) => expectedRunInstances(a, job, 0, i)),
    );
    const hits = noCapacity.hits;

    noCapacity.remove();
    const running = await waitForState(a, job.id, ['RUNNING', 'FAILED'], 90_000);
    assert.equal(running.state, 'RUNNING', running.stateReason);
    const all = callsSince(a, from, 'RunInstances', job.id).map((c) => withoutDeadline(c).params);
    assert.deepEqual(
      all.slice(hits),
      [expectedRunInstances(a, job, 1, 0)],
      'the relaunch is attempt 1, with fresh client tokens',
    );
    assert.equal((await pool(a)).usedGpus, 1);

    const [command] = a.fake.commands().filter((c) => c.comment === `flare:job=${job.id}`);
    await a.compute.finishCommand(command.commandId, command.instanceIds[0], { status: 'Success', responseCode: 0 });
    assert.equal((await waitForState(a, job.id, ['SUCCEEDED', 'FAILED'])).state, 'SUCCEEDED');
    await a.settle();
    assert.equal((await pool(a)).usedGpus, 0);
    assert.deepEqual(publishedStates(a, job.id), [
      'PENDING',
      'LAUNCHING',
      'WAITING',
      'LAUNCHING',
      'RUNNING',
      'STOPPING',
      'SUCCEEDED',
    ]);
    assert.deepEqual(
      a.workflow.started.filter((s) => s.name.startsWith(job.id)).map((s) => s.name),
      [`${job.id}-1`, `${job.id}-2`],
      'the drain after the backoff admits it under a new execution name',
    );
    await assertCallsAllowed(a.template, a.fake.calls(), a.fake.tagsOf);
  });
});
