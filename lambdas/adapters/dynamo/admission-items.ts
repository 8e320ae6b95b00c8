/** What one admission writes, shared by a job stored admitted (DynamoJobs.createAdmitted) and the admission of a queued one (DynamoQueue.admit). */
import { worstCaseGpuMs } from '../../core/budgets.js';
import { JobState, type Job } from '../../core/job.js';
import { reserve, takePoolGpus, takeQuota } from './counter-items.js';
import type { TableNames } from './table-names.js';
import type { TransactItems } from './transactions.js';

/** The admission transaction's items, in this order: the first whose condition failed says why. */
export const ADMIT_ITEMS = ['job', 'quota', 'budget', 'pool'] as const;

export type AdmittedJob = Job & { heldGpus: number; reservedGpuMs: number; workflowRun: number };

/** The job as one admission leaves it: holding its GPUs, its worst case reserved, on its next workflow run (core/admission.ts). */
export function admittedJob(job: Job, admittedAt: string): AdmittedJob {
  const { stateReason: _reason, queuePosition: _position, promisedStartAt: _promised, ...rest } = job;
  return {
    ...rest,
    state: JobState.LAUNCHING,
    admittedAt,
    workflowRun: (job.workflowRun ?? 0) + 1,
    heldGpus: job.gpus * job.nodeCount,
    reservedGpuMs: worstCaseGpuMs(job),
  };
}

/** What admitting `job` takes besides the job itself, each conditioned: project gpus, its worst case against the gpuHours budget, pool gpus (ADMIT_ITEMS' order after the job). */
export function admissionItems(
  tables: Pick<TableNames, 'quotas' | 'pools'>,
  job: Pick<AdmittedJob, 'project' | 'pool' | 'heldGpus' | 'reservedGpuMs'>,
  at: string,
): TransactItems {
  return [
    takeQuota(tables.quotas, job.project, 'gpus', job.heldGpus),
    reserve(tables.quotas, job.project, job.reservedGpuMs, at),
    takePoolGpus(tables.pools, job.pool, job.heldGpus),
  ];
}
