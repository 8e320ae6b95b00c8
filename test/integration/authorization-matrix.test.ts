/**
 * Who may do what, route by route: the API Lambda behind the local API Gateway
 * stand-in (real bearer tokens, real HTTP), over DynamoDB Local. Five callers —
 * an admin, a member of project A (which owns the resources), a member of
 * project B, a user with no project, and no token at all — call every route,
 * and the status each gets is checked against the table below, written by hand.
 *
 * Besides the status: another project's resource is a 404 (never a 403 that
 * confirms it exists), a list never shows another project's items, every
 * refusal has the error shape and stores nothing (the affected records are
 * read before and after), and every route of `apiRoutes` has a row here, so a
 * new route without one fails.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execInLocalJob, localSession } from '../../lambdas/adapters/local-exec.js';
import { LocalJobLogs } from '../../lambdas/adapters/local-job-logs.js';
import { LocalOutputs } from '../../lambdas/adapters/local-outputs.js';
import { LocalSecretStore } from '../../lambdas/adapters/local-secrets.js';
import { apiRoutes, createApiHandler } from '../../lambdas/handlers/http/api.js';
import { JobState } from '../../lambdas/core/job.js';
import { startHttpServer, type HttpServer } from '../../lambdas/local/http-server.js';
import type { Compute } from '../../lambdas/ports/compute.js';
import { partialPort } from '../support/fakes.js';
import { apiWorld, IMAGE, startDynamo, template, type ApiWorld, type Dynamo } from '../support/harness.js';

const A = 'vision';
const B = 'audio';

const ROLES = ['admin', 'memberA', 'memberB', 'noProject', 'anonymous'] as const;
type Role = (typeof ROLES)[number];

const TOKENS: Record<Exclude<Role, 'anonymous'>, string> = {
  admin: 'root-token-0123456789abcdef',
  memberA: 'alice-token-0123456789abcdef',
  memberB: 'bob-token-0123456789abcdefgh',
  noProject: 'dave-token-0123456789abcdefg',
};

/** Statuses in the order of ROLES: admin, member of A, member of B, no project, no token. */
type Expected = readonly [number, number, number, number, number];

interface Request {
  path: string;
  body?: unknown;
}

interface Row {
  /** The route this row exercises, as `apiRoutes` names it. */
  route: string;
  /** What is special about this call of the route (a query, another target). */
  variant?: string;
  expected: Expected;
  /** Addresses an existing resource of project A by path: B and the user with no project must get a 404. */
  ownedByA?: boolean;
  /** The request; built per caller, so a write that succeeds for one does not change what the next one sees. */
  request(role: Role): Promise<Request> | Request;
  /** The records the call could change: read before and after, equal after a refusal. */
  affected?(request: Request): Promise<unknown>;
  /** More about a successful answer (what a list shows). */
  check?(role: Role, body: any): void;
}

const DIGEST = `sha256:${'c'.repeat(64)}`;
const TEMPLATE_BODY = { pool: 'local', image: IMAGE.name, command: ['python', 'train.py'] };

let dynamo: Dynamo;
let w: ApiWorld;
let server: HttpServer;
let logDir: string;
let seq = 0;
const unique = (prefix: string) => `${prefix}-${(seq++).toString(36)}`;
/** The project of the last `POST /v1/quotas` for a project that does not exist. */
let ghost = '';

/**
 * The fixed resources: A's and B's job, template and quota rows, a public template, an image, a pool;
 * and two jobs of A stored as RUNNING, one submitted by member A, one by the admin.
 */
const fixture = {
  jobA: '',
  jobB: '',
  templateA: '',
  templateB: '',
  publicTemplate: '',
  runningA: '',
  runningAdminsA: '',
};
/** What jobA kept of its output directory. */
const OUTPUT = { path: 'sub/result.txt', text: 'kept by jobA\n' };
/** Run by the exec rows (fixed text): a refusal must leave the job's ran.log as it was. */
const EXEC_COMMAND = ['sh', '-c', 'echo "ran in $FLARE_JOB_ID" | tee -a ran.log'];

async function call(role: Role, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {};
  if (role !== 'anonymous') headers.authorization = `Bearer ${TOKENS[role]}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  // A downloaded output file is bytes, not JSON.
  const isJson = response.headers.get('content-type')?.includes('json');
  return { status: response.status, body: text ? (isJson ? JSON.parse(text) : text) : undefined };
}

async function ok<T = any>(role: Role, method: string, path: string, body?: unknown): Promise<T> {
  const response = await call(role, method, path, body);
  assert.ok(response.status < 300, `${method} ${path} as ${role}: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body;
}

