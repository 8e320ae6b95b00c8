/**
 * The API Lambda driven with payload-2.0 events (test/fixtures/http) over in-memory ports
 * (test/support/api-world.ts): reading jobs, a job's logs, pools, quotas and stats, each to its caller's
 * projects. Store semantics are tested on DynamoDB Local elsewhere.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Job } from '../../lambdas/core/job.js';
import type { LogLine } from '../../lambdas/ports/job-logs.js';
import { apiEvent } from '../support/api-calls.js';
import { fieldsOf } from '../support/api-errors.js';
import { BOB, ROOT, assertError, call, fillPool, fixture, submit } from '../support/api-world.js';
import { useWorld, w } from '../support/api-world.js';

useWorld();

describe('reading jobs', () => {
  it('GET /v1/jobs lists the caller’s projects only, newest first, with a nextToken', async () => {
    const a = await submit(w);
    const b = await submit(w);
    await submit(w, { template: 'speech' }, BOB);
    const page1 = await call(w, apiEvent('GET', '/v1/jobs', { query: { limit: '1' } }));
    assert.equal(page1.status, 200);
    assert.deepEqual(
      page1.body.items.map((j: Job) => j.id),
      [b.id],
    );
    assert.ok(page1.body.nextToken);
    const page2 = await call(
      w,
      apiEvent('GET', '/v1/jobs', { query: { limit: '1', nextToken: page1.body.nextToken } }),
    );
    assert.deepEqual(
      page2.body.items.map((j: Job) => j.id),
      [a.id],
    );
    assert.equal(page2.body.nextToken, undefined);
  });

  it('GET /v1/jobs filters by project and state (fixture)', async () => {
    await submit(w);
    const running = await call(w, fixture('member-list-jobs'));
    assert.equal(running.status, 200);
    assert.deepEqual(running.body.items, []);
    const launching = await call(w, apiEvent('GET', '/v1/jobs', { query: { project: 'vision', state: 'LAUNCHING' } }));
    assert.equal(launching.body.items.length, 1);
    const other = await call(w, apiEvent('GET', '/v1/jobs', { query: { project: 'audio' } }));
    assert.deepEqual(other.body.items, []);
  });

  it('GET /v1/jobs shows an admin every project (groups claim as an array)', async () => {
    await submit(w);
    await submit(w, { template: 'speech' }, BOB);
    const response = await call(w, fixture('admin-list-jobs'));
    assert.deepEqual(response.body.items.map((j: Job) => j.project).sort(), ['audio', 'vision']);
  });

  for (const [query, field] of [
    [{ state: 'BOGUS' }, 'state'],
    [{ limit: '0' }, 'limit'],
    [{ limit: 'ten' }, 'limit'],
    [{ owner: 'alice' }, 'owner'],
    [{ project: 'Not A Project' }, 'project'],
  ] as const) {
    it(`GET /v1/jobs is 400 naming ${field} for ${JSON.stringify(query)}`, async () => {
      const response = await call(w, apiEvent('GET', '/v1/jobs', { query }));
      assertError(response, 400, 'validation_error');
      assert.deepEqual(fieldsOf(response), [field]);
    });
  }

  it('GET /v1/jobs/{id} returns the job with its queue position while queued', async () => {
    fillPool(w.tables, 'local');
    const first = await submit(w);
    const second = await submit(w);
    const response = await call(w, apiEvent('GET', `/v1/jobs/${second.id}`));
    assert.equal(response.status, 200);
    assert.equal(response.body.id, second.id);
    assert.equal(response.body.queuePosition, 1);
    assert.equal((await call(w, apiEvent('GET', `/v1/jobs/${first.id}`))).body.queuePosition, 0);
  });

  it('GET /v1/jobs shows each queued job its queue position too (the dashboard lists the queue in one request)', async () => {
    fillPool(w.tables, 'local');
    const first = await submit(w);
    const second = await submit(w);
    const listed = (await call(w, apiEvent('GET', '/v1/jobs'))).body.items;
    const positionOf = (id: string) => listed.find((j: { id: string }) => j.id === id)?.queuePosition;
    assert.deepEqual([positionOf(first.id), positionOf(second.id)], [0, 1]);
  });

  it('GET /v1/jobs/{id} of another project is 404, as is a job that does not exist', async () => {
    const theirs = await submit(w, { template: 'speech' }, BOB);
    assertError(await call(w, apiEvent('GET', `/v1/jobs/${theirs.id}`)), 404, 'not_found');
    assertError(await call(w, apiEvent('GET', '/v1/jobs/j-nope')), 404, 'not_found');
    assert.equal((await call(w, apiEvent('GET', `/v1/jobs/${theirs.id}`, { as: ROOT }))).status, 200);
  });
});

describe('GET /v1/jobs/{id}/logs', () => {
  const printed = (n: number): LogLine[] =>
    Array.from({ length: n }, (_, i) => ({
      at: new Date(Date.UTC(2025, 1, 3, 10, 0, i)).toISOString(),
      message: `step ${i}`,
    }));

  it('returns { jobId, lines } oldest first, the last 1000 lines unless told otherwise', async () => {
    const job = await submit(w);
    w.output.set(job.id, printed(1200));
    const response = await call(w, apiEvent('GET', `/v1/jobs/${job.id}/logs`));
    assert.equal(response.status, 200);
    assert.deepEqual(Object.keys(response.body), ['jobId', 'lines']);
    assert.equal(response.body.jobId, job.id);
    assert.equal(response.body.lines.length, 1000);
    assert.deepEqual(response.body.lines[0], { at: '2025-02-03T10:03:20.000Z', message: 'step 200' });
    assert.deepEqual(response.body.lines.at(-1), { at: '2025-02-03T10:19:59.000Z', message: 'step 1199' });
    assert.deepEqual(w.logReads, [{ jobId: job.id, tail: 1000 }]);
  });

  it('passes ?tail= to the adapter as a number', async () => {
    const job = await submit(w);
    w.output.set(job.id, [{ message: 'a' }, { message: 'b' }, { message: 'c' }]);
    const response = await call(w, apiEvent('GET', `/v1/jobs/${job.id}/logs`, { query: { tail: '2' } }));
    assert.deepEqual(response.body, { jobId: job.id, lines: [{ message: 'b' }, { message: 'c' }] });
    assert.deepEqual(w.logReads, [{ jobId: job.id, tail: 2 }]);
    assert.equal((await call(w, apiEvent('GET', `/v1/jobs/${job.id}/logs`, { query: { tail: '10000' } }))).status, 200);
    assert.deepEqual(w.logReads.at(-1), { jobId: job.id, tail: 10000 });
  });

  it('a job with no output yet has an empty list, not an error', async () => {
    const job = await submit(w);
    const response = await call(w, apiEvent('GET', `/v1/jobs/${job.id}/logs`));
    assert.equal(response.status, 200);
    assert.deepEqual(response.body, { jobId: job.id, lines: [] });
  });

  it('is 404 for another project’s job, as for one that does not exist, and reads no output; an admin reads any', async () => {
    const theirs = await submit(w, { template: 'speech' }, BOB);
    w.output.set(theirs.id, [{ message: 'secret' }]);
    const hidden = await call(w, apiEvent('GET', `/v1/jobs/${theirs.id}/logs`));
    assertError(hidden, 404, 'not_found');
    assert.doesNotMatch(JSON.stringify(hidden.body), /secret/);
    const missing = await call(w, apiEvent('GET', '/v1/jobs/j-nope/logs'));
    assertError(missing, 404, 'not_found');
    assert.equal(
      hidden.body.error.message,
      `job ${theirs.id} not found`,
      'the same answer as for a job that does not exist',
    );
    assert.deepEqual(w.logReads, []);
    const admin = await call(w, apiEvent('GET', `/v1/jobs/${theirs.id}/logs`, { as: ROOT }));
    assert.deepEqual(admin.body, { jobId: theirs.id, lines: [{ message: 'secret' }] });
  });

  for (const tail of ['0', '-1', '1.5', 'abc', '100001', '10001', '', '1,2']) {
    it(`is 400 naming tail for tail=${JSON.stringify(tail)}, and reads no output`, async () => {
      const job = await submit(w);
      const response = await call(w, apiEvent('GET', `/v1/jobs/${job.id}/logs`, { query: { tail } }));
      assertError(response, 400, 'validation_error');
      assert.deepEqual(fieldsOf(response), ['tail']);
      assert.deepEqual(w.logReads, []);
    });
  }

  it('is 400 for a query parameter it does not take', async () => {
    const job = await submit(w);
    const response = await call(w, apiEvent('GET', `/v1/jobs/${job.id}/logs`, { query: { follow: 'true' } }));
    assertError(response, 400, 'validation_error');
    assert.deepEqual(fieldsOf(response), ['follow']);
  });

  it('is listed among the resources of v1', async () => {
    const response = await call(w, apiEvent('GET', '/v1', { as: null }));
    const logs = response.body.resources.find((r: { path: string }) => r.path === '/v1/jobs/{id}/logs');
    assert.deepEqual(logs, { path: '/v1/jobs/{id}/logs', methods: ['GET'], public: false });
  });
});

describe('pools, quotas, stats', () => {
  it('GET /v1/pools shows caps, use and waiting jobs', async () => {
    fillPool(w.tables, 'local');
    await submit(w);
    await submit(w);
    const response = await call(w, apiEvent('GET', '/v1/pools'));
    assert.equal(response.status, 200);
    const local = response.body.items.find((p: { name: string }) => p.name === 'local');
    assert.deepEqual(local, {
      name: 'local',
      instanceType: 'local',
      gpusPerInstance: 4,
      maxGpus: 4,
      usedGpus: 4,
      availableGpus: 0,
      waitingJobs: 2,
      backfill: false,
    });
  });

  it('GET /v1/quotas shows a member their projects and an admin all; a counted resource without a limit is not a quota', async () => {
    const member = await call(w, apiEvent('GET', '/v1/quotas'));
    assert.deepEqual(member.body.items, [{ project: 'vision', resource: 'gpus', hardLimit: 2, used: 0 }]);
    const admin = await call(w, apiEvent('GET', '/v1/quotas', { as: ROOT }));
    assert.deepEqual(
      admin.body.items.map((q: { project: string }) => q.project),
      ['audio', 'vision'],
    );
    const filtered = await call(w, apiEvent('GET', '/v1/quotas', { as: ROOT, query: { project: 'audio' } }));
    assert.deepEqual(
      filtered.body.items.map((q: { project: string }) => q.project),
      ['audio'],
    );
  });

  it('GET /v1/quotas/{project}/{resource} is the row, 404 when not visible or absent, 400 for an unknown resource', async () => {
    const own = await call(w, apiEvent('GET', '/v1/quotas/vision/gpus'));
    assert.equal(own.status, 200);
    assert.deepEqual(own.body, { project: 'vision', resource: 'gpus', hardLimit: 2, used: 0 });
    assertError(await call(w, apiEvent('GET', '/v1/quotas/audio/gpus')), 404, 'not_found');
    assertError(await call(w, apiEvent('GET', '/v1/quotas/vision/templates')), 404, 'not_found');
    const bad = await call(w, apiEvent('GET', '/v1/quotas/vision/disks'));
    assertError(bad, 400, 'validation_error');
    assert.deepEqual(fieldsOf(bad), ['resource']);
  });

  it('GET /v1/stats counts the caller’s jobs by state; an admin sees all', async () => {
    fillPool(w.tables, 'local');
    fillPool(w.tables, 'a10g');
    await submit(w);
    const theirs = await submit(w, { template: 'speech' }, BOB);
    await call(w, apiEvent('DELETE', `/v1/jobs/${theirs.id}`, { as: BOB }));
    const member = await call(w, apiEvent('GET', '/v1/stats'));
    assert.equal(member.status, 200);
    assert.deepEqual(member.body.projects, ['vision']);
    assert.equal(member.body.totalJobs, 1);
    assert.equal(member.body.jobsByState.WAITING, 1);
    assert.equal(member.body.jobsByState.CANCELLED, 0);
    const admin = await call(w, apiEvent('GET', '/v1/stats', { as: ROOT }));
    assert.equal(admin.body.projects, null);
    assert.equal(admin.body.totalJobs, 2);
    assert.equal(admin.body.jobsByState.CANCELLED, 1);
    const audio = await call(w, apiEvent('GET', '/v1/stats', { as: ROOT, query: { project: 'audio' } }));
    assert.equal(audio.body.totalJobs, 1);
  });
});
