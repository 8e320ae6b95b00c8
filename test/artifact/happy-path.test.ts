/**
 * The deployed artifact runs a job end to end: the bundled API stores it, the
 * template's state machine launches one instance through the bundled tasks
 * function, starts the container with one SSM command, the command's Success
 * event reaches the bundled compute-events function through the template's
 * rule, and the job ends SUCCEEDED with its GPU given back once.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { artifactPerFile } from './support/artifact.js';
import { assertCallsAllowed } from './support/iam-check.js';
import { callsFor, pool, setUpCatalog, submit, waitFor, waitForState } from './support/scenario.js';

const deployed = artifactPerFile();

describe('artifact: happy path', () => {
  it('runs a job to SUCCEEDED: one RunInstances, one SendCommand, one TerminateInstances, the GPU released once', async () => {
    const a = deployed();
    await setUpCatalog(a, [{ name: 'train', command: ['python', 'train.py'] }]);
    const from = a.fake.calls().length;
    const job = await submit(a, { template: 'train' });
    const running = await waitForState(a, job.id, ['RUNNING', 'FAILED']);
    assert.equal(running.state, 'RUNNING', running.stateReason);
    const [command] = await waitFor('the container command', () => a.fake.commands().filter((c) => c.comment?.includes(job.id)));
    const [instanceId] = command.instanceIds;
    await a.compute.finishCommand(command.commandId, instanceId, { status: 'Success', responseCode: 0 });
    const done = await waitForState(a, job.id, ['SUCCEEDED', 'FAILED', 'EXPIRED']);
    assert.equal(done.state, 'SUCCEEDED', done.stateReason);
    await a.settle();

    assert.equal(callsFor(a, from, 'RunInstances', job.id).length, 1);
    assert.equal(callsFor(a, from, 'TerminateInstances').length, 1);
    assert.equal((await pool(a)).usedGpus, 0);
    await assertCallsAllowed(a.template, a.fake.calls(), a.fake.tagsOf);
  });
});
