/** `/v1/quotas`: per-project limits and live usage, GPU-hour budgets among them; admins write, members read their own. */
import { z } from 'zod';
import type { Deps } from '../../../core/deps.js';
import { PageQuery } from '../../../core/pagination.js';
import { createQuota, deleteQuota, getQuota, listQuotas, quotaPath, updateQuota } from '../../../core/quotas.js';
import { NAME_PATTERN, QUOTA_RESOURCES, QuotaLimitInput, QuotaSpec } from '../../../core/schemas.js';
import { page, Quota } from '../../../core/views.js';
import { json, noContent, type Route } from '../middleware.js';
import { route } from './route.js';

export const projectName = z.string().regex(NAME_PATTERN, 'must be a project name');
export const ProjectQuery = z.strictObject({
  project: projectName.optional().describe('Only this project (one of yours, unless you are an admin)'),
});
const ListQuotasQuery = PageQuery.extend(ProjectQuery.shape);
const QuotaParams = z.object({ project: projectName, resource: z.enum(QUOTA_RESOURCES) });

export function quotaRoutes(deps: () => Deps): Route[] {
  return [
    route({
      method: 'POST',
      path: '/v1/quotas',
      errors: [409],
      summary: 'Give a project a limit for a resource',
      description:
        "The usage counted so far applies at once; a limit below it blocks new admissions only. 409 when the project already has a limit for the resource (change it with PATCH). A gpuHours budget needs a `period` (day, week or month, UTC): admission reserves each job's worst case (GPUs x live timeout) against it and the unused part is given back when the job ends.",
      access: 'admin',
      body: QuotaSpec,
      responses: {
        201: {
          description: 'The limit, with the usage counted so far',
          schema: Quota,
          headers: { Location: { description: 'The path of the quota', required: true } },
        },
      },
      handle: async ({ identity, body }) => {
        const quota = await createQuota(deps(), identity, body);
        return json(201, quota, { location: quotaPath(quota.project, quota.resource) });
      },
    }),
    route({
      method: 'GET',
      path: '/v1/quotas',
      summary: "List limits with live usage: members see their projects', admins every project's",
      description: 'Ordered by project, then resource. A resource without a limit is unlimited and not listed.',
      access: 'member',
      query: ListQuotasQuery,
      responses: { 200: { description: 'One page of limits, by project and resource', schema: page(Quota) } },
      handle: async ({ identity, query }) => json(200, await listQuotas(deps(), identity, query)),
    }),
    route({
      method: 'GET',
      path: '/v1/quotas/{project}/{resource}',
      summary: 'Read one limit and its live usage',
      description: '404 when the project has no limit for the resource, or is not one of yours.',
      access: 'member',
      params: QuotaParams,
      responses: { 200: { description: 'The limit and its live usage', schema: Quota } },
      handle: async ({ identity, params }) =>
        json(200, await getQuota(deps(), identity, params.project, params.resource)),
    }),
    route({
      method: 'PATCH',
      path: '/v1/quotas/{project}/{resource}',
      summary: 'Change a limit',
      description:
        'Lowering it below what is used is allowed and only blocks new admissions. Raising it admits waiting jobs that now fit before it answers. A gpuHours budget keeps its period and what was spent in it (to change the period, delete the budget and create it again).',
      access: 'admin',
      params: QuotaParams,
      body: QuotaLimitInput,
      responses: {
        200: {
          description: 'The limit as changed, with usage after waiting jobs that now fit were admitted',
          schema: Quota,
        },
      },
      handle: async ({ identity, params, body }) =>
        json(200, await updateQuota(deps(), identity, params.project, params.resource, body.hardLimit)),
    }),
    route({
      method: 'DELETE',
      path: '/v1/quotas/{project}/{resource}',
      summary: 'Remove a limit: the project is unlimited for the resource again',
      description: 'Usage keeps being counted. Waiting jobs that now fit are admitted before it answers (204).',
      access: 'admin',
      params: QuotaParams,
      responses: { 204: { description: 'Removed: the project is unlimited for the resource' } },
      handle: async ({ identity, params }) => {
        await deleteQuota(deps(), identity, params.project, params.resource);
        return noContent();
      },
    }),
  ];
}
