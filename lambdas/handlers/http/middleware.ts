/**
 * The middy middlewares of the API Lambda: body limit, routing, authentication,
 * JSON body, and the one error handler that turns domain errors into statuses.
 * Each before-middleware adds what it learned to `context.api`.
 */
import type { MiddlewareObj } from '@middy/core';
import type { z } from 'zod';
import type { APIGatewayProxyEventV2WithJWTAuthorizer, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import type { Logger } from '../../core/deps.js';
import {
  Conflict,
  FlareError,
  Forbidden,
  InvalidTransition,
  NotFound,
  PayloadTooLarge,
  QuotaExceeded,
  StaleJob,
  Unauthorized,
  Unavailable,
  Unprocessable,
  ValidationError,
  type FieldIssue,
} from '../../core/errors.js';
import type { Identity } from '../../core/identity.js';
import { identityFromEvent, type ClaimsOptions } from './identity.js';

export type ApiEvent = APIGatewayProxyEventV2WithJWTAuthorizer;
export type ApiResult = APIGatewayProxyStructuredResultV2;

/** What a route handler gets: the request, who asked, path parameters, the parsed body. */
export interface RouteRequest {
  event: ApiEvent;
  identity: Identity;
  params: Record<string, string>;
  body: unknown;
}

/** Who may call a route at all; finer decisions (which project) are core/identity.ts's. */
export type Access = 'public' | 'member' | 'admin';

/** What `GET /v1/openapi.json` says about a route: the schemas are the ones that validate. */
export interface RouteDoc {
  summary: string;
  description?: string;
  access: Access;
  tag: string;
  params?: z.ZodType;
  query?: z.ZodType;
  body?: z.ZodType;
  /** By status code; `schema` describes the JSON body, `headers` the response headers besides content-type (name: what it says). */
  responses?: Record<
    number,
    {
      description: string;
      schema?: z.ZodType;
      /** The body is a file's bytes (application/octet-stream); with a `schema` too, either (by content-type). */
      binary?: boolean;
      headers?: Record<string, { description: string; required?: boolean }>;
    }
  >;
  /** Error statuses this route answers beyond those every route of its kind can (400, 401, 403, 404, 413): 409, 422, 429. */
  errors?: readonly (409 | 422 | 429)[];
}

export interface Route {
  method: string;
  /** `/v1/jobs/{id}`: `{name}` matches one path segment. */
  path: string;
  /** No token needed (the authorizer does not run for it on AWS either). */
  public?: boolean;
  /** Takes a JSON object body. */
  body?: boolean;
  doc?: RouteDoc;
  handle(request: RouteRequest): Promise<ApiResult>;
}

export interface ApiState {
  route?: Route;
  params?: Record<string, string>;
  identity?: Identity;
  body?: unknown;
}
export type ApiContext = Context & { api?: ApiState };

type ApiMiddleware = MiddlewareObj<ApiEvent, ApiResult, Error, ApiContext>;

/** Nobody: what a public route sees as its caller. */
export const ANONYMOUS: Identity = Object.freeze({ name: 'anonymous', projects: [], admin: false }) as Identity;

export class MethodNotAllowed extends FlareError {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly allow: string[],
  ) {
    super(`${method} is not allowed on ${path}; use ${allow.join(', ')}`);
  }
}

export const JSON_HEADERS = { 'content-type': 'application/json' } as const;

export function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): ApiResult {
  return { statusCode, headers: { ...JSON_HEADERS, ...headers }, body: JSON.stringify(body) };
}

export function noContent(): ApiResult {
  return { statusCode: 204, headers: {} };
}

/** A file on this machine as the answer's body: the local server streams it (a Lambda answers with a redirect instead). */
export interface FileResult extends ApiResult {
  bodyFile: string;
}

export function fileBody(hostPath: string, size: number): FileResult {
  return {
    statusCode: 200,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
    bodyFile: hostPath,
  };
}

function state(context: ApiContext): ApiState {
  context.api ??= {};
  return context.api;
}

