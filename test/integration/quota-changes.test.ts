/**
 * Limits changed under running and waiting jobs through the API handler, over DynamoDB Local and the real
 * ASL (local workflows, real processes): drains in the same request, and no overshoot while limits change
 * under a burst of submits.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JobState, type Job } from '../../lambdas/core/job.js';
import { drainPool } from '../../lambdas/core/admission.js';
import { waitFor, waitForState } from '../support/harness.js';
import { BOB, ROOT } from '../support/limits-api.js';
import { api, counter, expectStatus, isHolding, limit, limitsWorld, submit } from '../support/limits-api.js';

const setup = limitsWorld();

describe('changing limits under running and waiting jobs', () => {
  it('lowering a gpus limit below used keeps running jobs and blocks the next admission; raising it admits in the same request', async () => {
    const world = await setup();
    await limit(world, 'vision', 'gpus', 2);
    const a = await submit(world);
    const b = await submit(world);
    await waitForState(world.store, a.id, [JobState.RUNNING]);
    await waitForState(world.store, b.id, [JobState.RUNNING]);

    const lowered = await api(world, 'PATCH', '/v1/quotas/vision/gpus', { as: ROOT, body: { hardLimit: 1 } });
    assert.deepEqual(lowered.body, { project: 'vision', resource: 'gpus', hardLimit: 1, used: 2 });
    const c = await submit(world);
    const waiting = await waitForState(world.store, c.id, [JobState.WAITING]);
    assert.equal(waiting.stateReason, 'project vision has 0 of 1 GPUs free, needs 1');
    assert.equal((await world.store.getJob(a.id))?.state, JobState.RUNNING);
    assert.equal((await world.store.getJob(b.id))?.state, JobState.RUNNING);
    assert.equal((await world.store.getPool('local'))?.usedGpus, 2);

    // 2 held under a limit of 2: still no room.
    await api(world, 'PATCH', '/v1/quotas/vision/gpus', { as: ROOT, body: { hardLimit: 2 } });
    assert.equal((await world.store.getJob(c.id))?.state, JobState.WAITING);
    assert.equal(
      (await world.store.getJob(c.id))?.stateReason,
      'project vision has 0 of 2 GPUs free, needs 1',
      'the drain refreshed the reason',
    );

    const raised = await api(world, 'PATCH', '/v1/quotas/vision/gpus', { as: ROOT, body: { hardLimit: 3 } });
    expectStatus(raised, 200);
    // Not waited for: the PATCH itself admitted it.
    assert.ok(isHolding(await world.store.getJob(c.id)), 'admitted by the PATCH');
    assert.deepEqual(raised.body, { project: 'vision', resource: 'gpus', hardLimit: 3, used: 3 });
    assert.ok(
      world.workflows.list().some((e) => e.name === `${c.id}-1`),
      'its workflow was started',
    );
    await waitForState(world.store, c.id, [JobState.RUNNING]);
  });

  it('deleting a gpus limit admits a waiting job in the same request', async () => {
    const world = await setup();
    await limit(world, 'vision', 'gpus', 1);
    const a = await submit(world);
    await waitForState(world.store, a.id, [JobState.RUNNING]);
    const b = await submit(world);
    await waitForState(world.store, b.id, [JobState.WAITING]);

    expectStatus(await api(world, 'DELETE', '/v1/quotas/vision/gpus', { as: ROOT }), 204);
    assert.ok(isHolding(await world.store.getJob(b.id)), 'admitted by the DELETE');
    assert.deepEqual(await world.store.getQuota('vision', 'gpus'), { project: 'vision', resource: 'gpus', used: 2 });
  });

  it('a job waiting on its quota in another pool is admitted too (every pool is drained)', async () => {
    const world = await setup();
    await limit(world, 'audio', 'gpus', 1);
    const a = await submit(world, BOB, 'audio-sleep');
    await waitForState(world.store, a.id, [JobState.RUNNING]);
    const b = await submit(world, BOB, 'audio-sleep');
    await waitForState(world.store, b.id, [JobState.WAITING]);
    await api(world, 'PATCH', '/v1/quotas/audio/gpus', { as: ROOT, body: { hardLimit: 2 } });
    assert.ok(isHolding(await world.store.getJob(b.id)));
    assert.equal((await world.store.getPool('spare'))?.usedGpus, 2);
  });

  it('20 concurrent submits, drains and cancels while the limit moves: every admission fits the limit in force, the counters never drift', async () => {
    const world = await setup({
      pools: [
        { name: 'local', gpus: 20 },
        { name: 'spare', gpus: 2 },
      ],
    });
    await limit(world, 'vision', 'gpus', 3);
    // Admission takes room only while `available >= needs`, and `available` must stay `hardLimit - used`
    // through every change (a transaction moves both together): then nothing is ever admitted beyond the
    // limit in force. A limit computed from a `used` read before the write breaks that sum, and it stays
    // broken until the next change, so it is checked after each change while admissions are running.
    const changeTo = async (hardLimit: number) => {
      expectStatus(await api(world, 'PATCH', '/v1/quotas/vision/gpus', { as: ROOT, body: { hardLimit } }), 200);
      const quota = await counter(world, 'vision');
      assert.equal(
        quota.available + quota.used,
        hardLimit,
        `quota counter after the change to ${hardLimit}: ${JSON.stringify(quota)}`,
      );
      const pool = await counter(world);
      assert.equal(pool.available + pool.used, 20, `pool counter: ${JSON.stringify(pool)}`);
    };
    const limits = [1, 4, 2, 5, 3];
    let churning = true;
    const changer = (async () => {
      let changes = 0;
      while (churning || changes < limits.length) await changeTo(limits[changes++ % limits.length]);
      return changes;
    })();
    const jobs = await Promise.all(Array.from({ length: 20 }, () => submit(world)));
    // Admissions from elsewhere while the limit moves: the reconciler's drains, and jobs ending.
    const drainer = (async () => {
      while (churning) await drainPool(world.deps, 'local');
    })();
    const cancelled = new Set<string>();
    try {
      for (let k = 0; k < 8; k++) {
        const victim = await waitFor('a running job', async () =>
          (await Promise.all(jobs.map((j) => world.store.getJob(j.id)))).find(
            (j) => j?.state === JobState.RUNNING && !cancelled.has(j.id),
          ),
        );
        cancelled.add(victim.id);
        expectStatus(await api(world, 'DELETE', `/v1/jobs/${victim.id}`), 202);
        await waitForState(world.store, victim.id, [JobState.CANCELLED]);
      }
    } finally {
      churning = false;
    }
    const changes = await changer;
    await drainer;
    assert.ok(changes >= limits.length);
    assert.ok(
      (await counter(world, 'vision')).used <= Math.max(...limits),
      'never more held than the largest limit so far',
    );

    // The last limit is the largest, so every slot it grants must end up taken, and no more.
    await changeTo(6);
    const live = jobs.filter((j) => !cancelled.has(j.id));
    // Admitted or waiting, none still in its Admit step. Held is counted by state, not by RUNNING: a drain
    // that read a job as PENDING just before its Admit step gave up on it admits it without starting a
    // workflow (queue.ts), so it may stay LAUNCHING until the reconciler re-drives it, holding its GPU.
    const settled = async () => {
      const states = await Promise.all(live.map(async (j) => (await world.store.getJob(j.id))!));
      return states.every((j) => isHolding(j) || j.state === JobState.WAITING) && states;
    };
    await waitFor('every job holding or waiting', settled);
    // What the reconciler does: one more drain. Had a limit change lost or invented room, it would show now.
    await drainPool(world.deps, 'local');
    const final = (await waitFor('every job holding or waiting after the drain', settled)) as Job[];

    const holding = final.filter(isHolding);
    assert.equal(holding.length, 6, 'exactly the final limit is held');
    assert.equal(
      holding.reduce((sum, j) => sum + (j.heldGpus ?? 0), 0),
      6,
    );
    assert.equal(final.filter((j) => j.state === JobState.WAITING).length, 6);
    assert.deepEqual(await counter(world, 'vision'), { used: 6, available: 0, limit: 6 });
    assert.deepEqual(await counter(world), { used: 6, available: 14, limit: 20 });
    // And the next one waits: there is no room the counter forgot about.
    const next = await submit(world);
    assert.equal(
      (await waitForState(world.store, next.id, [JobState.WAITING, JobState.LAUNCHING, JobState.RUNNING])).state,
      JobState.WAITING,
    );
  });
});
