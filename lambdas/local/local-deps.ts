/**
 * The local runtime's dependencies, built in one place for the control plane
 * (control-plane.ts) and the tests (test/support/harness.ts), as aws-deps.ts
 * builds them for every Lambda: the DynamoDB adapters on the given tables, the
 * local compute driver and the ASL runner (both call back into core through
 * the Deps they belong to), job logs from the driver's files, and the jobs
 * table's stream publishing onto `events`. The caller owns the clients and
 * closes what it gets back.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { resolve } from 'node:path';
import { DynamoCatalog } from '../adapters/dynamo/dynamo-catalog.js';
import { DynamoReconcileStore } from '../adapters/dynamo/dynamo-reconcile-store.js';
import { dynamoStores, type DynamoStores } from '../adapters/dynamo/dynamo-stores.js';
import type { TableNames } from '../adapters/dynamo/table-names.js';
import { newJobId } from '../adapters/ids.js';
import { LocalCompute, type LocalComputeOptions } from '../adapters/local-compute.js';
import { LocalJobLogs } from '../adapters/local-job-logs.js';
import { LocalSecretStore } from '../adapters/local-secrets.js';
import { LocalOutputs } from '../adapters/local-outputs.js';
import type { Deps, Logger, Policy } from '../core/deps.js';
import { runTask } from '../handlers/workflow/tasks.js';
import type { Compute } from '../ports/compute.js';
import type { EventPublisher } from '../ports/events.js';
import { localCompletion } from './completion.js';
import { type Checkpoints, startJobEvents, type JobEventsOptions, type StreamPoller } from './jobs-stream.js';
import { LocalWorkflows } from './local-workflows.js';

/** The adapters on one set of tables: what Deps, seeding and the reconciler read and write. */
export interface LocalStores extends DynamoStores {
  catalog: DynamoCatalog;
  reconcileStore: DynamoReconcileStore;
}

export function localStores(doc: DynamoDBDocumentClient, tables: TableNames): LocalStores {
  return {
    ...dynamoStores(doc, tables),
    catalog: new DynamoCatalog(doc, tables),
    reconcileStore: new DynamoReconcileStore(doc, tables),
  };
}

/** What core runs on besides the tables; tests pass stand-ins (a workflow runner that only records). */
export type LocalPorts = Pick<Deps, 'compute' | 'workflows' | 'events' | 'logs' | 'outputs' | 'secrets' | 'log'> & {
  policy?: Policy;
  /** @default the wall clock */
  now?: () => Date;
};

/** The local Deps over `stores`: the one place the object is put together. */
export function localDeps(stores: LocalStores, ports: LocalPorts): Deps {
  const { policy, now, ...rest } = ports;
  return {
    jobs: stores.jobs,
    queue: stores.queue,
    limits: stores.limits,
    catalog: stores.catalog,
    ...rest,
    ...(policy ? { policy } : {}),
    now: now ?? (() => new Date()),
    newId: newJobId,
  };
}

export interface LocalRuntimeOptions {
  dynamo: { client: DynamoDBClient; doc: DynamoDBDocumentClient; streams: DynamoDBStreamsClient };
  tables: TableNames;
  /** Core's publisher, and where the jobs stream puts every state change. */
  events: EventPublisher & JobEventsOptions['publisher'];
  checkpoints: Checkpoints;
  /** How often the jobs stream is read. @default 100 */
  eventPollMs?: number;
  /** The local driver: its data directory, pools, driver and tuning; its reports go to core. */
  compute: Omit<LocalComputeOptions, 'onExit' | 'onLost' | 'log'>;
  /** What core sees of the driver (tests inject failures); the runtime keeps the driver itself. */
  wrapCompute?: (compute: Compute) => Compute;
  log: Logger;
  policy?: Policy;
  now?: () => Date;
}

export interface LocalRuntime extends LocalStores {
  deps: Deps;
  compute: LocalCompute;
  workflows: LocalWorkflows;
  /** Reads the jobs table's stream into `events`; `drained()` waits until every stored change is published. */
  jobEvents: StreamPoller;
}

/** Starts the jobs stream reader, the workflow runner and the compute driver over `options.tables`. */
export async function startLocalRuntime(options: LocalRuntimeOptions): Promise<LocalRuntime> {
  const { dynamo, tables, events, log } = options;
  const stores = localStores(dynamo.doc, tables);
  // State changes reach `events` only from the table's stream, by the publisher AWS runs: one event path.
  const jobEvents = startJobEvents({
    dynamodb: dynamo.client,
    streams: dynamo.streams,
    tableName: tables.jobs,
    publisher: events,
    checkpoints: options.checkpoints,
    log,
    pollMs: options.eventPollMs,
  });
  // The runner and the driver call back into core with the Deps they are part of; `deps` is set before anything runs.
  let deps!: Deps;
  const workflows = new LocalWorkflows((event) => runTask(deps, event), log);
  let compute: LocalCompute;
  // Files of the data directory: what the API writes and the driver reads at a job's start.
  const secrets = new LocalSecretStore(options.compute.dataDir);
  try {
    compute = await LocalCompute.create({ ...options.compute, ...localCompletion(() => deps), secrets, log });
  } catch (error) {
    await workflows.close();
    await jobEvents.stop();
    throw error;
  }
  deps = localDeps(stores, {
    compute: options.wrapCompute ? options.wrapCompute(compute) : compute,
    workflows,
    events,
    logs: new LocalJobLogs((id) => compute.logPath(id)),
    secrets,
    outputs: new LocalOutputs(resolve(options.compute.dataDir)),
    log,
    policy: options.policy,
    now: options.now,
  });
  return { ...stores, deps, compute, workflows, jobEvents };
}
