/**
 * The API Lambda: one middy router for API Gateway's HTTP API (payload 2.0).
 * Each route parses its input, calls core once and shapes the answer; the
 * middlewares in ./middleware.ts do routing, auth, body parsing and errors.
 */
import middy from '@middy/core';
import type { APIGatewayProxyEventV2WithJWTAuthorizer, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { z } from 'zod';
import type { Deps } from '../../core/deps.js';
import { ValidationError } from '../../core/errors.js';
import { publicJob } from '../../core/job.js';
import { deleteJob, getJob, listJobs, submitJob } from '../../core/jobs.js';
import { readJobLogs } from '../../core/logs.js';
import { listPools } from '../../core/pools.js';
import { getQuota, listQuotas } from '../../core/quotas.js';
import { JobLogsQuery, ListJobsQuery, NAME_PATTERN, parse, QUOTA_RESOURCES, SubmitJobInput } from '../../core/schemas.js';
import { jobStats } from '../../core/stats.js';
import { awsDeps } from '../aws-deps.js';
import {
  authenticate,
  httpErrorHandler,
  json,
  limitBody,
  matchRoute,
  noContent,
  parseJsonBody,
  type ApiContext,
  type ApiEvent,
  type ApiResult,
  type Route,
  type RouteRequest,
} from './middleware.js';

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

/** `Idempotency-Key`: 1-128 visible ASCII characters. */
const IDEMPOTENCY_KEY_PATTERN = /^[\x21-\x7e]{1,128}$/;

const projectName = z.string().regex(NAME_PATTERN, 'must be a project name');
const NoQuery = z.strictObject({});
const ProjectQuery = z.strictObject({ project: projectName.optional() });
const JobParams = z.object({ id: z.string().min(1).max(128) });
const QuotaParams = z.object({ project: projectName, resource: z.enum(QUOTA_RESOURCES) });

/** A route whose query string is checked by `query` (no parameters at all by default). */
function route<Q extends z.ZodType = typeof NoQuery>(spec: Omit<Route, 'handle'> & { query?: Q; handle(request: RouteRequest & { query: z.infer<Q> }): Promise<ApiResult> }): Route {
  const { query, handle, ...rest } = spec;
  const schema = (query ?? NoQuery) as Q;
  return { ...rest, handle: (request) => handle({ ...request, query: parse(schema, request.event.queryStringParameters ?? {}) }) };
}

export function apiRoutes(deps: () => Deps, options: ApiOptions = {}): Route[] {
  const routes: Route[] = [
    route({ method: 'GET', path: '/', public: true, handle: async () => json(200, { versions: [{ id: 'v1', status: 'CURRENT' }] }) }),
    route({ method: 'GET', path: '/v1', public: true, handle: async () => json(200, describeV1(routes)) }),
    route({ method: 'GET', path: '/v1/health', public: true, handle: () => checkHealth(deps(), options.health) }),

    route({
      method: 'POST',
      path: '/v1/jobs',
      body: true,
      handle: async ({ event, identity, body }) => {
        const key = idempotencyKey(event);
        const { job, created } = await submitJob(deps(), identity, parse(SubmitJobInput, body), key);
        return json(202, publicJob(job), { location: `/v1/jobs/${encodeURIComponent(job.id)}`, ...(created ? {} : { 'idempotent-replayed': 'true' }) });
      },
    }),
    route({
      method: 'GET',
      path: '/v1/jobs',
      query: ListJobsQuery,
      handle: async ({ identity, query }) => {
        const page = await listJobs(deps(), identity, query);
        return json(200, { items: page.items.map(publicJob), nextToken: page.nextToken });
      },
    }),
    route({
      method: 'GET',
      path: '/v1/jobs/{id}',
      handle: async ({ identity, params }) => json(200, publicJob(await getJob(deps(), identity, parse(JobParams, params).id))),
    }),
    route({
      // `{ jobId, lines: [{ at?, message }] }`, oldest first: see JobLogsView in core/logs.ts.
      method: 'GET',
      path: '/v1/jobs/{id}/logs',
      query: JobLogsQuery,
      handle: async ({ identity, params, query }) => json(200, await readJobLogs(deps(), identity, parse(JobParams, params).id, query)),
    }),
    route({
      method: 'DELETE',
      path: '/v1/jobs/{id}',
      handle: async ({ identity, params }) => {
        const result = await deleteJob(deps(), identity, parse(JobParams, params).id);
        return result.removed ? noContent() : json(202, publicJob(result.job));
      },
    }),

    route({ method: 'GET', path: '/v1/pools', handle: async () => json(200, { items: await listPools(deps()) }) }),
    route({
      method: 'GET',
      path: '/v1/quotas',
      query: ProjectQuery,
      handle: async ({ identity, query }) => json(200, { items: await listQuotas(deps(), identity, query.project) }),
    }),
    route({
      method: 'GET',
      path: '/v1/quotas/{project}/{resource}',
      handle: async ({ identity, params }) => {
        const { project, resource } = parse(QuotaParams, params);
        return json(200, await getQuota(deps(), identity, project, resource));
      },
    }),
    route({
      method: 'GET',
      path: '/v1/stats',
      query: ProjectQuery,
      handle: async ({ identity, query }) => json(200, await jobStats(deps(), identity, query.project)),
    }),
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

export type ApiHandler = (event: APIGatewayProxyEventV2WithJWTAuthorizer, context: ApiContext) => Promise<APIGatewayProxyStructuredResultV2>;

export const handler: ApiHandler = createApiHandler(awsDeps, claimsOptionsFromEnv());

/** The deployment's claim names (CDK sets them from flare:authGroupsClaim and flare:adminGroup). */
function claimsOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): Pick<ApiOptions, 'adminGroup' | 'groupsClaim'> {
  return {
    ...(env.AUTH_ADMIN_GROUP ? { adminGroup: env.AUTH_ADMIN_GROUP } : {}),
    ...(env.AUTH_GROUPS_CLAIM ? { groupsClaim: env.AUTH_GROUPS_CLAIM } : {}),
  };
}

function idempotencyKey(event: ApiEvent): string | undefined {
  const entry = Object.entries(event.headers ?? {}).find(([name]) => name.toLowerCase() === 'idempotency-key');
  if (!entry || entry[1] === undefined) return undefined;
  if (!IDEMPOTENCY_KEY_PATTERN.test(entry[1])) {
    throw new ValidationError([{ field: 'Idempotency-Key', reason: 'must be 1 to 128 visible ASCII characters' }]);
  }
  return entry[1];
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

/** The store must answer; the caller's components (local runner) are reported as they come. */
async function checkHealth(deps: Deps, extra?: () => Promise<Record<string, unknown>>): Promise<ApiResult> {
  const components: Record<string, unknown> = {};
  try {
    await deps.store.listPools();
    components.store = 'ok';
  } catch (error) {
    deps.log.error('health: store check failed', { error: String(error) });
    components.store = 'unavailable';
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

function isOk(component: unknown): boolean {
  if (typeof component === 'string') return component === 'ok';
  if (component && typeof component === 'object' && 'status' in component) return (component as { status: unknown }).status === 'ok';
  return true;
}
