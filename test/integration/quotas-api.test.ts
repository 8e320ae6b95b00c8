/**
 * `/v1/quotas` through the API handler, over DynamoDB Local and the real ASL (local workflows, real
 * processes): every route for every role.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DynamoLimits } from '../../lambdas/adapters/dynamo/dynamo-limits.js';
import { JobState } from '../../lambdas/core/job.js';
import { waitForState } from '../support/harness.js';
import { fieldsOf } from '../support/api-errors.js';
import { ALICE, BOB, ROOT } from '../support/limits-api.js';
import { allPages, api, expectStatus, limit, limitsWorld, storeInternals, submit } from '../support/limits-api.js';

const setup = limitsWorld();

describe('quotas API', () => {
  it('POST: an admin creates a limit (201, Location) that counts the usage so far; a second one is a 409', async () => {
    const world = await setup();
    const running = await submit(world);
    await waitForState(world.store, running.id, [JobState.RUNNING]);

    const created = await api(world, 'POST', '/v1/quotas', {
      as: ROOT,
      body: { project: 'vision', resource: 'gpus', hardLimit: 3 },
    });
    expectStatus(created, 201);
    assert.deepEqual(created.body, { project: 'vision', resource: 'gpus', hardLimit: 3, used: 1 });
    assert.equal(created.headers.location, '/v1/quotas/vision/gpus');
    assert.deepEqual((await api(world, 'GET', created.headers.location, { as: ROOT })).body, created.body);

    const again = await api(world, 'POST', '/v1/quotas', {
      as: ROOT,
      body: { project: 'vision', resource: 'gpus', hardLimit: 9 },
    });
    expectStatus(again, 409, 'conflict');
    assert.match(again.body.error.message, /already has a gpus limit/);
    assert.equal((await world.store.getQuota('vision', 'gpus'))?.hardLimit, 3, 'the first limit stands');
  });

  it('POST: a member may not create one, and gets the same 403 for their project, another and one that does not exist; nothing is stored', async () => {
    const world = await setup();
    for (const project of ['vision', 'audio', 'nowhere']) {
      expectStatus(
        await api(world, 'POST', '/v1/quotas', { as: ALICE, body: { project, resource: 'gpus', hardLimit: 100 } }),
        403,
        'forbidden',
      );
      assert.equal(await world.store.getQuota(project, 'gpus'), undefined);
    }
  });

  it('POST: bad input is a 400 naming every bad field, and nothing is stored', async () => {
    const world = await setup();
    const bad = await api(world, 'POST', '/v1/quotas', {
      as: ROOT,
      body: { project: 'Vision!', resource: 'disks', hardLimit: -1, privileged: true },
    });
    expectStatus(bad, 400, 'validation_error');
    assert.deepEqual(fieldsOf(bad), ['hardLimit', 'privileged', 'project', 'resource']);
    for (const hardLimit of [1.5, '2', null, 1e12]) {
      const response = await api(world, 'POST', '/v1/quotas', {
        as: ROOT,
        body: { project: 'vision', resource: 'gpus', hardLimit },
      });
      expectStatus(response, 400, 'validation_error');
      assert.deepEqual(fieldsOf(response), ['hardLimit'], `hardLimit ${hardLimit}`);
    }
    assert.deepEqual(
      (await world.store.listQuotas()).filter((q) => q.hardLimit !== undefined),
      [],
    );
    // Zero is a limit: nothing of that resource at all.
    expectStatus(
      await api(world, 'POST', '/v1/quotas', { as: ROOT, body: { project: 'vision', resource: 'jobs', hardLimit: 0 } }),
      201,
    );
    expectStatus(
      await api(world, 'POST', '/v1/jobs', { as: ALICE, body: { template: 'sleep' } }),
      429,
      'quota_exceeded',
    );
  });

  it('GET one: members of the project and admins; another project or no limit is a 404', async () => {
    const world = await setup();
    await limit(world, 'vision', 'gpus', 2);
    await limit(world, 'audio', 'jobs', 5);
    assert.deepEqual((await api(world, 'GET', '/v1/quotas/vision/gpus', { as: ALICE })).body, {
      project: 'vision',
      resource: 'gpus',
      hardLimit: 2,
      used: 0,
    });
    assert.deepEqual((await api(world, 'GET', '/v1/quotas/audio/jobs', { as: ROOT })).body, {
      project: 'audio',
      resource: 'jobs',
      hardLimit: 5,
      used: 0,
    });
    expectStatus(await api(world, 'GET', '/v1/quotas/audio/jobs', { as: ALICE }), 404, 'not_found');
    expectStatus(await api(world, 'GET', '/v1/quotas/vision/gpus', { as: BOB }), 404, 'not_found');
    expectStatus(await api(world, 'GET', '/v1/quotas/vision/templates', { as: ALICE }), 404, 'not_found');
    // Usage is counted without a limit, but a counter is not a quota.
    await submit(world);
    assert.equal((await world.store.getQuota('vision', 'jobs'))?.used, 1);
    expectStatus(await api(world, 'GET', '/v1/quotas/vision/jobs', { as: ROOT }), 404, 'not_found');
    const bad = await api(world, 'GET', '/v1/quotas/vision/disks', { as: ROOT });
    expectStatus(bad, 400, 'validation_error');
    assert.deepEqual(fieldsOf(bad), ['resource']);
  });

  it('GET list: members see their projects, admins all (or ?project=), paginated without repeats', async () => {
    const world = await setup();
    const projects = ['audio', 'p-1', 'p.2', 'p3', 'vision'];
    for (const project of projects)
      for (const resource of ['gpus', 'jobs', 'templates'] as const) await limit(world, project, resource, 7);
    await submit(world); // a vision job: `jobs` used is live in the list

    const everything = await allPages(world, '/v1/quotas', ROOT, 4);
    assert.equal(everything.pages, 4);
    const keys = everything.items.map((q) => `${q.project}/${q.resource}`);
    assert.equal(new Set(keys).size, keys.length, 'no repeats');
    assert.deepEqual(
      keys,
      projects.flatMap((p) => ['gpus', 'jobs', 'templates'].map((r) => `${p}/${r}`)),
    );
    assert.equal(everything.items.find((q) => q.project === 'vision' && q.resource === 'jobs').used, 1);

    const alice = await api(world, 'GET', '/v1/quotas', { as: ALICE });
    assert.deepEqual(
      alice.body.items.map((q: { project: string; resource: string }) => `${q.project}/${q.resource}`),
      ['vision/gpus', 'vision/jobs', 'vision/templates'],
    );
    assert.equal(alice.body.nextToken, undefined);
    assert.deepEqual(
      (await api(world, 'GET', '/v1/quotas', { as: ALICE, query: { project: 'audio' } })).body.items,
      [],
    );
    const p3 = await api(world, 'GET', '/v1/quotas', { as: ROOT, query: { project: 'p3' } });
    assert.deepEqual(
      p3.body.items.map((q: { project: string }) => q.project),
      ['p3', 'p3', 'p3'],
    );

    expectStatus(await api(world, 'GET', '/v1/quotas', { as: ROOT, query: { limit: '0' } }), 400, 'validation_error');
    const token = await api(world, 'GET', '/v1/quotas', { as: ROOT, query: { nextToken: 'not-a-token' } });
    expectStatus(token, 400, 'validation_error');
    assert.deepEqual(fieldsOf(token), ['nextToken']);
  });

  it('PATCH: admins only (own project 403, another 404), 404 without a limit, bad input 400', async () => {
    const world = await setup();
    await limit(world, 'vision', 'gpus', 2);
    expectStatus(
      await api(world, 'PATCH', '/v1/quotas/vision/gpus', { as: ALICE, body: { hardLimit: 50 } }),
      403,
      'forbidden',
    );
    expectStatus(
      await api(world, 'PATCH', '/v1/quotas/vision/gpus', { as: BOB, body: { hardLimit: 50 } }),
      404,
      'not_found',
    );
    assert.equal((await world.store.getQuota('vision', 'gpus'))?.hardLimit, 2);

    expectStatus(
      await api(world, 'PATCH', '/v1/quotas/audio/gpus', { as: ROOT, body: { hardLimit: 4 } }),
      404,
      'not_found',
    );
    assert.equal(
      (await world.store.getQuota('audio', 'gpus'))?.hardLimit,
      undefined,
      'a PATCH does not create a limit',
    );

    const bad = await api(world, 'PATCH', '/v1/quotas/vision/gpus', {
      as: ROOT,
      body: { hardLimit: -2, project: 'audio' },
    });
    expectStatus(bad, 400, 'validation_error');
    assert.deepEqual(fieldsOf(bad), ['hardLimit', 'project']);

    const changed = await api(world, 'PATCH', '/v1/quotas/vision/gpus', { as: ROOT, body: { hardLimit: 5 } });
    expectStatus(changed, 200);
    assert.deepEqual(changed.body, { project: 'vision', resource: 'gpus', hardLimit: 5, used: 0 });
  });

  it('DELETE: admins only; the project is unlimited again, usage still counted, the limit gone from GET and the list', async () => {
    const world = await setup();
    await limit(world, 'vision', 'jobs', 1);
    await submit(world);
    expectStatus(
      await api(world, 'POST', '/v1/jobs', { as: ALICE, body: { template: 'sleep' } }),
      429,
      'quota_exceeded',
    );

    expectStatus(await api(world, 'DELETE', '/v1/quotas/vision/jobs', { as: ALICE }), 403, 'forbidden');
    expectStatus(await api(world, 'DELETE', '/v1/quotas/vision/jobs', { as: BOB }), 404, 'not_found');
    const removed = await api(world, 'DELETE', '/v1/quotas/vision/jobs', { as: ROOT });
    expectStatus(removed, 204);
    assert.equal(removed.body, undefined);

    expectStatus(await api(world, 'GET', '/v1/quotas/vision/jobs', { as: ROOT }), 404, 'not_found');
    assert.deepEqual((await api(world, 'GET', '/v1/quotas', { as: ROOT })).body.items, []);
    expectStatus(await api(world, 'DELETE', '/v1/quotas/vision/jobs', { as: ROOT }), 404, 'not_found');

    await submit(world);
    await submit(world);
    assert.deepEqual(await world.store.getQuota('vision', 'jobs'), { project: 'vision', resource: 'jobs', used: 3 });
    // A new limit counts that usage at once.
    const again = await api(world, 'POST', '/v1/quotas', {
      as: ROOT,
      body: { project: 'vision', resource: 'jobs', hardLimit: 2 },
    });
    assert.deepEqual(again.body, { project: 'vision', resource: 'jobs', hardLimit: 2, used: 3 });
    expectStatus(
      await api(world, 'POST', '/v1/jobs', { as: ALICE, body: { template: 'sleep' } }),
      429,
      'quota_exceeded',
    );
  });
  it('DELETE: a deployment default does not come back for the project (a new process would otherwise apply it)', async () => {
    const world = await setup({ policy: { defaultQuotas: { gpus: 1 } } });
    await submit(world);
    assert.equal(
      (await api(world, 'GET', '/v1/quotas/vision/gpus', { as: ALICE })).body.hardLimit,
      1,
      'the default applied',
    );
    expectStatus(await api(world, 'DELETE', '/v1/quotas/vision/gpus', { as: ROOT }), 204);

    const { doc, tables } = storeInternals(world);
    const nextProcess = new DynamoLimits(doc, tables);
    await nextProcess.ensureDefaultQuotas('vision', { gpus: 1 });
    await nextProcess.ensureDefaultQuotas('audio', { gpus: 1 });
    assert.equal((await nextProcess.getQuota('vision', 'gpus'))?.hardLimit, undefined, 'vision stays unlimited');
    assert.equal(
      (await nextProcess.getQuota('audio', 'gpus'))?.hardLimit,
      1,
      'a project never limited still gets the default',
    );
    // An admin may limit it again, and remove that again.
    await limit(world, 'vision', 'gpus', 4);
    expectStatus(await api(world, 'DELETE', '/v1/quotas/vision/gpus', { as: ROOT }), 204);
    await new DynamoLimits(doc, tables).ensureDefaultQuotas('vision', { gpus: 1 });
    assert.equal((await world.store.getQuota('vision', 'gpus'))?.hardLimit, undefined);
  });
});