const newJobOfA = async () => (await ok('memberA', 'POST', '/v1/jobs', { template: 'a-train' })).id as string;
const newTemplateOfA = async () =>
  (await ok('memberA', 'POST', '/v1/templates', { ...TEMPLATE_BODY, name: unique('a-tmp') })).id as string;
const newPublicTemplate = async () =>
  (await ok('admin', 'POST', '/v1/templates', { ...TEMPLATE_BODY, name: unique('pub-tmp'), public: true }))
    .id as string;

const jobRecord = (id: string) => w.store.getJob(id);
/** Where the local driver would have started a job: its spec.json (local-supervisor/jobs.ts RunnerSpec) and scratch. */
const runDir = (id: string) => join(logDir, 'run', id);
/** A job's record and what exec commands run in it have written, read before and after a call. */
const execAffected = async (r: Request) => {
  const id = r.path.split('/')[3];
  return { job: await jobRecord(id), ran: await readFile(join(runDir(id), 'ran.log'), 'utf8').catch(() => '') };
};

/** The spec the local driver writes at a job's start, which its exec and session read. */
async function startedHere(id: string): Promise<void> {
  await mkdir(runDir(id), { recursive: true });
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', FLARE_JOB_ID: id };
  await writeFile(
    join(runDir(id), 'spec.json'),
    JSON.stringify({ jobId: id, argv: ['sleep', '60'], env, cwd: runDir(id) }),
  );
}

/** Nothing runs jobs here (the workflows only record their starts): stored RUNNING, as the Run step leaves it. */
async function running(id: string): Promise<string> {
  // A submit admits the job when its pool has room (LAUNCHING); it would be PENDING otherwise.
  await w.store.updateJob(id, [JobState.PENDING, JobState.WAITING, JobState.LAUNCHING], {
    state: JobState.RUNNING,
    startedAt: new Date().toISOString(),
    instanceIds: ['local'],
  });
  await startedHere(id);
  return id;
}

const secretsOfA = () => w.deps.secrets!.list(A);
const templateRecord = (id: string) => w.catalog.getTemplate(id);
const quotaRecord = (project: string, resource: 'gpus' | 'jobs' | 'templates') => w.store.getQuota(project, resource);

/** Only these projects' items in a list (a public template has none). */
function onlyProjects(items: Array<{ project?: string }>, projects: string[]): void {
  for (const item of items)
    if (item.project !== undefined)
      assert.ok(
        projects.includes(item.project),
        `a list shows an item of project ${item.project}: ${JSON.stringify(item)}`,
      );
}

/** `wanted` is read when the check runs, once the fixture's ids are known. */
function listCheck(
  ids: (item: any) => string,
  wanted: () => Record<Exclude<Role, 'anonymous'>, { has: string[]; hasNot: string[]; projects: string[] }>,
) {
  return (role: Role, body: any) => {
    assert.ok(Array.isArray(body.items), JSON.stringify(body));
    const want = wanted()[role as Exclude<Role, 'anonymous'>];
    const shown = body.items.map(ids);
    for (const id of want.has) assert.ok(shown.includes(id), `${role} should see ${id}; saw ${shown.join(', ')}`);
    for (const id of want.hasNot) assert.ok(!shown.includes(id), `${role} must not see ${id}`);
    onlyProjects(body.items, want.projects);
  };
}

/*
 * THE TABLE. Each row: route, expected statuses for
 *                     [admin, member A, member B, no project, no token]
 * Written by hand from docs/api.md's tables and the access table of
 * lambdas/core/identity.ts; not derived from the routes' metadata.
 */
