/**
 * API Gateway (HTTP API, payload 2.0) in front of the bundled API function:
 * the template's routes pick the route key and whether the JWT authorizer
 * runs; a caller's claims arrive as the authorizer passes them (the groups
 * claim named by the function's AUTH_GROUPS_CLAIM, Cognito's "[a b]" form).
 * Requests are built on the recorded fixture test/fixtures/http/member-submit-job.json.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { APIGatewayProxyEventV2WithJWTAuthorizer } from 'aws-lambda';
import { resolveValue, type CfnTemplate } from './cfn-resolve.js';
import type { LambdaError, LambdaFunction } from './lambdas.js';

const FIXTURE = new URL('../../fixtures/http/member-submit-job.json', import.meta.url);

export interface Caller {
  sub: string;
  groups: string[];
}

export interface ApiResponse {
  status: number;
  headers: Record<string, string>;
  body: any;
  /** The function's error when API Gateway answered 500 for it. */
  error?: LambdaError;
}

interface Route {
  method: string;
  path: string;
  jwt: boolean;
}

export class HttpApiGateway {
  private readonly routes: Route[];
  private readonly groupsClaim: string;

  constructor(
    template: CfnTemplate,
    private readonly fn: LambdaFunction,
  ) {
    this.routes = Object.values(template.Resources)
      .filter((r) => r.Type === 'AWS::ApiGatewayV2::Route')
      .map((r) => {
        const [method, path] = String(resolveValue(template, r.Properties!.RouteKey)).split(' ');
        return { method, path, jwt: r.Properties!.AuthorizationType === 'JWT' };
      });
    const claim = fn.spec.environment.AUTH_GROUPS_CLAIM;
    if (!claim) throw new Error(`${fn.spec.logicalId} has no AUTH_GROUPS_CLAIM: it is not the API function`);
    this.groupsClaim = claim;
  }

  async request(
    method: string,
    pathAndQuery: string,
    options: { caller?: Caller; body?: unknown; headers?: Record<string, string> } = {},
  ): Promise<ApiResponse> {
    const [path, query = ''] = pathAndQuery.split('?');
    const route = this.route(method, path);
    if (!route) return { status: 404, headers: {}, body: { message: 'Not Found' } };
    if (route.jwt && !options.caller) return { status: 401, headers: {}, body: { message: 'Unauthorized' } };
    const event = this.event(method, path, query, route, options);
    const outcome = await this.fn.invoke(event);
    if (!outcome.ok)
      return { status: 500, headers: {}, body: { message: 'Internal Server Error' }, error: outcome.error };
    const result = outcome.result as {
      statusCode?: number;
      headers?: Record<string, string>;
      body?: string;
      isBase64Encoded?: boolean;
    };
    const text = result.isBase64Encoded
      ? Buffer.from(result.body ?? '', 'base64').toString('utf8')
      : (result.body ?? '');
    const headers = result.headers ?? {};
    const json = /json/.test(headers['content-type'] ?? headers['Content-Type'] ?? '');
    return { status: result.statusCode ?? 200, headers, body: json && text ? JSON.parse(text) : text };
  }

  /** Exact route keys first, then `{proxy+}`, as API Gateway chooses. */
  private route(method: string, path: string): Route | undefined {
    const fits = (r: Route) => r.method === 'ANY' || r.method === method;
    return (
      this.routes.find((r) => fits(r) && r.path === path) ??
      this.routes.find(
        (r) => fits(r) && r.path.endsWith('/{proxy+}') && path.startsWith(r.path.slice(0, -'{proxy+}'.length)),
      )
    );
  }

  private event(
    method: string,
    path: string,
    query: string,
    route: Route,
    options: { caller?: Caller; body?: unknown; headers?: Record<string, string> },
  ): APIGatewayProxyEventV2WithJWTAuthorizer {
    const event = JSON.parse(readFileSync(FIXTURE, 'utf8')) as APIGatewayProxyEventV2WithJWTAuthorizer;
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const now = new Date();
    const routeKey = `${route.method} ${route.path}`;
    event.routeKey = routeKey;
    event.rawPath = path;
    event.rawQueryString = query;
    const params = new URLSearchParams(query);
    (event as { queryStringParameters?: Record<string, string> }).queryStringParameters = query
      ? Object.fromEntries(params)
      : undefined;
    if (route.path.endsWith('{proxy+}'))
      event.pathParameters = { proxy: path.slice(route.path.length - '{proxy+}'.length) };
    else delete event.pathParameters;
    event.headers = { ...event.headers, ...options.headers, 'content-length': String(Buffer.byteLength(body ?? '')) };
    if (body === undefined) delete event.headers['content-type'];
    if (!options.headers?.['idempotency-key']) delete event.headers['idempotency-key'];
    event.requestContext = {
      ...event.requestContext,
      routeKey,
      requestId: randomUUID(),
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
      http: { ...event.requestContext.http, method, path },
    };
    if (options.caller) {
      event.requestContext.authorizer.jwt.claims = {
        ...event.requestContext.authorizer.jwt.claims,
        sub: options.caller.sub,
        [this.groupsClaim]: `[${options.caller.groups.join(' ')}]`,
      };
    } else {
      delete (event.requestContext as { authorizer?: unknown }).authorizer;
    }
    event.body = body;
    event.isBase64Encoded = false;
    return event;
  }
}
