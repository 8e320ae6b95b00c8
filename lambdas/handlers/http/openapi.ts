/**
 * `GET /v1/openapi.json`: an OpenAPI 3.1 document built from the routes
 * themselves. Every parameter, query and body schema in it is the zod schema
 * that route validates with (z.toJSONSchema), so the document cannot drift from
 * what the API accepts; every response schema is a view of core/views.ts, which
 * test/integration/response-schemas.test.ts checks real answers against.
 */
import { z } from 'zod';
import type { Route, RouteDoc } from './middleware.js';

export interface OpenApiInfo {
  title?: string;
  version?: string;
  /** Where the API is served; omitted: `/`, relative to the document. */
  serverUrl?: string;
  /** The largest request body the API takes, in bytes (a larger one is a 413). */
  maxBodyBytes?: number;
}

type JsonSchema = Record<string, unknown>;

/** The error shape of docs/api.md, for every non-2xx answer. */
export const ErrorBody = z
  .object({
    error: z.object({
      code: z
        .string()
        .meta({ description: 'Stable machine-readable code, e.g. validation_error, not_found, quota_exceeded.' }),
      message: z.string(),
      details: z
        .array(
          z.object({
            field: z.string().meta({ description: 'The input field, dotted for nested ones.' }),
            reason: z.string(),
          }),
        )
        .optional()
        .meta({ description: 'Every bad field (400 only).' }),
    }),
  })
  .meta({ id: 'Error' });

const ERRORS: Record<number, string> = {
  400: 'Validation failed: `details` lists every bad field and why.',
  401: 'No valid bearer token.',
  403: 'Signed in, but this needs an admin (or a member of the owning project).',
  404: "Not found, or it belongs to another project (Flare never confirms another project's resources exist).",
  409: 'Conflict with the current state (e.g. a name already taken, a template in use, a job already finished).',
  413: 'The request body is larger than the API takes.',
  422: 'Well-formed but impossible (e.g. more GPUs than the pool can ever hold).',
  429: 'A quota (jobs, templates) is used up.',
  503: 'The store (DynamoDB) or the workflow engine (Step Functions) cannot be reached or is throttling. Retry after `Retry-After` seconds (a submit with the same `Idempotency-Key`, so it is stored once).',
};

/** Headers of the error answers that carry any. */
const ERROR_HEADERS: Record<number, Record<string, unknown>> = {
  503: {
    'retry-after': { description: 'Seconds to wait before retrying.', required: true, schema: { type: 'string' } },
  },
};

export function openApiDocument(routes: readonly Route[], info: OpenApiInfo = {}): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const components: Record<string, JsonSchema> = {};
  refOrInline(ErrorBody, components);
  for (const route of routes) {
    if (!route.doc) continue;
    // OpenAPI has no greedy parameter: `{path+}` is documented as `{path}` (its description says it may hold '/').
    const path = route.path.replace(/\+\}/g, '}');
    paths[path] ??= {};
    paths[path][route.method.toLowerCase()] = operation(route, route.doc, components, info.maxBodyBytes);
  }
  const bodyLimit =
    info.maxBodyBytes === undefined
      ? ''
      : ` Request bodies are JSON of at most ${sizeOf(info.maxBodyBytes)} (a larger one is a 413).`;
  return {
    openapi: '3.1.0',
    info: {
      title: info.title ?? 'Flare API',
      version: info.version ?? 'v1',
      description: `Flare hands out GPUs for a bounded time. Submit a job from a template; it waits in its pool's FIFO queue until its project's quota and the pool's cap allow it, runs until it exits or its live timeout expires, and gives its GPUs back exactly once. Send \`Authorization: Bearer <token>\` on every route but the public ones.${bodyLimit} Lists take \`limit\` (1-1000) and the \`nextToken\` of the page before.`,
    },
    servers: [{ url: info.serverUrl ?? '/' }],
    tags: [...new Set(routes.flatMap((r) => (r.doc ? [r.doc.tag] : [])))].map((name) => ({ name })),
    paths,
    components: {
      schemas: components,
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: "A local token from the config, or a JWT from the deployment's issuer (Cognito or OIDC).",
        },
      },
    },
  };
}

function operation(
  route: Route,
  doc: RouteDoc,
  components: Record<string, JsonSchema>,
  maxBodyBytes: number | undefined,
): Record<string, unknown> {
  const parameters = [...parametersOf(doc.params, 'path', components), ...parametersOf(doc.query, 'query', components)];
  const responses: Record<string, unknown> = {};
  for (const [status, response] of Object.entries(doc.responses ?? { 200: { description: 'OK' } })) {
    const headers = Object.entries(response.headers ?? {}).map(([name, header]) => [
      name,
      { description: header.description, required: Boolean(header.required), schema: { type: 'string' } },
    ]);
    responses[status] = {
      description: response.description,
      ...(headers.length ? { headers: Object.fromEntries(headers) } : {}),
      ...(response.binary || response.schema
        ? {
            content: {
              ...(response.binary
                ? { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } }
                : {}),
              ...(response.schema ? { 'application/json': { schema: refOrInline(response.schema, components) } } : {}),
            },
          }
        : {}),
    };
  }
  for (const status of errorStatuses(route, doc)) {
    const description =
      status === 413 && maxBodyBytes !== undefined
        ? `The request body is larger than ${sizeOf(maxBodyBytes)}.`
        : ERRORS[status];
    responses[status] ??= {
      description,
      ...(ERROR_HEADERS[status] ? { headers: ERROR_HEADERS[status] } : {}),
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
    };
  }
  return {
    operationId: operationId(route),
    summary: doc.summary,
    ...(doc.description ? { description: doc.description } : {}),
    tags: [doc.tag],
    security: doc.access === 'public' ? [] : [{ bearer: [] }],
    'x-flare-access': doc.access,
    ...(parameters.length ? { parameters } : {}),
    ...(doc.body
      ? {
          requestBody: {
            required: true,
            ...(maxBodyBytes === undefined
              ? {}
              : { description: `JSON of at most ${sizeOf(maxBodyBytes)} (a larger body is a 413)` }),
            content: { 'application/json': { schema: refOrInline(doc.body, components) } },
          },
        }
      : {}),
    responses,
  };
}