const ROWS: Row[] = [
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

const CODES: Record<number, string> = {
  400: 'validation_error',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  409: 'conflict',
};

describe('authorization matrix: every route, every role', () => {
  before(async () => {
    dynamo = await startDynamo();
    w = await apiWorld(dynamo, {
      pools: [{ name: 'local', gpus: 4 }],
      templates: [
        template({ name: 'a-train', project: A }),
        template({ name: 'b-train', project: B }),
        template({ name: 'shared', project: undefined, public: true }),
      ],
    });
    logDir = await mkdtemp(join(tmpdir(), 'flare-authz-'));
    // No job runs here: its output file does not exist, which reads as no lines.
    w.deps.logs = new LocalJobLogs((id) => join(logDir, id));
    w.deps.secrets = new LocalSecretStore(logDir);
    w.deps.outputs = new LocalOutputs(logDir);
    // The local driver's exec and session, on what running() writes: real child processes.
    w.deps.compute = partialPort<Compute>('compute', {
      exec: (job, argv, limits) => execInLocalJob(runDir(job.id), job.id, argv, limits),
      session: (job, request) => localSession(runDir(job.id), job.id, request),
    });
    await w.store.putQuota({ project: A, resource: 'gpus', hardLimit: 8 });
    await w.store.putQuota({ project: A, resource: 'jobs', hardLimit: 100 });
    await w.store.putQuota({ project: B, resource: 'gpus', hardLimit: 8 });
    server = await startHttpServer({
      host: '127.0.0.1',
      port: 0,
      handler: createApiHandler(() => w.deps),
      users: [
        { name: 'root', token: TOKENS.admin, admin: true },
        { name: 'alice', token: TOKENS.memberA, projects: [A] },
        { name: 'bob', token: TOKENS.memberB, projects: [B] },
        { name: 'dave', token: TOKENS.noProject },
      ],
    });
    const templates = await w.catalog.listTemplates();
    const idOf = (name: string) => templates.find((t) => t.name === name)!.id;
    Object.assign(fixture, { templateA: idOf('a-train'), templateB: idOf('b-train'), publicTemplate: idOf('shared') });
    fixture.jobA = await newJobOfA();
    fixture.jobB = (await ok('memberB', 'POST', '/v1/jobs', { template: 'b-train' })).id;
    // jobA has a spec too: only its state refuses exec and session into it.
    await startedHere(fixture.jobA);
    fixture.runningA = await running(await newJobOfA());
    fixture.runningAdminsA = await running(
      (await ok('admin', 'POST', '/v1/jobs', { template: 'a-train', project: A })).id,
    );
    const kept = join(logDir, 'outputs', A, fixture.jobA, OUTPUT.path);
    await mkdir(join(kept, '..'), { recursive: true });
    await writeFile(kept, OUTPUT.text);
  });
  after(async () => {
    await server?.close();
    await dynamo?.local.stop();
    if (logDir) await rm(logDir, { recursive: true, force: true });
  });

  it('has a row for every route the API serves, and no row for a route it does not serve', () => {
    const served = apiRoutes(() => {
      throw new Error('listing routes needs no deps');
    }).map((r) => `${r.method} ${r.path}`);
    const covered = new Set(ROWS.map((r) => r.route));
    assert.deepEqual(
      served.filter((r) => !covered.has(r)),
      [],
      'routes without a row in the authorization matrix',
    );
    assert.deepEqual(
      [...covered].filter((r) => !served.includes(r)),
      [],
      'rows for routes the API does not serve',
    );
  });

  it('answers 404 (never 403) to B and to nobody for every existing resource of project A addressed by path', () => {
    for (const row of ROWS.filter((r) => r.ownedByA)) {
      assert.deepEqual([row.expected[2], row.expected[3]], [404, 404], `${row.route} ${row.variant ?? ''}`);
    }
  });

  for (const row of ROWS) {
    it(`${row.route}${row.variant ? ` — ${row.variant}` : ''}: ${ROLES.map((r, i) => `${r} ${row.expected[i]}`).join(', ')}`, async () => {
      const method = row.route.split(' ')[0];
      const actual: number[] = [];
      const problems: string[] = [];
      for (const role of ROLES) {
        const request = await row.request(role);
        const before = await row.affected?.(request);
        const response = await call(role, method, request.path, request.body);
        actual.push(response.status);
        const where = `${method} ${request.path} as ${role}`;
        if (response.status >= 400) {
          const error = response.body?.error;
          if (typeof error?.code !== 'string' || typeof error?.message !== 'string')
            problems.push(`${where}: not the error shape: ${JSON.stringify(response.body)}`);
          else if (CODES[response.status] && error.code !== CODES[response.status])
            problems.push(`${where}: code ${error.code} for ${response.status}`);
          else if (response.status === 400 && !error.details?.length)
            problems.push(`${where}: a 400 that names no field`);
          if (row.affected) {
            try {
              assert.deepEqual(await row.affected(request), before);
            } catch {
              problems.push(`${where}: refused with ${response.status} but changed what it addresses`);
            }
          }
        } else if (row.check) {
          try {
            row.check(role, response.body);
          } catch (error) {
            problems.push(`${where}: ${(error as Error).message}`);
          }
        }
      }
      assert.deepEqual(actual, [...row.expected], `statuses for [${ROLES.join(', ')}]`);
      assert.deepEqual(problems, []);
    });
  }
});
