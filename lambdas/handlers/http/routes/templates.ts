/** `/v1/templates`: job templates of a project (its members write them) or public (admins write them). */
import { z } from 'zod';
import type { Deps } from '../../../core/deps.js';
import { PageQuery } from '../../../core/pagination.js';
import { NAME_PATTERN, TemplatePatch, TemplateSpec } from '../../../core/schemas.js';
import { createTemplate, deleteTemplate, getTemplate, listTemplates, updateTemplate } from '../../../core/templates.js';
import { page, Template } from '../../../core/views.js';
import { json, noContent, type Route } from '../middleware.js';
import { route } from './route.js';

const project = z.string().regex(NAME_PATTERN, 'must be a project name');
const TemplateParams = z.object({ id: z.string().min(1).max(128).describe('The template id (tpl-...) or its name') });
const TemplateQuery = z.strictObject({
  project: project
    .optional()
    .describe(
      "Look the name up among this project's templates (then the public ones); needed when several of your projects have a template of that name",
    ),
});
const ListTemplatesQuery = PageQuery.extend({ project: project.optional().describe("Only this project's templates") });

export function templateRoutes(deps: () => Deps): Route[] {
  const location = (id: string) => ({ location: `/v1/templates/${encodeURIComponent(id)}` });
  return [
    route({
      method: 'POST',
      path: '/v1/templates',
      errors: [409, 429],
      summary: 'Create a template',
      description:
        "A template of `project` (or of your only project), written by the project's members and counted against its `templates` quota (429 when used up), or a public one (`public: true`, admins only). Names are unique per project and among public templates; the pool and the image must exist.",
      access: 'member',
      body: TemplateSpec,
      responses: {
        201: {
          description: 'The template, stored',
          schema: Template,
          headers: { Location: { description: 'The path of the template, by id', required: true } },
        },
      },
      handle: async ({ identity, body }) => {
        const template = await createTemplate(deps(), identity, body);
        return json(201, template, location(template.id));
      },
    }),
    route({
      method: 'GET',
      path: '/v1/templates',
      summary: "List templates: your projects' and the public ones (admins: all)",
      access: 'member',
      query: ListTemplatesQuery,
      responses: {
        200: {
          description: 'One page of templates: public ones first, then by project and name',
          schema: page(Template),
        },
      },
      handle: async ({ identity, query }) => json(200, await listTemplates(deps(), identity, query)),
    }),
    route({
      method: 'GET',
      path: '/v1/templates/{id}',
      summary: 'Read a template, by id or name',
      access: 'member',
      params: TemplateParams,
      query: TemplateQuery,
      responses: { 200: { description: 'The template', schema: Template } },
      handle: async ({ identity, params, query }) =>
        json(200, await getTemplate(deps(), identity, params.id, query.project)),
    }),
    route({
      method: 'PATCH',
      path: '/v1/templates/{id}',
      errors: [409],
      summary: 'Change a template, by id or name',
      description:
        'Any field but its owner (project, public); null removes an optional field. The changed template is checked whole, as on create; jobs already submitted keep what they were given.',
      access: 'member',
      params: TemplateParams,
      query: TemplateQuery,
      body: TemplatePatch,
      responses: { 200: { description: 'The template as changed (revision one higher)', schema: Template } },
      handle: async ({ identity, params, query, body }) =>
        json(200, await updateTemplate(deps(), identity, params.id, body, query.project)),
    }),
    route({
      method: 'DELETE',
      path: '/v1/templates/{id}',
      errors: [409],
      summary: 'Delete a template, by id or name (409 while active jobs use it)',
      access: 'member',
      params: TemplateParams,
      query: TemplateQuery,
      responses: { 204: { description: 'Deleted; a project template gives its `templates` quota back' } },
      handle: async ({ identity, params, query }) => {
        await deleteTemplate(deps(), identity, params.id, query.project);
        return noContent();
      },
    }),
  ];
}
