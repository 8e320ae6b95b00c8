/**
 * Plays API Gateway's HTTP API for the local control plane: each request becomes
 * a payload-2.0 event for the very handler deployed on AWS, after the JWT
 * authorizer's part is played with the config's bearer tokens.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { APIGatewayProxyEventV2WithJWTAuthorizer, APIGatewayProxyResultV2, Context } from 'aws-lambda';
import type { Logger } from '../core/deps.js';
import { apiRoutes } from '../handlers/http/api.js';

export type ApiGatewayHandler = (
  event: APIGatewayProxyEventV2WithJWTAuthorizer,
  context: Context,
) => Promise<APIGatewayProxyResultV2>;

export interface LocalUser {
  name: string;
  token: string;
  admin?: boolean;
  projects?: readonly string[];
  /** ISO 8601 UTC: from then on the token is refused (401), as API Gateway refuses an expired JWT. */
  expiresAt?: string;
}

export interface HttpServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  handler: ApiGatewayHandler;
  /** Serves `/ui` and everything under `/ui/` (the dashboard's files), without a token, as its own route does on AWS. */
  ui?: ApiGatewayHandler;
  users: readonly LocalUser[];
  /** The group an admin's token carries, as a Cognito admin group would. @default 'admin' */
  adminGroup?: string;
  log?: Logger;
  /** Bodies larger than this are refused with 413 before the handler runs. @default 1 MiB */
  maxBodyBytes?: number;
  /** A request's headers must arrive within this (else 408, connection closed). @default 10 s */
  headersTimeoutMs?: number;
  /** The whole request, body included, must arrive within this (else 408, connection closed). @default 30 s */
  requestTimeoutMs?: number;
  /** An idle kept-alive connection is closed after this. @default 5 s */
  keepAliveTimeoutMs?: number;
}

