import type { BudgetPeriod } from '../core/budgets.js';
import type { CountedQuotaResource, QuotaResource } from '../core/schemas.js';

export interface PoolRecord {
  name: string;
  instanceType: string;
  gpusPerInstance: number;
  maxGpus: number;
  usedGpus: number;
  availableGpus: number;
  /** Younger jobs may start ahead of a blocked head when they provably end before its latest start (core/backfill.ts). */
  backfill: boolean;
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

/** Pools, quotas and budgets: their limits and live usage, read by admission and changed by admins. */
export interface LimitStore {
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
  /** Give the project the deployment's default limits for resources it has no limit for (once per project and process). */
  ensureDefaultQuotas(project: string, defaults: Partial<Record<CountedQuotaResource, number>>): Promise<void>;
}
