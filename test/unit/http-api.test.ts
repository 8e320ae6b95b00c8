/**
 * The API Lambda driven with payload-2.0 events (test/fixtures/http) over
 * in-memory ports. Store semantics are tested on DynamoDB Local elsewhere; this
 * covers routing, auth, validation, status mapping and response shapes.
 */
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import type { APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import type { Deps } from '../../lambdas/core/deps.js';
import {
  Conflict,
  Forbidden,
  IdempotencyConflict,
  InvalidTransition,
  JobNotFound,
  PayloadTooLarge,
  QuotaExceeded,
  Unauthorized,
  Unprocessable,
  ValidationError,
  WorkflowsUnavailable,
} from '../../lambdas/core/errors.js';
import { JobState, type Job } from '../../lambdas/core/job.js';
import type { ImageSpec, TemplateSpec } from '../../lambdas/core/schemas.js';
import { createApiHandler, type ApiOptions } from '../../lambdas/handlers/http/api.js';
import type { Catalog, ImageRecord, ImageVersion, TemplateRecord } from '../../lambdas/ports/catalog.js';
import type { Compute } from '../../lambdas/ports/compute.js';
import type { EventPublisher } from '../../lambdas/ports/events.js';
import type { LogLine } from '../../lambdas/ports/job-logs.js';
import type { Workflows } from '../../lambdas/ports/workflows.js';
import { apiEvent, invokeApi, type ApiEvent as Event, type ApiResponse, type Claims } from '../support/api-calls.js';
import { partialPort, recordingLog, type LogEntry } from '../support/fakes.js';
import { MemoryTables, memoryJobs, memoryLimits, memoryQueue } from '../support/memory-stores.js';
import { fieldsOf } from '../support/api-errors.js';
import { readFixture } from '../support/fixtures.js';

const fixture = (name: string): Event => readFixture(`http/${name}`);
const clone = <T>(value: T): T => structuredClone(value);

// ---------------------------------------------------------------- fakes

/** The catalog's conditions in maps: names unique per owner, versions appended in order, revisions. */
class MemoryCatalog implements Catalog {
  templates = new Map<string, TemplateRecord & { deletingUntil?: string }>();
  images = new Map<string, ImageRecord>();
  async getImage(name: string) {
    const image = this.images.get(name);
    return image && clone(image);
  }
  async listImages() {
    return [...this.images.values()].map(clone);
  }
  async appendImageVersion(name: string, version: ImageVersion) {
    const image = this.images.get(name);
    if ((image?.versions.length ?? 0) !== version.version - 1) return false;
    if (image) image.versions.push(clone(version));
    else this.images.set(name, { name, createdAt: version.addedAt, versions: [clone(version)] });
    return true;
  }
  async getTemplate(id: string) {
    const found = this.templates.get(id);
    if (!found) return undefined;
    const { deletingUntil: _d, ...template } = clone(found);
    return template;
  }
  async findTemplate(project: string | undefined, name: string) {
    const found = [...this.templates.values()].find((t) => t.project === project && t.name === name);
    return found && this.getTemplate(found.id);
  }
  async findTemplateIn(projects: readonly (string | undefined)[], name: string) {
    for (const project of projects) {
      const found = await this.findTemplate(project, name);
      if (found) return found;
    }
    return undefined;
  }
  async listTemplates() {
    return Promise.all([...this.templates.keys()].map(async (id) => (await this.getTemplate(id))!));
  }
  async createTemplate(template: TemplateRecord) {
    if (await this.findTemplate(template.project, template.name))
      throw new Conflict(`a template named ${template.name} already exists`);
    this.templates.set(template.id, clone(template));
  }
  async updateTemplate(previous: TemplateRecord, next: TemplateRecord) {
    const current = this.templates.get(previous.id);
    if (!current || current.revision !== previous.revision || current.deletingUntil)
      throw new Conflict(`template ${previous.name} changed meanwhile`);
    const holder = await this.findTemplate(next.project, next.name);
    if (holder && holder.id !== next.id) throw new Conflict(`a template named ${next.name} already exists`);
    this.templates.set(next.id, clone(next));
  }
  async markTemplateDeleting(id: string, until: string) {
    const template = this.templates.get(id);
    if (!template) return undefined;
    if (template.deletingUntil) throw new Conflict(`template ${template.name} is being deleted`);
    template.deletingUntil = until;
    return this.getTemplate(id);
  }
  async clearTemplateDeleting(id: string) {
    delete this.templates.get(id)?.deletingUntil;
  }
  async deleteTemplate(template: TemplateRecord) {
    return this.templates.delete(template.id);
  }
  /** Seeding for the tests below: a version of an image, a template with a fixed id. */
  async putImage(image: ImageSpec) {
    const version = (this.images.get(image.name)?.versions.length ?? 0) + 1;
    await this.appendImageVersion(image.name, {
      version,
      reference: image.reference,
      digest: image.digest,
      addedAt: '2025-02-01T00:00:00.000Z',
      addedBy: 'root',
    });
  }
  async putTemplate(template: TemplateSpec) {
    const id = `tpl-${template.name}`;
    this.templates.set(id, {
      ...template,
      id,
      createdAt: '2025-02-01T00:00:00.000Z',
      updatedAt: '2025-02-01T00:00:00.000Z',
      createdBy: 'root',
      revision: 1,
    });
  }
}

interface World {
  deps: Deps;
  /** The rows behind deps.jobs, deps.queue and deps.limits. */
  tables: MemoryTables;
  started: string[];
  logged: LogEntry[];
  /** What each job has printed, and the reads the API asked the JobLogs port for. */
  output: Map<string, LogLine[]>;
  logReads: Array<{ jobId: string; tail?: number }>;
}

function world(): World {
  const tables = new MemoryTables();
  const catalog = new MemoryCatalog();
  const started: string[] = [];
  const { log, entries: logged } = recordingLog();
  const output: World['output'] = new Map();
  const logReads: World['logReads'] = [];
  let seq = 0;
  let clock = Date.parse('2025-02-03T10:00:00.000Z');
  const deps: Deps = {
    jobs: memoryJobs(tables),
    queue: memoryQueue(tables),
    limits: memoryLimits(tables),
    catalog,
    // The API launches nothing, reconciles nothing and raises no events (state changes leave through the jobs stream).
    compute: partialPort<Compute>('compute'),
    workflows: partialPort<Workflows>('workflows', {
      start: async (name) => void started.push(name),
      sendTaskSuccess: async () => undefined,
    }),
    events: partialPort<EventPublisher>('events'),
    logs: {
      read: async (job, options) => {
        logReads.push({ jobId: job.id, tail: options.tail });
        const lines = output.get(job.id) ?? [];
        return { lines: options.tail === undefined ? lines : lines.slice(-options.tail) };
      },
    },
    log,
    now: () => new Date((clock += 1000)),
    newId: () => `j-${String(++seq).padStart(4, '0')}`,
  };
  tables.putPool({ name: 'local', instanceType: 'local', gpusPerInstance: 4, maxGpus: 4 });
  tables.putPool({ name: 'a10g', instanceType: 'g5.xlarge', gpusPerInstance: 1, maxGpus: 8 });
  tables.putQuota('vision', 'gpus', 2);
  tables.putQuota('audio', 'gpus', 4);
  tables.putQuota('vision', 'jobs'); // counted, unlimited
  void catalog.putImage({
    name: 'cuda',
    reference: 'nvidia/cuda:12.4.1-base-ubuntu22.04',
    digest: `sha256:${'a'.repeat(64)}`,
  });
  void catalog.putTemplate({
    name: 'train',
    project: 'vision',
    pool: 'local',
    gpus: 1,
    nodeCount: 1,
    image: 'cuda',
    command: ['nvidia-smi'],
    env: {},
    maxLiveTimeoutMinutes: 120,
  });
  // Whole g5.xlarge instances of 1 GPU each (core/accounting.ts): 2 GPUs are 2 nodes.
  void catalog.putTemplate({
    name: 'speech',
    project: 'audio',
    pool: 'a10g',
    gpus: 1,
    nodeCount: 2,
    image: 'cuda',
    command: ['nvidia-smi'],
    env: {},
    maxLiveTimeoutMinutes: 60,
  });
  return { deps, tables, started, logged, output, logReads };
}

/** Every GPU of the pool held (by jobs these tests do not show), so that new jobs wait. */
function fillPool(tables: MemoryTables, name: string): void {
  const pool = tables.pools.get(name)!;
  Object.assign(pool, { usedGpus: pool.maxGpus, availableGpus: 0 });
}

// ---------------------------------------------------------------- requests

const ALICE: Claims = { sub: 'alice', 'cognito:groups': '[vision]' };
const BOB: Claims = { sub: 'bob', 'cognito:groups': '[audio]' };
const ROOT: Claims = { sub: 'root', 'cognito:groups': ['admin'] };

async function call(w: World, event: Event, options: ApiOptions = {}): Promise<ApiResponse> {
  const response = await invokeApi(
    createApiHandler(() => w.deps, options),
    event,
  );
  if (response.status !== 204) assert.equal(response.headers['content-type'], 'application/json');
  return response;
}

async function submit(
  w: World,
  body: unknown = { template: 'train' },
  claims: Claims = ALICE,
  headers: Record<string, string> = {},
) {
  const response = await call(w, apiEvent('POST', '/v1/jobs', { body, as: claims, headers }));
  assert.equal(response.status, 202, JSON.stringify(response.body));
  return response.body;
}

function assertNothingStored(w: World) {
  assert.equal(w.tables.jobs.size, 0, 'no job stored');
  assert.equal(w.tables.claims.size, 0, 'no idempotency claim stored');
  assert.deepEqual(w.started, [], 'no workflow started');
}

function assertError(response: ApiResponse, status: number, code: string) {
  assert.equal(response.status, status, JSON.stringify(response.body));
  assert.equal(response.body.error.code, code);
  assert.equal(typeof response.body.error.message, 'string');
}

// ---------------------------------------------------------------- tests

let w: World;
beforeEach(() => {
  w = world();
});

describe('public routes', () => {
  it('GET / lists the API versions, without a token', async () => {
    const response = await call(w, fixture('public-get-root'));
    assert.equal(response.status, 200);
    assert.deepEqual(response.body, { versions: [{ id: 'v1', status: 'CURRENT' }] });
  });

  it('GET /v1 lists the resources of v1', async () => {
    const response = await call(w, apiEvent('GET', '/v1', { as: null }));
    assert.equal(response.status, 200);
    assert.equal(response.body.id, 'v1');
    const jobs = response.body.resources.find((r: { path: string }) => r.path === '/v1/jobs');
    assert.deepEqual(jobs.methods.sort(), ['GET', 'POST']);
    assert.ok(response.body.resources.some((r: { path: string }) => r.path === '/v1/quotas/{project}/{resource}'));
  });

  it('GET /v1/health checks the store and reports the runtime components', async () => {
    const response = await call(w, apiEvent('GET', '/v1/health', { as: null }), {
      health: async () => ({ workflows: { status: 'ok', running: 2 } }),
    });
    assert.equal(response.status, 200);
    assert.deepEqual(response.body, {
      status: 'ok',
      components: { store: 'ok', workflows: { status: 'ok', running: 2 } },
    });
  });

  it('GET /v1/health is 503 when the store does not answer', async () => {
    w.deps.limits.listPools = async () => {
      throw new Error('connect ECONNREFUSED');
    };
    const response = await call(w, apiEvent('GET', '/v1/health', { as: null }));
    assert.equal(response.status, 503);
    assert.equal(response.body.status, 'degraded');
    assert.equal(response.body.components.store.status, 'unavailable');
  });

  it('GET /v1/health answers 503 when the store hangs, without waiting for it', async () => {
    w.deps.limits.listPools = () => new Promise(() => {});
    const response = await call(w, apiEvent('GET', '/v1/health', { as: null }));
    assert.equal(response.status, 503);
    assert.deepEqual(response.body.components.store, { status: 'unavailable', reason: 'no answer within 2000 ms' });
  });
});

describe('authentication', () => {
  const protectedRoutes: Array<[string, string]> = [
    ['POST', '/v1/jobs'],
    ['GET', '/v1/jobs'],
    ['GET', '/v1/jobs/j-0001'],
    ['DELETE', '/v1/jobs/j-0001'],
    ['GET', '/v1/jobs/j-0001/logs'],
    ['GET', '/v1/pools'],
    ['GET', '/v1/quotas'],
    ['GET', '/v1/quotas/vision/gpus'],
    ['GET', '/v1/stats'],
  ];
  for (const [method, path] of protectedRoutes) {
    it(`${method} ${path} without claims is 401`, async () => {
      const response = await call(
        w,
        apiEvent(method, path, { as: null, ...(method === 'POST' ? { body: { template: 'train' } } : {}) }),
      );
      assertError(response, 401, 'unauthorized');
      assertNothingStored(w);
    });
  }

  it('claims without a subject are 401', async () => {
    assertError(
      await call(w, apiEvent('GET', '/v1/jobs', { as: { 'cognito:groups': '[vision]' } })),
      401,
      'unauthorized',
    );
  });

  it('takes groups from a configured claim, as an array or as API Gateway flattens it', async () => {
    await submit(w, { template: 'speech' }, BOB);
    const asArray = await call(w, apiEvent('GET', '/v1/jobs', { as: { sub: 'carol', groups: ['audio'] } }), {
      groupsClaim: 'groups',
    });
    const asString = await call(w, apiEvent('GET', '/v1/jobs', { as: { sub: 'carol', groups: '[audio other]' } }), {
      groupsClaim: 'groups',
    });
    assert.equal(asArray.body.items.length, 1);
    assert.equal(asString.body.items.length, 1);
  });

  it('makes a caller admin by the configured admin group only', async () => {
    await submit(w, { template: 'speech' }, BOB);
    const ops = await call(w, apiEvent('GET', '/v1/jobs', { as: { sub: 'op', 'cognito:groups': '[ops]' } }), {
      adminGroup: 'ops',
    });
    const notAdmin = await call(w, apiEvent('GET', '/v1/jobs', { as: { sub: 'op', 'cognito:groups': '[admin]' } }), {
      adminGroup: 'ops',
    });
    assert.equal(ops.body.items.length, 1);
    assert.equal(notAdmin.body.items.length, 0);
  });
});

describe('routing', () => {
  it('an unknown path is 404', async () => {
    assertError(await call(w, apiEvent('GET', '/v1/nothing')), 404, 'not_found');
    assertError(await call(w, apiEvent('GET', '/v2/jobs')), 404, 'not_found');
  });

  it('a known path with another method is 405 and says which are allowed', async () => {
    const response = await call(w, apiEvent('PUT', '/v1/jobs', { body: { template: 'train' } }));
    assertError(response, 405, 'method_not_allowed');
    assert.equal(response.headers.allow, 'POST, GET');
    assertNothingStored(w);
  });

  it('serves under a named stage, whose name API Gateway keeps in rawPath', async () => {
    const event = apiEvent('GET', '/prod/v1/pools');
    event.requestContext.stage = 'prod';
    assert.equal((await call(w, event)).status, 200);
  });

  it('refuses query parameters a route does not take', async () => {
    const response = await call(w, apiEvent('GET', '/v1/pools', { query: { verbose: 'true' } }));
    assertError(response, 400, 'validation_error');
    assert.deepEqual(fieldsOf(response), ['verbose']);
  });
});

describe('POST /v1/jobs', () => {
  it('stores the job admitted, starts its first run and answers 202 with the job', async () => {
    const response = await call(w, fixture('member-submit-job'));
    assert.equal(response.status, 202);
    const job = response.body;
    assert.equal(job.state, 'LAUNCHING');
    assert.equal(job.project, 'vision');
    assert.equal(job.owner, 'alice');
    assert.equal(job.template, 'train');
    assert.equal(job.gpus, 1);
    assert.equal(job.liveTimeoutMinutes, 0.05);
    assert.deepEqual(job.command, ['nvidia-smi']);
    assert.ok(!('heldGpus' in job) && !('taskToken' in job), 'internal fields stay inside');
    assert.equal(response.headers.location, `/v1/jobs/${job.id}`);
    assert.equal(response.headers['idempotent-replayed'], undefined);
    assert.deepEqual(w.tables.jobs.get(job.id)?.state, 'LAUNCHING');
    assert.deepEqual(w.started, [`${job.id}-1`]);
  });

  it('reads a base64-encoded body', async () => {
    const response = await call(w, fixture('member-submit-job-base64'));
    assert.equal(response.status, 202);
    assert.equal(response.body.liveTimeoutMinutes, 0.05);
  });

  it('replays the same job for the same Idempotency-Key and body', async () => {
    const first = await call(w, fixture('member-submit-job'));
    const again = await call(w, fixture('member-submit-job'));
    assert.equal(again.status, 202);
    assert.equal(again.headers['idempotent-replayed'], 'true');
    assert.equal(again.body.id, first.body.id);
    assert.equal(w.tables.jobs.size, 1);
  });

  it('is 409 when the Idempotency-Key comes back with another body', async () => {
    await call(w, fixture('member-submit-job'));
    const event = fixture('member-submit-job');
    event.body = JSON.stringify({ template: 'train', gpus: 2 });
    assertError(await call(w, event), 409, 'conflict');
    assert.equal(w.tables.jobs.size, 1);
  });

  for (const key of ['', 'has space', 'x'.repeat(129), 'ключ', 'tab\there']) {
    it(`refuses Idempotency-Key ${JSON.stringify(key.length > 20 ? `${key.slice(0, 8)}…(${key.length})` : key)}`, async () => {
      const response = await call(
        w,
        apiEvent('POST', '/v1/jobs', { body: { template: 'train' }, headers: { 'idempotency-key': key } }),
      );
      assertError(response, 400, 'validation_error');
      assert.deepEqual(fieldsOf(response), ['Idempotency-Key']);
      assertNothingStored(w);
    });
  }

  const bad: Array<[string, unknown, string[]]> = [
    ['template of the wrong type', { template: 5 }, ['template']],
    ['a missing template', { gpus: 1 }, ['template']],
    ['an unknown field', { template: 'train', privileged: true }, ['privileged']],
    ['gpus 0', { template: 'train', gpus: 0 }, ['gpus']],
    ['gpus -1', { template: 'train', gpus: -1 }, ['gpus']],
    ['gpus 1.5', { template: 'train', gpus: 1.5 }, ['gpus']],
    ['gpus "2"', { template: 'train', gpus: '2' }, ['gpus']],
    ['liveTimeoutMinutes 0', { template: 'train', liveTimeoutMinutes: 0 }, ['liveTimeoutMinutes']],
    ['liveTimeoutMinutes -1', { template: 'train', liveTimeoutMinutes: -1 }, ['liveTimeoutMinutes']],
    ['a command string', { template: 'train', command: 'nvidia-smi' }, ['command']],
    ['an env value of the wrong type', { template: 'train', env: { SEED: 1 } }, ['env.SEED']],
    [
      'several bad fields at once',
      { gpus: 0, liveTimeoutMinutes: -1, privileged: true },
      ['gpus', 'liveTimeoutMinutes', 'privileged', 'template'],
    ],
    [
      'liveTimeoutMinutes past the template maximum',
      { template: 'train', liveTimeoutMinutes: 121 },
      ['liveTimeoutMinutes'],
    ],
    ['a template of another project', { template: 'speech' }, ['template']],
  ];
  for (const [what, body, fields] of bad) {
    it(`is 400 naming ${fields.join(', ')} for ${what}, and stores nothing`, async () => {
      const response = await call(w, apiEvent('POST', '/v1/jobs', { body, headers: { 'idempotency-key': 'k-1' } }));
      assertError(response, 400, 'validation_error');
      assert.deepEqual(fieldsOf(response), fields);
      assertNothingStored(w);
    });
  }

  const notObjects: Array<[string, string, RegExp]> = [
    ['malformed JSON', '{"template":', /^malformed JSON: /],
    ['an array', '[{"template":"train"}]', /JSON object/],
    ['a string', '"train"', /JSON object/],
    ['a number', '42', /JSON object/],
    ['null', 'null', /JSON object/],
    ['an empty body', '', /required/],
  ];
  for (const [what, rawBody, reason] of notObjects) {
    it(`is 400 on (body) for ${what}`, async () => {
      const response = await call(w, apiEvent('POST', '/v1/jobs', { rawBody }));
      assertError(response, 400, 'validation_error');
      assert.equal(response.body.error.details.length, 1);
      assert.equal(response.body.error.details[0].field, '(body)');
      assert.match(response.body.error.details[0].reason, reason);
      assertNothingStored(w);
    });
  }

  it('is 413 for a body over the limit, and stores nothing', async () => {
    const response = await call(
      w,
      apiEvent('POST', '/v1/jobs', { body: { template: 'train', name: 'x'.repeat(64 * 1024) } }),
    );
    assertError(response, 413, 'payload_too_large');
    assertNothingStored(w);
  });

  it('counts the decoded bytes of a base64 body against the limit', async () => {
    const body = { template: 'train', env: { PAD: 'x'.repeat(900) } };
    const size = Buffer.byteLength(JSON.stringify(body));
    const encodedSize = Buffer.from(JSON.stringify(body)).toString('base64').length;
    const limit = Math.floor((size + encodedSize) / 2); // between the decoded and the encoded size
    assert.equal(
      (await call(w, apiEvent('POST', '/v1/jobs', { body, base64: true }), { maxBodyBytes: limit })).status,
      202,
    );
    assertError(
      await call(w, apiEvent('POST', '/v1/jobs', { body, base64: true }), { maxBodyBytes: size - 1 }),
      413,
      'payload_too_large',
    );
  });

  it('is 403 for a project the caller is not a member of', async () => {
    assertError(
      await call(w, apiEvent('POST', '/v1/jobs', { body: { template: 'speech', project: 'audio' } })),
      403,
      'forbidden',
    );
    assertNothingStored(w);
  });

  it('is 422 for more GPUs than the pool can ever hold', async () => {
    assertError(
      await call(w, apiEvent('POST', '/v1/jobs', { body: { template: 'speech', gpus: 9 }, as: BOB })),
      422,
      'unprocessable',
    );
    assertNothingStored(w);
  });

  it('is 429 when the project has used its jobs quota', async () => {
    w.tables.putQuota('vision', 'jobs', 1);
    await submit(w);
    assertError(await call(w, apiEvent('POST', '/v1/jobs', { body: { template: 'train' } })), 429, 'quota_exceeded');
    assert.equal(w.tables.jobs.size, 1);
  });
});

describe('reading jobs', () => {
  it('GET /v1/jobs lists the caller’s projects only, newest first, with a nextToken', async () => {
    const a = await submit(w);
    const b = await submit(w);
    await submit(w, { template: 'speech' }, BOB);
    const page1 = await call(w, apiEvent('GET', '/v1/jobs', { query: { limit: '1' } }));
    assert.equal(page1.status, 200);
    assert.deepEqual(
      page1.body.items.map((j: Job) => j.id),
      [b.id],
    );
    assert.ok(page1.body.nextToken);
    const page2 = await call(
      w,
      apiEvent('GET', '/v1/jobs', { query: { limit: '1', nextToken: page1.body.nextToken } }),
    );
    assert.deepEqual(
      page2.body.items.map((j: Job) => j.id),
      [a.id],
    );
    assert.equal(page2.body.nextToken, undefined);
  });

  it('GET /v1/jobs filters by project and state (fixture)', async () => {
    await submit(w);
    const running = await call(w, fixture('member-list-jobs'));
    assert.equal(running.status, 200);
    assert.deepEqual(running.body.items, []);
    const launching = await call(w, apiEvent('GET', '/v1/jobs', { query: { project: 'vision', state: 'LAUNCHING' } }));
    assert.equal(launching.body.items.length, 1);
    const other = await call(w, apiEvent('GET', '/v1/jobs', { query: { project: 'audio' } }));
    assert.deepEqual(other.body.items, []);
  });

  it('GET /v1/jobs shows an admin every project (groups claim as an array)', async () => {
    await submit(w);
    await submit(w, { template: 'speech' }, BOB);
    const response = await call(w, fixture('admin-list-jobs'));
    assert.deepEqual(response.body.items.map((j: Job) => j.project).sort(), ['audio', 'vision']);
  });

  for (const [query, field] of [
    [{ state: 'BOGUS' }, 'state'],
    [{ limit: '0' }, 'limit'],
    [{ limit: 'ten' }, 'limit'],
    [{ owner: 'alice' }, 'owner'],
    [{ project: 'Not A Project' }, 'project'],
  ] as const) {
    it(`GET /v1/jobs is 400 naming ${field} for ${JSON.stringify(query)}`, async () => {
      const response = await call(w, apiEvent('GET', '/v1/jobs', { query }));
      assertError(response, 400, 'validation_error');
      assert.deepEqual(fieldsOf(response), [field]);
    });
  }

  it('GET /v1/jobs/{id} returns the job with its queue position while queued', async () => {
    fillPool(w.tables, 'local');
    const first = await submit(w);
    const second = await submit(w);
    const response = await call(w, apiEvent('GET', `/v1/jobs/${second.id}`));
    assert.equal(response.status, 200);
    assert.equal(response.body.id, second.id);
    assert.equal(response.body.queuePosition, 1);
    assert.equal((await call(w, apiEvent('GET', `/v1/jobs/${first.id}`))).body.queuePosition, 0);
  });

  it('GET /v1/jobs shows each queued job its queue position too (the dashboard lists the queue in one request)', async () => {
    fillPool(w.tables, 'local');
    const first = await submit(w);
    const second = await submit(w);
    const listed = (await call(w, apiEvent('GET', '/v1/jobs'))).body.items;
    const positionOf = (id: string) => listed.find((j: { id: string }) => j.id === id)?.queuePosition;
    assert.deepEqual([positionOf(first.id), positionOf(second.id)], [0, 1]);
  });

  it('GET /v1/jobs/{id} of another project is 404, as is a job that does not exist', async () => {
    const theirs = await submit(w, { template: 'speech' }, BOB);
    assertError(await call(w, apiEvent('GET', `/v1/jobs/${theirs.id}`)), 404, 'not_found');
    assertError(await call(w, apiEvent('GET', '/v1/jobs/j-nope')), 404, 'not_found');
    assert.equal((await call(w, apiEvent('GET', `/v1/jobs/${theirs.id}`, { as: ROOT }))).status, 200);
  });
});

describe('GET /v1/jobs/{id}/logs', () => {
  const printed = (n: number): LogLine[] =>
    Array.from({ length: n }, (_, i) => ({
      at: new Date(Date.UTC(2025, 1, 3, 10, 0, i)).toISOString(),
      message: `step ${i}`,
    }));

  it('returns { jobId, lines } oldest first, the last 1000 lines unless told otherwise', async () => {
    const job = await submit(w);
    w.output.set(job.id, printed(1200));
    const response = await call(w, apiEvent('GET', `/v1/jobs/${job.id}/logs`));
    assert.equal(response.status, 200);
    assert.deepEqual(Object.keys(response.body), ['jobId', 'lines']);
    assert.equal(response.body.jobId, job.id);
    assert.equal(response.body.lines.length, 1000);
    assert.deepEqual(response.body.lines[0], { at: '2025-02-03T10:03:20.000Z', message: 'step 200' });
    assert.deepEqual(response.body.lines.at(-1), { at: '2025-02-03T10:19:59.000Z', message: 'step 1199' });
    assert.deepEqual(w.logReads, [{ jobId: job.id, tail: 1000 }]);
  });

  it('passes ?tail= to the adapter as a number', async () => {
    const job = await submit(w);
    w.output.set(job.id, [{ message: 'a' }, { message: 'b' }, { message: 'c' }]);
    const response = await call(w, apiEvent('GET', `/v1/jobs/${job.id}/logs`, { query: { tail: '2' } }));
    assert.deepEqual(response.body, { jobId: job.id, lines: [{ message: 'b' }, { message: 'c' }] });
    assert.deepEqual(w.logReads, [{ jobId: job.id, tail: 2 }]);
    assert.equal((await call(w, apiEvent('GET', `/v1/jobs/${job.id}/logs`, { query: { tail: '10000' } }))).status, 200);
    assert.deepEqual(w.logReads.at(-1), { jobId: job.id, tail: 10000 });
  });

  it('a job with no output yet has an empty list, not an error', async () => {
    const job = await submit(w);
    const response = await call(w, apiEvent('GET', `/v1/jobs/${job.id}/logs`));
    assert.equal(response.status, 200);
    assert.deepEqual(response.body, { jobId: job.id, lines: [] });
  });

  it('is 404 for another project’s job, as for one that does not exist, and reads no output; an admin reads any', async () => {
    const theirs = await submit(w, { template: 'speech' }, BOB);
    w.output.set(theirs.id, [{ message: 'secret' }]);
    const hidden = await call(w, apiEvent('GET', `/v1/jobs/${theirs.id}/logs`));
    assertError(hidden, 404, 'not_found');
    assert.doesNotMatch(JSON.stringify(hidden.body), /secret/);
    const missing = await call(w, apiEvent('GET', '/v1/jobs/j-nope/logs'));
    assertError(missing, 404, 'not_found');
    assert.equal(
      hidden.body.error.message,
      `job ${theirs.id} not found`,
      'the same answer as for a job that does not exist',
    );
    assert.deepEqual(w.logReads, []);
    const admin = await call(w, apiEvent('GET', `/v1/jobs/${theirs.id}/logs`, { as: ROOT }));
    assert.deepEqual(admin.body, { jobId: theirs.id, lines: [{ message: 'secret' }] });
  });

  for (const tail of ['0', '-1', '1.5', 'abc', '100001', '10001', '', '1,2']) {
    it(`is 400 naming tail for tail=${JSON.stringify(tail)}, and reads no output`, async () => {
      const job = await submit(w);
      const response = await call(w, apiEvent('GET', `/v1/jobs/${job.id}/logs`, { query: { tail } }));
      assertError(response, 400, 'validation_error');
      assert.deepEqual(fieldsOf(response), ['tail']);
      assert.deepEqual(w.logReads, []);
    });
  }

  it('is 400 for a query parameter it does not take', async () => {
    const job = await submit(w);
    const response = await call(w, apiEvent('GET', `/v1/jobs/${job.id}/logs`, { query: { follow: 'true' } }));
    assertError(response, 400, 'validation_error');
    assert.deepEqual(fieldsOf(response), ['follow']);
  });

  it('is listed among the resources of v1', async () => {
    const response = await call(w, apiEvent('GET', '/v1', { as: null }));
    const logs = response.body.resources.find((r: { path: string }) => r.path === '/v1/jobs/{id}/logs');
    assert.deepEqual(logs, { path: '/v1/jobs/{id}/logs', methods: ['GET'], public: false });
  });
});

describe('DELETE /v1/jobs/{id}', () => {
  it('cancels a queued job with 202 and the job', async () => {
    fillPool(w.tables, 'local');
    const job = await submit(w);
    assert.equal(job.state, 'WAITING');
    const response = await call(w, apiEvent('DELETE', `/v1/jobs/${job.id}`));
    assert.equal(response.status, 202);
    assert.equal(response.body.state, 'CANCELLED');
    assert.equal(response.body.stateReason, 'cancelled by alice');
  });

  it('removes a terminal job with 204, after which it is 404', async () => {
    fillPool(w.tables, 'local');
    const job = await submit(w);
    await call(w, apiEvent('DELETE', `/v1/jobs/${job.id}`));
    const removed = await call(w, apiEvent('DELETE', `/v1/jobs/${job.id}`));
    assert.equal(removed.status, 204);
    assert.equal(removed.body, undefined);
    assertError(await call(w, apiEvent('GET', `/v1/jobs/${job.id}`)), 404, 'not_found');
  });

  it('a cancel answered 503 because Step Functions refused the wake-up sends it again when repeated', async () => {
    const job = await submit(w);
    Object.assign(w.tables.jobs.get(job.id)!, { state: JobState.RUNNING, taskToken: 'token-1' });
    const sent: unknown[] = [];
    let refuse = true;
    w.deps.workflows.sendTaskSuccess = async (token, output) => {
      if (refuse) {
        refuse = false;
        throw new WorkflowsUnavailable('Step Functions is throttled (ThrottlingException); try again later');
      }
      sent.push({ token, output });
    };

    assertError(await call(w, apiEvent('DELETE', `/v1/jobs/${job.id}`)), 503, 'unavailable');
    const outcome = w.tables.jobs.get(job.id)?.outcome;
    assert.equal(outcome?.kind, 'cancelled', 'the cancel itself was recorded');
    const again = await call(w, apiEvent('DELETE', `/v1/jobs/${job.id}`));

    assert.equal(again.status, 202);
    assert.deepEqual(sent, [{ token: 'token-1', output: { outcome } }]);
  });

  it('is 404 for another project’s job, which stays', async () => {
    const theirs = await submit(w, { template: 'speech' }, BOB);
    assertError(await call(w, apiEvent('DELETE', `/v1/jobs/${theirs.id}`)), 404, 'not_found');
    assert.equal(w.tables.jobs.get(theirs.id)?.state, 'LAUNCHING');
    assert.equal(w.tables.jobs.get(theirs.id)?.outcome, undefined);
  });
});

describe('pools, quotas, stats', () => {
  it('GET /v1/pools shows caps, use and waiting jobs', async () => {
    fillPool(w.tables, 'local');
    await submit(w);
    await submit(w);
    const response = await call(w, apiEvent('GET', '/v1/pools'));
    assert.equal(response.status, 200);
    const local = response.body.items.find((p: { name: string }) => p.name === 'local');
    assert.deepEqual(local, {
      name: 'local',
      instanceType: 'local',
      gpusPerInstance: 4,
      maxGpus: 4,
      usedGpus: 4,
      availableGpus: 0,
      waitingJobs: 2,
      backfill: false,
    });
  });

  it('GET /v1/quotas shows a member their projects and an admin all; a counted resource without a limit is not a quota', async () => {
    const member = await call(w, apiEvent('GET', '/v1/quotas'));
    assert.deepEqual(member.body.items, [{ project: 'vision', resource: 'gpus', hardLimit: 2, used: 0 }]);
    const admin = await call(w, apiEvent('GET', '/v1/quotas', { as: ROOT }));
    assert.deepEqual(
      admin.body.items.map((q: { project: string }) => q.project),
      ['audio', 'vision'],
    );
    const filtered = await call(w, apiEvent('GET', '/v1/quotas', { as: ROOT, query: { project: 'audio' } }));
    assert.deepEqual(
      filtered.body.items.map((q: { project: string }) => q.project),
      ['audio'],
    );
  });

  it('GET /v1/quotas/{project}/{resource} is the row, 404 when not visible or absent, 400 for an unknown resource', async () => {
    const own = await call(w, apiEvent('GET', '/v1/quotas/vision/gpus'));
    assert.equal(own.status, 200);
    assert.deepEqual(own.body, { project: 'vision', resource: 'gpus', hardLimit: 2, used: 0 });
    assertError(await call(w, apiEvent('GET', '/v1/quotas/audio/gpus')), 404, 'not_found');
    assertError(await call(w, apiEvent('GET', '/v1/quotas/vision/templates')), 404, 'not_found');
    const bad = await call(w, apiEvent('GET', '/v1/quotas/vision/disks'));
    assertError(bad, 400, 'validation_error');
    assert.deepEqual(fieldsOf(bad), ['resource']);
  });

  it('GET /v1/stats counts the caller’s jobs by state; an admin sees all', async () => {
    fillPool(w.tables, 'local');
    fillPool(w.tables, 'a10g');
    await submit(w);
    const theirs = await submit(w, { template: 'speech' }, BOB);
    await call(w, apiEvent('DELETE', `/v1/jobs/${theirs.id}`, { as: BOB }));
    const member = await call(w, apiEvent('GET', '/v1/stats'));
    assert.equal(member.status, 200);
    assert.deepEqual(member.body.projects, ['vision']);
    assert.equal(member.body.totalJobs, 1);
    assert.equal(member.body.jobsByState.WAITING, 1);
    assert.equal(member.body.jobsByState.CANCELLED, 0);
    const admin = await call(w, apiEvent('GET', '/v1/stats', { as: ROOT }));
    assert.equal(admin.body.projects, null);
    assert.equal(admin.body.totalJobs, 2);
    assert.equal(admin.body.jobsByState.CANCELLED, 1);
    const audio = await call(w, apiEvent('GET', '/v1/stats', { as: ROOT, query: { project: 'audio' } }));
    assert.equal(audio.body.totalJobs, 1);
  });
});

describe('error mapping', () => {
  const cases: Array<[string, () => Error, number, string]> = [
    ['ValidationError', () => new ValidationError([{ field: 'x', reason: 'bad' }]), 400, 'validation_error'],
    ['Unauthorized', () => new Unauthorized('who are you'), 401, 'unauthorized'],
    ['Forbidden', () => new Forbidden('not yours'), 403, 'forbidden'],
    ['JobNotFound', () => new JobNotFound('j-1'), 404, 'not_found'],
    ['Conflict', () => new Conflict('in use'), 409, 'conflict'],
    ['IdempotencyConflict', () => new IdempotencyConflict('other body'), 409, 'conflict'],
    ['InvalidTransition', () => new InvalidTransition('j-1', 'RUNNING', 'WAITING'), 409, 'conflict'],
    ['PayloadTooLarge', () => new PayloadTooLarge(10), 413, 'payload_too_large'],
    ['Unprocessable', () => new Unprocessable('never fits'), 422, 'unprocessable'],
    ['QuotaExceeded', () => new QuotaExceeded('vision', 'jobs', 'too many jobs'), 429, 'quota_exceeded'],
  ];
  for (const [name, make, status, code] of cases) {
    it(`${name} is ${status} ${code} with its message`, async () => {
      const error = make();
      w.deps.limits.listPools = async () => {
        throw error;
      };
      const response = await call(w, apiEvent('GET', '/v1/pools'));
      assertError(response, status, code);
      assert.equal(response.body.error.message, error.message);
    });
  }

  it('ValidationError carries every field in details', async () => {
    w.deps.limits.listPools = async () => {
      throw new ValidationError([
        { field: 'a', reason: 'one' },
        { field: 'b', reason: 'two' },
      ]);
    };
    const response = await call(w, apiEvent('GET', '/v1/pools'));
    assert.deepEqual(response.body.error.details, [
      { field: 'a', reason: 'one' },
      { field: 'b', reason: 'two' },
    ]);
  });

  it('anything else is a generic 500, logged, with no stack or message leaked', async () => {
    w.deps.limits.listPools = async () => {
      throw new Error('secret table arn:aws:dynamodb:eu-west-1:123456789012:table/jobs');
    };
    const response = await call(w, apiEvent('GET', '/v1/pools'));
    assertError(response, 500, 'internal');
    const text = JSON.stringify(response.body);
    assert.doesNotMatch(text, /secret|arn:aws|at .*\.ts/);
    assert.deepEqual(Object.keys(response.body.error), ['code', 'message']);
    const logged = w.logged.find((l) => l.level === 'error');
    assert.match(JSON.stringify(logged?.data), /secret table/);
  });

  it('a 500 still answers when the deps cannot be built', async () => {
    const handler = createApiHandler(() => {
      throw new Error('Flare Lambda misconfigured: environment variable JOBS_TABLE');
    });
    const original = process.stderr.write;
    process.stderr.write = () => true;
    try {
      const result = (await handler(apiEvent('GET', '/v1/pools'), {} as Context)) as APIGatewayProxyStructuredResultV2;
      assert.equal(result.statusCode, 500);
      assert.doesNotMatch(result.body ?? '', /JOBS_TABLE/);
    } finally {
      process.stderr.write = original;
    }
  });
});