/** The statuses a route can answer besides its own successes. */
function errorStatuses(route: Route, doc: RouteDoc): number[] {
  const statuses: number[] = [];
  if (doc.params || doc.query || doc.body) statuses.push(400);
  if (doc.access !== 'public') statuses.push(401);
  if (doc.access === 'admin' || route.method !== 'GET') statuses.push(403);
  if (doc.params) statuses.push(404);
  if (route.body) statuses.push(413);
  statuses.push(...(doc.errors ?? []));
  // Every route behind a token reads the store.
  if (doc.access !== 'public') statuses.push(503);
  return statuses;
}

function parametersOf(
  schema: z.ZodType | undefined,
  where: 'path' | 'query',
  components: Record<string, JsonSchema>,
): unknown[] {
  if (!schema) return [];
  const json = schemaOf(schema, components);
  const properties = (json.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((json.required ?? []) as string[]);
  return Object.entries(properties).map(([name, property]) => {
    const { description, ...rest } = property;
    return {
      name,
      in: where,
      required: where === 'path' || required.has(name),
      ...(description ? { description } : {}),
      schema: rest,
    };
  });
}

/** Schemas that carry a `.meta({ id })` become shared components, wherever they are nested. */
function refOrInline(schema: z.ZodType, components: Record<string, JsonSchema>): JsonSchema {
  const id = (z.globalRegistry.get(schema) as { id?: string } | undefined)?.id;
  const json = schemaOf(schema, components);
  if (!id) return json;
  components[id] ??= json;
  return { $ref: `#/components/schemas/${id}` };
}

function schemaOf(schema: z.ZodType, components?: Record<string, JsonSchema>): JsonSchema {
  const {
    $schema: _,
    $defs,
    ...json
  } = relink(z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' })) as JsonSchema;
  for (const [id, def] of Object.entries(($defs ?? {}) as Record<string, JsonSchema>)) {
    if (!components) throw new Error(`schema ${id} is nested where no components can hold it`);
    components[id] ??= def;
  }
  return json;
}

/** zod names nested ids under `#/$defs`; OpenAPI keeps them under components. Its `id` keys are not JSON Schema. */
function relink(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(relink);
  if (!value || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (key === 'id' && typeof v === 'string') continue;
    out[key] = key === '$ref' && typeof v === 'string' ? v.replace(/^#\/\$defs\//, '#/components/schemas/') : relink(v);
  }
  return out;
}

/** `64 KiB (65536 bytes)`. */
function sizeOf(bytes: number): string {
  const unit =
    bytes % (1024 * 1024) === 0
      ? `${bytes / (1024 * 1024)} MiB`
      : bytes % 1024 === 0
        ? `${bytes / 1024} KiB`
        : undefined;
  return unit ? `${unit} (${bytes} bytes)` : `${bytes} bytes`;
}

/**
 * The origin a request reached the API at, as API Gateway tells it (and the local server,
 * playing it): `x-forwarded-proto` and `-port` over `requestContext.domainName`, with the
 * stage unless it is `$default`. `/` (relative to the document) when they are not all there.
 */
export function serverUrlOf(event: {
  headers?: Record<string, string | undefined>;
  requestContext?: { domainName?: string; stage?: string };
}): string {
  const proto = event.headers?.['x-forwarded-proto'];
  const domain = event.requestContext?.domainName;
  if ((proto !== 'http' && proto !== 'https') || !domain || !/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253})$/.test(domain))
    return '/';
  const port = event.headers?.['x-forwarded-port'];
  const shownPort = port && /^\d{1,5}$/.test(port) && port !== (proto === 'https' ? '443' : '80') ? `:${port}` : '';
  const stage = event.requestContext?.stage;
  return `${proto}://${domain}${shownPort}${stage && stage !== '$default' ? `/${encodeURIComponent(stage)}` : ''}`;
}

function operationId(route: Route): string {
  if (route.path === '/') return `${route.method.toLowerCase()}Versions`;
  if (route.path === '/v1') return `${route.method.toLowerCase()}V1`;
  const words = route.path
    .split('/')
    .filter((s) => s && s !== 'v1')
    .map((s) => (s.startsWith('{') ? `by-${s.slice(1, -1).replace(/\+$/, '')}` : s));
  return (
    [route.method.toLowerCase(), ...words].join('-').replace(/[^a-zA-Z0-9]+(.)/g, (_, c: string) => c.toUpperCase()) ||
    route.method.toLowerCase()
  );
}
