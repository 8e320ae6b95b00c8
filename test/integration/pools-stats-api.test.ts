/**
 * `/v1/pools` and `/v1/stats` through the API handler, over DynamoDB Local and the real ASL (local
 * workflows, real processes): every route for every role, caps changed under held jobs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JobState } from '../../lambdas/core/job.js';
import { forecastBounds } from '../../lambdas/core/forecast.js';
import { waitForState } from '../support/harness.js';
import { fieldsOf } from '../support/api-errors.js';
import { ALICE, BOB, ROOT } from '../support/limits-api.js';
import { allPages, api, expectStatus, isHolding, limit, limitsWorld, submit } from '../support/limits-api.js';

const setup = limitsWorld();

describe('pools API', () => {
  it('GET: any member sees every pool as docs/api.md shows it, paginated by name', async () => {
    const world = await setup({
      pools: [
        { name: 'local', gpus: 4 },
        { name: 'spare', gpus: 2 },
        { name: 'a10g', gpus: 8 },
        { name: 'h100', gpus: 16 },
        { name: 'l4', gpus: 1 },
      ],
    });
    await limit(world, 'vision', 'gpus', 1);
    const a = await submit(world);
    await waitForState(world.store, a.id, [JobState.RUNNING]);
    const b = await submit(world);
    await waitForState(world.store, b.id, [JobState.WAITING]);

    const pages = await allPages(world, '/v1/pools', BOB, 2);
    assert.equal(pages.pages, 3);
    assert.deepEqual(
      pages.items.map((p) => p.name),
      ['a10g', 'h100', 'l4', 'local', 'spare'],
    );
    assert.deepEqual(
      pages.items.find((p) => p.name === 'local'),
      {
        name: 'local',
        instanceType: 'local',
        gpusPerInstance: 4,
        maxGpus: 4,
        usedGpus: 1,
        availableGpus: 3,
        waitingJobs: 1,
        backfill: false,
      },
    );
    const all = await api(world, 'GET', '/v1/pools', { as: ALICE });
    assert.equal(all.body.items.length, 5);
    assert.equal(all.body.nextToken, undefined);
  });

  it('PATCH: admins only (403 for members), 404 for an unknown pool, 400 for a bad cap', async () => {
    const world = await setup();
    expectStatus(await api(world, 'PATCH', '/v1/pools/local', { as: ALICE, body: { maxGpus: 64 } }), 403, 'forbidden');
    assert.equal((await world.store.getPool('local'))?.maxGpus, 4);
    expectStatus(await api(world, 'PATCH', '/v1/pools/nowhere', { as: ROOT, body: { maxGpus: 4 } }), 404, 'not_found');
    assert.equal(await world.store.getPool('nowhere'), undefined, 'a PATCH does not create a pool');
    for (const maxGpus of ['-1', '1.5', '"2"', '1e309', 'null']) {
      const bad = await api(world, 'PATCH', '/v1/pools/local', { as: ROOT, rawBody: `{"maxGpus": ${maxGpus}}` });
      expectStatus(bad, 400, 'validation_error');
      assert.deepEqual(fieldsOf(bad), ['maxGpus'], `maxGpus ${maxGpus}`);
    }
    const unknown = await api(world, 'PATCH', '/v1/pools/local', {
      as: ROOT,
      body: { maxGpus: 2, instanceType: 'p5.48xlarge' },
    });
    assert.deepEqual(fieldsOf(unknown), ['instanceType']);
    assert.equal((await world.store.getPool('local'))?.maxGpus, 4);
  });

  it('lowering a cap below what is held keeps the jobs; raising it admits a waiting job in the same request', async () => {
    const world = await setup();
    const a = await submit(world);
    const b = await submit(world);
    await waitForState(world.store, a.id, [JobState.RUNNING]);
    await waitForState(world.store, b.id, [JobState.RUNNING]);

    const lowered = await api(world, 'PATCH', '/v1/pools/local', { as: ROOT, body: { maxGpus: 1 } });
    expectStatus(lowered, 200);
    assert.deepEqual(lowered.body, {
      name: 'local',
      instanceType: 'local',
      gpusPerInstance: 4,
      maxGpus: 1,
      usedGpus: 2,
      availableGpus: 0,
      waitingJobs: 0,
      backfill: false,
    });
    const c = await submit(world);
    const waiting = await waitForState(world.store, c.id, [JobState.WAITING]);
    assert.equal(waiting.stateReason, 'pool local has 0 of 1 GPUs free, needs 1');
    // Its latest start: when the second of the two running jobs is released at the latest (docs/architecture.md, Guarantees).
    const shown = await api(world, 'GET', `/v1/jobs/${c.id}`, { as: ROOT });
    const ends = await Promise.all([a, b].map(async (j) => Date.parse((await world.store.getJob(j.id))!.expiresAt!)));
    assert.equal(shown.body.latestStartAt, new Date(Math.max(...ends) + forecastBounds({}).stopMs).toISOString());
    assert.equal((await world.store.getJob(a.id))?.state, JobState.RUNNING);
    assert.equal((await world.store.getJob(b.id))?.state, JobState.RUNNING);

    // 2 held under a cap of 2: still no room.
    assert.equal(
      (await api(world, 'PATCH', '/v1/pools/local', { as: ROOT, body: { maxGpus: 2 } })).body.waitingJobs,
      1,
    );
    assert.equal((await world.store.getJob(c.id))?.state, JobState.WAITING);

    const raised = await api(world, 'PATCH', '/v1/pools/local', { as: ROOT, body: { maxGpus: 3 } });
    assert.ok(isHolding(await world.store.getJob(c.id)), 'admitted by the PATCH');
    assert.deepEqual(raised.body, {
      name: 'local',
      instanceType: 'local',
      gpusPerInstance: 4,
      maxGpus: 3,
      usedGpus: 3,
      availableGpus: 0,
      waitingJobs: 0,
      backfill: false,
    });
    await waitForState(world.store, c.id, [JobState.RUNNING]);
  });

  it('PATCH turns backfill on and off, keeping the cap; a body with neither field is a 400 naming it', async () => {
    const world = await setup();
    const on = await api(world, 'PATCH', '/v1/pools/local', { as: ROOT, body: { backfill: true } });
    expectStatus(on, 200);
    assert.equal(on.body.backfill, true);
    assert.equal(on.body.maxGpus, 4);
    assert.equal((await world.store.getPool('local'))?.backfill, true);
    const none = await api(world, 'PATCH', '/v1/pools/local', { as: ROOT, body: {} });
    expectStatus(none, 400);
    assert.match(JSON.stringify(none.body), /maxGpus/);
    const off = await api(world, 'PATCH', '/v1/pools/local', { as: ROOT, body: { backfill: false, maxGpus: 2 } });
    assert.deepEqual([off.body.backfill, off.body.maxGpus], [false, 2]);
  });
});

describe('stats API', () => {
  it('admins see every project, by pool and by project; members their own; another project is a 404', async () => {
    const world = await setup();
    await limit(world, 'vision', 'gpus', 1);
    const running = await submit(world);
    await waitForState(world.store, running.id, [JobState.RUNNING]);
    const waiting = await submit(world);
    await waitForState(world.store, waiting.id, [JobState.WAITING]);
    const audio = await submit(world, BOB, 'audio-sleep');
    await waitForState(world.store, audio.id, [JobState.RUNNING]);

    const admin = await api(world, 'GET', '/v1/stats', { as: ROOT });
    expectStatus(admin, 200);
    assert.equal(admin.body.projects, null);
    assert.equal(admin.body.totalJobs, 3);
    assert.deepEqual(Object.keys(admin.body.byPool), ['local', 'spare']);
    assert.deepEqual(Object.keys(admin.body.byProject), ['audio', 'vision']);
    assert.equal(admin.body.byPool.local.jobsByState.RUNNING, 1);
    assert.equal(admin.body.byPool.local.jobsByState.WAITING, 1);
    assert.equal(admin.body.byPool.spare.jobsByState.RUNNING, 1);
    assert.equal(admin.body.byProject.vision.totalJobs, 2);
    assert.equal(admin.body.byProject.vision.waitingSeconds.count, 1, 'the waiting job was never admitted');
    assert.equal(admin.body.byProject.audio.waitingSeconds.count, 1);
    assert.equal(typeof admin.body.byProject.audio.gpuHours, 'number');
    assert.equal(typeof admin.body.byPool.spare.waitingSeconds.p95, 'number');
    assert.equal(admin.body.byPool.local.waitingSeconds.count, 1);

    const alice = await api(world, 'GET', '/v1/stats', { as: ALICE });
    assert.deepEqual(alice.body.projects, ['vision']);
    assert.equal(alice.body.totalJobs, 2);
    assert.deepEqual(Object.keys(alice.body.byProject), ['vision']);
    assert.deepEqual(Object.keys(alice.body.byPool), ['local']);
    assert.equal((await api(world, 'GET', '/v1/stats', { as: ALICE, query: { project: 'vision' } })).body.totalJobs, 2);
    expectStatus(await api(world, 'GET', '/v1/stats', { as: ALICE, query: { project: 'audio' } }), 404, 'not_found');
    expectStatus(await api(world, 'GET', '/v1/stats', { as: BOB, query: { project: 'vision' } }), 404, 'not_found');

    const onlyAudio = await api(world, 'GET', '/v1/stats', { as: ROOT, query: { project: 'audio' } });
    assert.deepEqual(onlyAudio.body.projects, ['audio']);
    assert.deepEqual(Object.keys(onlyAudio.body.byProject), ['audio']);
    assert.equal(onlyAudio.body.totalJobs, 1);
  });
});
