/**
 * Rows of the authorization matrix (test/integration/authorization-matrix.test.ts): templates and images.
 * Each row: route, expected statuses for [admin, member A, member B, no project, no token], written by
 * hand from docs/api.md's tables and the access table of lambdas/core/identity.ts; not derived from the
 * routes' metadata.
 */
import assert from 'node:assert/strict';
import { IMAGE } from './harness.js';
import {
  A,
  B,
  DIGEST,
  TEMPLATE_BODY,
  fixture,
  listCheck,
  newPublicTemplate,
  newTemplateOfA,
  templateRecord,
  unique,
  w,
  type Row,
} from './authorization.js';

export const CATALOG_ROWS: Row[] = [
  // Templates: a project's by its members, public ones read by anyone signed in, written by admins.
  {
    route: 'POST /v1/templates',
    variant: 'of project A',
    expected: [201, 201, 403, 403, 401],
    request: () => ({ path: '/v1/templates', body: { ...TEMPLATE_BODY, name: unique('new-a'), project: A } }),
    affected: async (r) =>
      (await w.catalog.listTemplates()).filter((t) => t.name === (r.body as { name: string }).name),
  },
  {
    route: 'POST /v1/templates',
    variant: 'public',
    expected: [201, 403, 403, 403, 401],
    request: () => ({ path: '/v1/templates', body: { ...TEMPLATE_BODY, name: unique('new-pub'), public: true } }),
    affected: async (r) =>
      (await w.catalog.listTemplates()).filter((t) => t.name === (r.body as { name: string }).name),
  },
  {
    route: 'GET /v1/templates',
    expected: [200, 200, 200, 200, 401],
    request: () => ({ path: '/v1/templates?limit=1000' }),
    check: listCheck(
      (t) => t.id,
      () => ({
        admin: { has: [fixture.templateA, fixture.templateB, fixture.publicTemplate], hasNot: [], projects: [A, B] },
        memberA: { has: [fixture.templateA, fixture.publicTemplate], hasNot: [fixture.templateB], projects: [A] },
        memberB: { has: [fixture.templateB, fixture.publicTemplate], hasNot: [fixture.templateA], projects: [B] },
        noProject: { has: [fixture.publicTemplate], hasNot: [fixture.templateA, fixture.templateB], projects: [] },
      }),
    ),
  },
  {
    route: 'GET /v1/templates',
    variant: '?project=A',
    expected: [200, 200, 200, 200, 401],
    request: () => ({ path: `/v1/templates?project=${A}&limit=1000` }),
    check: listCheck(
      (t) => t.id,
      () => ({
        admin: { has: [fixture.templateA], hasNot: [fixture.templateB], projects: [A] },
        memberA: { has: [fixture.templateA], hasNot: [fixture.templateB], projects: [A] },
        memberB: { has: [], hasNot: [fixture.templateA], projects: [] },
        noProject: { has: [], hasNot: [fixture.templateA], projects: [] },
      }),
    ),
  },
  {
    route: 'GET /v1/templates/{id}',
    variant: "A's, by id",
    ownedByA: true,
    expected: [200, 200, 404, 404, 401],
    request: () => ({ path: `/v1/templates/${fixture.templateA}` }),
  },
  {
    route: 'GET /v1/templates/{id}',
    variant: "A's, by name",
    ownedByA: true,
    expected: [200, 200, 404, 404, 401],
    request: () => ({ path: '/v1/templates/a-train' }),
  },
  {
    route: 'GET /v1/templates/{id}',
    variant: "A's, by name with ?project=A",
    ownedByA: true,
    expected: [200, 200, 404, 404, 401],
    request: () => ({ path: `/v1/templates/a-train?project=${A}` }),
  },
  {
    route: 'GET /v1/templates/{id}',
    variant: 'public',
    expected: [200, 200, 200, 200, 401],
    request: () => ({ path: `/v1/templates/${fixture.publicTemplate}` }),
  },
  {
    route: 'PATCH /v1/templates/{id}',
    variant: "A's",
    ownedByA: true,
    expected: [200, 200, 404, 404, 401],
    request: (role) => ({ path: `/v1/templates/${fixture.templateA}`, body: { env: { CHANGED_BY: role } } }),
    affected: () => templateRecord(fixture.templateA),
  },
  {
    route: 'PATCH /v1/templates/{id}',
    variant: 'public',
    expected: [200, 403, 403, 403, 401],
    request: (role) => ({ path: `/v1/templates/${fixture.publicTemplate}`, body: { env: { CHANGED_BY: role } } }),
    affected: () => templateRecord(fixture.publicTemplate),
  },
  {
    route: 'DELETE /v1/templates/{id}',
    variant: "A's",
    ownedByA: true,
    expected: [204, 204, 404, 404, 401],
    request: async () => ({ path: `/v1/templates/${await newTemplateOfA()}` }),
    affected: (r) => templateRecord(r.path.split('/')[3]),
  },
  {
    route: 'DELETE /v1/templates/{id}',
    variant: 'public',
    expected: [204, 403, 403, 403, 401],
    request: async () => ({ path: `/v1/templates/${await newPublicTemplate()}` }),
    affected: (r) => templateRecord(r.path.split('/')[3]),
  },

  // Images: admins add, anyone signed in reads.
  {
    route: 'POST /v1/images',
    expected: [201, 403, 403, 403, 401],
    request: () => ({
      path: '/v1/images',
      body: { name: unique('img'), reference: 'docker.io/library/alpine:3.20', digest: DIGEST },
    }),
    affected: (r) => w.catalog.getImage((r.body as { name: string }).name),
  },
  {
    route: 'GET /v1/images',
    expected: [200, 200, 200, 200, 401],
    request: () => ({ path: '/v1/images' }),
    check: (_, body) => assert.ok(body.items.some((i: { name: string }) => i.name === IMAGE.name)),
  },
  {
    route: 'GET /v1/images/{name}',
    expected: [200, 200, 200, 200, 401],
    request: () => ({ path: `/v1/images/${IMAGE.name}` }),
  },
];
