/**
 * One object over the three stores (jobs, queue, limits) for tests that arrange and read state: core
 * itself only ever gets the ports it asks for (Deps.jobs, Deps.queue, Deps.limits).
 */
import type { DynamoStores } from '../../lambdas/adapters/dynamo/dynamo-stores.js';
import type { JobRecords } from '../../lambdas/ports/jobs.js';
import type { LimitStore } from '../../lambdas/ports/limits.js';
import type { JobQueue } from '../../lambdas/ports/queue.js';

export type StoreView = JobRecords & JobQueue & LimitStore;

export function storeView(stores: Pick<DynamoStores, 'jobs' | 'queue' | 'limits'>): StoreView {
  const ports = [stores.jobs, stores.queue, stores.limits];
  return new Proxy({} as StoreView, {
    get(_, member) {
      // The jobs store first: tests that look inside (its client, its table names) find them there.
      const port = ports.find((p) => member in p) as unknown as Record<PropertyKey, unknown> | undefined;
      const value = port?.[member];
      return typeof value === 'function' ? value.bind(port) : value;
    },
    set(_, member) {
      throw new Error(
        `the store view is read-only: to change what core sees, replace ${String(member)} on deps.jobs, deps.queue or deps.limits`,
      );
    },
  });
}
