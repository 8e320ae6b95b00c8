/** `/v1/stats`: jobs by state, GPU-hours, waiting times. */
import type { Deps } from '../../../core/deps.js';
import { jobStats } from '../../../core/stats.js';
import { Stats } from '../../../core/views.js';
import { json, type Route } from '../middleware.js';
import { ProjectQuery } from './quotas.js';
import { route } from './route.js';

export function statsRoutes(deps: () => Deps): Route[] {
  return [
    route({
      method: 'GET',
      path: '/v1/stats',
      summary: 'Jobs by state, GPU-hours held, waiting time p50/p95; overall, by pool and by project',
      description:
        "Admins see every project, members their own; `project` narrows to one (another project's is a 404). GPU-hours count jobs still holding GPUs up to now; waiting time runs from submission to admission, over admitted jobs.",
      access: 'member',
      query: ProjectQuery,
      responses: { 200: { description: 'The figures for the projects counted', schema: Stats } },
      handle: async ({ identity, query }) => json(200, await jobStats(deps(), identity, query.project)),
    }),
  ];
}
