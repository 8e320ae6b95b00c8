/**
 * The local control plane: the same handlers and the same ASL as on AWS, with
 * local adapters swapped in — DynamoDB Local, aws-local-stepfunctions, processes
 * (or docker) on this machine, an in-process event bus feeding the webhooks, and
 * an HTTP server that plays API Gateway.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { consoleLogger } from '../adapters/console-logger.js';
import type { LocalCompute } from '../adapters/local-compute.js';
import { LocalEventBus } from '../adapters/local-event-bus.js';
import { startReconcileLoop, type ReconcileLoop } from './reconcile-loop.js';
import { WebhookNotifier } from '../adapters/webhook-notifier.js';
import type { Deps, Logger } from '../core/deps.js';
import { isTerminal, JobState } from '../core/job.js';
import { seedImages } from '../core/images.js';
import { drainPool, redriveJob } from '../core/admission.js';
import type { LocalConfig } from '../core/schemas.js';
import { seedTemplate } from '../core/templates.js';
import { createApiHandler } from '../handlers/http/api.js';
import { superviseDynamoDbLocal, type SupervisedDynamoDbLocal } from './dynamodb-supervisor.js';
import { startHttpServer } from './http-server.js';
import { lockDataDir } from './plane-lock.js';
import { createUiHandler } from '../handlers/http/ui.js';
import { buildUi } from '../../ui/build.js';
import type { LocalWorkflows } from './local-workflows.js';
import { startLocalRuntime } from './local-deps.js';
import { fileCheckpoints, memoryCheckpoints, type StreamPoller } from './jobs-stream.js';
import { createTables, defaultTableNames, makeDynamoClients, makeStreamsClient } from './tables.js';

export interface ControlPlaneOptions {
  /** Keep DynamoDB in memory (tests); otherwise data lives in `<dataDir>/dynamodb`. */
  inMemory?: boolean;
  /** Resolve a relative `dataDir` against this directory (the config file's). */
  baseDir?: string;
  log?: Logger;
  /** Where the one-time admin token announcement goes. */
  announce?: (line: string) => void;
  /** Local driver tuning for tests. */
  compute?: { stopGraceMs?: number; pollMs?: number };
  /** How often the jobs stream is read for new state changes. @default 100 */
  eventPollMs?: number;
  /** Subscribed to the plane's bus before the jobs stream is first read, so it hears every change, those
   *  stored while the plane was down included (they are published during start-up). */
  onEvent?: Parameters<LocalEventBus['subscribe']>[0];
}

export interface ControlPlane {
  url: string;
  deps: Deps;
  workflows: LocalWorkflows;
  compute: LocalCompute;
  /** The periodic reconciler (orphans, stuck jobs, usage drift, drain). */
  reconciler: ReconcileLoop;
  /** DynamoDB Local, restarted on the same endpoint whenever it dies. */
  dynamodb: SupervisedDynamoDbLocal;
  events: LocalEventBus;
  /** Reads the jobs table's stream into `events`; `drained()` waits until every stored change is published. */
  jobEvents: StreamPoller;
  dataDir: string;
  /** The admin token used when no users are configured. */
  adminToken?: string;
  /** Stop serving; running jobs keep running and are re-attached on the next start. */
  stop(): Promise<void>;
}

export const ADMIN_TOKEN_FILE = 'admin-token';

export async function startControlPlane(config: LocalConfig, options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const log = options.log ?? consoleLogger({ service: 'flare-local' });
  const dataDir = resolve(options.baseDir ?? process.cwd(), config.dataDir);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  // Before anything touches the directory: a second plane on it is refused, not half started.
  const unlock = await lockDataDir(dataDir);

  const dynamo = await superviseDynamoDbLocal({
    ...(options.inMemory ? { inMemory: true } : { dataDir: join(dataDir, 'dynamodb') }),
    log,
  }).catch(async (error: unknown) => {
    await unlock();
    throw error;
  });
  const stack: Array<() => Promise<void> | void> = [unlock, () => dynamo.stop()];
  try {
    return await assemble(config, options, log, dataDir, dynamo, stack);
  } catch (error) {
    for (const undo of stack.reverse()) await undo();
    throw error;
  }
}

