/**
 * The shape every route module uses. A route names the zod schemas of its path
 * parameters, query string and body; `route` checks all three before the
 * handler runs (one 400 listing every bad field), hands the handler typed
 * values, and keeps the schemas on the route so that `GET /v1/openapi.json` is
 * generated from the very schemas that validate.
 */
import { z } from 'zod';
import { ValidationError, type FieldIssue } from '../../../core/errors.js';
import { toFieldIssues } from '../../../core/schemas.js';
import type { ApiEvent, ApiResult, Route, RouteDoc } from '../middleware.js';
import type { Identity } from '../../../core/identity.js';

export const NoQuery = z.strictObject({});
const NoParams = z.object({});

type Schema = z.ZodType;

export interface RouteSpec<P extends Schema, Q extends Schema, B extends Schema | undefined>
  extends Omit<RouteDoc, 'params' | 'query' | 'body' | 'tag'> {
  method: string;
  path: string;
  /** @default the first path segment after /v1 */
  tag?: string;
  params?: P;
  query?: Q;
  /** A JSON object body, checked by this schema. */
  body?: B;
  handle(request: {
    event: ApiEvent;
    identity: Identity;
    params: z.infer<P>;
    query: z.infer<Q>;
    body: B extends Schema ? z.infer<B> : undefined;
  }): Promise<ApiResult>;
}

export function route<
  P extends Schema = typeof NoParams,
  Q extends Schema = typeof NoQuery,
  B extends Schema | undefined = undefined,
>(spec: RouteSpec<P, Q, B>): Route {
  const { method, path, handle, params, query, body, tag, ...doc } = spec;
  const paramsSchema = (params ?? NoParams) as P;
  const querySchema = (query ?? NoQuery) as Q;
  return {
    method,
    path,
    public: doc.access === 'public',
    body: body !== undefined,
    doc: { ...doc, tag: tag ?? defaultTag(path), params, query, body },
    handle: async ({ event, identity, params: rawParams, body: rawBody }) => {
      const issues: FieldIssue[] = [];
      const p = check(paramsSchema, rawParams, issues);
      const q = check(querySchema, event.queryStringParameters ?? {}, issues);
      const b = body === undefined ? undefined : check(body, rawBody, issues);
      if (issues.length) throw new ValidationError(issues);
      return handle({
        event,
        identity,
        params: p as z.infer<P>,
        query: q as z.infer<Q>,
        body: b as B extends Schema ? z.infer<B> : undefined,
      });
    },
  };
}

function check(schema: Schema, value: unknown, issues: FieldIssue[]): unknown {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  issues.push(...toFieldIssues(result.error));
  return undefined;
}

function defaultTag(path: string): string {
  return path.split('/').filter(Boolean)[1] ?? 'service';
}
