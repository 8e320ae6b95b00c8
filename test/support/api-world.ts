/**
 * The API Lambda's unit world (test/unit/http-api-*.test.ts): in-memory ports behind its Deps (a catalog
 * with the store's conditions, a template and an image seeded, two pools, quotas), alice, bob and root as
 * claims, the handler called with payload-2.0 events, and the checks its error answers share.
 */
import assert from 'node:assert/strict';
import { beforeEach } from 'node:test';
import type { Deps } from '../../lambdas/core/deps.js';
import { Conflict } from '../../lambdas/core/errors.js';
import type { ImageSpec, TemplateSpec } from '../../lambdas/core/schemas.js';
import { createApiHandler, type ApiOptions } from '../../lambdas/handlers/http/api.js';
import type { Catalog, ImageRecord, ImageVersion, TemplateRecord } from '../../lambdas/ports/catalog.js';
import type { Compute } from '../../lambdas/ports/compute.js';
import type { EventPublisher } from '../../lambdas/ports/events.js';
import type { LogLine } from '../../lambdas/ports/job-logs.js';
import type { Workflows } from '../../lambdas/ports/workflows.js';
import { apiEvent, invokeApi, type ApiEvent as Event, type ApiResponse, type Claims } from './api-calls.js';
import { partialPort, recordingLog, type LogEntry } from './fakes.js';
import { MemoryTables, memoryJobs, memoryLimits, memoryQueue } from './memory-stores.js';
import { readFixture } from './fixtures.js';

export const fixture = (name: string): Event => readFixture(`http/${name}`);
const clone = <T>(value: T): T => structuredClone(value);

/** The catalog's conditions in maps: names unique per owner, versions appended in order, revisions. */
export class MemoryCatalog implements Catalog {
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

export interface World {
  deps: Deps;
  /** The rows behind deps.jobs, deps.queue and deps.limits. */
  tables: MemoryTables;
  started: string[];
  logged: LogEntry[];
  /** What each job has printed, and the reads the API asked the JobLogs port for. */
  output: Map<string, LogLine[]>;
  logReads: Array<{ jobId: string; tail?: number }>;
}

export function world(): World {
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
export function fillPool(tables: MemoryTables, name: string): void {
  const pool = tables.pools.get(name)!;
  Object.assign(pool, { usedGpus: pool.maxGpus, availableGpus: 0 });
}

export const ALICE: Claims = { sub: 'alice', 'cognito:groups': '[vision]' };
export const BOB: Claims = { sub: 'bob', 'cognito:groups': '[audio]' };
export const ROOT: Claims = { sub: 'root', 'cognito:groups': ['admin'] };

export async function call(w: World, event: Event, options: ApiOptions = {}): Promise<ApiResponse> {
  const response = await invokeApi(
    createApiHandler(() => w.deps, options),
    event,
  );
  if (response.status !== 204) assert.equal(response.headers['content-type'], 'application/json');
  return response;
}

export async function submit(
  w: World,
  body: unknown = { template: 'train' },
  claims: Claims = ALICE,
  headers: Record<string, string> = {},
) {
  const response = await call(w, apiEvent('POST', '/v1/jobs', { body, as: claims, headers }));
  assert.equal(response.status, 202, JSON.stringify(response.body));
  return response.body;
}

export function assertNothingStored(w: World) {
  assert.equal(w.tables.jobs.size, 0, 'no job stored');
  assert.equal(w.tables.claims.size, 0, 'no idempotency claim stored');
  assert.deepEqual(w.started, [], 'no workflow started');
}

export function assertError(response: ApiResponse, status: number, code: string) {
  assert.equal(response.status, status, JSON.stringify(response.body));
  assert.equal(response.body.error.code, code);
  assert.equal(typeof response.body.error.message, 'string');
}

/** The running test's world: `useWorld` builds a fresh one before each test of the file. */
export let w: World;

export function useWorld(): void {
  beforeEach(() => {
    w = world();
  });
}
