/**
 * Rows of the authorization matrix (test/integration/authorization-matrix.test.ts): quotas, secrets, pools
 * and stats. Each row: route, expected statuses for [admin, member A, member B, no project, no token],
 * written by hand from docs/api.md's tables and the access table of lambdas/core/identity.ts; not derived
 * from the routes' metadata.
 */
import assert from 'node:assert/strict';
import { A, B, listCheck, quotaRecord, secretsOfA, unique, w, type Row, type Role } from './authorization.js';

/** The project of the last `POST /v1/quotas` for a project that does not exist. */
let ghost = '';

export const PROJECT_ROWS: Row[] = [
  // Quotas: admins write, members read their own projects'.
  {
    route: 'POST /v1/quotas',
    variant: 'for project A (admins only: the same 403 to every member, whatever the project)',
    expected: [201, 403, 403, 403, 401],
    request: async () => {
      await w.store.removeQuotaLimit(A, 'templates');
      return { path: '/v1/quotas', body: { project: A, resource: 'templates', hardLimit: 10 } };
    },
    affected: () => quotaRecord(A, 'templates'),
  },
  {
    route: 'POST /v1/quotas',
    variant: 'for a project that does not exist (answered as for A: a member learns nothing of which projects exist)',
    expected: [201, 403, 403, 403, 401],
    request: async (role) => {
      // The admin's limit is taken away again before the next caller, so that no list shows the ghost project.
      if (role !== 'admin') await w.store.removeQuotaLimit(ghost, 'gpus');
      ghost = unique('ghost');
      return { path: '/v1/quotas', body: { project: ghost, resource: 'gpus', hardLimit: 2 } };
    },
    affected: (r) => quotaRecord((r.body as { project: string }).project, 'gpus'),
  },
  {
    route: 'GET /v1/quotas',
    expected: [200, 200, 200, 200, 401],
    request: () => ({ path: '/v1/quotas' }),
    check: listCheck(
      (q) => `${q.project}/${q.resource}`,
      () => ({
        admin: { has: [`${A}/gpus`, `${A}/jobs`, `${B}/gpus`], hasNot: [], projects: [A, B] },
        memberA: { has: [`${A}/gpus`, `${A}/jobs`], hasNot: [`${B}/gpus`], projects: [A] },
        memberB: { has: [`${B}/gpus`], hasNot: [`${A}/gpus`, `${A}/jobs`], projects: [B] },
        noProject: { has: [], hasNot: [`${A}/gpus`, `${B}/gpus`], projects: [] },
      }),
    ),
  },
  {
    route: 'GET /v1/quotas',
    variant: '?project=A',
    expected: [200, 200, 200, 200, 401],
    request: () => ({ path: `/v1/quotas?project=${A}` }),
    check: listCheck(
      (q) => `${q.project}/${q.resource}`,
      () => ({
        admin: { has: [`${A}/gpus`], hasNot: [`${B}/gpus`], projects: [A] },
        memberA: { has: [`${A}/gpus`], hasNot: [`${B}/gpus`], projects: [A] },
        memberB: { has: [], hasNot: [`${A}/gpus`], projects: [] },
        noProject: { has: [], hasNot: [`${A}/gpus`], projects: [] },
      }),
    ),
  },
  {
    route: 'GET /v1/quotas/{project}/{resource}',
    ownedByA: true,
    expected: [200, 200, 404, 404, 401],
    request: () => ({ path: `/v1/quotas/${A}/gpus` }),
    check: (_, body) => assert.equal(body.hardLimit, 8),
  },
  {
    route: 'PATCH /v1/quotas/{project}/{resource}',
    ownedByA: true,
    expected: [200, 403, 404, 404, 401],
    request: () => ({ path: `/v1/quotas/${A}/jobs`, body: { hardLimit: 100 } }),
    affected: () => quotaRecord(A, 'jobs'),
  },
  {
    route: 'DELETE /v1/quotas/{project}/{resource}',
    ownedByA: true,
    expected: [204, 403, 404, 404, 401],
    request: async () => {
      await w.store.putQuota({ project: A, resource: 'templates', hardLimit: 10 });
      return { path: `/v1/quotas/${A}/templates` };
    },
    affected: () => quotaRecord(A, 'templates'),
  },

  // Secrets: members of the project (and admins) write and list names; no route reads a value.
  {
    route: 'PUT /v1/projects/{project}/secrets/{name}',
    ownedByA: true,
    expected: [204, 204, 404, 404, 401],
    request: () => ({ path: `/v1/projects/${A}/secrets/token`, body: { value: unique('value') } }),
    affected: () => secretsOfA(),
  },
  {
    route: 'GET /v1/projects/{project}/secrets',
    ownedByA: true,
    expected: [200, 200, 404, 404, 401],
    request: () => ({ path: `/v1/projects/${A}/secrets` }),
    check: (_, body) => assert.ok(body.items.every((s: object) => !('value' in s))),
  },
  {
    route: 'DELETE /v1/projects/{project}/secrets/{name}',
    ownedByA: true,
    expected: [204, 204, 404, 404, 401],
    request: async () => {
      await w.deps.secrets!.put(A, 'doomed', 'v', new Date().toISOString());
      return { path: `/v1/projects/${A}/secrets/doomed` };
    },
    affected: () => secretsOfA(),
  },

  // Pools: anyone signed in reads, admins change caps.
  {
    route: 'GET /v1/pools',
    expected: [200, 200, 200, 200, 401],
    request: () => ({ path: '/v1/pools' }),
    check: (_, body) =>
      assert.deepEqual(
        body.items.map((p: { name: string }) => p.name),
        ['local'],
      ),
  },
  {
    route: 'GET /v1/pools/{name}/history',
    expected: [200, 200, 200, 200, 401],
    request: () => ({ path: '/v1/pools/local/history' }),
    // Others' projects are summed unnamed: a member never learns another project's name here.
    check: (role, body) => {
      const named = body.series
        .map((s: { project: string }) => s.project)
        .filter((p: string) => p !== '(other projects)');
      const visible: string[] = { admin: [A, B], memberA: [A], memberB: [B], noProject: [] }[
        role as Exclude<Role, 'anonymous'>
      ];
      assert.ok(
        named.every((p: string) => visible.includes(p)),
        `${role} sees ${named.join(', ')}`,
      );
    },
  },
  {
    route: 'PATCH /v1/pools/{name}',
    expected: [200, 403, 403, 403, 401],
    request: () => ({ path: '/v1/pools/local', body: { maxGpus: 4 } }),
    affected: () => w.store.getPool('local'),
  },

  // Stats: members their projects', admins all.
  {
    route: 'GET /v1/stats',
    expected: [200, 200, 200, 200, 401],
    request: () => ({ path: '/v1/stats' }),
    check: (role, body) => {
      const projects = Object.keys(body.byProject);
      const wanted = { admin: [A, B], memberA: [A], memberB: [B], noProject: [] }[role as Exclude<Role, 'anonymous'>];
      assert.deepEqual(projects.sort(), [...wanted].sort(), `${role} sees the figures of ${projects.join(', ')}`);
      if (role === 'noProject') assert.equal(body.totalJobs, 0);
    },
  },
  {
    route: 'GET /v1/stats',
    variant: '?project=A',
    ownedByA: true,
    expected: [200, 200, 404, 404, 401],
    request: () => ({ path: `/v1/stats?project=${A}` }),
    check: (_, body) => assert.deepEqual(Object.keys(body.byProject), [A]),
  },
];
