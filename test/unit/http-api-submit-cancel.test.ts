/**
 * The API Lambda driven with payload-2.0 events (test/fixtures/http) over in-memory ports
 * (test/support/api-world.ts): submitting a job (admission, Idempotency-Key, body limits, tenancy, quotas)
 * and cancelling or removing one. Store semantics are tested on DynamoDB Local elsewhere.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WorkflowsUnavailable } from '../../lambdas/core/errors.js';
import { JobState } from '../../lambdas/core/job.js';
import { apiEvent } from '../support/api-calls.js';
import { fieldsOf } from '../support/api-errors.js';
import { BOB, assertError, assertNothingStored, call, fillPool, fixture, submit } from '../support/api-world.js';
import { useWorld, w } from '../support/api-world.js';

useWorld();

describe('POST /v1/jobs', () => {
  it('stores the job admitted, starts its first run and answers 202 with the job', async () => {
    const response = await call(w, fixture('member-submit-job'));
    assert.equal(response.status, 202);
    const job = response.body;
    assert.equal(job.state, 'LAUNCHING');
    assert.equal(job.project, 'vision');
    assert.equal(job.owner, 'alice');
    assert.equal(job.template, 'train');
    assert.equal(job.gpus, 1);
    assert.equal(job.liveTimeoutMinutes, 0.05);
    assert.deepEqual(job.command, ['nvidia-smi']);
    assert.ok(!('heldGpus' in job) && !('taskToken' in job), 'internal fields stay inside');
    assert.equal(response.headers.location, `/v1/jobs/${job.id}`);
    assert.equal(response.headers['idempotent-replayed'], undefined);
    assert.deepEqual(w.tables.jobs.get(job.id)?.state, 'LAUNCHING');
    assert.deepEqual(w.started, [`${job.id}-1`]);
  });

  it('reads a base64-encoded body', async () => {
    const response = await call(w, fixture('member-submit-job-base64'));
    assert.equal(response.status, 202);
    assert.equal(response.body.liveTimeoutMinutes, 0.05);
  });

  it('replays the same job for the same Idempotency-Key and body', async () => {
    const first = await call(w, fixture('member-submit-job'));
    const again = await call(w, fixture('member-submit-job'));
    assert.equal(again.status, 202);
    assert.equal(again.headers['idempotent-replayed'], 'true');
    assert.equal(again.body.id, first.body.id);
    assert.equal(w.tables.jobs.size, 1);
  });

  it('is 409 when the Idempotency-Key comes back with another body', async () => {
    await call(w, fixture('member-submit-job'));
    const event = fixture('member-submit-job');
    event.body = JSON.stringify({ template: 'train', gpus: 2 });
    assertError(await call(w, event), 409, 'conflict');
    assert.equal(w.tables.jobs.size, 1);
  });

  for (const key of ['', 'has space', 'x'.repeat(129), 'ключ', 'tab\there']) {
    it(`refuses Idempotency-Key ${JSON.stringify(key.length > 20 ? `${key.slice(0, 8)}…(${key.length})` : key)}`, async () => {
      const response = await call(
        w,
        apiEvent('POST', '/v1/jobs', { body: { template: 'train' }, headers: { 'idempotency-key': key } }),
      );
      assertError(response, 400, 'validation_error');
      assert.deepEqual(fieldsOf(response), ['Idempotency-Key']);
      assertNothingStored(w);
    });
  }

  const bad: Array<[string, unknown, string[]]> = [
    ['template of the wrong type', { template: 5 }, ['template']],
    ['a missing template', { gpus: 1 }, ['template']],
    ['an unknown field', { template: 'train', privileged: true }, ['privileged']],
    ['gpus 0', { template: 'train', gpus: 0 }, ['gpus']],
    ['gpus -1', { template: 'train', gpus: -1 }, ['gpus']],
    ['gpus 1.5', { template: 'train', gpus: 1.5 }, ['gpus']],
    ['gpus "2"', { template: 'train', gpus: '2' }, ['gpus']],
    ['liveTimeoutMinutes 0', { template: 'train', liveTimeoutMinutes: 0 }, ['liveTimeoutMinutes']],
    ['liveTimeoutMinutes -1', { template: 'train', liveTimeoutMinutes: -1 }, ['liveTimeoutMinutes']],
    ['a command string', { template: 'train', command: 'nvidia-smi' }, ['command']],
    ['an env value of the wrong type', { template: 'train', env: { SEED: 1 } }, ['env.SEED']],
    [
      'several bad fields at once',
      { gpus: 0, liveTimeoutMinutes: -1, privileged: true },
      ['gpus', 'liveTimeoutMinutes', 'privileged', 'template'],
    ],
    [
      'liveTimeoutMinutes past the template maximum',
      { template: 'train', liveTimeoutMinutes: 121 },
      ['liveTimeoutMinutes'],
    ],
    ['a template of another project', { template: 'speech' }, ['template']],
  ];
  for (const [what, body, fields] of bad) {
    it(`is 400 naming ${fields.join(', ')} for ${what}, and stores nothing`, async () => {
      const response = await call(w, apiEvent('POST', '/v1/jobs', { body, headers: { 'idempotency-key': 'k-1' } }));
      assertError(response, 400, 'validation_error');
      assert.deepEqual(fieldsOf(response), fields);
      assertNothingStored(w);
    });
  }

  const notObjects: Array<[string, string, RegExp]> = [
    ['malformed JSON', '{"template":', /^malformed JSON: /],
    ['an array', '[{"template":"train"}]', /JSON object/],
    ['a string', '"train"', /JSON object/],
    ['a number', '42', /JSON object/],
    ['null', 'null', /JSON object/],
    ['an empty body', '', /required/],
  ];
  for (const [what, rawBody, reason] of notObjects) {
    it(`is 400 on (body) for ${what}`, async () => {
      const response = await call(w, apiEvent('POST', '/v1/jobs', { rawBody }));
      assertError(response, 400, 'validation_error');
      assert.equal(response.body.error.details.length, 1);
      assert.equal(response.body.error.details[0].field, '(body)');
      assert.match(response.body.error.details[0].reason, reason);
      assertNothingStored(w);
    });
  }

  it('is 413 for a body over the limit, and stores nothing', async () => {
    const response = await call(
      w,
      apiEvent('POST', '/v1/jobs', { body: { template: 'train', name: 'x'.repeat(64 * 1024) } }),
    );
    assertError(response, 413, 'payload_too_large');
    assertNothingStored(w);
  });

  it('counts the decoded bytes of a base64 body against the limit', async () => {
    const body = { template: 'train', env: { PAD: 'x'.repeat(900) } };
    const size = Buffer.byteLength(JSON.stringify(body));
    const encodedSize = Buffer.from(JSON.stringify(body)).toString('base64').length;
    const limit = Math.floor((size + encodedSize) / 2); // between the decoded and the encoded size
    assert.equal(
      (await call(w, apiEvent('POST', '/v1/jobs', { body, base64: true }), { maxBodyBytes: limit })).status,
      202,
    );
    assertError(
      await call(w, apiEvent('POST', '/v1/jobs', { body, base64: true }), { maxBodyBytes: size - 1 }),
      413,
      'payload_too_large',
    );
  });

  it('is 403 for a project the caller is not a member of', async () => {
    assertError(
      await call(w, apiEvent('POST', '/v1/jobs', { body: { template: 'speech', project: 'audio' } })),
      403,
      'forbidden',
    );
    assertNothingStored(w);
  });

  it('is 422 for more GPUs than the pool can ever hold', async () => {
    assertError(
      await call(w, apiEvent('POST', '/v1/jobs', { body: { template: 'speech', gpus: 9 }, as: BOB })),
      422,
      'unprocessable',
    );
    assertNothingStored(w);
  });

  it('is 429 when the project has used its jobs quota', async () => {
    w.tables.putQuota('vision', 'jobs', 1);
    await submit(w);
    assertError(await call(w, apiEvent('POST', '/v1/jobs', { body: { template: 'train' } })), 429, 'quota_exceeded');
    assert.equal(w.tables.jobs.size, 1);
  });
});

describe('DELETE /v1/jobs/{id}', () => {
  it('cancels a queued job with 202 and the job', async () => {
    fillPool(w.tables, 'local');
    const job = await submit(w);
    assert.equal(job.state, 'WAITING');
    const response = await call(w, apiEvent('DELETE', `/v1/jobs/${job.id}`));
    assert.equal(response.status, 202);
    assert.equal(response.body.state, 'CANCELLED');
    assert.equal(response.body.stateReason, 'cancelled by alice');
  });

  it('removes a terminal job with 204, after which it is 404', async () => {
    fillPool(w.tables, 'local');
    const job = await submit(w);
    await call(w, apiEvent('DELETE', `/v1/jobs/${job.id}`));
    const removed = await call(w, apiEvent('DELETE', `/v1/jobs/${job.id}`));
    assert.equal(removed.status, 204);
    assert.equal(removed.body, undefined);
    assertError(await call(w, apiEvent('GET', `/v1/jobs/${job.id}`)), 404, 'not_found');
  });

  it('a cancel answered 503 because Step Functions refused the wake-up sends it again when repeated', async () => {
    const job = await submit(w);
    Object.assign(w.tables.jobs.get(job.id)!, { state: JobState.RUNNING, taskToken: 'token-1' });
    const sent: unknown[] = [];
    let refuse = true;
    w.deps.workflows.sendTaskSuccess = async (token, output) => {
      if (refuse) {
        refuse = false;
        throw new WorkflowsUnavailable('Step Functions is throttled (ThrottlingException); try again later');
      }
      sent.push({ token, output });
    };

    assertError(await call(w, apiEvent('DELETE', `/v1/jobs/${job.id}`)), 503, 'unavailable');
    const outcome = w.tables.jobs.get(job.id)?.outcome;
    assert.equal(outcome?.kind, 'cancelled', 'the cancel itself was recorded');
    const again = await call(w, apiEvent('DELETE', `/v1/jobs/${job.id}`));

    assert.equal(again.status, 202);
    assert.deepEqual(sent, [{ token: 'token-1', output: { outcome } }]);
  });

  it('is 404 for another project’s job, which stays', async () => {
    const theirs = await submit(w, { template: 'speech' }, BOB);
    assertError(await call(w, apiEvent('DELETE', `/v1/jobs/${theirs.id}`)), 404, 'not_found');
    assert.equal(w.tables.jobs.get(theirs.id)?.state, 'LAUNCHING');
    assert.equal(w.tables.jobs.get(theirs.id)?.outcome, undefined);
  });
});
