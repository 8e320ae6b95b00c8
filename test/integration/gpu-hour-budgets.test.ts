/**
 * GPU-hour budgets (quota resource `gpuHours`, core/budgets.ts) on DynamoDB Local:
 * the reservation admission takes and the refund release gives, to the
 * millisecond; one refund whatever races the release; no overshoot under
 * concurrent admissions; period rollover without a scheduled job; budgets
 * created, changed and removed under held reservations; through the API, the
 * 422 at submit, the live-timeout extension (429/422), the quota view and
 * `GET /v1/stats`; through the real workflow, a budget-blocked project that
 * does not hold back another project, and a job that ends early paying only
 * for what it held.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GetCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { StoreView } from '../support/stores.js';
import type { TableNames } from '../../lambdas/adapters/dynamo/table-names.js';
import { GPU_MS_PER_HOUR } from '../../lambdas/core/budgets.js';
import { HOLDING_STATES, JobState, QUEUED_STATES, type Job } from '../../lambdas/core/job.js';
import { deleteJob, submitJob } from '../../lambdas/core/jobs.js';
import { updateQuota } from '../../lambdas/core/quotas.js';
import { Quota, Stats } from '../../lambdas/core/views.js';
import {
  apiWorld,
  caller,
  dynamoPerFile,
  freshStore,
  template,
  waitFor,
  waitForEnd,
  waitForState,
  world,
  type ApiWorld,
} from '../support/harness.js';
import { jobSequence } from '../support/jobs.js';
import { alice, bob, root } from '../support/identities.js';

const HOUR = GPU_MS_PER_HOUR;
const MINUTE = 60_000;
/** A Monday. */
const T0 = '2031-03-10T10:00:00.000Z';
const at = (base: string, minutes: number) => new Date(Date.parse(base) + minutes * MINUTE).toISOString();

const ROOT = caller('root', 'admin');
const ALICE = caller('alice', 'vision');
const BOB = caller('bob', 'audio');

const makeJob = jobSequence(new Date(Date.UTC(2031, 0, 1)));

/** The budget row as stored, `available` and `reserved` included (the API shows hours). */
async function budgetRow(store: StoreView, project = 'vision') {
  const { doc, tables } = store as unknown as { doc: DynamoDBDocumentClient; tables: TableNames };
  const { Item } = await doc.send(
    new GetCommand({ TableName: tables.quotas, Key: { project, resource: 'gpuHours' }, ConsistentRead: true }),
  );
  assert.ok(Item, `a gpuHours row for ${project}`);
  return {
    used: Number(Item.used ?? 0),
    reserved: Number(Item.reserved ?? 0),
    available: Item.available === undefined ? undefined : Number(Item.available),
    hardLimit: Item.hardLimit === undefined ? undefined : Number(Item.hardLimit),
    periodStart: Item.periodStart as string | undefined,
    periodEnd: Item.periodEnd as string | undefined,
  };
}

const dynamo = dynamoPerFile();