export interface HttpServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Routes API Gateway serves without the authorizer (the stack's HTTP API lists the same ones: test/infra checks). */
export const PUBLIC_ROUTES: ReadonlySet<string> = new Set(
  apiRoutes(() => {
    throw new Error('listing routes needs no deps');
  })
    .filter((route) => route.public)
    .map((route) => `${route.method} ${route.path}`),
);

const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
// Node's own defaults (60 s for headers, 300 s for a request) let a client hold a
// connection and a buffer for minutes; an API's requests are small and quick.
const DEFAULT_HEADERS_TIMEOUT_MS = 10_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** API Gateway's integration timeout; the handler's context reports what is left of it. */
const INTEGRATION_TIMEOUT_MS = 30_000;
const TEXT_TYPES = /^(text\/|application\/(json|[\w.+-]*\+json|xml|[\w.+-]*\+xml|x-www-form-urlencoded|javascript))/i;

interface Principal {
  digest: Buffer;
  claims: { sub: string; 'cognito:groups': string };
  /** Epoch ms; absent: never. */
  expiresAt?: number;
}

/** `Bearer <token>`: the scheme in any case, one space, then visible ASCII only (what a configured token may hold). */
const BEARER = /^Bearer ([\x21-\x7e]{1,4096})$/i;

export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const log = options.log;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const adminGroup = options.adminGroup ?? 'admin';
  const principals: Principal[] = options.users.map((user) => {
    const groups = [...(user.projects ?? []), ...(user.admin ? [adminGroup] : [])];
    const expiresAt = user.expiresAt === undefined ? undefined : Date.parse(user.expiresAt);
    if (Number.isNaN(expiresAt))
      throw new Error(`user ${user.name}: expiresAt '${user.expiresAt}' is not an ISO 8601 time`);
    return {
      digest: sha256(user.token),
      claims: { sub: user.name, 'cognito:groups': `[${groups.join(' ')}]` },
      ...(expiresAt === undefined ? {} : { expiresAt }),
    };
  });

  const requestTimeout = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  // Node checks request timeouts on this interval (30 s by default): well under the timeout itself.
  const server = createServer({ connectionsCheckingInterval: Math.min(1_000, requestTimeout) }, (req, res) => {
    serve(req, res).catch((error: unknown) => {
      log?.error('local API request failed', { method: req.method, url: req.url, error: describe(error) });
      if (!res.headersSent) sendJson(res, 500, { error: { code: 'internal', message: 'internal error' } });
      else res.destroy();
    });
  });
  server.headersTimeout = Math.min(options.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS, requestTimeout);
  server.requestTimeout = requestTimeout;
  server.keepAliveTimeout = options.keepAliveTimeoutMs ?? DEFAULT_KEEP_ALIVE_TIMEOUT_MS;
  // `Expect: 100-continue` is answered by `serve` after authentication, not by Node before it.
  server.on('checkContinue', (req, res) => server.emit('request', req, res));

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    const url = new URL(req.url ?? '/', 'http://localhost');
    const method = (req.method ?? 'GET').toUpperCase();
    // The path as sent, not URL-normalised: `/v1/x/%2e%2e/health` is not the public `/v1/health`.
    const rawPath = rawPathOf(req);

    // The authorizer's part comes first, as on API Gateway: a caller without a valid token gets
    // its 401 before one byte of its body is read or buffered.
    let claims: Principal['claims'] | undefined;
    const target = options.ui && isUiPath(rawPath) ? options.ui : options.handler;
    if (target === options.handler && !PUBLIC_ROUTES.has(`${method} ${rawPath}`)) {
      const principal = authenticate(req.headers.authorization, principals);
      const expired = principal?.expiresAt !== undefined && principal.expiresAt <= Date.now();
      if (!principal || expired) {
        // An expired token is told only that: not whose it was, nor when it expired.
        const message = expired ? 'the token has expired' : 'a valid bearer token is required';
        const challenge = expired ? `Bearer error="invalid_token", error_description="${message}"` : 'Bearer';
        refuse(req, res, 401, { error: { code: 'unauthorized', message } }, { 'www-authenticate': challenge });
        log?.info('http', { method, path: url.pathname, status: 401, ms: Date.now() - started });
        return;
      }
      claims = principal.claims;
    }
    if (req.headers.expect?.toLowerCase() === '100-continue') res.writeContinue();

    const body = await readBody(req, maxBodyBytes);
    if (body === 'too-large') {
      refuse(req, res, 413, {
        error: { code: 'payload_too_large', message: `request body is larger than ${maxBodyBytes} bytes` },
      });
      return;
    }

    const event = toEvent(req, url, method, body);
    if (claims)
      event.requestContext.authorizer = {
        principalId: '',
        integrationLatency: 0,
        jwt: { claims: { ...claims }, scopes: [] },
      };

    let result: APIGatewayProxyResultV2;
    try {
      result = await target(event, lambdaContext(event.requestContext.requestId, started));
    } catch (error) {
      // API Gateway answers a failed integration with a 500; so do we, without the details.
      log?.error('API handler threw', {
        method,
        path: url.pathname,
        requestId: event.requestContext.requestId,
        error: describe(error),
      });
      sendJson(res, 500, { error: { code: 'internal', message: 'internal error' } });
      return;
    }
    const status = writeResult(res, result);
    log?.info('http', { method, path: url.pathname, status, ms: Date.now() - started });
  }

  await new Promise<void>((resolve, reject) => {
    const refused = (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new Error(
              `${options.host}:${options.port} is in use (another flare local, or another program): set "port" in the config to a free one`,
              { cause: error },
            )
          : error,
      );
    server.once('error', refused);
    server.listen(options.port, options.host, () => {
      server.off('error', refused);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

function isUiPath(rawPath: string): boolean {
  return rawPath === '/ui' || rawPath.startsWith('/ui/');
}

/** An answer given without reading the rest of the body: the connection closes once it is written. */
function refuse(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  sendJson(res, status, body, { ...headers, connection: 'close' });
  res.on('finish', () => req.socket.destroySoon());
}

function rawPathOf(req: IncomingMessage): string {
  return (req.url ?? '/').split('?')[0] || '/';
}

/** The body, or 'too-large' as soon as it passes the cap (nothing more is buffered). */
function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer | 'too-large'> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    req.pause();
    return Promise.resolve('too-large');
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        req.off('data', onData);
        req.pause();
        chunks.length = 0;
        resolve('too-large');
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

/** A payload-2.0 event as API Gateway builds it for the `$default` route. */
function toEvent(
  req: IncomingMessage,
  url: URL,
  method: string,
  body: Buffer,
): APIGatewayProxyEventV2WithJWTAuthorizer {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || name === 'cookie') continue;
    headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  // API Gateway tells the integration how it was reached, whatever the client sent; so does this stand-in.
  headers['x-forwarded-proto'] = 'http';
  headers['x-forwarded-port'] = String(req.socket.localPort ?? '');
  const cookies = req.headers.cookie
    ?.split(';')
    .map((c) => c.trim())
    .filter(Boolean);
  const query: Record<string, string> = {};
  for (const [name, value] of url.searchParams) query[name] = name in query ? `${query[name]},${value}` : value;
  const rawQueryString = url.search.replace(/^\?/, '');
  const rawPath = rawPathOf(req);
  const now = new Date();
  const domainName = (req.headers.host ?? 'localhost').replace(/:\d+$/, '');
  const text = body.length === 0 ? undefined : isText(req.headers['content-type'], body);

  const event = {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString,
    ...(cookies?.length ? { cookies } : {}),
    headers,
    ...(Object.keys(query).length ? { queryStringParameters: query } : {}),
    requestContext: {
      accountId: 'local',
      apiId: 'local',
      domainName,
      domainPrefix: domainName.split('.')[0],
      http: {
        method,
        path: rawPath,
        protocol: `HTTP/${req.httpVersion}`,
        sourceIp: (req.socket.remoteAddress ?? '').replace(/^::ffff:/, ''),
        userAgent: req.headers['user-agent'] ?? '',
      },
      requestId: randomUUID(),
      routeKey: '$default',
      stage: '$default',
      time: apiGatewayTime(now),
      timeEpoch: now.getTime(),
    },
    ...(body.length ? { body: text ? body.toString('utf8') : body.toString('base64') } : {}),
    isBase64Encoded: body.length > 0 && !text,
  };
  // Public routes carry no `authorizer` at all, as on API Gateway; protected ones get it after auth.
  return event as unknown as APIGatewayProxyEventV2WithJWTAuthorizer;
}

/** API Gateway passes text bodies as they are and base64-encodes the rest. */
function isText(contentType: string | undefined, body: Buffer): boolean {
  if (contentType) return TEXT_TYPES.test(contentType.trim());
  // No type given: text if it is valid UTF-8.
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(body);
    return true;
  } catch {
    return false;
  }
}

/** The JWT authorizer's check, with the config's tokens: compare digests in constant time, every one. */
function authenticate(authorization: string | undefined, principals: readonly Principal[]): Principal | undefined {
  const match = BEARER.exec(authorization ?? '');
  if (!match) return undefined;
  const presented = sha256(match[1]);
  let found: Principal | undefined;
  for (const principal of principals) {
    if (timingSafeEqual(principal.digest, presented) && !found) found = principal;
  }
  return found;
}

function writeResult(res: ServerResponse, result: APIGatewayProxyResultV2): number {
  // API Gateway's rule: a result without `statusCode` is the JSON body of a 200.
  if (typeof result !== 'object' || result === null || !('statusCode' in result) || result.statusCode === undefined) {
    const body = typeof result === 'string' ? result : JSON.stringify(result);
    sendRaw(res, 200, { 'content-type': 'application/json' }, Buffer.from(body, 'utf8'));
    return 200;
  }
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(result.headers ?? {})) headers[name.toLowerCase()] = String(value);
  if (result.cookies?.length) headers['set-cookie'] = result.cookies;
  if ('bodyFile' in result && typeof result.bodyFile === 'string') {
    // A job's output file (FileResult): streamed, never held in memory whole.
    res.writeHead(result.statusCode, headers);
    createReadStream(result.bodyFile)
      .on('error', (error) => res.destroy(error))
      .pipe(res);
    return result.statusCode;
  }
  const body =
    result.body === undefined ? Buffer.alloc(0) : Buffer.from(result.body, result.isBase64Encoded ? 'base64' : 'utf8');
  sendRaw(res, result.statusCode, headers, body);
  return result.statusCode;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  sendRaw(res, status, { 'content-type': 'application/json', ...headers }, Buffer.from(JSON.stringify(body), 'utf8'));
}

function sendRaw(res: ServerResponse, status: number, headers: Record<string, string | string[]>, body: Buffer): void {
  const noBody = status === 204 || status === 304;
  res.writeHead(status, { ...headers, ...(noBody ? {} : { 'content-length': String(body.length) }) });
  res.end(noBody ? undefined : body);
}

function lambdaContext(requestId: string, started: number): Context {
  const fail = () => {
    throw new Error('callback-style completion is not supported');
  };
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: 'flare-api-local',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:local:000000000000:function:flare-api-local',
    memoryLimitInMB: '512',
    awsRequestId: requestId,
    logGroupName: '/aws/lambda/flare-api-local',
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, INTEGRATION_TIMEOUT_MS - (Date.now() - started)),
    done: fail,
    fail,
    succeed: fail,
  };
}

/** `12/Mar/2020:19:03:58 +0000`, API Gateway's requestContext.time. */
function apiGatewayTime(date: Date): string {
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${pad(date.getUTCDate())}/${months[date.getUTCMonth()]}/${date.getUTCFullYear()}:${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} +0000`;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
