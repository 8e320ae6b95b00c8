import type { Job, JobState, Outcome } from '../core/job.js';
import type { ImageSpec, QuotaResource, TemplateSpec } from '../core/schemas.js';

export interface Page<T> {
  items: T[];
  nextToken?: string;
}

export interface PoolRecord {
  name: string;
  instanceType: string;
  gpusPerInstance: number;
  maxGpus: number;
  usedGpus: number;
  availableGpus: number;
}

export interface QuotaRecord {
  project: string;
  resource: QuotaResource;
  /** Absent: the project is unlimited for this resource; usage is still counted. */
  hardLimit?: number;
  used: number;
}

export interface IdempotencyClaim {
  /** Namespaced by project, so two projects never share a key. */
  key: string;
  bodyHash: string;
}

/** Why an admission transaction did not go through. */
export type AdmitBlock = 'job' | 'quota' | 'pool';
export type AdmitResult = { admitted: true; job: Job } | { admitted: false; blockedBy: AdmitBlock };

export interface TerminalChange {
  state: JobState;
  stateReason: string;
  finishedAt: string;
  exitCode?: number;
}

export interface RequeueChange {
  stateReason: string;
  retryAt: string;
  launchAttempt: number;
}

/**
 * Durable state of jobs, pools and quotas. Every method that changes a job is a
 * conditional write: it happens once, or the caller learns it lost a race.
 */
export interface JobStore {
  /** Store a new job (and its idempotency claim and `jobs` usage) in one transaction.
   *  Returns the existing job when the claim was made before with the same body.
   *  Throws IdempotencyConflict or QuotaExceeded. */
  createJob(job: Job, claim?: IdempotencyClaim): Promise<{ job: Job; created: boolean }>;
  getJob(id: string): Promise<Job | undefined>;
  /** `projects` undefined means every project (admins). Newest first. */
  listJobs(filter: { projects?: string[]; state?: JobState }, page: { limit: number; nextToken?: string }): Promise<Page<Job>>;
  /** Set fields when the job is in one of `from`; throws StaleJob otherwise. */
  updateJob(id: string, from: readonly JobState[], set: Partial<Job>, remove?: readonly (keyof Job)[]): Promise<Job>;
  /** Record why the job stops, once (first writer wins) and only while it holds compute.
   *  Returns the job as stored afterwards, or undefined when it was not recorded. */
  recordOutcome(id: string, outcome: Outcome): Promise<Job | undefined>;
  /** Record one node's exit code while the job runs and has no outcome; undefined when it was not recorded. */
  recordNodeExit(id: string, instanceId: string, exitCode: number): Promise<Job | undefined>;
  /** Store the workflow's callback token; returns the job as stored afterwards. */
  setTaskToken(id: string, token: string): Promise<Job>;
  /** The admission transaction: job queued -> LAUNCHING, project gpus, pool gpus; each conditioned. */
  admit(job: Job, admittedAt: string): Promise<AdmitResult>;
  /** Terminal state, GPUs released and `jobs` usage returned, in one transaction conditioned on
   *  the job still being in `from`; undefined when another writer already finished it. */
  finishJob(job: Job, change: TerminalChange): Promise<Job | undefined>;
  /** LAUNCHING -> WAITING with its GPUs released and its place in the queue (by age) kept, in one
   *  transaction conditioned on the job still LAUNCHING with `heldGpus`; undefined when it was not. */
  requeueJob(job: Job, change: RequeueChange): Promise<Job | undefined>;
  /** Give the project the deployment's default limits for resources it has no limit for (once per project and process). */
  ensureDefaultQuotas(project: string, defaults: Partial<Record<QuotaResource, number>>): Promise<void>;
  /** Delete a terminal job; false when it is not there or not terminal. */
  deleteJob(id: string): Promise<boolean>;
  /** Queued jobs of a pool, oldest first, read from the queue index. */
  listQueue(pool: string, limit: number, startAfter?: string): Promise<{ items: Job[]; next?: string }>;
  /** How many queued jobs of the pool are older than this one. */
  queuePosition(job: Job): Promise<number>;
  /** How many jobs are queued in the pool. */
  queueLength(pool: string): Promise<number>;
  /** Every job not in a terminal state (recovery and reconciliation). */
  listActiveJobs(): Promise<Job[]>;

  getPool(name: string): Promise<PoolRecord | undefined>;
  listPools(): Promise<PoolRecord[]>;
  /** Create a pool or change its cap, keeping usage. */
  putPool(pool: { name: string; instanceType: string; gpusPerInstance: number; maxGpus: number }): Promise<void>;
  getQuota(project: string, resource: QuotaResource): Promise<QuotaRecord | undefined>;
  listQuotas(project?: string): Promise<QuotaRecord[]>;
  /** Create a limit or change it, keeping usage. */
  putQuota(quota: { project: string; resource: QuotaResource; hardLimit: number }): Promise<void>;
}

/** Templates and images. */
export interface Catalog {
  getTemplate(name: string): Promise<TemplateSpec | undefined>;
  getImage(name: string): Promise<ImageSpec | undefined>;
  putTemplate(template: TemplateSpec): Promise<void>;
  putImage(image: ImageSpec): Promise<void>;
}
