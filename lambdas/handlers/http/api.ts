/**
 * The API Lambda: one middy router for API Gateway's HTTP API (payload 2.0).
 * Each route parses its input, calls core once and shapes the answer; the
 * middlewares in ./middleware.ts do routing, auth, body parsing and errors.
 */
import middy from '@middy/core';
import type { APIGatewayProxyEventV2WithJWTAuthorizer, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import type { Deps } from '../../core/deps.js';
import { Unavailable } from '../../core/errors.js';
import { awsApiOptions, awsCompute, awsDeps, awsJobLogs, awsSecrets } from '../aws-deps.js';
import { awsOutputs } from '../aws-outputs.js';
import { observed } from '../aws-observability.js';
import {
  authenticate,
  httpErrorHandler,
  json,
  limitBody,
  matchRoute,
  parseJsonBody,
  type ApiContext,
  type ApiEvent,
  type ApiResult,
  type Route,
} from './middleware.js';
import { openApiDocument, serverUrlOf } from './openapi.js';
import { execRoutes } from './routes/exec.js';
import { imageRoutes } from './routes/images.js';
import { jobRoutes } from './routes/jobs.js';
import { outputRoutes } from './routes/outputs.js';
import { poolRoutes } from './routes/pools.js';
import { quotaRoutes } from './routes/quotas.js';
import { route } from './routes/route.js';
import { secretRoutes } from './routes/secrets.js';
import { statsRoutes } from './routes/stats.js';
import { templateRoutes } from './routes/templates.js';
import { Health, OpenApiDocument, V1, Versions } from '../../core/views.js';

export interface ApiOptions {
  /** The group that makes a caller an admin. @default 'admin' */
  adminGroup?: string;
  /** The JWT claim that lists the caller's groups (projects, and the admin group). @default 'cognito:groups' */
  groupsClaim?: string;
  /** Largest request body accepted, in bytes. @default 65536 */
  maxBodyBytes?: number;
  /** Extra components for `GET /v1/health`; a component whose value (or `.status`) is not 'ok' makes it 503. */
  health?: () => Promise<Record<string, unknown>>;
}

export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

export function apiRoutes(deps: () => Deps, options: ApiOptions = {}): Route[] {
  let document: ReturnType<typeof openApiDocument> | undefined;
  const routes: Route[] = [
    route({
      method: 'GET',
      path: '/',
      summary: 'API versions',
      access: 'public',
      tag: 'service',
      responses: { 200: { description: 'The versions served', schema: Versions } },
      handle: async () => json(200, { versions: [{ id: 'v1', status: 'CURRENT' }] }),
    }),
    route({
      method: 'GET',
      path: '/v1',
      summary: 'The resources of v1',
      access: 'public',
      tag: 'service',
      responses: { 200: { description: 'v1 and its paths', schema: V1 } },
      handle: async () => json(200, describeV1(routes)),
    }),
    route({
      method: 'GET',
      path: '/v1/openapi.json',
      summary: 'This API as an OpenAPI 3.1 document, generated from the schemas the routes validate with',
      access: 'public',
      tag: 'service',
      responses: { 200: { description: 'This document', schema: OpenApiDocument } },
      // One document per process; only `servers` follows the request, naming the origin it reached.
      handle: async ({ event }) =>
        json(200, {
          ...(document ??= openApiDocument(routes, { maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES })),
          servers: [{ url: serverUrlOf(event) }],
        }),
    }),
    route({
      method: 'GET',
      path: '/v1/health',
      summary: 'Health of the control plane and its components',
      access: 'public',
      tag: 'service',
      responses: {
        200: { description: 'Every component is ok', schema: Health },
        503: { description: 'A component is not ok: `components` says which', schema: Health },
      },
      handle: () => checkHealth(deps(), options.health),
    }),

    ...jobRoutes(deps),
    ...execRoutes(deps),
    ...outputRoutes(deps),
    ...templateRoutes(deps),
    ...imageRoutes(deps),
    ...poolRoutes(deps),
    ...quotaRoutes(deps),
    ...secretRoutes(deps),
    ...statsRoutes(deps),
  ];
  return routes;
}

export function createApiHandler(deps: () => Deps, options: ApiOptions = {}) {
  const routes = apiRoutes(deps, options);
  return middy<ApiEvent, ApiResult, Error, ApiContext>()
    .use(httpErrorHandler(() => deps().log))
    .use(limitBody(options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES))
    .use(matchRoute(routes))
    .use(authenticate({ adminGroup: options.adminGroup, groupsClaim: options.groupsClaim }))
    .use(parseJsonBody())
    .handler(async (event, context) => {
      const { route: matched, identity, params = {}, body } = context.api ?? {};
      // matchRoute and authenticate ran, or middy would not be here.
      return matched!.handle({ event, identity: identity!, params, body });
    });
}

export type ApiHandler = (
  event: APIGatewayProxyEventV2WithJWTAuthorizer,
  context: ApiContext,
) => Promise<APIGatewayProxyStructuredResultV2>;

export const handler: ApiHandler = observed(
  createApiHandler(
    awsDeps({ compute: awsCompute, logs: awsJobLogs, secrets: awsSecrets, outputs: awsOutputs }),
    awsApiOptions(),
  ),
  {
    metrics: true,
    correlationId: jobIdOfPath,
  },
);

/** The job a request names in its path (`/v1/jobs/{id}...`). */
export function jobIdOfPath(event: Pick<ApiEvent, 'rawPath'>): string | undefined {
  return /^\/v1\/jobs\/([^/]+)/.exec(event.rawPath ?? '')?.[1];
}

function describeV1(routes: readonly Route[]) {
  const byPath = new Map<string, { path: string; methods: string[]; public: boolean }>();
  for (const r of routes.filter((r) => r.path.startsWith('/v1/'))) {
    const entry = byPath.get(r.path) ?? { path: r.path, methods: [], public: Boolean(r.public) };
    entry.methods.push(r.method);
    byPath.set(r.path, entry);
  }
  return { id: 'v1', status: 'CURRENT', resources: [...byPath.values()] };
}

/** How long health waits for the store: a health check must answer even when the store hangs. */
export const HEALTH_STORE_TIMEOUT_MS = 2_000;

/** The store must answer a real read in time; the caller's components (local runner) are reported as they come. */
async function checkHealth(deps: Deps, extra?: () => Promise<Record<string, unknown>>): Promise<ApiResult> {
  const components: Record<string, unknown> = {};
  try {
    await withTimeout(deps.limits.listPools(), HEALTH_STORE_TIMEOUT_MS);
    components.store = 'ok';
  } catch (error) {
    deps.log.error('health: store check failed', { error: String(error) });
    components.store = { status: 'unavailable', reason: storeProblem(error) };
  }
  if (extra) {
    try {
      Object.assign(components, await extra());
    } catch (error) {
      deps.log.error('health: component check failed', { error: String(error) });
      components.runtime = 'unavailable';
    }
  }
  const healthy = Object.values(components).every(isOk);
  return json(healthy ? 200 : 503, { status: healthy ? 'ok' : 'degraded', components });
}

class HealthTimeout extends Error {}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HealthTimeout()), ms);
  });
  work.catch(() => {}); // settles after the timeout is answered: nobody waits for it then
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

/** What the health answer says is wrong with the store: the mapped reason, never a host or a stack. */
function storeProblem(error: unknown): string {
  if (error instanceof HealthTimeout) return `no answer within ${HEALTH_STORE_TIMEOUT_MS} ms`;
  if (error instanceof Unavailable) return error.message;
  return `unexpected error (${error instanceof Error ? error.name : typeof error}); see the log`;
}

function isOk(component: unknown): boolean {
  if (typeof component === 'string') return component === 'ok';
  if (component && typeof component === 'object' && 'status' in component)
    return (component as { status: unknown }).status === 'ok';
  return true;
}
