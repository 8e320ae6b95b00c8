/** The shape every route module uses: a route whose query string is checked by a zod schema. */
import { z } from 'zod';
import { parse } from '../../../core/schemas.js';
import type { ApiResult, Route, RouteRequest } from '../middleware.js';

export const NoQuery = z.strictObject({});

/** A route whose query string is checked by `query` (no parameters at all by default). */
export function route<Q extends z.ZodType = typeof NoQuery>(spec: Omit<Route, 'handle'> & { query?: Q; handle(request: RouteRequest & { query: z.infer<Q> }): Promise<ApiResult> }): Route {
  const { query, handle, ...rest } = spec;
  const schema = (query ?? NoQuery) as Q;
  return { ...rest, handle: (request) => handle({ ...request, query: parse(schema, request.event.queryStringParameters ?? {}) }) };
}
