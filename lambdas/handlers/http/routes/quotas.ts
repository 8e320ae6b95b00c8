/** `/v1/quotas`: per-project limits and live usage. */
import { z } from 'zod';
import type { Deps } from '../../../core/deps.js';
import { getQuota, listQuotas } from '../../../core/quotas.js';
import { NAME_PATTERN, QUOTA_RESOURCES } from '../../../core/schemas.js';
import { json, type Route } from '../middleware.js';
import { route } from './route.js';

export const projectName = z.string().regex(NAME_PATTERN, 'must be a project name');
export const ProjectQuery = z.strictObject({ project: projectName.optional() });
const QuotaParams = z.object({ project: projectName, resource: z.enum(QUOTA_RESOURCES) });

export function quotaRoutes(deps: () => Deps): Route[] {
  return [
    route({
      method: 'GET',
      path: '/v1/quotas',
      summary: "List quotas: members see their projects', admins every project's",
      access: 'member',
      query: ProjectQuery,
      handle: async ({ identity, query }) => json(200, { items: await listQuotas(deps(), identity, query.project) }),
    }),
    route({
      method: 'GET',
      path: '/v1/quotas/{project}/{resource}',
      summary: 'Read one limit and its live usage',
      access: 'member',
      params: QuotaParams,
      handle: async ({ identity, params }) => json(200, await getQuota(deps(), identity, params.project, params.resource)),
    }),
  ];
}
