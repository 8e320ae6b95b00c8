/**
 * `/v1/quotas`, `/v1/pools` and `/v1/stats` through the API handler, over
 * DynamoDB Local and the real ASL (local workflows, real processes): every
 * route for every role, limits changed under running and waiting jobs, drains
 * in the same request, and no overshoot while limits change under a burst of
 * submits.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoLimits } from '../../lambdas/adapters/dynamo/dynamo-limits.js';
import { DynamoReconcileStore } from '../../lambdas/adapters/dynamo/dynamo-reconcile-store.js';
import type { TableNames } from '../../lambdas/adapters/dynamo/table-names.js';
import { HOLDING_STATES, JobState, type Job } from '../../lambdas/core/job.js';
import { forecastBounds } from '../../lambdas/core/forecast.js';
import { drainPool } from '../../lambdas/core/admission.js';
import { createApiHandler } from '../../lambdas/handlers/http/api.js';
import { template, waitFor, waitForState, worldPerTest, type World } from '../support/harness.js';
import { apiEvent, invokeApi, type ApiRequest, type ApiResponse, type Claims } from '../support/api-calls.js';
import { fieldsOf } from '../support/api-errors.js';

const ROOT: Claims = { sub: 'root', 'cognito:groups': ['admin'] };
const ALICE: Claims = { sub: 'alice', 'cognito:groups': ['vision'] };
const BOB: Claims = { sub: 'bob', 'cognito:groups': ['audio'] };

const TEMPLATES = [
  template({ name: 'sleep', command: ['sleep', '30'] }),
  template({ name: 'audio-sleep', project: 'audio', pool: 'spare', command: ['sleep', '30'] }),
];

const setup = worldPerTest({
  pools: [
    { name: 'local', gpus: 4 },
    { name: 'spare', gpus: 2 },
  ],
  templates: TEMPLATES,
});

/** The API Lambda over the world's deps, as `options.as` (default alice, her groups as a list). */
const api = (world: World, method: string, path: string, options: ApiRequest = {}): Promise<ApiResponse> =>
  invokeApi(
    createApiHandler(() => world.deps),
    apiEvent(method, path, { ...options, as: options.as ?? ALICE }),
  );

function expectStatus(response: ApiResponse, status: number, code?: string): void {
  assert.equal(response.status, status, JSON.stringify(response.body));
  if (code) assert.equal(response.body.error.code, code);
}

async function submit(world: World, as: Claims = ALICE, templateName = 'sleep'): Promise<Job> {
  const response = await api(world, 'POST', '/v1/jobs', { as, body: { template: templateName } });
  expectStatus(response, 202);
  return response.body;
}

async function limit(
  world: World,
  project: string,
  resource: 'gpus' | 'jobs' | 'templates',
  hardLimit: number,
): Promise<void> {
  expectStatus(await api(world, 'POST', '/v1/quotas', { as: ROOT, body: { project, resource, hardLimit } }), 201);
}

/** A counter as stored, `available` included (the API shows only `used`), read the way the reconciler reads it. */
async function counter(world: World, project?: string): Promise<{ used: number; available: number; limit: number }> {
  const { doc, tables } = storeInternals(world);
  const rows = await new DynamoReconcileStore(doc, tables).listCounters();
  const row = rows.find((r) =>
    project
      ? r.ref.kind === 'quota' && r.ref.project === project && r.ref.resource === 'gpus'
      : r.ref.kind === 'pool' && r.ref.pool === 'local',
  );
  assert.ok(row, `counter ${project ?? 'pool local'}`);
  return { used: row.used ?? 0, available: row.available ?? 0, limit: row.limit ?? Number.NaN };
}

/** The store keeps its client and table names to itself; these tests read beside it. */
function storeInternals(world: World): { doc: DynamoDBDocumentClient; tables: TableNames } {
  return world.store as unknown as { doc: DynamoDBDocumentClient; tables: TableNames };
}

const isHolding = (job: Job | undefined) => job !== undefined && HOLDING_STATES.includes(job.state);

/** Every page of a list, following nextToken. */
async function allPages(
  world: World,
  path: string,
  as: Claims,
  pageSize: number,
): Promise<{ items: any[]; pages: number }> {
  const items: any[] = [];
  let pages = 0;
  let nextToken: string | undefined;
  do {
    const response = await api(world, 'GET', path, {
      as,
      query: { limit: String(pageSize), ...(nextToken ? { nextToken } : {}) },
    });
    expectStatus(response, 200);
    assert.ok(response.body.items.length <= pageSize);
    items.push(...response.body.items);
    nextToken = response.body.nextToken;
    pages += 1;
  } while (nextToken);
  return { items, pages };
}

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
