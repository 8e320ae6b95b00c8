/**
 * How jobs, pools and quotas are stored as DynamoDB items, and read back. The jobs table's index
 * attributes are derived here from `state`, so callers never see them:
 * - `queuePool`/`queueKey` (sparse GSI `queue`): the pool's name while the job is PENDING or WAITING,
 *   `<pool>#holding` while it holds GPUs (LAUNCHING, RUNNING, STOPPING: what a forecast reads);
 * - `project`/`createdKey` (GSI `byProject`) always;
 * - `activePartition` (sparse GSI `active`) while the job is not terminal.
 */
import type { BudgetPeriod } from '../../core/budgets.js';
import { HOLDING_STATES, isTerminal, QUEUED_STATES, type Job } from '../../core/job.js';
import type { QuotaResource } from '../../core/schemas.js';
import type { PoolRecord, QuotaRecord } from '../../ports/limits.js';

export type Item = Record<string, unknown>;

const INDEX_ATTRIBUTES = ['queuePool', 'queueKey', 'createdKey', 'activePartition'] as const;
/** The one partition of the `active` index. */
export const ACTIVE = 'active';

export function queueKey(job: Pick<Job, 'createdAt' | 'id'>): string {
  return `${job.createdAt}#${job.id}`;
}

/** The `queue` index partition of a pool's holding jobs; pool names have no '#'. */
export function holdingPartition(pool: string): string {
  return `${pool}#holding`;
}

export function toItem(job: Job): Item {
  const item: Item = { ...job, createdKey: queueKey(job) };
  if (QUEUED_STATES.includes(job.state)) Object.assign(item, { queuePool: job.pool, queueKey: queueKey(job) });
  if (HOLDING_STATES.includes(job.state))
    Object.assign(item, { queuePool: holdingPartition(job.pool), queueKey: queueKey(job) });
  if (!isTerminal(job.state)) item.activePartition = ACTIVE;
  return item;
}

export function fromItem(item: Item): Job {
  const job = { ...item };
  for (const key of INDEX_ATTRIBUTES) delete job[key];
  if (job.exitedNodes instanceof Set) {
    job.nodeExits = Object.fromEntries(
      [...(job.exitedNodes as Set<string>)].map((e) => [
        e.slice(0, e.lastIndexOf('=')),
        Number(e.slice(e.lastIndexOf('=') + 1)),
      ]),
    );
  }
  delete job.exitedNodes;
  return job as unknown as Job;
}

export function toPool(item: Item): PoolRecord {
  return {
    name: String(item.name),
    instanceType: String(item.instanceType ?? 'local'),
    gpusPerInstance: Number(item.gpusPerInstance ?? 1),
    maxGpus: Number(item.maxGpus ?? 0),
    usedGpus: Number(item.used ?? 0),
    availableGpus: Number(item.available ?? 0),
    backfill: item.backfill === true,
  };
}

export function toQuota(item: Item): QuotaRecord {
  return {
    project: String(item.project),
    resource: item.resource as QuotaResource,
    ...(item.hardLimit !== undefined ? { hardLimit: Number(item.hardLimit) } : {}),
    used: Number(item.used ?? 0),
    ...(item.resource === 'gpuHours'
      ? {
          budget: {
            ...(item.period !== undefined ? { period: item.period as BudgetPeriod } : {}),
            ...(item.periodStart !== undefined ? { periodStart: String(item.periodStart) } : {}),
            ...(item.periodEnd !== undefined ? { periodEnd: String(item.periodEnd) } : {}),
            reservedGpuMs: Number(item.reserved ?? 0),
          },
        }
      : {}),
  };
}
