/**
 * GPU pools as the API shows them (cap, GPUs held and free, jobs waiting) and
 * the changes an admin makes through the API: the cap and backfill. Lowering
 * the cap below what is held is allowed and only blocks new admissions; raising
 * it (or turning backfill on) drains the pool at once.
 */
import type { Deps } from './deps.js';
import { NotFound } from './errors.js';
import { authorize, type Identity } from './identity.js';
import { pageOf, type PageQuery } from './pagination.js';
import { drainPool } from './admission.js';
import type { PoolCapInput } from './schemas.js';
import type { Page } from '../ports/jobs.js';
import type { PoolRecord } from '../ports/limits.js';

export interface PoolView extends PoolRecord {
  waitingJobs: number;
}

export async function listPools(
  deps: Pick<Deps, 'limits' | 'queue'>,
  identity: Identity,
  query: PageQuery = {},
): Promise<Page<PoolView>> {
  authorize(identity, 'read', { kind: 'pool' }, 'pools');
  const page = pageOf('pools', await deps.limits.listPools(), query, (pool) => pool.name);
  // Queue lengths only for the pools shown.
  return { ...page, items: await Promise.all(page.items.map((pool) => poolView(deps, pool))) };
}

/** Set a pool's cap (keeping what is held) and/or backfill; then drain it, so a change admits who waited for it. */
export async function updatePool(
  deps: Deps,
  identity: Identity,
  name: string,
  change: PoolCapInput,
): Promise<PoolView> {
  authorize(identity, 'write', { kind: 'pool' }, name);
  if (change.backfill !== undefined && !(await deps.limits.setPoolBackfill(name, change.backfill)))
    throw new NotFound('pool', name);
  if (change.maxGpus !== undefined && !(await deps.limits.setPoolCap(name, change.maxGpus)))
    throw new NotFound('pool', name);
  await drainPool(deps, name);
  const pool = await deps.limits.getPool(name);
  if (!pool) throw new NotFound('pool', name);
  return poolView(deps, pool);
}

async function poolView(deps: Pick<Deps, 'queue'>, pool: PoolRecord): Promise<PoolView> {
  return {
    name: pool.name,
    instanceType: pool.instanceType,
    gpusPerInstance: pool.gpusPerInstance,
    maxGpus: pool.maxGpus,
    usedGpus: pool.usedGpus,
    // A cap lowered below what is held leaves the counter negative; nobody can take a negative GPU.
    availableGpus: Math.max(0, pool.availableGpus),
    waitingJobs: await deps.queue.queueLength(pool.name),
    backfill: pool.backfill,
  };
}