async function assemble(
  config: LocalConfig,
  options: ControlPlaneOptions,
  log: Logger,
  dataDir: string,
  dynamo: SupervisedDynamoDbLocal,
  stack: Array<() => Promise<void> | void>,
): Promise<ControlPlane> {
  const { client, doc } = makeDynamoClients(dynamo.endpoint);
  const tables = defaultTableNames();
  await createTables(client, tables);

  const users = config.users.length
    ? config.users
    : [{ name: 'admin', token: await adminToken(dataDir, options.announce), admin: true, projects: [] }];

  const events = new LocalEventBus(log);
  const notifier = new WebhookNotifier(config.notifications, log);
  events.subscribe((event) => notifier.notify(event));
  events.subscribe((event) => log.info('job state change', { ...event }));
  if (options.onEvent) events.subscribe(options.onEvent);
  const streams = makeStreamsClient(dynamo.endpoint);
  const runtime = await startLocalRuntime({
    dynamo: { client, doc, streams },
    tables,
    events,
    checkpoints: options.inMemory ? memoryCheckpoints() : fileCheckpoints(join(dataDir, 'jobs-stream-checkpoint.json')),
    eventPollMs: options.eventPollMs,
    compute: {
      dataDir,
      pools: config.pools,
      driver: config.compute.driver,
      maxOutputBytes: config.outputs.maxBytes,
      ...options.compute,
    },
    log,
  }).catch((error: unknown) => {
    streams.destroy();
    throw error;
  });
  const { deps, compute, workflows, jobEvents } = runtime;
  stack.push(async () => {
    await jobEvents.stop();
    streams.destroy();
  });
  stack.push(() => compute.close());
  stack.push(() => workflows.close());
  await seed(config, deps);

  await recover(deps, compute, config);
  const reconciler = startReconcileLoop(deps, runtime.reconcileStore, config.reconcileSeconds);
  stack.push(() => reconciler.stop());
  // Back from a crash: an in-memory emulator lost its tables; then a pass repairs and drains what waited.
  dynamo.onRestart(async () => {
    await createTables(client, tables);
    await reconciler.runNow();
  });

  const handler = createApiHandler(() => deps, {
    health: async () => ({ dynamodb: dynamo.health(), workflows: { running: workflows.running() }, compute: 'ok' }),
  });
  // The dashboard is bundled in memory on its first request: `npm start` needs no build step.
  const ui = createUiHandler(buildUi);
  const http = await startHttpServer({ host: config.host, port: config.port, handler, ui, users, log });
  stack.push(() => http.close());

  return {
    url: http.url,
    deps,
    workflows,
    compute,
    reconciler,
    dynamodb: dynamo,
    events,
    jobEvents,
    dataDir,
    ...(config.users.length ? {} : { adminToken: users[0].token }),
    async stop() {
      for (const undo of stack.reverse()) await undo();
      stack.length = 0;
    },
  };
}

/**
 * Pools, quotas, images and templates from the config; usage counters are kept.
 * Idempotent across restarts: an image gets a new version only when the config's
 * differs, a template of the same owner and name is changed in place (same id).
 */
async function seed(config: LocalConfig, deps: Deps): Promise<void> {
  for (const pool of config.pools) {
    // The config is the truth at start: a pool without `backfill` is strict FIFO again.
    await deps.limits.putPool({
      name: pool.name,
      instanceType: pool.instanceType ?? 'local',
      gpusPerInstance: pool.gpusPerInstance ?? pool.gpus,
      maxGpus: pool.gpus,
      backfill: pool.backfill ?? false,
    });
  }
  for (const quota of config.quotas) await deps.limits.putQuota(quota);
  await seedImages(deps, config.images);
  for (const template of config.templates) await seedTemplate(deps, template);
}

/**
 * Start-up recovery (invariant 5 of docs/concepts.md): every job that is not terminal is
 * driven on. Running processes are re-attached; each job holding GPUs is re-driven on its
 * next workflow run, whose idempotent steps pick up where the last one stopped; then each
 * pool's queue is drained.
 */
async function recover(deps: Deps, compute: LocalCompute, config: LocalConfig): Promise<void> {
  const active = await deps.queue.listActiveJobs();
  await compute.reattach(active);
  for (const job of active) {
    if (isTerminal(job.state) || job.state === JobState.WAITING) continue;
    deps.log.info('recovering job', { jobId: job.id, state: job.state });
    await redriveJob(deps, job);
  }
  for (const pool of config.pools) await drainPool(deps, pool.name);
}

/** With no users configured: one random admin token, printed once, kept 0600 in the data directory. */
async function adminToken(
  dataDir: string,
  announce: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
): Promise<string> {
  const file = join(dataDir, ADMIN_TOKEN_FILE);
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const token = `flare_${randomBytes(24).toString('base64url')}`;
  await writeFile(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
  announce(`No users configured: created an admin token (shown once, kept in ${file}):\n  ${token}`);
  return token;
}
