/**
 * Test wiring: real DynamoDB Local (one per test file), fresh tables per test,
 * the real ASL through LocalWorkflows, and real processes through LocalCompute;
 * `apiWorld` is the API Lambda alone over the same tables.
 */
import { randomBytes } from 'node:crypto';
import { after, afterEach, before } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { freemem, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { DynamoCatalog } from '../../lambdas/adapters/dynamo/dynamo-catalog.js';
import type { DynamoReconcileStore } from '../../lambdas/adapters/dynamo/dynamo-reconcile-store.js';
import { newJobId } from '../../lambdas/adapters/ids.js';
import type { LocalCompute } from '../../lambdas/adapters/local-compute.js';
import type { Deps, Logger, Policy } from '../../lambdas/core/deps.js';
import { seedImages } from '../../lambdas/core/images.js';
import { seedTemplate } from '../../lambdas/core/templates.js';
import { TERMINAL_STATES, type Job } from '../../lambdas/core/job.js';
import { parse, TemplateSpec, type ImageSpec } from '../../lambdas/core/schemas.js';
import { createApiHandler } from '../../lambdas/handlers/http/api.js';
import { startDynamoDbLocal, type DynamoDbLocal } from '../../lambdas/local/dynamodb-local.js';
import type { LocalWorkflows } from '../../lambdas/local/local-workflows.js';
import { memoryCheckpoints, type StreamPoller } from '../../lambdas/local/jobs-stream.js';
import { localDeps, localStores, startLocalRuntime, type LocalStores } from '../../lambdas/local/local-deps.js';
import { apiEvent, invokeApi, type ApiResponse } from './api-calls.js';
import { partialPort } from './fakes.js';
import { storeView, type StoreView } from './stores.js';
import {
  createTables,
  defaultTableNames,
  makeDynamoClients,
  makeStreamsClient,
  type TableNames,
} from '../../lambdas/local/tables.js';
import type { Compute } from '../../lambdas/ports/compute.js';
import type { EventPublisher, JobStateChange, OperatorEvent } from '../../lambdas/ports/events.js';

export interface Dynamo {
  local: DynamoDbLocal;
  client: DynamoDBClient;
  doc: DynamoDBDocumentClient;
  streams: DynamoDBStreamsClient;
}

/**
 * DynamoDB Local in memory for a test file. A JVM that exits before `stop()` is
 * reported on stderr with its exit and last lines (free memory too, for the OOM
 * killer): the tests then fail with StoreUnavailable, and this says why.
 */
export async function startDynamo(): Promise<Dynamo> {
  const lines: string[] = [];
  const local = await startDynamoDbLocal({
    inMemory: true,
    log: (line) => {
      lines.push(line);
      if (lines.length > 40) lines.shift();
    },
  });
  let stopping = false;
  void local.exited.then(({ code, signal }) => {
    if (stopping) return;
    const freeMb = Math.round(freemem() / 2 ** 20);
    process.stderr.write(
      `DynamoDB Local (pid ${local.pid}, ${local.endpoint}) exited while tests used it: code ${code}, ` +
        `signal ${signal}, ${freeMb} MiB free on the machine. Its last lines:\n${lines.join('\n')}\n`,
    );
  });
  const stop = () => {
    stopping = true;
    return local.stop();
  };
  return {
    local: { ...local, stop },
    ...makeDynamoClients(local.endpoint),
    streams: makeStreamsClient(local.endpoint),
  };
}

/** For a test file (or describe): one DynamoDB Local, started before its tests and stopped after them. */
export function dynamoPerFile(): () => Dynamo {
  let dynamo: Dynamo | undefined;
  before(async () => {
    dynamo = await startDynamo();
  });
  after(async () => {
    dynamo?.client.destroy();
    dynamo?.streams.destroy();
    await dynamo?.local.stop();
  });
  return () => {
    if (!dynamo) throw new Error('DynamoDB Local is not started yet: call this inside a test or hook');
    return dynamo;
  };
}

/** New tables under a random prefix: tests in one file never see each other's rows. */
export async function freshStore(dynamo: Dynamo): Promise<LocalStores & { store: StoreView; tables: TableNames }> {
  const tables = await freshTables(dynamo);
  const stores = localStores(dynamo.doc, tables);
  return { ...stores, store: storeView(stores), tables };
}

async function freshTables(dynamo: Dynamo): Promise<TableNames> {
  const tables = defaultTableNames(`t${randomBytes(4).toString('hex')}`);
  await createTables(dynamo.client, tables);
  return tables;
}

export class RecordingEvents implements EventPublisher {
  readonly events: JobStateChange[] = [];
  readonly operatorEvents: OperatorEvent[] = [];
  async publish(event: JobStateChange): Promise<void> {
    this.events.push(event);
  }
  async publishOperatorEvent(event: OperatorEvent): Promise<void> {
    this.operatorEvents.push(event);
  }
  /** The stream publisher's call, as the local bus takes it. */
  async publishStateChanges(events: readonly JobStateChange[]): Promise<void> {
    for (const event of events) await this.publish(event);
  }
  statesOf(jobId: string): string[] {
    return this.events.filter((e) => e.jobId === jobId).map((e) => e.state);
  }
}

export const quietLog: Logger = { info() {}, warn() {}, error() {} };

export const IMAGE: ImageSpec = {
  name: 'tools',
  reference: 'docker.io/library/busybox:1.36',
  digest: `sha256:${'a'.repeat(64)}`,
};

export function template(overrides: Partial<TemplateSpec> & { name: string }): TemplateSpec {
  return parse(TemplateSpec, { project: 'vision', pool: 'local', image: IMAGE.name, command: ['true'], ...overrides });
}

/** Images and templates as the local config seeds them (core/images.ts, core/templates.ts). */
export async function seedCatalog(
  ports: Pick<LocalStores, 'queue' | 'limits' | 'catalog'>,
  images: ImageSpec[],
  templates: TemplateSpec[] = [],
): Promise<void> {
  const seeding = { ...ports, now: () => new Date(), newId: newJobId };
  await seedImages(seeding, images);
  for (const t of templates) await seedTemplate(seeding, t);
}

export interface World {
  deps: Deps;
  /** The jobs, queue and limits stores as one object, to arrange and read state (core gets them apart, in deps). */
  store: StoreView;
  catalog: DynamoCatalog;
  reconcileStore: DynamoReconcileStore;
  /** The tables under the test's prefix. */
  tables: TableNames;
  workflows: LocalWorkflows;
  compute: LocalCompute;
  /** State changes, from the jobs table's stream as the local plane gets them. */
  events: RecordingEvents;
  /** The stream reader feeding `events`: `drained()` before asserting on what a step just stored. */
  jobEvents: StreamPoller;
  dataDir: string;
  close(): Promise<void>;
}

/** A complete local control plane minus HTTP: what the workflow tests drive. */
export async function world(
  dynamo: Dynamo,
  setup: {
    pools: Array<{ name: string; gpus: number }>;
    quotas?: Array<{ project: string; resource: 'gpus' | 'jobs'; hardLimit: number }>;
    templates?: TemplateSpec[];
    wrapCompute?: (c: Compute) => Compute;
    policy?: Policy;
  },
): Promise<World> {
  const tables = await freshTables(dynamo);
  const dataDir = await mkdtemp(join(tmpdir(), 'flare-test-'));
  const events = new RecordingEvents();
  const runtime = await startLocalRuntime({
    dynamo,
    tables,
    events,
    checkpoints: memoryCheckpoints(),
    compute: { dataDir, pools: setup.pools, driver: 'process', hostGpus: 0, stopGraceMs: 2000, pollMs: 200 },
    wrapCompute: setup.wrapCompute,
    log: quietLog,
    policy: setup.policy,
  });
  const { deps, catalog, reconcileStore, compute, workflows, jobEvents } = runtime;
  const store = storeView(runtime);
  // Every step runs whatever the others do: a store that died under the test must
  // not leave the stream poller or the compute's timers holding the process open.
  const close = async () => {
    const failures = await settled([
      () => workflows.close(),
      () => jobEvents.stop(),
      async () => {
        for (const job of await store.listActiveJobs()) await compute.stop(job).catch(() => undefined);
      },
    ]);
    compute.close();
    // A job stopped just above may still write its exit record while the directory goes: retry ENOTEMPTY.
    await rm(dataDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
    if (failures.length > 0) throw failures[0];
  };
  try {
    for (const pool of setup.pools)
      await store.putPool({ name: pool.name, instanceType: 'local', gpusPerInstance: pool.gpus, maxGpus: pool.gpus });
    for (const quota of setup.quotas ?? []) await store.putQuota(quota);
    await seedCatalog(runtime, [IMAGE], setup.templates ?? []);
  } catch (error) {
    await close().catch(() => undefined);
    throw error;
  }
  return {
    deps,
    store,
    catalog,
    reconcileStore,
    tables,
    workflows,
    compute,
    events,
    jobEvents,
    dataDir,
    close,
  };
}

/** Runs every step in order, each whatever the previous did; the errors, in order. */
async function settled(steps: Array<() => Promise<unknown>>): Promise<unknown[]> {
  const failures: unknown[] = [];
  for (const step of steps) await step().catch((error: unknown) => failures.push(error));
  return failures;
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 20_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export async function waitForState(
  store: { getJob(id: string): Promise<Job | undefined> },
  id: string,
  states: string[],
  timeoutMs?: number,
): Promise<Job> {
  return waitFor(
    `job ${id} to reach ${states.join('|')}`,
    async () => {
      const job = await store.getJob(id);
      return job && states.includes(job.state) ? job : undefined;
    },
    timeoutMs,
  );
}

/** The job once it has ended, in whichever terminal state: the test asserts which. */
export function waitForEnd(store: Parameters<typeof waitForState>[0], id: string, timeoutMs?: number): Promise<Job> {
  return waitForState(store, id, [...TERMINAL_STATES], timeoutMs);
}

/** The counters a job moves: GPUs used and free on pool `local`, and the project's `gpus` and `jobs` usage. */
export async function usage(world: Pick<World, 'store'>, project = 'vision') {
  const pool = await world.store.getPool('local');
  const gpus = await world.store.getQuota(project, 'gpus');
  const jobs = await world.store.getQuota(project, 'jobs');
  return { pool: pool?.usedGpus, poolAvailable: pool?.availableGpus, project: gpus?.used ?? 0, jobs: jobs?.used ?? 0 };
}

/** The executions of a job's workflow the world started, oldest first. */
export function executionsOf(world: Pick<World, 'workflows'>, jobId: string) {
  return world.workflows.list().filter((e) => e.jobId === jobId);
}

/** Only the GPUs `usage` counts, used on pool `local` and by the project: what a job holds while it stays active. */
export async function gpusHeld(world: Pick<World, 'store'>, project = 'vision') {
  const { pool, project: used } = await usage(world, project);
  return { pool, project: used };
}

export type WorldSetup = Parameters<typeof world>[1];

/**
 * For a test file: one DynamoDB Local for the file, and a `setup` that builds a
 * world per test (defaults overridden per call) and closes it after the test.
 */
export function worldPerTest(defaults: WorldSetup): (overrides?: Partial<WorldSetup>) => Promise<World> {
  let dynamo: Dynamo;
  let current: World | undefined;
  before(async () => {
    dynamo = await startDynamo();
  });
  after(async () => {
    await dynamo.local.stop();
  });
  afterEach(async () => {
    await current?.close();
    current = undefined;
  });
  return async (overrides = {}) => {
    current = await world(dynamo, { ...defaults, ...overrides });
    return current;
  };
}

/** A compute that delegates to `real` except where overridden: failures injected into the local driver. */
export function wrapCompute(real: Compute, overrides: Partial<Compute>): Compute {
  return {
    launch: (job) => real.launch(job),
    isReady: (job) => real.isReady(job),
    start: (job, spec) => real.start(job, spec),
    updateExpiry: (job, expiresAt) => real.updateExpiry(job, expiresAt),
    stop: (job) => real.stop(job),
    listManaged: () => real.listManaged(),
    terminate: (ids) => real.terminate(ids),
    ...(real.endedOn ? { endedOn: (job: Job) => real.endedOn!(job) } : {}),
    ...(real.keptOutputs ? { keptOutputs: (job: Job) => real.keptOutputs!(job) } : {}),
    ...overrides,
  };
}

/** A caller as API Gateway's JWT authorizer passes it: groups are projects, plus `admin`. */
export type Caller = { sub: string; 'cognito:groups': string[] };
export const caller = (sub: string, ...groups: string[]): Caller => ({ sub, 'cognito:groups': groups });

export type { ApiResponse } from './api-calls.js';

export interface ApiWorld {
  deps: Deps;
  store: StoreView;
  catalog: DynamoCatalog;
  /** The tables under the test's prefix, for items a test writes as older code left them. */
  tables: TableNames;
  /** Workflow executions started: submitted jobs stay PENDING, i.e. active, as nothing runs them. */
  started: string[];
  call(
    method: string,
    path: string,
    as: Caller,
    options?: { body?: unknown; query?: Record<string, string>; headers?: Record<string, string> },
  ): Promise<ApiResponse>;
}

/** The API Lambda over fresh DynamoDB Local tables, with no compute and workflows that only record their starts. */
export async function apiWorld(
  dynamo: Dynamo,
  setup: { pools?: Array<{ name: string; gpus: number }>; images?: ImageSpec[]; templates?: TemplateSpec[] } = {},
): Promise<ApiWorld> {
  const { tables, store, ...stores } = await freshStore(dynamo);
  const { catalog } = stores;
  for (const pool of setup.pools ?? [{ name: 'local', gpus: 4 }])
    await store.putPool({ name: pool.name, instanceType: 'local', gpusPerInstance: pool.gpus, maxGpus: pool.gpus });
  await seedCatalog(stores, setup.images ?? [IMAGE], setup.templates ?? []);
  const started: string[] = [];
  const deps = localDeps(stores, {
    compute: partialPort<Compute>('compute'),
    workflows: partialPort<Deps['workflows']>('workflows', {
      start: async (name: string) => void started.push(name),
      sendTaskSuccess: async () => undefined,
    }),
    events: new RecordingEvents(),
    logs: partialPort<Deps['logs']>('logs'),
    log: quietLog,
  });
  const handler = createApiHandler(() => deps);
  return {
    deps,
    store,
    catalog,
    tables,
    started,
    call: (method, path, as, options = {}) => invokeApi(handler, apiEvent(method, path, { ...options, as })),
  };
}
