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
import { admin, alice, callsSince, pool, runningJob, setUpCatalog, submit, waitForState } from './support/scenario.js';

const deployed = artifactPerFile();

describe('artifact: throttling', () => {
  it('a burst of throttling on the store, Step Functions, EC2 and SSM is retried: one instance, one command, the job succeeds', async () => {
    const a = deployed();
    await setUpCatalog(a);
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
    await setUpCatalog(a);
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

  it('Step Functions that keeps throttling at submit: the admitted job is kept; a retry with its key, or else the reconciler, starts it', async () => {
    const a = deployed();
    await setUpCatalog(a);
    const submitThrottled = async (name: string) => {
      const throttled = a.fake.inject({
        service: 'states',
        action: 'StartExecution',
        code: 'ThrottlingException',
        message: 'Rate exceeded',
      });
      const response = await a.http.request('POST', '/v1/jobs', {
        caller: alice,
        body: { template: 'train', name },
        headers: { 'idempotency-key': name },
      });
      throttled.remove();
      assert.equal(response.status, 503, `the client is told to retry: ${JSON.stringify(response.body)}`);
      // The job was stored admitted before the start failed: listed, holding its GPU, with no workflow.
      const listed = await a.http.request('GET', '/v1/jobs', { caller: alice });
      const kept = listed.body.items.find((j: { name: string }) => j.name === name);
      assert.ok(kept, 'the admitted job is kept');
      return kept as { id: string };
    };
    const runToEnd = async (id: string) => {
      const running = await waitForState(a, id, ['RUNNING', 'FAILED']);
      assert.equal(running.state, 'RUNNING', running.stateReason);
      assert.equal(a.fake.instances().filter((i) => i.tags['flare:job'] === id).length, 1);
      const [command] = a.fake.commands().filter((c) => c.comment === `flare:job=${id}`);
      await a.compute.finishCommand(command.commandId, command.instanceIds[0], { status: 'Success', responseCode: 0 });
      assert.equal((await waitForState(a, id, ['SUCCEEDED', 'FAILED'])).state, 'SUCCEEDED');
    };

    // The client retries with the same key: the same job, and the start the first attempt could not make.
    let from = a.mark().calls;
    const retriedJob = await submitThrottled('retried');
    const retried = await a.http.request('POST', '/v1/jobs', {
      caller: alice,
      body: { template: 'train', name: 'retried' },
      headers: { 'idempotency-key': 'retried' },
    });
    assert.equal(retried.status, 202, JSON.stringify(retried.body));
    assert.equal(retried.body.id, retriedJob.id);
    await runToEnd(retriedJob.id);
    assert.deepEqual(
      callsSince(a, from, 'StartExecution')
        .filter((c) => !c.error)
        .map((c) => c.params.name),
      [`${retriedJob.id}-1`],
      'its run 1, started once',
    );

    // The client gives up: two reconciler runs (it acts on a second observation) re-drive it as its run 2.
    from = a.mark().calls;
    const kept = await submitThrottled('kept');
    assert.deepEqual((await reconcilerRun(a)).stuck.marked, [kept.id]);
    await backdate(a, { key: `#reconcile#stuck#${kept.id}` }, ['markedAt'], 5 * 60_000, 'IDEMPOTENCY_TABLE');
    assert.deepEqual((await reconcilerRun(a)).stuck.redriven, [kept.id]);
    await runToEnd(kept.id);
    assert.deepEqual(
      callsSince(a, from, 'StartExecution')
        .filter((c) => !c.error)
        .map((c) => c.params.name),
      [`${kept.id}-2`],
    );
    await a.settle();
    assert.equal((await pool(a)).usedGpus, 0);
    await assertCallsAllowed(a.template, a.fake.calls(), a.fake.tagsOf);
  });

  it("S3 that keeps throttling (SlowDown): a job's outputs list and download are 503s with Retry-After, and answer once it passes", async () => {
    const a = deployed();
    const { job } = await runningJob(a);
    const outputs = `/v1/jobs/${job.id}/outputs`;
    const slowDowns = ['ListObjectsV2', 'HeadObject'].map((action) =>
      a.fake.inject({
        service: 's3',
        action,
        code: 'SlowDown',
        message: 'Please reduce your request rate.',
        status: 503,
      }),
    );

    // A HEAD's error has no body to name it: S3 says 503, and that is enough.
    for (const [path, reason] of [
      [outputs, /^S3 is throttled \(SlowDown\)/],
      [`${outputs}/result.txt`, /^S3 is failing \(HTTP 503/],
    ] as const) {
      const response = await a.http.request('GET', path, { caller: alice });
      assert.equal(response.status, 503, `${path}: ${JSON.stringify(response.body)}`);
      assert.equal(response.body.error.code, 'unavailable');
      assert.match(response.body.error.message, reason);
      assert.ok(Number(response.headers['retry-after'] ?? response.headers['Retry-After']) > 0, 'Retry-After');
    }
    assert.ok(
      slowDowns.every((f) => f.hits >= 2),
      'the SDK retried each before giving up',
    );

    for (const fault of slowDowns) fault.remove();
    const listed = await a.http.request('GET', outputs, { caller: alice });
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    assert.deepEqual(listed.body.items, []);
    assert.equal((await a.http.request('GET', `${outputs}/result.txt`, { caller: alice })).status, 404);
  });
});
