/** `/v1/projects/{project}/secrets`: a project's write-only values, which jobs map into their environment. */
import { z } from 'zod';
import type { Deps } from '../../../core/deps.js';
import {
  deleteSecret,
  listSecrets,
  MAX_SECRETS_PER_PROJECT,
  PutSecretInput,
  putSecret,
  secretName,
} from '../../../core/secrets.js';
import { json, noContent, type Route } from '../middleware.js';
import { projectName } from './quotas.js';
import { route } from './route.js';

const ProjectParams = z.object({ project: projectName });
const SecretParams = z.object({ project: projectName, name: secretName });

const SecretSummary = z
  .strictObject({
    name: z.string(),
    updatedAt: z.iso.datetime().meta({ description: 'When its value was last put (ISO 8601 UTC)' }),
  })
  .meta({ id: 'SecretSummary', description: 'A secret as listed: its name, never its value.' });
const SecretList = z
  .strictObject({ items: z.array(SecretSummary) })
  .meta({ id: 'SecretList', description: 'Every secret of the project, by name (one answer: at most 100).' });

export function secretRoutes(deps: () => Deps): Route[] {
  return [
    route({
      method: 'PUT',
      path: '/v1/projects/{project}/secrets/{name}',
      tag: 'secrets',
      errors: [422],
      summary: "Create or replace a project's secret",
      description: `Write-only: no route returns the value. A job takes it into its environment with \`secrets: { ENV_NAME: "<name>" }\`; the logs the API serves show it as ***. Names: 1-64 letters, digits, _ or -, starting with a letter or _. 422 when the project already holds ${MAX_SECRETS_PER_PROJECT} secrets. Another project's secrets are a 404.`,
      access: 'member',
      params: SecretParams,
      body: PutSecretInput,
      responses: { 204: { description: 'Stored' } },
      handle: async ({ identity, params, body }) => {
        await putSecret(deps(), identity, params.project, params.name, body);
        return noContent();
      },
    }),
    route({
      method: 'GET',
      path: '/v1/projects/{project}/secrets',
      tag: 'secrets',
      summary: "List a project's secrets: names and when each was last put, never values",
      access: 'member',
      params: ProjectParams,
      responses: { 200: { description: 'The secrets, by name', schema: SecretList } },
      handle: async ({ identity, params }) => json(200, await listSecrets(deps(), identity, params.project)),
    }),
    route({
      method: 'DELETE',
      path: '/v1/projects/{project}/secrets/{name}',
      tag: 'secrets',
      summary: 'Delete a secret',
      description:
        'Jobs that name it can no longer be submitted (400 naming secrets); one that has not started yet fails at its start. Its value can then no longer be masked in logs.',
      access: 'member',
      params: SecretParams,
      responses: { 204: { description: 'Deleted' } },
      handle: async ({ identity, params }) => {
        await deleteSecret(deps(), identity, params.project, params.name);
        return noContent();
      },
    }),
  ];
}
