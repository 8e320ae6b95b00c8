/** `/v1/pools`: the GPU pools, their caps and queues. */
import { z } from 'zod';
import type { Deps } from '../../../core/deps.js';
import { PageQuery, wholeNumberParam } from '../../../core/pagination.js';
import { DEFAULT_HISTORY_HOURS, MAX_HISTORY_HOURS, poolHistory } from '../../../core/pool-history.js';
import { listPools, updatePool } from '../../../core/pools.js';
import { NAME_PATTERN, PoolCapInput } from '../../../core/schemas.js';
import { page, Pool, PoolHistory } from '../../../core/views.js';
import { json, type Route } from '../middleware.js';
import { route } from './route.js';

const PoolParams = z.object({ name: z.string().regex(NAME_PATTERN, 'must be a pool name') });
const HistoryQuery = z.strictObject({
  hours: wholeNumberParam(MAX_HISTORY_HOURS)
    .optional()
    .describe(`The window, in hours back from now: 1-${MAX_HISTORY_HOURS} (default ${DEFAULT_HISTORY_HOURS})`),
});

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
      method: 'GET',
      path: '/v1/pools/{name}/history',
      summary: "A pool's GPUs held over the last hours, by project, and when those held now come back",
      description:
        'Computed from the jobs stored (admission to release, as `/v1/stats` counts GPU-hours), in at most 120 steps. Members see their projects by name and the rest summed as `(other projects)`; admins see every project.',
      access: 'member',
      params: PoolParams,
      query: HistoryQuery,
      responses: { 200: { description: "The pool's history and coming releases", schema: PoolHistory } },
      handle: async ({ identity, params, query }) =>
        json(200, await poolHistory(deps(), identity, params.name, query.hours)),
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
