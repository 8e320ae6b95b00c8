/**
 * GPU-hour budgets (quota resource `gpuHours`, core/budgets.ts) through the real workflow (real ASL, real
 * processes, DynamoDB Local): a budget-blocked project that does not hold back another project, a job
 * that ends early paying only for what it held, and concurrent submits that never overshoot.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HOLDING_STATES, JobState, QUEUED_STATES, type Job } from '../../lambdas/core/job.js';
import { deleteJob, submitJob } from '../../lambdas/core/jobs.js';
import { updateQuota } from '../../lambdas/core/quotas.js';
import { dynamoPerFile, template, waitFor, waitForEnd, waitForState, world } from '../support/harness.js';
import { alice, bob, root } from '../support/identities.js';
import { HOUR, MINUTE, budgetRow } from '../support/budgets.js';

const dynamo = dynamoPerFile();

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
