/** `/v1/pools`: the GPU pools, their caps and queues. */
import type { Deps } from '../../../core/deps.js';
import { listPools } from '../../../core/pools.js';
import { json, type Route } from '../middleware.js';
import { route } from './route.js';

export function poolRoutes(deps: () => Deps): Route[] {
  return [
    route({ method: 'GET', path: '/v1/pools', summary: 'GPU pools: cap, GPUs held and free, jobs waiting', access: 'member', handle: async () => json(200, { items: await listPools(deps()) }) }),
  ];
}
