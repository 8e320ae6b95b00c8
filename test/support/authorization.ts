/**
 * The world of the authorization matrix (test/integration/authorization-matrix.test.ts): the five
 * callers and their tokens, the fixed resources of projects A and B, the API Lambda behind the local API
 * Gateway stand-in over DynamoDB Local, the calls the rows make, and what a row is.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { execInLocalJob, localSession } from '../../lambdas/adapters/local-exec.js';
import { LocalJobLogs } from '../../lambdas/adapters/local-job-logs.js';
import { LocalOutputs } from '../../lambdas/adapters/local-outputs.js';
import { LocalSecretStore } from '../../lambdas/adapters/local-secrets.js';
import { createApiHandler } from '../../lambdas/handlers/http/api.js';
import { JobState } from '../../lambdas/core/job.js';
import { startHttpServer, type HttpServer } from '../../lambdas/local/http-server.js';
import type { Compute } from '../../lambdas/ports/compute.js';
import { partialPort } from './fakes.js';
import { apiWorld, IMAGE, startDynamo, template, type ApiWorld, type Dynamo } from './harness.js';

export const A = 'vision';
export const B = 'audio';

export const ROLES = ['admin', 'memberA', 'memberB', 'noProject', 'anonymous'] as const;
export type Role = (typeof ROLES)[number];

export const TOKENS: Record<Exclude<Role, 'anonymous'>, string> = {
  admin: 'root-token-0123456789abcdef',
  memberA: 'alice-token-0123456789abcdef',
  memberB: 'bob-token-0123456789abcdefgh',
  noProject: 'dave-token-0123456789abcdefg',
};

/** Statuses in the order of ROLES: admin, member of A, member of B, no project, no token. */
export type Expected = readonly [number, number, number, number, number];

export interface Request {
  path: string;
  body?: unknown;
}

export interface Row {
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

export const DIGEST = `sha256:${'c'.repeat(64)}`;
export const TEMPLATE_BODY = { pool: 'local', image: IMAGE.name, command: ['python', 'train.py'] };

let dynamo: Dynamo;
export let w: ApiWorld;
let server: HttpServer;
let logDir: string;
let seq = 0;
export const unique = (prefix: string) => `${prefix}-${(seq++).toString(36)}`;

/**
 * The fixed resources: A's and B's job, template and quota rows, a public template, an image, a pool;
 * and two jobs of A stored as RUNNING, one submitted by member A, one by the admin.
 */
export const fixture = {
  jobA: '',
  jobB: '',
  templateA: '',
  templateB: '',
  publicTemplate: '',
  runningA: '',
  runningAdminsA: '',
};
/** What jobA kept of its output directory. */
export const OUTPUT = { path: 'sub/result.txt', text: 'kept by jobA\n' };
/** Run by the exec rows (fixed text): a refusal must leave the job's ran.log as it was. */
export const EXEC_COMMAND = ['sh', '-c', 'echo "ran in $FLARE_JOB_ID" | tee -a ran.log'];

export async function call(
  role: Role,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: any }> {
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

export async function ok<T = any>(role: Role, method: string, path: string, body?: unknown): Promise<T> {
  const response = await call(role, method, path, body);
  assert.ok(response.status < 300, `${method} ${path} as ${role}: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body;
}

export const newJobOfA = async () => (await ok('memberA', 'POST', '/v1/jobs', { template: 'a-train' })).id as string;
export const newTemplateOfA = async () =>
  (await ok('memberA', 'POST', '/v1/templates', { ...TEMPLATE_BODY, name: unique('a-tmp') })).id as string;
export const newPublicTemplate = async () =>
  (await ok('admin', 'POST', '/v1/templates', { ...TEMPLATE_BODY, name: unique('pub-tmp'), public: true }))
    .id as string;

export const jobRecord = (id: string) => w.store.getJob(id);
/** Where the local driver would have started a job: its spec.json (local-supervisor/jobs.ts RunnerSpec) and scratch. */
export const runDir = (id: string) => join(logDir, 'run', id);
/** A job's record and what exec commands run in it have written, read before and after a call. */
export const execAffected = async (r: Request) => {
  const id = r.path.split('/')[3];
  return { job: await jobRecord(id), ran: await readFile(join(runDir(id), 'ran.log'), 'utf8').catch(() => '') };
};

/** The spec the local driver writes at a job's start, which its exec and session read. */
export async function startedHere(id: string): Promise<void> {
  await mkdir(runDir(id), { recursive: true });
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', FLARE_JOB_ID: id };
  await writeFile(
    join(runDir(id), 'spec.json'),
    JSON.stringify({ jobId: id, argv: ['sleep', '60'], env, cwd: runDir(id) }),
  );
}

/** Nothing runs jobs here (the workflows only record their starts): stored RUNNING, as the Run step leaves it. */
export async function running(id: string): Promise<string> {
  // A submit admits the job when its pool has room (LAUNCHING); it would be PENDING otherwise.
  await w.store.updateJob(id, [JobState.PENDING, JobState.WAITING, JobState.LAUNCHING], {
    state: JobState.RUNNING,
    startedAt: new Date().toISOString(),
    instanceIds: ['local'],
  });
  await startedHere(id);
  return id;
}

export const secretsOfA = () => w.deps.secrets!.list(A);
export const templateRecord = (id: string) => w.catalog.getTemplate(id);
export const quotaRecord = (project: string, resource: 'gpus' | 'jobs' | 'templates') =>
  w.store.getQuota(project, resource);

/** Only these projects' items in a list (a public template has none). */
export function onlyProjects(items: Array<{ project?: string }>, projects: string[]): void {
  for (const item of items)
    if (item.project !== undefined)
      assert.ok(
        projects.includes(item.project),
        `a list shows an item of project ${item.project}: ${JSON.stringify(item)}`,
      );
}

/** `wanted` is read when the check runs, once the fixture's ids are known. */
export function listCheck(
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

/** Starts DynamoDB Local, the world, its fixed resources and the HTTP server before the matrix; stops them after. */
export function useAuthorizationWorld(): void {
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
}
