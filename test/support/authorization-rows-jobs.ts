/**
 * Rows of the authorization matrix (test/integration/authorization-matrix.test.ts): the service routes,
 * jobs, inside a running job (exec, sessions) and outputs. Each row: route, expected statuses for
 * [admin, member A, member B, no project, no token], written by hand from docs/api.md's tables and the
 * access table of lambdas/core/identity.ts; not derived from the routes' metadata.
 */
import assert from 'node:assert/strict';
import {
  A,
  B,
  EXEC_COMMAND,
  OUTPUT,
  execAffected,
  fixture,
  jobRecord,
  listCheck,
  newJobOfA,
  runDir,
  unique,
  w,
  type Row,
} from './authorization.js';

export const JOB_ROWS: Row[] = [
  // Service: anyone.
  { route: 'GET /', expected: [200, 200, 200, 200, 200], request: () => ({ path: '/' }) },
  { route: 'GET /v1', expected: [200, 200, 200, 200, 200], request: () => ({ path: '/v1' }) },
  { route: 'GET /v1/health', expected: [200, 200, 200, 200, 200], request: () => ({ path: '/v1/health' }) },
  { route: 'GET /v1/openapi.json', expected: [200, 200, 200, 200, 200], request: () => ({ path: '/v1/openapi.json' }) },

  // Jobs: members of the job's project; admins everything.
  {
    route: 'POST /v1/jobs',
    variant:
      "naming project A in the body (a project the token does not name is a 403: the project's name is no secret)",
    expected: [202, 202, 403, 403, 401],
    request: () => ({ path: '/v1/jobs', body: { template: 'a-train', project: A, name: unique('named-a') } }),
    affected: async (r) =>
      (await w.store.listJobs({ projects: undefined }, { limit: 1000 })).items.filter(
        (j) => j.name === (r.body as { name: string }).name,
      ),
  },
  {
    route: 'POST /v1/jobs',
    variant:
      "by A's template id, no project: to B and to nobody it is no template at all (400 naming template, as for one that does not exist)",
    expected: [202, 202, 400, 400, 401],
    request: () => ({ path: '/v1/jobs', body: { template: fixture.templateA, name: unique('by-id') } }),
    affected: async (r) =>
      (await w.store.listJobs({ projects: undefined }, { limit: 1000 })).items.filter(
        (j) => j.name === (r.body as { name: string }).name,
      ),
    check: (role, body) => assert.equal(body.project, A, `${role}'s job belongs to the template's project`),
  },
  {
    route: 'POST /v1/jobs',
    variant: 'of the public template, no project: runs in the caller’s only project; without one, 400 naming project',
    expected: [400, 202, 202, 400, 401],
    request: () => ({ path: '/v1/jobs', body: { template: 'shared', name: unique('public') } }),
    affected: async (r) =>
      (await w.store.listJobs({ projects: undefined }, { limit: 1000 })).items.filter(
        (j) => j.name === (r.body as { name: string }).name,
      ),
    check: (role, body) => assert.equal(body.project, role === 'memberA' ? A : B),
  },
  {
    route: 'GET /v1/jobs',
    expected: [200, 200, 200, 200, 401],
    request: () => ({ path: '/v1/jobs' }),
    check: listCheck(
      (j) => j.id,
      () => ({
        admin: { has: [fixture.jobA, fixture.jobB], hasNot: [], projects: [A, B] },
        memberA: { has: [fixture.jobA], hasNot: [fixture.jobB], projects: [A] },
        memberB: { has: [fixture.jobB], hasNot: [fixture.jobA], projects: [B] },
        noProject: { has: [], hasNot: [fixture.jobA, fixture.jobB], projects: [] },
      }),
    ),
  },
  {
    route: 'GET /v1/jobs',
    variant: '?project=A: an empty list for those outside A',
    expected: [200, 200, 200, 200, 401],
    request: () => ({ path: `/v1/jobs?project=${A}` }),
    check: listCheck(
      (j) => j.id,
      () => ({
        admin: { has: [fixture.jobA], hasNot: [fixture.jobB], projects: [A] },
        memberA: { has: [fixture.jobA], hasNot: [fixture.jobB], projects: [A] },
        memberB: { has: [], hasNot: [fixture.jobA], projects: [] },
        noProject: { has: [], hasNot: [fixture.jobA], projects: [] },
      }),
    ),
  },
  {
    route: 'GET /v1/jobs/{id}',
    ownedByA: true,
    expected: [200, 200, 404, 404, 401],
    request: () => ({ path: `/v1/jobs/${fixture.jobA}` }),
    check: (_, body) => assert.equal(body.id, fixture.jobA),
  },
  {
    route: 'PATCH /v1/jobs/{id}',
    ownedByA: true,
    expected: [200, 200, 404, 404, 401],
    request: async () => ({ path: `/v1/jobs/${await newJobOfA()}`, body: { name: 'renamed', liveTimeoutMinutes: 30 } }),
    affected: (r) => jobRecord(r.path.split('/')[3]),
    check: (_, body) => assert.deepEqual([body.name, body.liveTimeoutMinutes], ['renamed', 30]),
  },
  {
    route: 'DELETE /v1/jobs/{id}',
    variant: 'an active job: cancelled',
    ownedByA: true,
    expected: [202, 202, 404, 404, 401],
    request: async () => ({ path: `/v1/jobs/${await newJobOfA()}` }),
    affected: (r) => jobRecord(r.path.split('/')[3]),
    check: (_, body) => assert.equal(body.state, 'CANCELLED'),
  },
  {
    route: 'GET /v1/jobs/{id}/logs',
    ownedByA: true,
    expected: [200, 200, 404, 404, 401],
    request: () => ({ path: `/v1/jobs/${fixture.jobA}/logs?tail=10` }),
    check: (_, body) => assert.deepEqual([body.jobId, body.lines], [fixture.jobA, []]),
  },

  // Inside a running job (core/exec.ts): its owner and admins; another member of its project 403; not RUNNING 409.
  {
    route: 'POST /v1/jobs/{id}/exec',
    variant: "A's RUNNING job, submitted by member A",
    ownedByA: true,
    expected: [200, 200, 404, 404, 401],
    request: () => ({ path: `/v1/jobs/${fixture.runningA}/exec`, body: { command: EXEC_COMMAND } }),
    affected: execAffected,
    check: (_, body) =>
      assert.deepEqual([body.exitCode, body.stdout, body.timedOut], [0, `ran in ${fixture.runningA}\n`, false]),
  },
  {
    route: 'POST /v1/jobs/{id}/exec',
    variant: "A's RUNNING job, submitted by the admin: member A is not its owner",
    ownedByA: true,
    expected: [200, 403, 404, 404, 401],
    request: () => ({ path: `/v1/jobs/${fixture.runningAdminsA}/exec`, body: { command: EXEC_COMMAND } }),
    affected: execAffected,
    check: (_, body) => assert.equal(body.stdout, `ran in ${fixture.runningAdminsA}\n`),
  },
  {
    route: 'POST /v1/jobs/{id}/exec',
    variant: "A's job that is not RUNNING (submitted, and nothing here starts it)",
    ownedByA: true,
    expected: [409, 409, 404, 404, 401],
    request: () => ({ path: `/v1/jobs/${fixture.jobA}/exec`, body: { command: EXEC_COMMAND } }),
    affected: execAffected,
  },
  {
    route: 'POST /v1/jobs/{id}/session',
    variant: "a shell in A's RUNNING job, submitted by member A",
    ownedByA: true,
    expected: [200, 200, 404, 404, 401],
    request: () => ({ path: `/v1/jobs/${fixture.runningA}/session`, body: { kind: 'shell' } }),
    affected: execAffected,
    check: (_, body) =>
      assert.deepEqual(
        [body.runtime, body.kind, body.cwd, body.env.FLARE_JOB_ID],
        ['local', 'shell', runDir(fixture.runningA), fixture.runningA],
      ),
  },
  {
    route: 'POST /v1/jobs/{id}/session',
    variant: "a port forward into A's RUNNING job, submitted by the admin: member A is not its owner",
    ownedByA: true,
    expected: [200, 403, 404, 404, 401],
    request: () => ({ path: `/v1/jobs/${fixture.runningAdminsA}/session`, body: { kind: 'port-forward', port: 8888 } }),
    affected: execAffected,
    check: (_, body) =>
      assert.deepEqual(body, { runtime: 'local', kind: 'port-forward', host: '127.0.0.1', port: 8888 }),
  },
  {
    route: 'POST /v1/jobs/{id}/session',
    variant: "A's job that is not RUNNING (submitted, and nothing here starts it)",
    ownedByA: true,
    expected: [409, 409, 404, 404, 401],
    request: () => ({ path: `/v1/jobs/${fixture.jobA}/session`, body: { kind: 'shell' } }),
    affected: execAffected,
  },

  // Outputs: members of the job's project; admins everything.
  {
    route: 'GET /v1/jobs/{id}/outputs',
    ownedByA: true,
    expected: [200, 200, 404, 404, 401],
    request: () => ({ path: `/v1/jobs/${fixture.jobA}/outputs` }),
    check: (_, body) =>
      assert.deepEqual(
        body.items.map((f: { path: string; size: number }) => [f.path, f.size]),
        [[OUTPUT.path, OUTPUT.text.length]],
      ),
  },
  {
    route: 'GET /v1/jobs/{id}/outputs/{path+}',
    ownedByA: true,
    expected: [200, 200, 404, 404, 401],
    request: () => ({ path: `/v1/jobs/${fixture.jobA}/outputs/${OUTPUT.path}` }),
    check: (_, body) => assert.equal(body, OUTPUT.text),
  },
];
