import type { Compute } from '../ports/compute.js';
import type { EventPublisher } from '../ports/events.js';
import type { JobLogs } from '../ports/job-logs.js';
import type { JobOutputs } from '../ports/job-outputs.js';
import type { Catalog } from '../ports/catalog.js';
import type { JobRecords } from '../ports/jobs.js';
import type { LimitStore } from '../ports/limits.js';
import type { JobQueue } from '../ports/queue.js';
import type { SecretStore } from '../ports/secrets.js';
import type { Workflows } from '../ports/workflows.js';
import type { CountedQuotaResource } from './schemas.js';

export interface Logger {
  info(message: string, data?: Record<string, unknown>): void;
  warn(message: string, data?: Record<string, unknown>): void;
  error(message: string, data?: Record<string, unknown>): void;
}

/**
 * Operational figures (CloudWatch EMF on AWS; see core/metrics.ts for the names). `dimensions` split a
 * figure by a small, fixed set of values (a launch failure's error name), never by job or project.
 */
export interface Metrics {
  count(name: string, value?: number, dimensions?: Record<string, string>): void;
  milliseconds(name: string, value: number): void;
}

/** The deployment's tunables; every field has a default in core (lambdas/core/policy.ts). */
export interface Policy {
  /** Limits for projects that have no row for a resource; absent: unlimited. */
  defaultQuotas?: Partial<Record<CountedQuotaResource, number>>;
  /** How many AwaitCompute checks (5 s apart) before the agent is given up on. @default 120 (10 minutes) */
  maxComputeChecks?: number;
  /** First backoff after a launch found no capacity; doubles per attempt. @default 30 */
  launchBackoffSeconds?: number;
  /** @default 900 */
  maxLaunchBackoffSeconds?: number;
  /** ECR repository ARNs (IAM wildcards) job instances may pull from: an ECR image outside them is refused at POST /v1/images. @default not checked */
  ecrRepositories?: string[];
  /** The root snapshot of the deployment's GPU AMI in GB: the least a template's volumeSizeGb may be. @default MIN_VOLUME_SIZE_GB (75), never less */
  minVolumeSizeGb?: number;
  /**
   * How long Stop may wait at most for a stopping job's outputs to be kept before its compute goes (the AWS
   * upload, adapters/ssm-outputs.ts): part of the stop bound. @default 0 (kept as the job runs, locally)
   */
  outputsWaitSeconds?: number;
}

/** The ports core works through; a handler or the local runner picks the adapters. */
export interface Deps {
  jobs: JobRecords;
  queue: JobQueue;
  limits: LimitStore;
  catalog: Catalog;
  compute: Compute;
  workflows: Workflows;
  events: EventPublisher;
  /** Container output: CloudWatch Logs on AWS, the job's log file locally. */
  logs: JobLogs;
  /** What jobs kept of $FLARE_OUTPUT_DIR: the data directory locally, the outputs bucket on AWS. Absent: none kept (list empty). */
  outputs?: JobOutputs;
  /** Project secrets (core/secrets.ts); absent where nothing reads or writes them (the workflow functions on AWS). */
  secrets?: SecretStore;
  log: Logger;
  /** Absent: nothing is measured (core/metrics.ts metricsOf). */
  metrics?: Metrics;
  policy?: Policy;
  now(): Date;
  newId(): string;
}
