/**
 * GPU-hour budgets (quota resource `gpuHours`, core/budgets.ts) in the store, on DynamoDB Local: the
 * reservation admission takes and the refund release gives, to the millisecond; one refund whatever races
 * the release; no overshoot under concurrent admissions; period rollover without a scheduled job; budgets
 * created, changed and removed under held reservations.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StoreView } from '../support/stores.js';
import { JobState, type Job } from '../../lambdas/core/job.js';
import { dynamoPerFile, freshStore } from '../support/harness.js';
import { jobSequence } from '../support/jobs.js';
import { HOUR, MINUTE, T0, at, budgetRow } from '../support/budgets.js';

const makeJob = jobSequence(new Date(Date.UTC(2031, 0, 1)));

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