/** 413 before anything reads the body. API Gateway's payload is base64 for binary types: count decoded bytes. */
export function limitBody(maxBytes: number): ApiMiddleware {
  return {
    name: 'limitBody',
    before: ({ event }) => {
      if (!event.body) return;
      const bytes = event.isBase64Encoded
        ? Buffer.byteLength(event.body, 'base64')
        : Buffer.byteLength(event.body, 'utf8');
      if (bytes > maxBytes) throw new PayloadTooLarge(maxBytes);
    },
  };
}

/** Find the route: unknown path 404, known path with another method 405. */
export function matchRoute(routes: readonly Route[]): ApiMiddleware {
  const compiled = routes.map((route) => ({ route, segments: splitPath(route.path) }));
  return {
    name: 'matchRoute',
    before: ({ event, context }) => {
      const path = routePath(event);
      const segments = decodeSegments(path);
      const method = event.requestContext.http.method.toUpperCase();
      const allow: string[] = [];
      for (const { route, segments: pattern } of compiled) {
        const params = segments && matchSegments(pattern, segments);
        if (!params) continue;
        if (route.method === method) {
          Object.assign(state(context), { route, params });
          return;
        }
        allow.push(route.method);
      }
      if (allow.length) throw new MethodNotAllowed(method, path, allow);
      throw new NotFound('route', `${method} ${path}`);
    },
  };
}

/** The caller from the JWT claims; 401 on a protected route without them. */
export function authenticate(options: ClaimsOptions): ApiMiddleware {
  return {
    name: 'authenticate',
    before: ({ event, context }) => {
      const api = state(context);
      if (api.route?.public) {
        api.identity = ANONYMOUS;
        return;
      }
      const identity = identityFromEvent(event, options);
      if (!identity) throw new Unauthorized('a valid bearer token is required');
      api.identity = identity;
    },
  };
}

/** Parse the JSON object body of routes that take one. */
export function parseJsonBody(): ApiMiddleware {
  return {
    name: 'parseJsonBody',
    before: ({ event, context }) => {
      const api = state(context);
      if (!api.route?.body) return;
      const type = header(event, 'content-type');
      // No type at all is taken as JSON; a type that says otherwise (a form, text) is not what we parse.
      if (type !== undefined && !JSON_MEDIA_TYPE.test(type)) {
        throw new ValidationError([
          { field: 'Content-Type', reason: `must be application/json, not '${type.slice(0, 100)}'` },
        ]);
      }
      const text =
        event.body === undefined
          ? ''
          : event.isBase64Encoded
            ? Buffer.from(event.body, 'base64').toString('utf8')
            : event.body;
      if (text.trim() === '') throw bodyIssue('required: a JSON object');
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (error) {
        throw bodyIssue(`malformed JSON: ${(error as Error).message}`);
      }
      if (value === null || typeof value !== 'object' || Array.isArray(value)) throw bodyIssue('must be a JSON object');
      api.body = value;
    },
  };
}

/** `application/json`, or a `+json` type, with any parameters (`; charset=utf-8`). */
const JSON_MEDIA_TYPE = /^\s*application\/([\w.+-]+\+)?json\s*(;.*)?$/i;

function header(event: ApiEvent, name: string): string | undefined {
  const entry = Object.entries(event.headers ?? {}).find(([key]) => key.toLowerCase() === name);
  return entry?.[1];
}

function bodyIssue(reason: string): ValidationError {
  return new ValidationError([{ field: '(body)', reason }]);
}

interface Mapped {
  status: number;
  code: string;
  details?: FieldIssue[];
  headers?: Record<string, string>;
}

