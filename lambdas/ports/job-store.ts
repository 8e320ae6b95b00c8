import type { Job, JobState, Outcome } from '../core/job.js';
import type { BudgetPeriod } from '../core/budgets.js';
import type { CountedQuotaResource, QuotaResource, TemplateSpec } from '../core/schemas.js';

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
  /** Younger jobs may start ahead of a blocked head when they provably end before its latest start (core/queue.ts). */
  backfill: boolean;
}

/** What a forecast reads of a queued job (JobStore.listQueueSummaries). */
export type QueuedJobSummary = Pick<
  Job,
  'id' | 'pool' | 'project' | 'state' | 'createdAt' | 'gpus' | 'nodeCount' | 'liveTimeoutMinutes' | 'retryAt'
>;

/** recordOutcome's extra condition: the job still holds `instanceId` (and, with `only`, nothing else). */
export interface OutcomeInstance {
  instanceId: string;
  only: boolean;
}

export interface Limits {
  pool?: PoolRecord;
  quotas: Map<string, { gpus?: QuotaRecord; gpuHours?: QuotaRecord }>;
}

export interface QuotaRecord {
  project: string;
  resource: QuotaResource;
  /** Absent: the project is unlimited for this resource; usage is still counted. */
  hardLimit?: number;
  /** For gpuHours: GPU-milliseconds spent this period plus those reserved (core/budgets.ts). */
  used: number;
  /** gpuHours only: the period and the part of `used` reserved by jobs holding GPUs. */
  budget?: { period?: BudgetPeriod; periodStart?: string; periodEnd?: string; reservedGpuMs: number };
}

/** What putQuota sets: a limit and, for gpuHours, its period (absent: the stored one is kept). */
export interface QuotaLimit {
  project: string;
  resource: QuotaResource;
  hardLimit: number;
  period?: BudgetPeriod;
}

export interface IdempotencyClaim {
  /** Namespaced by project, so two projects never share a key. */
  key: string;
  bodyHash: string;
}