describe('GPU-hour budgets in the store (DynamoDB Local)', { timeout: 120_000 }, () => {
  async function storeWithBudget(hardLimit: number, period: 'day' | 'week' | 'month' = 'month', now = T0) {
    const { store } = await freshStore(dynamo());
    await store.putPool({ name: 'p', instanceType: 'local', gpusPerInstance: 1, maxGpus: 64 });
    assert.ok(
      await store.putQuota({ project: 'vision', resource: 'gpuHours', hardLimit, period }, 'new', new Date(now)),
    );
    return store;
  }

  async function admitted(store: StoreView, job: Job, when = T0): Promise<Job> {
    await store.createJob(job);
    const result = await store.admit(job, when);
    assert.ok(result.admitted, `admitted: ${JSON.stringify(result)}`);
    return result.job;
  }

  it('reserves GPUs x nodes x live timeout at admission and refunds exactly the unused part at release', async () => {
    const store = await storeWithBudget(10);
    const job = await admitted(store, makeJob({ gpus: 2, nodeCount: 2, liveTimeoutMinutes: 90 }));
    const worst = 4 * 90 * MINUTE;
    assert.equal(job.reservedGpuMs, worst);
    assert.equal((await store.getJob(job.id))?.reservedGpuMs, worst, 'recorded on the job in the same transaction');
    assert.deepEqual(await budgetRow(store), {
      used: worst,
      reserved: worst,
      available: 10 * HOUR - worst,
      hardLimit: 10,
      periodStart: '2031-03-01T00:00:00.000Z',
      periodEnd: '2031-04-01T00:00:00.000Z',
    });

    // Ended after 20 minutes: 4 GPUs x 20 minutes are spent, the rest comes back.
    const finished = await store.finishJob(job, {
      state: JobState.SUCCEEDED,
      stateReason: 'exited with code 0',
      finishedAt: at(T0, 20),
    });
    assert.ok(finished);
    assert.equal((await store.getJob(job.id))?.reservedGpuMs, undefined);
    const spent = 4 * 20 * MINUTE;
    assert.deepEqual(await budgetRow(store), {
      used: spent,
      reserved: 0,
      available: 10 * HOUR - spent,
      hardLimit: 10,
      periodStart: '2031-03-01T00:00:00.000Z',
      periodEnd: '2031-04-01T00:00:00.000Z',
    });

    // Held past its reservation (launch and stop around the live timeout): charged the reservation, no more.
    const long = await admitted(store, makeJob({ liveTimeoutMinutes: 30 }), at(T0, 60));
    await store.finishJob(long, {
      state: JobState.EXPIRED,
      stateReason: 'live timeout reached',
      finishedAt: at(T0, 60 + 45),
    });
    const row = await budgetRow(store);
    assert.equal(row.used, spent + 30 * MINUTE);
    assert.equal(row.reserved, 0);
    assert.equal(row.available, 10 * HOUR - spent - 30 * MINUTE);
  });

  it('refunds once when the same release runs three times at once', async () => {
    const store = await storeWithBudget(10);
    const job = await admitted(store, makeJob({ gpus: 3 }));
    const finishedAt = at(T0, 10);
    const results = await Promise.all(
      [1, 2, 3].map(() => store.finishJob(job, { state: JobState.SUCCEEDED, stateReason: 'x', finishedAt })),
    );
    assert.equal(results.filter(Boolean).length, 1, 'one release wins');
    assert.deepEqual(await budgetRow(store).then(({ used, reserved, available }) => ({ used, reserved, available })), {
      used: 3 * 10 * MINUTE,
      reserved: 0,
      available: 10 * HOUR - 3 * 10 * MINUTE,
    });
    // A late duplicate of the release changes nothing either.
    assert.equal(
      await store.finishJob(job, { state: JobState.FAILED, stateReason: 'late', finishedAt: at(T0, 50) }),
      undefined,
    );
    assert.equal((await budgetRow(store)).used, 3 * 10 * MINUTE);
  });

  it('settles once when a requeue (no capacity: full refund) races the release', async () => {
    for (let round = 0; round < 4; round++) {
      const store = await storeWithBudget(10);
      const job = await admitted(store, makeJob({ gpus: 2 }));
      const [requeued, finished] = await Promise.all([
        store.requeueJob(job, { stateReason: 'no capacity', retryAt: at(T0, 1), launchAttempt: 1 }),
        store.finishJob(job, { state: JobState.FAILED, stateReason: 'lost', finishedAt: at(T0, 6) }),
      ]);
      assert.equal(Boolean(requeued) !== Boolean(finished), true, 'exactly one of them');
      const row = await budgetRow(store);
      assert.equal(row.reserved, 0);
      assert.equal(
        row.used,
        requeued ? 0 : 2 * 6 * MINUTE,
        requeued ? 'a launch that found no capacity had no GPU: nothing charged' : 'the release charged what was held',
      );
      assert.equal(row.available, 10 * HOUR - row.used);
      assert.equal((await store.getJob(job.id))?.reservedGpuMs, undefined);
    }
  });

  it('moves a reservation with a live-timeout change; a release that read the old one refunds nothing until it reads again', async () => {
    const store = await storeWithBudget(3);
    const job = await admitted(store, makeJob());
    const change = await store.changeReservation(job, { liveTimeoutMinutes: 150 }, 150 * MINUTE, at(T0, 5));
    assert.ok(change.changed);
    assert.equal(change.job.liveTimeoutMinutes, 150);
    assert.equal(change.job.reservedGpuMs, 150 * MINUTE);
    assert.deepEqual(await budgetRow(store).then(({ used, reserved, available }) => ({ used, reserved, available })), {
      used: 150 * MINUTE,
      reserved: 150 * MINUTE,
      available: 30 * MINUTE,
    });

    // More than the room left: refused, and neither the job nor the budget changed.
    assert.deepEqual(await store.changeReservation(change.job, { liveTimeoutMinutes: 181 }, 181 * MINUTE, at(T0, 6)), {
      changed: false,
      blockedBy: 'budget',
    });
    assert.equal((await store.getJob(job.id))?.liveTimeoutMinutes, 150);
    assert.equal((await budgetRow(store)).reserved, 150 * MINUTE);
    // A change from a stale read of the job is refused as such.
    assert.deepEqual(await store.changeReservation(job, { liveTimeoutMinutes: 30 }, 30 * MINUTE, at(T0, 6)), {
      changed: false,
      blockedBy: 'job',
    });

    assert.equal(
      await store.finishJob(job, { state: JobState.SUCCEEDED, stateReason: 'x', finishedAt: at(T0, 100) }),
      undefined,
      'read before the change',
    );
    assert.ok(
      await store.finishJob(change.job, { state: JobState.SUCCEEDED, stateReason: 'x', finishedAt: at(T0, 100) }),
    );
    assert.deepEqual(await budgetRow(store).then(({ used, reserved, available }) => ({ used, reserved, available })), {
      used: 100 * MINUTE,
      reserved: 0,
      available: 80 * MINUTE,
    });
  });

  it('never reserves past the limit under concurrent admissions and releases', async () => {
    const store = await storeWithBudget(3);
    const jobs = Array.from({ length: 12 }, () => makeJob());
    for (const job of jobs) await store.createJob(job);
    const results = await Promise.all(jobs.map((job) => store.admit(job, T0)));
    const holding = results.flatMap((r) => (r.admitted ? [r.job] : []));
    assert.equal(holding.length, 3);
    assert.deepEqual(
      results.filter((r) => !r.admitted).map((r) => !r.admitted && r.blockedBy),
      Array(9).fill('budget'),
    );
    assert.deepEqual(await budgetRow(store).then(({ used, reserved, available }) => ({ used, reserved, available })), {
      used: 3 * HOUR,
      reserved: 3 * HOUR,
      available: 0,
    });

    // Two jobs end at once having held nothing; the other nine race for the two hours given back.
    const waiting = jobs.filter((j) => !holding.some((h) => h.id === j.id));
    const [second] = await Promise.all([
      Promise.all(waiting.map((job) => store.admit(job, at(T0, 1)))),
      ...holding
        .slice(0, 2)
        .map((job) => store.finishJob(job, { state: JobState.CANCELLED, stateReason: 'x', finishedAt: T0 })),
    ]);
    const rows = await budgetRow(store);
    const admittedNow = second.filter((r) => r.admitted).length;
    assert.ok(admittedNow <= 2, `at most the two hours given back: ${admittedNow}`);
    assert.equal(rows.reserved, (1 + admittedNow) * HOUR);
    assert.ok(rows.used <= 3 * HOUR && rows.available === 3 * HOUR - rows.used);
  });

  it('gives a requeued launch its whole reservation back and reserves again when it is admitted again', async () => {
    const store = await storeWithBudget(2);
    const job = await admitted(store, makeJob({ liveTimeoutMinutes: 120 }));
    assert.equal((await budgetRow(store)).available, 0);
    const requeued = await store.requeueJob(job, { stateReason: 'no capacity', retryAt: at(T0, 1), launchAttempt: 1 });
    assert.ok(requeued);
    assert.equal(requeued.reservedGpuMs, undefined);
    assert.deepEqual(await budgetRow(store).then(({ used, reserved, available }) => ({ used, reserved, available })), {
      used: 0,
      reserved: 0,
      available: 2 * HOUR,
    });
    const again = await store.admit(requeued, at(T0, 2));
    assert.ok(again.admitted);
    assert.equal((await budgetRow(store)).reserved, 2 * HOUR);
  });

  it('rolls the period over at the first admission after it ends: spent back to 0, reservations carried and charged where they end', async () => {
    const store = await storeWithBudget(2, 'day', '2031-03-10T08:00:00.000Z');
    const first = await admitted(store, makeJob(), '2031-03-10T10:00:00.000Z');
    await store.finishJob(first, {
      state: JobState.SUCCEEDED,
      stateReason: 'x',
      finishedAt: '2031-03-10T10:30:00.000Z',
    });
    const holding = await admitted(store, makeJob(), '2031-03-10T11:00:00.000Z');
    const blocked = makeJob();
    await store.createJob(blocked);
    assert.deepEqual(
      await store.admit(blocked, '2031-03-10T11:00:00.000Z'),
      { admitted: false, blockedBy: 'budget' },
      'half an hour spent and one reserved: one more hour does not fit in two',
    );

    // Midnight UTC: the same job is admitted against the new day.
    const nextDay = await store.admit(blocked, '2031-03-11T00:00:00.000Z');
    assert.ok(nextDay.admitted);
    assert.deepEqual(await budgetRow(store), {
      used: 2 * HOUR,
      reserved: 2 * HOUR,
      available: 0,
      hardLimit: 2,
      periodStart: '2031-03-11T00:00:00.000Z',
      periodEnd: '2031-03-12T00:00:00.000Z',
    });
    // The job admitted yesterday ends today: its charge (at most its reservation) goes to today.
    await store.finishJob(holding, {
      state: JobState.EXPIRED,
      stateReason: 'x',
      finishedAt: '2031-03-11T00:30:00.000Z',
    });
    assert.deepEqual(await budgetRow(store).then(({ used, reserved, available }) => ({ used, reserved, available })), {
      used: 2 * HOUR,
      reserved: HOUR,
      available: 0,
    });

    // The next midnight, three admissions race the rollover: one rolls it, exactly one hour is free.
    const racers = [makeJob(), makeJob(), makeJob()];
    for (const job of racers) await store.createJob(job);
    const results = await Promise.all(racers.map((job) => store.admit(job, '2031-03-12T00:00:01.000Z')));
    assert.equal(results.filter((r) => r.admitted).length, 1);
    assert.deepEqual(await budgetRow(store), {
      used: 2 * HOUR,
      reserved: 2 * HOUR,
      available: 0,
      hardLimit: 2,
      periodStart: '2031-03-12T00:00:00.000Z',
      periodEnd: '2031-03-13T00:00:00.000Z',
    });
  });

  it('counts reservations made before a budget exists; a changed limit keeps the period; given again in the same period it keeps what was spent', async () => {
    const { store } = await freshStore(dynamo());
    await store.putPool({ name: 'p', instanceType: 'local', gpusPerInstance: 1, maxGpus: 64 });
    const early = await admitted(store, makeJob({ gpus: 2 }));
    assert.deepEqual(
      await budgetRow(store).then(({ used, reserved, hardLimit }) => ({ used, reserved, hardLimit })),
      { used: 2 * HOUR, reserved: 2 * HOUR, hardLimit: undefined },
      'counted without a limit',
    );

    const created = await store.putQuota(
      { project: 'vision', resource: 'gpuHours', hardLimit: 5, period: 'month' },
      'new',
      new Date(at(T0, 1)),
    );
    assert.equal(created?.budget?.reservedGpuMs, 2 * HOUR);
    assert.equal((await budgetRow(store)).available, 3 * HOUR, 'the running job counts against the new budget at once');
    assert.equal(
      await store.putQuota(
        { project: 'vision', resource: 'gpuHours', hardLimit: 9, period: 'month' },
        'new',
        new Date(at(T0, 1)),
      ),
      undefined,
      'only new',
    );

    await store.finishJob(early, { state: JobState.SUCCEEDED, stateReason: 'x', finishedAt: at(T0, 15) });
    assert.ok(
      await store.putQuota({ project: 'vision', resource: 'gpuHours', hardLimit: 3 }, 'existing', new Date(at(T0, 20))),
    );
    assert.deepEqual(await budgetRow(store), {
      used: 30 * MINUTE,
      reserved: 0,
      available: 3 * HOUR - 30 * MINUTE,
      hardLimit: 3,
      periodStart: '2031-03-01T00:00:00.000Z',
      periodEnd: '2031-04-01T00:00:00.000Z',
    });

    assert.ok(await store.removeQuotaLimit('vision', 'gpuHours'));
    await store.putQuota(
      { project: 'vision', resource: 'gpuHours', hardLimit: 5, period: 'month' },
      'new',
      new Date(at(T0, 30)),
    );
    assert.equal(
      (await budgetRow(store)).available,
      5 * HOUR - 30 * MINUTE,
      'same month: the half hour spent still counts',
    );

    assert.ok(await store.removeQuotaLimit('vision', 'gpuHours'));
    await store.putQuota(
      { project: 'vision', resource: 'gpuHours', hardLimit: 5, period: 'week' },
      'new',
      new Date(at(T0, 30)),
    );
    assert.deepEqual(await budgetRow(store), {
      used: 0,
      reserved: 0,
      available: 5 * HOUR,
      hardLimit: 5,
      periodStart: '2031-03-10T00:00:00.000Z',
      periodEnd: '2031-03-17T00:00:00.000Z',
    });
  });
});

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

