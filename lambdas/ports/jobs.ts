import type { Job, JobOutputsRecord, JobState, Outcome } from '../core/job.js';

export interface Page<T> {
  items: T[];
  nextToken?: string;
}

/** recordOutcome's extra condition: the job still holds `instanceId` (and, with `only`, nothing else). */
export interface OutcomeInstance {
  instanceId: string;
  only: boolean;
}

export interface IdempotencyClaim {
  /** Namespaced by project, so two projects never share a key. */
  key: string;
  bodyHash: string;
}

export interface TerminalChange {
  state: JobState;
  stateReason: string;
  finishedAt: string;
  exitCode?: number;
  /** What the job kept of its output directory, recorded in the same write. */
  outputs?: JobOutputsRecord;
}

export interface RequeueChange {
  stateReason: string;
  retryAt: string;
  launchAttempt: number;
}

/**
 * Durable state of each job: what the API and the workflow's steps read and change. Every method that
 * changes a job is a conditional write: it happens once, or the caller learns it lost a race. The writes that
 * also move usage (create, finish, requeue, change a reservation) carry their counters in the same transaction.
 */
export interface JobRecords {
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
  /** The members of an array (same project and template; each with `arrayId` and `arrayIndex`) in one
   *  transaction with their `jobs` usage (all or nothing: a `jobs` limit without room for every member is
   *  QuotaExceeded) and the claim; with `admit`, the first `admit.count` members are stored admitted as
   *  createAdmitted stores one (undefined when an admission item said no: nothing was stored). A replay
   *  of the claim returns the array's members. */
  createArray(
    jobs: Job[],
    claim?: IdempotencyClaim,
    admit?: { count: number; at: string },
  ): Promise<{ jobs: Job[]; created: boolean } | undefined>;
  /** An array's members, by index. */
  listArray(arrayId: string): Promise<Job[]>;
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
  /** Delete a terminal job; false when it is not there or not terminal. */
  deleteJob(id: string): Promise<boolean>;
}
