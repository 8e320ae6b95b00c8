/** What `GET /v1/pools` shows: each pool's cap, what is held, and how many jobs wait for it. */
import type { Deps } from './deps.js';
import type { PoolRecord } from '../ports/job-store.js';

export interface PoolView extends PoolRecord {
  waitingJobs: number;
}

export async function listPools(deps: Pick<Deps, 'store'>): Promise<PoolView[]> {
  const pools = await deps.store.listPools();
  return Promise.all(
    pools.map(async (pool) => ({
      name: pool.name,
      instanceType: pool.instanceType,
      gpusPerInstance: pool.gpusPerInstance,
      maxGpus: pool.maxGpus,
      usedGpus: pool.usedGpus,
      // A cap lowered below what is held leaves the counter negative; nobody can take a negative GPU.
      availableGpus: Math.max(0, pool.availableGpus),
      waitingJobs: await deps.store.queueLength(pool.name),
    })),
  );
}