describe('GPU-hour budgets through the workflow (real ASL, real processes)', { timeout: 120_000 }, () => {
  const TEMPLATES = [
    template({ name: 'ok', command: ['sh', '-c', 'exit 0'] }),
    template({ name: 'sleep', command: ['sleep', '30'] }),
    template({ name: 'audio-sleep', project: 'audio', command: ['sleep', '30'] }),
  ];

  async function budgetWorld(gpus: number, hardLimit: number) {
    const w = await world(dynamo(), { pools: [{ name: 'local', gpus }], templates: TEMPLATES });
    assert.ok(await w.store.putQuota({ project: 'vision', resource: 'gpuHours', hardLimit, period: 'month' }, 'new'));
    return w;
  }

  it('charges a job that ends early only what it held, to the millisecond', async () => {
    const w = await budgetWorld(2, 5);
    try {
      const { job } = await submitJob(w.deps, alice, { template: 'ok', gpus: 2, liveTimeoutMinutes: 90 });
      const done = await waitForEnd(w.store, job.id);
      assert.equal(done.state, JobState.SUCCEEDED);
      const held = 2 * (Date.parse(done.finishedAt!) - Date.parse(done.admittedAt!));
      assert.ok(held > 0 && held < 2 * 90 * MINUTE);
      assert.deepEqual(
        await budgetRow(w.store).then(({ used, reserved, available }) => ({ used, reserved, available })),
        { used: held, reserved: 0, available: 5 * HOUR - held },
      );
    } finally {
      await w.close();
    }
  });

  it('a budget-blocked job waits with its reason and does not hold back another project in the same pool', async () => {
    const w = await budgetWorld(4, 1);
    try {
      const first = (await submitJob(w.deps, alice, { template: 'sleep' })).job;
      await waitForState(w.store, first.id, [JobState.RUNNING]);
      // Held by its budget as the submit reads it: stored WAITING with the reason at once (no admission tried,
      // no execution), and no drain pass runs for it (the pool has room, the budget has none).
      let pages = 0;
      const counting = {
        ...w.deps,
        store: Object.create(w.store, {
          listQueue: {
            value: (...args: Parameters<typeof w.store.listQueue>) => (pages++, w.store.listQueue(...args)),
          },
        }),
      };
      const blocked = (await submitJob(counting, alice, { template: 'sleep' })).job;
      assert.deepEqual(
        [blocked.state, blocked.stateReason],
        [JobState.WAITING, 'project vision has 0 of 1 GPU-hours left this month, needs 1'],
      );
      assert.equal(pages, 0, 'no drain read the queue');
      const waiting = await waitForState(w.store, blocked.id, [JobState.WAITING]);
      assert.equal(waiting.stateReason, 'project vision has 0 of 1 GPU-hours left this month, needs 1');

      // Younger, another project, same pool: it starts while the older vision job waits.
      const other = (await submitJob(w.deps, bob, { template: 'audio-sleep' })).job;
      await waitForState(w.store, other.id, [JobState.RUNNING]);
      assert.equal((await w.store.getJob(blocked.id))?.state, JobState.WAITING);

      // The first job ends: what it held is spent, so one whole hour is still not there.
      await deleteJob(w.deps, alice, first.id);
      await waitForState(w.store, first.id, [JobState.CANCELLED]);
      const still = await waitFor('the reason to show what is left', async () => {
        const job = await w.store.getJob(blocked.id);
        return (
          job?.state === JobState.WAITING &&
          /has 0\.9\d\d of 1 GPU-hours left this month, needs 1$/.test(job.stateReason ?? '') &&
          job
        );
      });
      assert.equal(still.state, JobState.WAITING);
      // A raised budget admits it in the same request.
      await updateQuota(w.deps, root, 'vision', 'gpuHours', 2);
      assert.ok(HOLDING_STATES.includes((await w.store.getJob(blocked.id))!.state));
    } finally {
      await w.close();
    }
  });

  it('N concurrent submits against a small budget: the reservations never exceed it', async () => {
    const w = await budgetWorld(16, 3);
    try {
      const jobs = (
        await Promise.all(Array.from({ length: 10 }, () => submitJob(w.deps, alice, { template: 'sleep' })))
      ).map((r) => r.job);
      const settled = await waitFor('every job admitted or waiting', async () => {
        const all = await Promise.all(jobs.map((j) => w.store.getJob(j.id)));
        return all.every((j) => j && (j.state === JobState.RUNNING || j.state === JobState.WAITING)) && (all as Job[]);
      });
      assert.equal(settled.filter((j) => j.state === JobState.RUNNING).length, 3);
      for (const job of settled.filter((j) => QUEUED_STATES.includes(j.state)))
        assert.match(job.stateReason ?? '', /^project vision has 0 of 3 GPU-hours left this month, needs 1$/);
      assert.deepEqual(
        await budgetRow(w.store).then(({ used, reserved, available }) => ({ used, reserved, available })),
        { used: 3 * HOUR, reserved: 3 * HOUR, available: 0 },
      );
    } finally {
      await w.close();
    }
  });
});
