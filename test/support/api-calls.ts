/**
 * The API Lambda called as API Gateway calls it: a payload-2.0 event built from
 * test/fixtures/http/member-list-jobs.json (alice of vision, as Cognito sends her), and the answer read back.
 */
import type { APIGatewayProxyEventV2WithJWTAuthorizer, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import type { createApiHandler } from '../../lambdas/handlers/http/api.js';
import { readFixture } from './fixtures.js';

export type ApiEvent = APIGatewayProxyEventV2WithJWTAuthorizer;
export type Claims = ApiEvent['requestContext']['authorizer']['jwt']['claims'];

export interface ApiRequest {
  /** Claims as the JWT authorizer passes them; null: no authorizer (anonymous); absent: the fixture's alice. */
  as?: Claims | null;
  /** Sent as JSON; `rawBody` is sent exactly as given instead (base64-encoded with `base64`). */
  body?: unknown;
  rawBody?: string;
  base64?: boolean;
  /** Added to the query the path carries, if any. */
  query?: Record<string, string>;
  headers?: Record<string, string>;
}

export function apiEvent(method: string, path: string, request: ApiRequest = {}): ApiEvent {
  const event = readFixture<ApiEvent>('http/member-list-jobs');
  const [rawPath, rawQuery = ''] = path.split('?');
  const query = { ...Object.fromEntries(new URLSearchParams(rawQuery)), ...request.query };
  event.rawPath = rawPath;
  event.rawQueryString = new URLSearchParams(query).toString();
  event.requestContext.http.method = method;
  event.requestContext.http.path = rawPath;
  if (Object.keys(query).length) event.queryStringParameters = query;
  else delete event.queryStringParameters;
  Object.assign(event.headers, request.headers);
  if (request.as === null) delete (event.requestContext as Partial<ApiEvent['requestContext']>).authorizer;
  else if (request.as) event.requestContext.authorizer.jwt.claims = request.as;
  const text = request.rawBody ?? (request.body === undefined ? undefined : JSON.stringify(request.body));
  if (text !== undefined) {
    event.body = request.base64 ? Buffer.from(text).toString('base64') : text;
    event.isBase64Encoded = Boolean(request.base64);
    event.headers['content-type'] = 'application/json';
  }
  return event;
}

export interface ApiResponse {
  status: number;
  /** Names lower-cased. */
  headers: Record<string, string>;
  /** The JSON body, as the test reads it. */
  body: any;
}

/** Call the API handler with `event` and read its answer. */
export async function invokeApi(handler: ReturnType<typeof createApiHandler>, event: ApiEvent): Promise<ApiResponse> {
  const result = (await handler(event, {} as Context)) as APIGatewayProxyStructuredResultV2;
  const headers = Object.fromEntries(
    Object.entries(result.headers ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)]),
  );
  return { status: result.statusCode!, headers, body: result.body ? JSON.parse(result.body) : undefined };
}