/** Why an admission transaction did not go through. */
export type AdmitBlock = 'job' | 'quota' | 'budget' | 'pool';
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
   *  With `job.templateId`, the template must exist and not be being deleted (Catalog.markTemplateDeleting),
   *  checked in the same transaction: Conflict otherwise.
   *  Throws IdempotencyConflict or QuotaExceeded. */
  createJob(job: Job, claim?: IdempotencyClaim): Promise<{ job: Job; created: boolean }>;
  /** createJob, storing the job admitted (LAUNCHING at `admittedAt`, on its first workflow run): the admission
   *  transaction's quota, budget and pool items join the same transaction, each with its condition. Undefined when
   *  one of them said no: nothing was stored. The caller decides that no older job of the pool waits. */
  createAdmitted(
    job: Job,
    admittedAt: string,
    claim?: IdempotencyClaim,
  ): Promise<{ job: Job; created: boolean } | undefined>;
  getJob(id: string): Promise<Job | undefined>;
  /** `projects` undefined means every project (admins). Newest first. */
  listJobs(
    filter: { projects?: string[]; state?: JobState },
    page: { limit: number; nextToken?: string },
  ): Promise<Page<Job>>;
  /** Set fields when the job is in one of `from`; throws StaleJob otherwise. */
  updateJob(id: string, from: readonly JobState[], set: Partial<Job>, remove?: readonly (keyof Job)[]): Promise<Job>;
  /** Record why the job stops, once (first writer wins) and only while it holds compute.
   *  Returns the job as stored afterwards, or undefined when it was not recorded. */
  recordOutcome(id: string, outcome: Outcome, on?: OutcomeInstance): Promise<Job | undefined>;
  /** Record one node's exit code while the job runs and has no outcome; undefined when it was not recorded. */
  recordNodeExit(id: string, instanceId: string, exitCode: number): Promise<Job | undefined>;
  /** Store the workflow's callback token; returns the job as stored afterwards. */
  setTaskToken(id: string, token: string): Promise<Job>;
  /** The admission transaction: job queued -> LAUNCHING, project gpus, the job's worst case reserved
   *  against the project's gpuHours budget (core/budgets.ts), pool gpus; each conditioned.
   *  The job must still be in the state the caller read (`job.state`, PENDING or WAITING). */
  admit(job: Job, admittedAt: string): Promise<AdmitResult>;
  /** Terminal state, GPUs released, `jobs` usage returned and the unused part of the reservation refunded
   *  (core/budgets.ts chargedGpuMs), in one transaction conditioned on the job still being in `from` with
   *  the same `heldGpus` and `reservedGpuMs`; undefined when another writer already finished or changed it. */
  finishJob(job: Job, change: TerminalChange): Promise<Job | undefined>;
  /** LAUNCHING -> WAITING with its GPUs released, its whole reservation refunded (it had no GPU) and its place in
   *  the queue (by age) kept, in one transaction conditioned on the job still LAUNCHING with `heldGpus` and
   *  `reservedGpuMs`; undefined when it was not. */
  requeueJob(job: Job, change: RequeueChange): Promise<Job | undefined>;
  /** Set `set` and the job's reservation (`reservedGpuMs`) with the difference added to or taken from the project's
   *  gpuHours budget, in one transaction conditioned on the job still in `job.state` with `job.reservedGpuMs`;
   *  a larger reservation is conditioned on the budget's room at `at`. Returns the job as stored afterwards. */
  changeReservation(
    job: Job,
    set: Partial<Job>,
    reservedGpuMs: number,
    at: string,
  ): Promise<{ changed: true; job: Job } | { changed: false; blockedBy: 'job' | 'budget' }>;
  /** Give the project the deployment's default limits for resources it has no limit for (once per project and process). */
  ensureDefaultQuotas(project: string, defaults: Partial<Record<CountedQuotaResource, number>>): Promise<void>;
  /** Delete a terminal job; false when it is not there or not terminal. */
  deleteJob(id: string): Promise<boolean>;
  /** Queued jobs of a pool, oldest first, read from the queue index. */
  listQueue(pool: string, limit: number, startAfter?: string): Promise<{ items: Job[]; next?: string }>;
  /** listQueue with only what a forecast reads of each job: a page of summaries costs a fraction of a page of jobs. */
  listQueueSummaries(
    pool: string,
    limit: number,
    startAfter?: string,
  ): Promise<{ items: QueuedJobSummary[]; next?: string }>;
  /** Jobs of the pool holding GPUs (LAUNCHING, RUNNING, STOPPING), read from an index (eventually consistent). */
  listHolding(pool: string): Promise<Job[]>;
  /** How many queued jobs of the pool are older than this one. */
  queuePosition(job: Job): Promise<number>;
  /** How many jobs are queued in the pool. */
  queueLength(pool: string): Promise<number>;
  /** Every job not in a terminal state (recovery and reconciliation). */
  listActiveJobs(): Promise<Job[]>;

  getPool(name: string): Promise<PoolRecord | undefined>;
  /** The pool (when named) and each project's `gpus` and `gpuHours` rows, in one consistent read: what an
   *  admission decision looks at. Projects without a row have an empty entry. */
  getLimits(pool: string | undefined, projects: readonly string[]): Promise<Limits>;
  listPools(): Promise<PoolRecord[]>;
  /** Create a pool or change its cap, keeping usage; `backfill` absent keeps the stored setting (default off). */
  putPool(pool: {
    name: string;
    instanceType: string;
    gpusPerInstance: number;
    maxGpus: number;
    backfill?: boolean;
  }): Promise<void>;
  /** Turn backfill on or off for an existing pool; undefined when there is no such pool. */
  setPoolBackfill(name: string, backfill: boolean): Promise<PoolRecord | undefined>;
  /** Change an existing pool's cap, keeping usage; `availableGpus` is derived from the usage at the
   *  instant of the write (never read-modify-write). Undefined when there is no such pool. */
  setPoolCap(name: string, maxGpus: number): Promise<PoolRecord | undefined>;
  getQuota(project: string, resource: QuotaResource): Promise<QuotaRecord | undefined>;
  listQuotas(project?: string): Promise<QuotaRecord[]>;
  /** Set a limit, keeping usage; `available` is derived from the usage at the instant of the write.
   *  `only: 'new'` when the project has no limit for the resource yet, `'existing'` when it has one:
   *  undefined when that does not hold. Returns the row as stored.
   *  A gpuHours budget with a `period` keeps what was spent when the stored period is that period's current one
   *  at `now` (default: the clock), else starts the current period with nothing spent; reservations always count. */
  putQuota(quota: QuotaLimit, only?: 'new' | 'existing', now?: Date): Promise<QuotaRecord | undefined>;
  /** Remove a limit: the project is unlimited for the resource again, its usage still counted.
   *  False when there was no limit. */
  removeQuotaLimit(project: string, resource: QuotaResource): Promise<boolean>;
}

