/**
 * Throttling as the deployed artifact meets it: AWS answers RequestLimitExceeded
 * or ThrottlingException under load, and the bundled functions must ride out a
 * short burst (the SDK's retries, idempotent requests: one instance, one
 * command) and turn a lasting one into a 503 the client can retry, storing
 * nothing it did not acknowledge and losing nothing it did.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { artifactPerFile } from './support/artifact.js';
import { assertCallsAllowed } from './support/iam-check.js';
import { backdate, reconcilerRun } from './support/reconciler.js';
import { admin, alice, callsSince, pool, setUpCatalog, submit, waitForState } from './support/scenario.js';

const deployed = artifactPerFile();

describe('artifact: throttling', () => {
  it('a burst of throttling on the store, Step Functions, EC2 and SSM is retried: one instance, one command, the job succeeds', async () => {
    const a = deployed();
    await setUpCatalog(a, [{ name: 'train', command: ['python', 'train.py'] }]);
    const faults = [
      a.fake.inject({
        service: 'dynamodb',
        action: 'TransactWriteItems',
        code: 'ThrottlingException',
        message: 'Rate of requests exceeds the allowed throughput.',
        times: 1,
      }),
      a.fake.inject({
        service: 'states',
        action: 'StartExecution',
        code: 'ThrottlingException',
        message: 'Rate exceeded',
        times: 1,
      }),
      a.fake.inject({
        service: 'ec2',
        action: 'RunInstances',
        code: 'RequestLimitExceeded',
        message: 'Request limit exceeded.',
        times: 2,
      }),
      a.fake.inject({
        service: 'ssm',
        action: 'SendCommand',
        code: 'ThrottlingException',
        message: 'Rate exceeded',
        times: 1,
      }),
    ];
    const from = a.mark().calls;

    const job = await submit(a, { template: 'train' });
    const running = await waitForState(a, job.id, ['RUNNING', 'FAILED', 'WAITING']);
    assert.equal(running.state, 'RUNNING', running.stateReason);
    assert.deepEqual(
      faults.map((f) => f.hits),
      [1, 1, 2, 1],
      'every fault was met',
    );

    // The retried RunInstances carried the same client token: EC2 made one instance.
    const launches = callsSince(a, from, 'RunInstances', job.id);
    assert.equal(new Set(launches.map((c) => c.params.ClientToken)).size, 1, 'one client token across the retries');
    assert.equal(a.fake.instances().filter((i) => i.tags['flare:job'] === job.id).length, 1, 'one instance');
    const commands = a.fake.commands().filter((c) => c.comment === `flare:job=${job.id}`);
    assert.equal(commands.length, 1, 'one container command');

    await a.compute.finishCommand(commands[0].commandId, commands[0].instanceIds[0], {
      status: 'Success',
      responseCode: 0,
    });
    assert.equal((await waitForState(a, job.id, ['SUCCEEDED', 'FAILED'])).state, 'SUCCEEDED');
    await a.settle();
    assert.equal((await pool(a)).usedGpus, 0);
    await assertCallsAllowed(a.template, a.fake.calls(), a.fake.tagsOf);
  });

  it('a store that keeps throttling: the submit is a 503 with Retry-After, and nothing is stored', async () => {
    const a = deployed();
    await setUpCatalog(a, [{ name: 'train', command: ['python', 'train.py'] }]);
    const before = await a.http.request('GET', '/v1/jobs', { caller: admin });
    const throttled = a.fake.inject({
      service: 'dynamodb',
      action: 'TransactWriteItems',
      code: 'ThrottlingException',
      message: 'Rate of requests exceeds the allowed throughput.',
    });

    const response = await a.http.request('POST', '/v1/jobs', { caller: alice, body: { template: 'train' } });
    throttled.remove();
    assert.equal(response.status, 503, JSON.stringify(response.body));
    assert.equal(response.body.error.code, 'unavailable');
    assert.ok(
      Number(response.headers['retry-after'] ?? response.headers['Retry-After']) > 0,
      'Retry-After says when to come back',
    );
    assert.ok(throttled.hits >= 2, 'the SDK retried before giving up');

    const after = await a.http.request('GET', '/v1/jobs', { caller: admin });
    assert.deepEqual(
      after.body.items.map((j: { id: string }) => j.id),
      before.body.items.map((j: { id: string }) => j.id),
      'no job was stored',
    );
    assert.equal((await pool(a)).usedGpus, 0);
  });

  it('Step Functions that keeps throttling at submit: the admitted job is kept, and the reconciler starts it', async () => {
    const a = deployed();
    await setUpCatalog(a, [{ name: 'train', command: ['python', 'train.py'] }]);
    const throttled = a.fake.inject({
      service: 'states',
      action: 'StartExecution',
      code: 'ThrottlingException',
      message: 'Rate exceeded',
    });
    const from = a.mark().calls;
    const response = await a.http.request('POST', '/v1/jobs', {
      caller: alice,
      body: { template: 'train', name: 'kept' },
      headers: { 'idempotency-key': 'kept-1' },
    });
    throttled.remove();
    assert.equal(response.status, 503, `the client is told to retry: ${JSON.stringify(response.body)}`);

    // The job was stored admitted before the start failed: listed, holding its GPU, with no workflow.
    const listed = await a.http.request('GET', '/v1/jobs', { caller: alice });
    const kept = listed.body.items.find((j: { name: string }) => j.name === 'kept');
    assert.ok(kept, 'the admitted job is kept');
    // A retry with the same key answers with that job, not a second one.
    const retried = await a.http.request('POST', '/v1/jobs', {
      caller: alice,
      body: { template: 'train', name: 'kept' },
      headers: { 'idempotency-key': 'kept-1' },
    });
    assert.equal(retried.status, 202, JSON.stringify(retried.body));
    assert.equal(retried.body.id, kept.id);

    // Two reconciler runs (it acts on a second observation, 30 s or more after the first) start its workflow.
    assert.deepEqual((await reconcilerRun(a)).stuck.marked, [kept.id]);
    await backdate(a, { key: `#reconcile#stuck#${kept.id}` }, ['markedAt'], 5 * 60_000, 'IDEMPOTENCY_TABLE');
    assert.deepEqual((await reconcilerRun(a)).stuck.redriven, [kept.id]);
    const running = await waitForState(a, kept.id, ['RUNNING', 'FAILED']);
    assert.equal(running.state, 'RUNNING', running.stateReason);
    assert.ok(
      callsSince(a, from, 'StartExecution').some((c) => String(c.params.name).startsWith(kept.id) && !c.error),
      'a workflow started',
    );
    assert.equal(a.fake.instances().filter((i) => i.tags['flare:job'] === kept.id).length, 1);

    const [command] = a.fake.commands().filter((c) => c.comment === `flare:job=${kept.id}`);
    await a.compute.finishCommand(command.commandId, command.instanceIds[0], { status: 'Success', responseCode: 0 });
    assert.equal((await waitForState(a, kept.id, ['SUCCEEDED', 'FAILED'])).state, 'SUCCEEDED');
    await a.settle();
    assert.equal((await pool(a)).usedGpus, 0);
    await assertCallsAllowed(a.template, a.fake.calls(), a.fake.tagsOf);
  });
});
