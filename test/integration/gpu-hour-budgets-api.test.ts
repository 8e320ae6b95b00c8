/**
 * GPU-hour budgets (quota resource `gpuHours`, core/budgets.ts) through the API, on DynamoDB Local: the
 * 422 at submit, the live-timeout extension (429/422), the quota view and `GET /v1/stats`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JobState, type Job } from '../../lambdas/core/job.js';
import { Quota, Stats } from '../../lambdas/core/views.js';
import { apiWorld, caller, dynamoPerFile, template, type ApiWorld } from '../support/harness.js';
import { MINUTE, at, budgetRow } from '../support/budgets.js';

const ROOT = caller('root', 'admin');
const ALICE = caller('alice', 'vision');
const BOB = caller('bob', 'audio');

const dynamo = dynamoPerFile();

describe('GPU-hour budgets through the API', { timeout: 120_000 }, () => {
  const TEMPLATES = [
    template({ name: 'train', gpus: 1 }),
    template({ name: 'wide', gpus: 2 }),
    template({ name: 'audio-train', project: 'audio' }),
  ];

  async function budget(w: ApiWorld, project: string, hardLimit: number, period = 'month') {
    const response = await w.call('POST', '/v1/quotas', ROOT, {
      body: { project, resource: 'gpuHours', hardLimit, period },
    });
    assert.equal(response.status, 201, JSON.stringify(response.body));
    return response.body;
  }

  /** Submitted through the API, admitted at its submit (room and nobody waiting), then started as the workflow would (these API worlds run no workflow). */
  async function running(w: ApiWorld, as = ALICE, body: Record<string, unknown> = { template: 'train' }): Promise<Job> {
    const submitted = await w.call('POST', '/v1/jobs', as, { body });
    assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
    assert.equal(submitted.body.state, JobState.LAUNCHING, 'admitted at its submit');
    const job = (await w.store.getJob(submitted.body.id))!;
    const startedAt = new Date().toISOString();
    return w.store.updateJob(job.id, [JobState.LAUNCHING], {
      state: JobState.RUNNING,
      startedAt,
      expiresAt: at(startedAt, job.liveTimeoutMinutes),
    });
  }

  it('creates a budget with a period (and only a budget), and shows its period, spent and reserved', async () => {
    const w = await apiWorld(dynamo(), { templates: TEMPLATES });
    const missing = await w.call('POST', '/v1/quotas', ROOT, {
      body: { project: 'vision', resource: 'gpuHours', hardLimit: 10 },
    });
    assert.equal(missing.status, 400);
    assert.deepEqual(missing.body.error.details, [
      { field: 'period', reason: 'a gpuHours budget needs a period: day, week or month' },
    ]);
    const stray = await w.call('POST', '/v1/quotas', ROOT, {
      body: { project: 'vision', resource: 'gpus', hardLimit: 2, period: 'day' },
    });
    assert.equal(stray.status, 400);
    assert.deepEqual(
      stray.body.error.details.map((d: { field: string }) => d.field),
      ['period'],
    );
    assert.equal(
      (
        await w.call('POST', '/v1/quotas', ROOT, {
          body: { project: 'vision', resource: 'gpuHours', hardLimit: 10, period: 'year' },
        })
      ).status,
      400,
    );

    const created = Quota.parse(await budget(w, 'vision', 10));
    assert.equal(created.period, 'month');
    assert.equal(created.spent, 0);
    assert.equal(created.reserved, 0);
    assert.equal(created.used, 0);
    assert.ok(Date.parse(created.periodStart!) <= Date.now() && Date.now() < Date.parse(created.periodEnd!));

    await running(w, ALICE, { template: 'wide', liveTimeoutMinutes: 90 });
    const shown = await w.call('GET', '/v1/quotas/vision/gpuHours', ALICE);
    assert.equal(shown.status, 200);
    assert.deepEqual(Quota.parse(shown.body), { ...created, reserved: 3, used: 3 });
    const listed = await w.call('GET', '/v1/quotas', ALICE);
    assert.deepEqual(
      listed.body.items.map((q: { resource: string }) => q.resource),
      ['gpuHours'],
    );
    assert.equal((await w.call('GET', '/v1/quotas/vision/gpuHours', BOB)).status, 404);

    const changed = await w.call('PATCH', '/v1/quotas/vision/gpuHours', ROOT, { body: { hardLimit: 4 } });
    assert.equal(changed.status, 200);
    assert.deepEqual(Quota.parse(changed.body), { ...created, hardLimit: 4, reserved: 3, used: 3 });
  });

  it('refuses at submit (422) a job whose worst case exceeds the budget itself, and stores nothing', async () => {
    const w = await apiWorld(dynamo(), { templates: TEMPLATES });
    await budget(w, 'vision', 2, 'week');
    const refused = await w.call('POST', '/v1/jobs', ALICE, { body: { template: 'wide', liveTimeoutMinutes: 61 } });
    assert.equal(refused.status, 422);
    assert.match(
      refused.body.error.message,
      /needs up to 2\.034 GPU-hours \(2 GPUs for 61 minutes\) but project vision's budget is 2 GPU-hours per week/,
    );
    assert.deepEqual((await w.call('GET', '/v1/jobs', ALICE)).body.items, []);
    assert.equal(w.started.length, 0);
    // Exactly the budget: accepted (it waits when the budget is busy, it is never refused).
    assert.equal(
      (await w.call('POST', '/v1/jobs', ALICE, { body: { template: 'wide', liveTimeoutMinutes: 60 } })).status,
      202,
    );
    // A waiting job cannot be changed into one that never fits either.
    const waiting = (await w.call('GET', '/v1/jobs', ALICE)).body.items[0];
    const patched = await w.call('PATCH', `/v1/jobs/${waiting.id}`, ALICE, { body: { liveTimeoutMinutes: 61 } });
    assert.equal(patched.status, 422);
    assert.equal((await w.store.getJob(waiting.id))?.liveTimeoutMinutes, 60);
  });

  it('extends a running job only when the extra worst case fits (429 otherwise, 422 past the budget) and gives back when shortened', async () => {
    const w = await apiWorld(dynamo(), { templates: TEMPLATES });
    await budget(w, 'vision', 4);
    const job = await running(w);
    const extended = await w.call('PATCH', `/v1/jobs/${job.id}`, ALICE, { body: { liveTimeoutMinutes: 180 } });
    assert.equal(extended.status, 200, JSON.stringify(extended.body));
    assert.equal(extended.body.expiresAt, at(job.startedAt!, 180));
    assert.equal((await budgetRow(w.store)).reserved, 180 * MINUTE);
    assert.equal((await w.store.getJob(job.id))?.reservedGpuMs, 180 * MINUTE);

    await running(w); // one more hour reserved: the budget is full
    const refused = await w.call('PATCH', `/v1/jobs/${job.id}`, ALICE, { body: { liveTimeoutMinutes: 200 } });
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error.code, 'quota_exceeded');
    assert.match(
      refused.body.error.message,
      /^project vision has 0 of 4 GPU-hours left this month; a live timeout of 200 minutes for job \S+ needs 0\.334 more$/,
    );
    const unchanged = (await w.store.getJob(job.id))!;
    assert.deepEqual(
      [unchanged.liveTimeoutMinutes, unchanged.expiresAt, unchanged.reservedGpuMs],
      [180, at(job.startedAt!, 180), 180 * MINUTE],
    );
    assert.equal((await budgetRow(w.store)).available, 0);

    assert.equal(
      (await w.call('PATCH', `/v1/jobs/${job.id}`, ALICE, { body: { liveTimeoutMinutes: 241 } })).status,
      422,
    );

    const shortened = await w.call('PATCH', `/v1/jobs/${job.id}`, ALICE, { body: { liveTimeoutMinutes: 30 } });
    assert.equal(shortened.status, 200);
    assert.deepEqual(await budgetRow(w.store).then(({ reserved, available }) => ({ reserved, available })), {
      reserved: 90 * MINUTE,
      available: 150 * MINUTE,
    });
    // Now it fits.
    assert.equal(
      (await w.call('PATCH', `/v1/jobs/${job.id}`, ALICE, { body: { liveTimeoutMinutes: 180 } })).status,
      200,
    );
    assert.equal((await budgetRow(w.store)).available, 0);
  });

  it('GET /v1/stats reports spent and reserved GPU-hours per project, in total for an admin', async () => {
    const w = await apiWorld(dynamo(), { templates: TEMPLATES });
    await budget(w, 'vision', 10);
    await budget(w, 'audio', 5, 'week');
    await running(w, ALICE, { template: 'wide', liveTimeoutMinutes: 30 });
    const ended = await running(w, BOB, { template: 'audio-train' });
    assert.ok(
      await w.store.finishJob(ended, {
        state: JobState.SUCCEEDED,
        stateReason: 'x',
        finishedAt: at(ended.admittedAt!, 30),
      }),
    );

    const all = Stats.parse((await w.call('GET', '/v1/stats', ROOT)).body);
    assert.equal(all.budgets.spent, 0.5);
    assert.equal(all.budgets.reserved, 1);
    assert.deepEqual(Object.keys(all.budgets.byProject), ['audio', 'vision']);
    assert.deepEqual(
      { ...all.budgets.byProject.audio, periodStart: undefined, periodEnd: undefined },
      { hardLimit: 5, period: 'week', spent: 0.5, reserved: 0, periodStart: undefined, periodEnd: undefined },
    );
    assert.deepEqual(
      [
        all.budgets.byProject.vision.spent,
        all.budgets.byProject.vision.reserved,
        all.budgets.byProject.vision.hardLimit,
      ],
      [0, 1, 10],
    );

    const own = Stats.parse((await w.call('GET', '/v1/stats', ALICE)).body);
    assert.deepEqual(Object.keys(own.budgets.byProject), ['vision']);
    assert.deepEqual([own.budgets.spent, own.budgets.reserved], [0, 1]);
  });
});