/** The only place a domain error becomes an HTTP status. */
export function mapError(error: unknown): Mapped | undefined {
  if (error instanceof ValidationError) return { status: 400, code: 'validation_error', details: error.details };
  if (error instanceof Unauthorized)
    return { status: 401, code: 'unauthorized', headers: { 'www-authenticate': 'Bearer' } };
  if (error instanceof Forbidden) return { status: 403, code: 'forbidden' };
  if (error instanceof NotFound) return { status: 404, code: 'not_found' };
  if (error instanceof MethodNotAllowed)
    return { status: 405, code: 'method_not_allowed', headers: { allow: error.allow.join(', ') } };
  if (error instanceof Conflict || error instanceof InvalidTransition || error instanceof StaleJob)
    return { status: 409, code: 'conflict' };
  if (error instanceof PayloadTooLarge) return { status: 413, code: 'payload_too_large' };
  if (error instanceof Unprocessable) return { status: 422, code: 'unprocessable' };
  if (error instanceof QuotaExceeded) return { status: 429, code: 'quota_exceeded' };
  if (error instanceof Unavailable)
    return { status: 503, code: 'unavailable', headers: { 'retry-after': String(error.retryAfterSeconds) } };
  return undefined;
}

/**
 * Registered first so that middy runs its onError last. Anything unmapped is a
 * 500 with a generic message; the error itself goes to the log only.
 */
export function httpErrorHandler(log: () => Logger): ApiMiddleware {
  return {
    name: 'httpErrorHandler',
    onError: (request) => {
      const error = request.error;
      const mapped = mapError(error);
      if (mapped) {
        const { status, code, details, headers } = mapped;
        // Not the caller's fault: the operator reads outages in the API's log.
        if (status === 503)
          safeLog(log).warn('answered 503: a service is unavailable', {
            route: request.event?.routeKey,
            error: String(error),
            cause: String((error as Error).cause),
          });
        request.response = json(
          status,
          { error: { code, message: (error as Error).message, ...(details ? { details } : {}) } },
          headers,
        );
        return;
      }
      const requestId = request.event?.requestContext?.requestId;
      safeLog(log).error('unhandled error in API handler', {
        requestId,
        route: request.event?.routeKey,
        path: request.event?.rawPath,
        error:
          error instanceof Error ? { name: error.name, message: error.message, stack: error.stack } : String(error),
      });
      request.response = json(500, {
        error: { code: 'internal', message: `internal error${requestId ? ` (request ${requestId})` : ''}` },
      });
    },
  };
}

function safeLog(log: () => Logger): Logger {
  try {
    return log();
  } catch {
    // The deps themselves failed to build (e.g. missing configuration): stderr still works.
    const write = (level: string) => (message: string, data?: Record<string, unknown>) =>
      process.stderr.write(`${JSON.stringify({ level, message, ...data })}\n`);
    return { info: write('info'), warn: write('warn'), error: write('error') };
  }
}

/** The path routes see: without the stage prefix API Gateway keeps for named stages, no trailing slash. */
function routePath(event: ApiEvent): string {
  let path = event.rawPath || event.requestContext.http.path || '/';
  const stage = event.requestContext.stage;
  if (stage && stage !== '$default' && (path === `/${stage}` || path.startsWith(`/${stage}/`)))
    path = path.slice(stage.length + 1) || '/';
  return path.length > 1 ? path.replace(/\/+$/, '') || '/' : path;
}

function splitPath(path: string): string[] {
  return path.split('/').filter(Boolean);
}

function decodeSegments(path: string): string[] | undefined {
  try {
    return splitPath(path).map((s) => decodeURIComponent(s));
  } catch {
    return undefined; // not valid percent-encoding: matches no route
  }
}

/** `{name+}`, last in a pattern, takes the rest of the path (one or more segments, joined by '/'), as in API Gateway. */
function matchSegments(pattern: string[], segments: string[]): Record<string, string> | undefined {
  const greedy = pattern.at(-1)?.endsWith('+}') ?? false;
  if (greedy ? segments.length < pattern.length : pattern.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if (greedy && i === pattern.length - 1) {
      params[p.slice(1, -2)] = segments.slice(i).join('/');
      break;
    }
    if (p.startsWith('{') && p.endsWith('}')) params[p.slice(1, -1)] = segments[i];
    else if (p !== segments[i]) return undefined;
  }
  return params;
}
