/**
 * GPU-hour budget arithmetic (core/budgets.ts): calendar periods in UTC, the
 * worst case a job reserves, what a release charges, how a live-timeout change
 * moves a reservation, how a budget reads once its period is over, the wait
 * reason, and the 422 for a job that could never fit.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  budgetReason,
  budgetState,
  chargedGpuMs,
  GPU_MS_PER_HOUR,
  gpuHours,
  periodBounds,
  refuseBeyondBudget,
  reservationAfterChange,
  worstCaseGpuMs,
} from '../../lambdas/core/budgets.js';
import { Unprocessable } from '../../lambdas/core/errors.js';
import { JobState, type Job } from '../../lambdas/core/job.js';
import { jobRecord } from '../support/jobs.js';
import type { LimitStore } from '../../lambdas/ports/limits.js';
import type { QuotaRecord } from '../../lambdas/ports/limits.js';

const HOUR = GPU_MS_PER_HOUR;
const MINUTE = 60_000;

const job = (overrides: Partial<Job> = {}): Job =>
  jobRecord({
    id: 'j-1',
    name: 'train',
    pool: 'local',
    state: JobState.RUNNING,
    createdAt: '2031-03-10T09:00:00.000Z',
    ...overrides,
  });

function row(overrides: Partial<QuotaRecord> & { hardLimit: number }): QuotaRecord & { hardLimit: number } {
  return { project: 'vision', resource: 'gpuHours', used: 0, ...overrides };
}

describe('periodBounds', () => {
  it('cuts days at 00:00 UTC, the boundary itself belonging to the new day', () => {
    assert.deepEqual(periodBounds('day', new Date('2031-03-10T23:59:59.999Z')), {
      periodStart: '2031-03-10T00:00:00.000Z',
      periodEnd: '2031-03-11T00:00:00.000Z',
    });
    assert.deepEqual(periodBounds('day', new Date('2031-03-11T00:00:00.000Z')), {
      periodStart: '2031-03-11T00:00:00.000Z',
      periodEnd: '2031-03-12T00:00:00.000Z',
    });
  });

  it('starts weeks on Monday, also for a Sunday and across a month end', () => {
    // 2031-03-10 is a Monday; 2031-03-16 the Sunday of the same week.
    const week = { periodStart: '2031-03-10T00:00:00.000Z', periodEnd: '2031-03-17T00:00:00.000Z' };
    assert.deepEqual(periodBounds('week', new Date('2031-03-10T00:00:00.000Z')), week);
    assert.deepEqual(periodBounds('week', new Date('2031-03-16T23:59:59.999Z')), week);
    assert.deepEqual(periodBounds('week', new Date('2031-04-02T12:00:00.000Z')), {
      periodStart: '2031-03-31T00:00:00.000Z',
      periodEnd: '2031-04-07T00:00:00.000Z',
    });
  });

  it('runs months from the 1st, February and December included', () => {
    assert.deepEqual(periodBounds('month', new Date('2032-02-29T18:00:00.000Z')), {
      periodStart: '2032-02-01T00:00:00.000Z',
      periodEnd: '2032-03-01T00:00:00.000Z',
    });
    assert.deepEqual(periodBounds('month', new Date('2031-12-31T23:59:59.999Z')), {
      periodStart: '2031-12-01T00:00:00.000Z',
      periodEnd: '2032-01-01T00:00:00.000Z',
    });
  });
});

describe('reservations and charges (GPU-milliseconds)', () => {
  it('reserves GPUs x nodes x live timeout', () => {
    assert.equal(worstCaseGpuMs({ gpus: 2, nodeCount: 3, liveTimeoutMinutes: 90 }), 6 * 90 * MINUTE);
    // Fractional minutes land on whole milliseconds, without float dust (0.1 min = 6000 ms, not 6001).
    assert.equal(worstCaseGpuMs({ gpus: 4, nodeCount: 1, liveTimeoutMinutes: 0.1 }), 4 * 6000);
  });

  it('charges what was held from admission to release, at most the reservation', () => {
    const admitted = job({ gpus: 2, admittedAt: '2031-03-10T10:00:00.000Z', reservedGpuMs: 2 * HOUR });
    assert.equal(chargedGpuMs(admitted, '2031-03-10T10:15:00.000Z'), 2 * 15 * MINUTE);
    assert.equal(chargedGpuMs(admitted, '2031-03-10T13:00:00.000Z'), 2 * HOUR, 'capped at the reservation');
    assert.equal(chargedGpuMs(admitted, '2031-03-10T09:59:00.000Z'), 0, 'a clock behind the admission charges nothing');
    assert.equal(
      chargedGpuMs(job({ reservedGpuMs: HOUR }), '2031-03-10T10:00:00.000Z'),
      0,
      'never admitted: nothing held',
    );
  });

  it('moves a reservation with the live timeout, never below what was already held', () => {
    const running = job({ gpus: 2, admittedAt: '2031-03-10T10:00:00.000Z', reservedGpuMs: 2 * HOUR });
    assert.equal(reservationAfterChange(running, 120, '2031-03-10T10:30:00.000Z'), 2 * 2 * HOUR);
    assert.equal(reservationAfterChange(running, 10, '2031-03-10T10:05:00.000Z'), 2 * 10 * MINUTE);
    // Shortened after 50 minutes to 10: it keeps 50 minutes reserved, so a shortening cannot dodge the charge.
    assert.equal(reservationAfterChange(running, 10, '2031-03-10T10:50:00.000Z'), 2 * 50 * MINUTE);
  });

  it('shows GPU-ms as hours with four decimals', () => {
    assert.equal(gpuHours(7 * HOUR), 7);
    assert.equal(gpuHours(HOUR / 2), 0.5);
    assert.equal(gpuHours(1000), 0.0003);
  });
});

describe('budgetState', () => {
  const now = new Date('2031-03-20T12:00:00.000Z');

  it('splits used into spent and reserved within the current period', () => {
    const state = budgetState(
      row({
        hardLimit: 10,
        used: 3 * HOUR,
        budget: {
          period: 'month',
          periodStart: '2031-03-01T00:00:00.000Z',
          periodEnd: '2031-04-01T00:00:00.000Z',
          reservedGpuMs: 2 * HOUR,
        },
      }),
      now,
    );
    assert.deepEqual(state, {
      hardLimit: 10,
      period: 'month',
      periodStart: '2031-03-01T00:00:00.000Z',
      periodEnd: '2031-04-01T00:00:00.000Z',
      spentGpuMs: HOUR,
      reservedGpuMs: 2 * HOUR,
      availableGpuMs: 7 * HOUR,
    });
  });

  it('reads a period that is over as the current one, nothing spent, reservations carried', () => {
    const state = budgetState(
      row({
        hardLimit: 10,
        used: 9 * HOUR,
        budget: {
          period: 'week',
          periodStart: '2031-03-03T00:00:00.000Z',
          periodEnd: '2031-03-10T00:00:00.000Z',
          reservedGpuMs: 2 * HOUR,
        },
      }),
      now,
    );
    assert.equal(state.periodStart, '2031-03-17T00:00:00.000Z');
    assert.equal(state.periodEnd, '2031-03-24T00:00:00.000Z');
    assert.equal(state.spentGpuMs, 0);
    assert.equal(state.reservedGpuMs, 2 * HOUR);
    assert.equal(state.availableGpuMs, 8 * HOUR);
  });

  it('goes negative when the limit was lowered below what is used', () => {
    const state = budgetState(
      row({
        hardLimit: 1,
        used: 3 * HOUR,
        budget: {
          period: 'day',
          periodStart: '2031-03-20T00:00:00.000Z',
          periodEnd: '2031-03-21T00:00:00.000Z',
          reservedGpuMs: 0,
        },
      }),
      now,
    );
    assert.equal(state.availableGpuMs, -2 * HOUR);
    assert.match(budgetReason('vision', state, HOUR), /^project vision has 0 of 1 GPU-hours left today, needs 1$/);
  });
});

describe('budgetReason', () => {
  it('says what is left this period and what the job needs, never rounding towards fitting', () => {
    const state = budgetState(
      row({
        hardLimit: 100,
        used: 96.5 * HOUR,
        budget: {
          period: 'month',
          periodStart: '2031-03-01T00:00:00.000Z',
          periodEnd: '2031-04-01T00:00:00.000Z',
          reservedGpuMs: 0,
        },
      }),
      new Date('2031-03-20T00:00:00.000Z'),
    );
    assert.equal(
      budgetReason('vision', state, 8 * HOUR),
      'project vision has 3.5 of 100 GPU-hours left this month, needs 8',
    );
    const tight = { ...state, availableGpuMs: 0.0019 * HOUR };
    assert.equal(
      budgetReason('vision', tight, 0.0011 * HOUR),
      'project vision has 0.001 of 100 GPU-hours left this month, needs 0.002',
    );
  });
});

describe('refuseBeyondBudget', () => {
  const at = new Date('2031-03-20T00:00:00.000Z');
  const storeWith = (quota: QuotaRecord | undefined) => ({
    limits: { getQuota: async () => quota } as unknown as LimitStore,
    now: () => at,
  });
  const budget = row({
    hardLimit: 4,
    used: 3 * HOUR,
    budget: {
      period: 'week',
      periodStart: '2031-03-17T00:00:00.000Z',
      periodEnd: '2031-03-24T00:00:00.000Z',
      reservedGpuMs: 3 * HOUR,
    },
  });

  it('refuses (422) a worst case beyond the limit itself, naming both', async () => {
    await assert.rejects(
      refuseBeyondBudget(storeWith(budget), 'vision', { gpus: 2, nodeCount: 1, liveTimeoutMinutes: 121 }),
      (error: unknown) =>
        error instanceof Unprocessable &&
        /needs up to 4\.034 GPU-hours \(2 GPUs for 121 minutes\) but project vision's budget is 4 GPU-hours per week/.test(
          error.message,
        ),
    );
  });

  it('lets through a worst case equal to the limit, even when the budget is full now (it waits instead)', async () => {
    await refuseBeyondBudget(storeWith(budget), 'vision', { gpus: 2, nodeCount: 1, liveTimeoutMinutes: 120 });
  });

  it('lets everything through without a budget, or with its limit removed', async () => {
    await refuseBeyondBudget(storeWith(undefined), 'vision', { gpus: 1024, nodeCount: 8, liveTimeoutMinutes: 43_200 });
    await refuseBeyondBudget(storeWith({ project: 'vision', resource: 'gpuHours', used: 0 }), 'vision', {
      gpus: 1024,
      nodeCount: 8,
      liveTimeoutMinutes: 43_200,
    });
  });
});
