import type { Job } from '../core/job.js';

/** What a forecast reads of a queued job (JobQueue.listQueueSummaries). */
export type QueuedJobSummary = Pick<
  Job,
  'id' | 'pool' | 'project' | 'state' | 'createdAt' | 'gpus' | 'nodeCount' | 'liveTimeoutMinutes' | 'retryAt'
>;

/** Why an admission transaction did not go through. */
export type AdmitBlock = 'job' | 'quota' | 'budget' | 'pool';
export type AdmitResult = { admitted: true; job: Job } | { admitted: false; blockedBy: AdmitBlock };

/**
 * The pools' queues, what holds GPUs, and the admission that moves a job from one to the other: what
 * core/admission.ts and the forecasts read and write.
 */
export interface JobQueue {
  /** The admission transaction: job queued -> LAUNCHING, project gpus, the job's worst case reserved
   *  against the project's gpuHours budget (core/budgets.ts), pool gpus; each conditioned.
   *  The job must still be in the state the caller read (`job.state`, PENDING or WAITING). */
  admit(job: Job, admittedAt: string): Promise<AdmitResult>;
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
}
