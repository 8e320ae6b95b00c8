/** `/v1/pools`: the GPU pools, their caps and queues. */
import { z } from 'zod';
import type { Deps } from '../../../core/deps.js';
import { PageQuery } from '../../../core/pagination.js';
import { listPools, updatePool } from '../../../core/pools.js';
import { NAME_PATTERN, PoolCapInput } from '../../../core/schemas.js';
import { page, Pool } from '../../../core/views.js';
import { json, type Route } from '../middleware.js';
import { route } from './route.js';

const PoolParams = z.object({ name: z.string().regex(NAME_PATTERN, 'must be a pool name') });

export function poolRoutes(deps: () => Deps): Route[] {
  return [
    route({
      method: 'GET',
      path: '/v1/pools',
      summary: 'GPU pools: cap, GPUs held and free, jobs waiting',
      description: 'Ordered by name.',
      access: 'member',
      query: PageQuery,
      responses: { 200: { description: 'One page of pools, by name', schema: page(Pool) } },
      handle: async ({ identity, query }) => json(200, await listPools(deps(), identity, query)),
    }),
    route({
      method: 'PATCH',
      path: '/v1/pools/{name}',
      summary: "Change a pool's GPU cap or backfill",
      description:
        "GPUs held are kept; a cap below them blocks new admissions only. Raising it admits waiting jobs that now fit before it answers. `backfill: true` lets a younger job start ahead of a blocked head when its live timeout proves it ends before the head's latest start; false (the default) is strict FIFO.",
      access: 'admin',
      params: PoolParams,
      body: PoolCapInput,
      responses: {
        200: { description: 'The pool as changed, after waiting jobs that now fit were admitted', schema: Pool },
      },
      handle: async ({ identity, params, body }) => json(200, await updatePool(deps(), identity, params.name, body)),
    }),
  ];
}