/** One version of a catalog image: appended, never changed or removed. */
export interface ImageVersion {
  /** 1, 2, ... in the order they were added. */
  version: number;
  reference: string;
  digest: string;
  addedAt: string;
  addedBy: string;
}

export interface ImageRecord {
  name: string;
  /** Oldest first; the last is the latest. */
  versions: ImageVersion[];
  createdAt: string;
}

/** A stored template: its spec (owner normalised to `project` or `public: true`) and bookkeeping. */
export type TemplateRecord = TemplateSpec & {
  id: string;
  createdAt: string;
  updatedAt: string;
  createdBy: string;
  /** Bumped by every change; updates are conditioned on it. */
  revision: number;
};

/**
 * Templates and images. Every write is conditional: names stay unique per owner,
 * image versions are only appended, and the `templates` quota is counted in the
 * same transaction that creates or deletes a project template.
 */
export interface Catalog {
  getImage(name: string): Promise<ImageRecord | undefined>;
  listImages(): Promise<ImageRecord[]>;
  /** Append `version` (creating the image with it when `version.version` is 1) if the image has exactly
   *  `version.version - 1` versions; false when another writer changed it first. */
  appendImageVersion(name: string, version: ImageVersion): Promise<boolean>;

  getTemplate(id: string): Promise<TemplateRecord | undefined>;
  /** The template called `name` of `project`, or among the public ones when `project` is undefined. */
  findTemplate(project: string | undefined, name: string): Promise<TemplateRecord | undefined>;
  /** The template called `name` of the first owner in `projects` (undefined: the public ones) that has one,
   *  all owners looked up at once. */
  findTemplateIn(projects: readonly (string | undefined)[], name: string): Promise<TemplateRecord | undefined>;
  listTemplates(): Promise<TemplateRecord[]>;
  /** The template, its name claim and (project templates) one `templates` of the project's quota, in one
   *  transaction. Throws Conflict when the name is taken, QuotaExceeded when the quota is used up. */
  createTemplate(template: TemplateRecord): Promise<void>;
  /** Replace `previous` with `next` (same id and owner) if it is still at `previous.revision` and not being
   *  deleted at `now`; a rename moves the name claim. Throws Conflict otherwise or when the new name is taken. */
  updateTemplate(previous: TemplateRecord, next: TemplateRecord, now: string): Promise<void>;
  /** Mark the template as being deleted until `until`, unless another delete holds a mark that is live at
   *  `now` (Conflict). While marked, no job can be stored against it (JobStore.createJob checks).
   *  Returns the template as marked, undefined when there is none. */
  markTemplateDeleting(id: string, until: string, now: string): Promise<TemplateRecord | undefined>;
  /** Remove our mark (`until`) again. */
  clearTemplateDeleting(id: string, until: string): Promise<void>;
  /** Delete the template, its name claim and (project templates) give back one `templates` of the quota,
   *  if our mark `until` is still there and live at `now`; false otherwise. */
  deleteTemplate(template: TemplateRecord, until: string, now: string): Promise<boolean>;
}
