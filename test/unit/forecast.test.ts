/**
 * The latest-start model (core/forecast.ts) on hand-made pools: what each kind
 * of holding job counts for, the FIFO order, and when no promise is given.
 * test/integration/backfill.test.ts checks the promises against the real drain.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  forecastBounds,
  forecastPool,
  forecastQueue,
  holdingEnd,
  STEP_TIMEOUT_SECONDS,
  type ForecastInput,
} from '../../lambdas/core/forecast.js';
import { OUTPUTS_CHECK_INTERVAL_SECONDS } from '../../lambdas/core/policy.js';
import { JobState, type Job } from '../../lambdas/core/job.js';
import { latestStartLine } from '../../lambdas/core/notification.js';
import { jobRecord } from '../support/jobs.js';
import { stateChange } from '../../lambdas/core/events.js';

const NOW = Date.parse('2025-01-01T00:00:00.000Z');
const MIN = 60_000;
const bounds = forecastBounds({});
const iso = (ms: number) => new Date(ms).toISOString();

let n = 0;
function job(overrides: Partial<Job>): Job {
  n += 1;
  return jobRecord({
    id: `j-${String(n).padStart(3, '0')}`,
    name: 'train',
    pool: 'a10g',
    image: 'img',
    state: JobState.WAITING,
    createdAt: iso(NOW - 3600_000 + n),
    ...overrides,
  });
}

function run(input: Partial<ForecastInput> & Pick<ForecastInput, 'queue'>): Array<string | null> {
  const holding = input.holding ?? [];
  const used = holding.reduce((sum, j) => sum + (j.heldGpus ?? j.gpus * j.nodeCount), 0);
  const forecasts = forecastQueue({
    now: NOW,
    pool: { name: 'a10g', maxGpus: 4, usedGpus: used },
    holding,
    quotas: new Map(),
    bounds,
    ...input,
  });
  return input.queue.map((j) => forecasts.get(j.id)!.latestStartAt);
}

const running = (minutesLeft: number, gpus = 4) =>
  job({
    state: JobState.RUNNING,
    gpus,
    heldGpus: gpus,
    admittedAt: iso(NOW - 30 * MIN),
    startedAt: iso(NOW - 29 * MIN),
    expiresAt: iso(NOW + minutesLeft * MIN),
    liveTimeoutMinutes: 29 + minutesLeft,
  });

describe('the bounds', () => {
  it('are the step timeouts of the lifecycle ASL: launch = Launch + agent checks x 5 s + StartContainer; stop = Stop + Release + Drain', () => {
    const asl = JSON.parse(
      readFileSync(new URL('../../statemachines/job-lifecycle.asl.json', import.meta.url), 'utf8'),
    ) as { States: Record<string, { TimeoutSeconds?: number; Seconds?: number }> };
    for (const [state, seconds] of Object.entries(STEP_TIMEOUT_SECONDS))
      assert.equal(asl.States[state]?.TimeoutSeconds, seconds, state);
    assert.equal(bounds.launchMs, (300 + 120 * 5 + 300) * 1000);
    assert.equal(bounds.stopMs, (300 + 60 + 120) * 1000);
    assert.equal(
      forecastBounds({ policy: { maxComputeChecks: 12 } }).launchMs,
      (300 + 60 + 300) * 1000,
      'a shorter agent timeout shortens the launch bound',
    );
    assert.equal(asl.States.WaitForOutputs?.Seconds, OUTPUTS_CHECK_INTERVAL_SECONDS);
    assert.equal(
      forecastBounds({ policy: { outputsWaitSeconds: 660 } }).stopMs,
      (300 + 660 + 10 + 120 + 60 + 120) * 1000,
      'on AWS the stop waits for the outputs upload: its bound, then one more WaitForOutputs and AwaitOutputs',
    );
  });
});

describe('when a holding job gives its GPUs back at the latest', () => {
  it('RUNNING: its expiry plus the stop bound', () => {
    assert.equal(holdingEnd(running(10), NOW, bounds), NOW + 10 * MIN + bounds.stopMs);
  });

  it('RUNNING with a live timeout raised but not yet rearmed: the larger expiry', () => {
    const j = { ...running(10), liveTimeoutMinutes: 120 };
    assert.equal(holdingEnd(j, NOW, bounds), NOW - 29 * MIN + 120 * MIN + bounds.stopMs);
  });

  it('LAUNCHING: admission + launch bound + its whole live timeout + stop bound', () => {
    const j = job({ state: JobState.LAUNCHING, admittedAt: iso(NOW - MIN), liveTimeoutMinutes: 30, heldGpus: 1 });
    assert.equal(holdingEnd(j, NOW, bounds), NOW - MIN + bounds.launchMs + 30 * MIN + bounds.stopMs);
  });

  it('STOPPING past its bound: one more stop bound from now', () => {
    const j = job({
      state: JobState.STOPPING,
      admittedAt: iso(NOW - 90 * MIN),
      startedAt: iso(NOW - 80 * MIN),
      expiresAt: iso(NOW - 20 * MIN),
      liveTimeoutMinutes: 60,
      heldGpus: 1,
    });
    assert.equal(holdingEnd(j, NOW, bounds), NOW + bounds.stopMs);
  });

  it('STOPPING before it started (cancelled while launching): within launch + stop bounds of its admission', () => {
    const j = job({ state: JobState.STOPPING, admittedAt: iso(NOW - MIN), heldGpus: 1 });
    assert.equal(holdingEnd(j, NOW, bounds), NOW - MIN + bounds.launchMs + bounds.stopMs);
  });
});

describe('latest starts in a pool', () => {
  it('a job that fits an idle pool starts now', () => {
    assert.deepEqual(run({ queue: [job({ gpus: 2 })] }), [iso(NOW)]);
  });

  it('a job waits for the holding job whose release makes room, not for all of them', () => {
    const a = running(10, 2);
    const b = running(50, 2);
    assert.deepEqual(run({ holding: [a, b], queue: [job({ gpus: 2 })] }), [iso(NOW + 10 * MIN + bounds.stopMs)]);
    assert.deepEqual(run({ holding: [a, b], queue: [job({ gpus: 3 })] }), [iso(NOW + 50 * MIN + bounds.stopMs)]);
  });

  it('FIFO: each job holds its GPUs for its worst case, and a small job never starts before an older big one', () => {
    const big = job({ gpus: 4, liveTimeoutMinutes: 30 });
    const small = job({ gpus: 1, liveTimeoutMinutes: 5 });
    const next = job({ gpus: 4, liveTimeoutMinutes: 10 });
    const freed = NOW + 10 * MIN + bounds.stopMs;
    const bigEnds = freed + bounds.launchMs + 30 * MIN + bounds.stopMs;
    const smallEnds = bigEnds + bounds.launchMs + 5 * MIN + bounds.stopMs;
    assert.deepEqual(run({ holding: [running(10, 1)], queue: [big, small, next] }), [
      iso(freed),
      iso(bigEnds),
      iso(smallEnds),
    ]);
  });

  it('a requeued job counts from its retryAt', () => {
    const retryAt = NOW + 7 * MIN;
    assert.deepEqual(run({ queue: [job({ retryAt: iso(retryAt) }), job({})] }), [iso(retryAt), iso(retryAt)]);
  });

  it('GPUs the pool counts as held but no holding job shows are taken as never given back', () => {
    // Cap 4, 3 counted as held, but the index shows one job of 1 GPU: 2 are unaccounted for.
    const pool = { name: 'a10g', maxGpus: 4, usedGpus: 3 };
    const two = job({ gpus: 2 });
    const three = job({ gpus: 3 });
    const forecasts = forecastQueue({
      now: NOW,
      pool,
      holding: [running(10, 1)],
      queue: [two],
      quotas: new Map(),
      bounds,
    });
    assert.equal(
      forecasts.get(two.id)!.latestStartAt,
      iso(NOW + 10 * MIN + bounds.stopMs),
      'it waits for the one holding job it knows of, on the room left',
    );
    assert.deepEqual(
      forecastQueue({ now: NOW, pool, holding: [running(10, 1)], queue: [three], quotas: new Map(), bounds }).get(
        three.id,
      ),
      {
        latestStartAt: null,
        reason: 'needs 3 GPUs; pool a10g can count on 2 of its 4 (2 held by jobs not yet seen)',
      },
    );
  });
});

describe('no promise', () => {
  it('for a job that needs more than the cap, and for every job behind it (it blocks the pool)', () => {
    const huge = job({ gpus: 5 });
    const forecasts = forecastQueue({
      now: NOW,
      pool: { name: 'a10g', maxGpus: 4, usedGpus: 0 },
      holding: [],
      queue: [huge, job({})],
      quotas: new Map(),
      bounds,
    });
    assert.deepEqual(forecasts.get(huge.id), {
      latestStartAt: null,
      reason: 'needs 5 GPUs but pool a10g holds at most 4',
    });
    const behind = [...forecasts.values()][1]!;
    assert.equal(behind.latestStartAt, null);
    assert.match((behind as { reason: string }).reason, new RegExp(`job ${huge.id} ahead of it can never start`));
  });

  it("when a job's project gpus quota has no room for its queued jobs up to it: others may pass it, and so it and the jobs behind get none", () => {
    const first = job({ project: 'vision' });
    const second = job({ project: 'vision' });
    const other = job({ project: 'nlp' });
    const quotas = new Map([['vision', { hardLimit: 2, used: 1 }]]);
    const [a, b, c] = run({ queue: [first, second, other], quotas });
    assert.equal(a, iso(NOW), 'the first fits the quota');
    assert.equal(b, null, 'the second would exceed it');
    assert.equal(c, null, 'the job behind depends on when the second starts');
    const forecasts = forecastQueue({
      now: NOW,
      pool: { name: 'a10g', maxGpus: 4, usedGpus: 0 },
      holding: [],
      queue: [first, second],
      quotas,
      bounds,
    });
    assert.match(
      (forecasts.get(second.id) as { reason: string }).reason,
      /project vision's gpus quota \(1 of 2 free\) has no room for all its queued jobs up to this one \(2 GPUs\)/,
    );
  });

  it("when a project's GPU-hour budget cannot cover the worst case of its queued jobs", () => {
    const a = job({ gpus: 2, liveTimeoutMinutes: 30 }); // 1 GPU-hour
    const b = job({ gpus: 2, liveTimeoutMinutes: 30 });
    assert.deepEqual(run({ queue: [a, b], budgets: new Map([['vision', 1.5 * 3_600_000]]) }), [iso(NOW), null]);
    assert.deepEqual(
      run({ queue: [a, b], budgets: new Map([['vision', 2 * 3_600_000]]) }).map((x) => x !== null),
      [true, true],
    );
  });

  it('an unlimited project (no quota row, or no hardLimit) never binds', () => {
    const quotas = new Map([['vision', { used: 40 }]]);
    assert.deepEqual(run({ queue: [job({}), job({})], quotas }), [iso(NOW), iso(NOW)]);
  });
});

describe('the WAITING event and its notification', () => {
  it('carry the latest start promised when the job began to wait, and only for WAITING', () => {
    const waiting = job({ state: JobState.WAITING, promisedStartAt: iso(NOW + 5 * MIN) });
    const event = stateChange(waiting, JobState.PENDING, iso(NOW));
    assert.equal(event.latestStartAt, iso(NOW + 5 * MIN));
    assert.equal(
      latestStartLine(event),
      `starts by ${iso(NOW + 5 * MIN)} at the latest (if no running job is extended)`,
    );
    const launching = stateChange({ ...waiting, state: JobState.LAUNCHING }, JobState.WAITING, iso(NOW));
    assert.equal(launching.latestStartAt, undefined);
    assert.equal(latestStartLine(launching), undefined);
  });
});

describe('forecastPool: what it reads', () => {
  const pool = {
    name: 'p',
    instanceType: 'local',
    gpusPerInstance: 1,
    maxGpus: 2,
    usedGpus: 2,
    availableGpus: 0,
    backfill: false,
  };
  const queued = Array.from({ length: 5 }, (_, i) =>
    jobRecord({ id: `j-${i}`, createdAt: iso(NOW + i * 1000), state: JobState.WAITING }),
  );
  /** A store over `queued` (the index shows all five) that counts every call by name. */
  function countingStore() {
    const calls: string[] = [];
    const store = {
      async listQueueSummaries(_pool: string, limit: number, startAfter?: string) {
        calls.push('listQueueSummaries');
        const from = startAfter ? queued.findIndex((j) => `${j.createdAt}#${j.id}` === startAfter) + 1 : 0;
        const items = queued.slice(from, from + limit);
        return from + limit < queued.length
          ? { items, next: `${items.at(-1)!.createdAt}#${items.at(-1)!.id}` }
          : { items };
      },
      async getPool() {
        calls.push('getPool');
        return pool;
      },
      async listHolding() {
        calls.push('listHolding');
        return [];
      },
      async getLimits(_pool: string | undefined, projects: readonly string[]) {
        calls.push('getLimits');
        return { quotas: new Map(projects.map((p) => [p, {}])) };
      },
    };
    return {
      calls,
      deps: { queue: store as never, limits: store as never, now: () => new Date(NOW), policy: undefined },
    };
  }

  it('capped, a job further back than the cap costs one read of the queue and gets no forecast', async () => {
    const { calls, deps } = countingStore();
    const out = await forecastPool(deps, 'p', [queued[4]!], { maxAhead: 2 });
    assert.equal(out.forecasts.size, 0);
    assert.equal(out.positions.size, 0);
    assert.deepEqual(calls, ['listQueueSummaries']);
  });

  it('within the cap it forecasts, and a pool the caller read is not read again', async () => {
    const { calls, deps } = countingStore();
    const out = await forecastPool(deps, 'p', [queued[1]!], { maxAhead: 2, pool });
    assert.equal(out.positions.get('j-1'), 1);
    assert.ok(out.forecasts.get('j-1'));
    assert.equal(out.pool, pool);
    assert.deepEqual([...calls].sort(), ['getLimits', 'listHolding', 'listQueueSummaries']);
  });
});
