/**
 * The local API Gateway stand-in over real HTTP on 127.0.0.1: the events it
 * builds, the authorizer it plays, and how it answers when things go wrong.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { APIGatewayProxyEventV2WithJWTAuthorizer, APIGatewayProxyResultV2, Context } from 'aws-lambda';
import { startHttpServer, type HttpServer } from '../../lambdas/local/http-server.js';

type Event = APIGatewayProxyEventV2WithJWTAuthorizer;

const ALICE_TOKEN = 'alice-token-0123456789abcdef';
const ROOT_TOKEN = 'root-token-0123456789abcdef';

describe('local HTTP server', () => {
  let server: HttpServer;
  let seen: Array<{ event: Event; context: Context }> = [];
  let respond: (event: Event) => Promise<APIGatewayProxyResultV2>;
  const logged: Array<{ message: string; data?: Record<string, unknown> }> = [];

  before(async () => {
    server = await startHttpServer({
      host: '127.0.0.1',
      port: 0,
      users: [
        { name: 'alice', token: ALICE_TOKEN, admin: false, projects: ['vision', 'audio'] },
        { name: 'root', token: ROOT_TOKEN, admin: true, projects: [] },
      ],
      handler: async (event, context) => {
        seen.push({ event: structuredClone(event), context });
        return respond(event);
      },
      log: {
        info: () => undefined,
        warn: () => undefined,
        error: (message, data) => void logged.push({ message, data }),
      },
    });
  });
  after(() => server.close());
  beforeEach(() => {
    seen = [];
    logged.length = 0;
    respond = async () => ({ statusCode: 200, headers: { 'content-type': 'application/json' }, body: '{"ok":true}' });
  });

  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  it('listens on the port it reports', () => {
    assert.ok(server.port > 0);
    assert.equal(server.url, `http://127.0.0.1:${server.port}`);
  });

  it('builds a payload-2.0 event with the caller’s claims as the JWT authorizer would', async () => {
    const response = await fetch(`${server.url}/v1/jobs?project=vision&state=RUNNING&state=WAITING&q=a%20b`, {
      method: 'POST',
      headers: {
        ...bearer(ALICE_TOKEN),
        'content-type': 'application/json',
        'X-Custom-Header': 'Yes',
        cookie: 'a=1; b=2',
        'user-agent': 'flare-test/1',
      },
      body: '{"template":"train"}',
    });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { ok: true });

    assert.equal(seen.length, 1);
    const { event, context } = seen[0];
    assert.equal(event.version, '2.0');
    assert.equal(event.routeKey, '$default');
    assert.equal(event.rawPath, '/v1/jobs');
    assert.equal(event.rawQueryString, 'project=vision&state=RUNNING&state=WAITING&q=a%20b');
    assert.deepEqual(event.queryStringParameters, { project: 'vision', state: 'RUNNING,WAITING', q: 'a b' });
    assert.deepEqual(event.cookies, ['a=1', 'b=2']);
    assert.equal(event.headers['x-custom-header'], 'Yes');
    assert.equal(event.headers['content-type'], 'application/json');
    assert.equal(event.headers.cookie, undefined);
    assert.equal(event.body, '{"template":"train"}');
    assert.equal(event.isBase64Encoded, false);

    const rc = event.requestContext;
    assert.deepEqual(rc.http, {
      method: 'POST',
      path: '/v1/jobs',
      protocol: 'HTTP/1.1',
      sourceIp: '127.0.0.1',
      userAgent: 'flare-test/1',
    });
    assert.equal(rc.stage, '$default');
    assert.equal(rc.routeKey, '$default');
    assert.equal(rc.domainName, '127.0.0.1');
    assert.match(rc.requestId, /^[0-9a-f-]{36}$/);
    assert.match(rc.time, /^\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000$/);
    assert.ok(Math.abs(rc.timeEpoch - Date.now()) < 10_000);
    assert.deepEqual(rc.authorizer.jwt, { claims: { sub: 'alice', 'cognito:groups': '[vision audio]' }, scopes: [] });
    assert.equal(context.awsRequestId, rc.requestId);
    assert.ok(context.getRemainingTimeInMillis() > 0);
  });

  it('adds the admin group for an admin', async () => {
    await fetch(`${server.url}/v1/pools`, { headers: bearer(ROOT_TOKEN) });
    assert.deepEqual(seen[0].event.requestContext.authorizer.jwt.claims, { sub: 'root', 'cognito:groups': '[admin]' });
  });

  it('base64-encodes a binary body', async () => {
    const bytes = Buffer.from([0, 1, 2, 250, 255]);
    await fetch(`${server.url}/v1/jobs`, {
      method: 'POST',
      headers: { ...bearer(ALICE_TOKEN), 'content-type': 'application/octet-stream' },
      body: bytes,
    });
    assert.equal(seen[0].event.isBase64Encoded, true);
    assert.deepEqual(Buffer.from(seen[0].event.body!, 'base64'), bytes);
  });

  for (const [what, headers] of [
    ['no Authorization header', {}],
    ['an unknown token', { authorization: 'Bearer not-a-configured-token' }],
    ['a token of another scheme', { authorization: `Basic ${ALICE_TOKEN}` }],
    ['a prefix of a token', { authorization: `Bearer ${ALICE_TOKEN.slice(0, -1)}` }],
  ] as const) {
    it(`answers 401 for ${what} without calling the handler`, async () => {
      const response = await fetch(`${server.url}/v1/jobs`, { headers });
      assert.equal(response.status, 401);
      assert.equal(response.headers.get('content-type'), 'application/json');
      const body = (await response.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, 'unauthorized');
      assert.equal(typeof body.error.message, 'string');
      assert.equal(seen.length, 0);
    });
  }

  for (const path of ['/', '/v1', '/v1/health']) {
    it(`lets GET ${path} through without a token, and without an authorizer context`, async () => {
      const response = await fetch(`${server.url}${path}`);
      assert.equal(response.status, 200);
      assert.equal(seen.length, 1);
      assert.equal((seen[0].event.requestContext as Partial<Event['requestContext']>).authorizer, undefined);
    });
  }

  it('does not treat another method, or a path that only normalises to a public one, as public', async () => {
    assert.equal((await fetch(`${server.url}/v1/health`, { method: 'POST' })).status, 401);
    // fetch would normalise the path itself; send it as written.
    const raw = await new Promise<number>((resolve, reject) => {
      httpRequest(`${server.url}/`, { path: '/v1/quotas/%2e%2e/health' }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on('error', reject)
        .end();
    });
    assert.equal(raw, 401);
    assert.equal(seen.length, 0);
  });

  it('answers 413 for a 2 MB body without calling the handler', async () => {
    const response = await fetch(`${server.url}/v1/jobs`, {
      method: 'POST',
      headers: { ...bearer(ALICE_TOKEN), 'content-type': 'application/json' },
      body: JSON.stringify({ template: 'train', name: 'x'.repeat(2 * 1024 * 1024) }),
    });
    assert.equal(response.status, 413);
    assert.equal(((await response.json()) as { error: { code: string } }).error.code, 'payload_too_large');
    assert.equal(seen.length, 0);
  });

  it('answers 413 for a 2 MB chunked body (no Content-Length) once it passes the cap', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        `${server.url}/v1/jobs`,
        { method: 'POST', headers: { ...bearer(ALICE_TOKEN), 'content-type': 'application/json' } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      const chunk = Buffer.alloc(64 * 1024, 'x');
      let sent = 0;
      const pump = () => {
        while (sent < 2 * 1024 * 1024) {
          sent += chunk.length;
          if (!req.write(chunk)) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
    });
    assert.equal(status, 413);
    assert.equal(seen.length, 0);
  });

  it('answers 500 JSON when the handler throws, and keeps serving', async () => {
    respond = async () => {
      throw new Error('boom at /secret/path');
    };
    const response = await fetch(`${server.url}/v1/jobs`, { headers: bearer(ALICE_TOKEN) });
    assert.equal(response.status, 500);
    const body = (await response.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'internal');
    assert.doesNotMatch(JSON.stringify(body), /boom|secret/);
    assert.equal(logged.length, 1);

    respond = async () => ({ statusCode: 200, body: '{}' });
    assert.equal((await fetch(`${server.url}/v1/jobs`, { headers: bearer(ALICE_TOKEN) })).status, 200);
  });

  it('writes the status, headers, cookies and body the handler returns, decoding base64', async () => {
    respond = async () => ({
      statusCode: 202,
      headers: { 'content-type': 'application/json', 'Idempotent-Replayed': 'true' },
      cookies: ['s=1; HttpOnly'],
      body: Buffer.from('{"id":"j-1"}').toString('base64'),
      isBase64Encoded: true,
    });
    const response = await fetch(`${server.url}/v1/jobs`, { headers: bearer(ALICE_TOKEN) });
    assert.equal(response.status, 202);
    assert.equal(response.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(response.headers.getSetCookie(), ['s=1; HttpOnly']);
    assert.deepEqual(await response.json(), { id: 'j-1' });
  });

  it('writes a 204 without a body', async () => {
    respond = async () => ({ statusCode: 204 });
    const response = await fetch(`${server.url}/v1/jobs/j-1`, { method: 'DELETE', headers: bearer(ALICE_TOKEN) });
    assert.equal(response.status, 204);
    assert.equal(await response.text(), '');
  });

  it('treats a result without statusCode as the JSON body of a 200, as API Gateway does', async () => {
    respond = async () => ({ hello: 'world' }) as unknown as APIGatewayProxyResultV2;
    const response = await fetch(`${server.url}/v1/jobs`, { headers: bearer(ALICE_TOKEN) });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { hello: 'world' });
  });
});

/**
 * A client on a raw socket that sends what it is told and then nothing more: what
 * the server answers (and whether it closes the connection) while the client holds it.
 */
function holdOpen(
  url: string,
  head: string,
  body = '',
): Promise<{ text: string; socket: Socket; closed: Promise<void> }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(head + body));
    let text = '';
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    socket.on('error', () => undefined); // a reset after the answer is how a refused upload ends
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (/\r\n\r\n/.test(text)) resolve({ text, socket, closed });
    });
    socket.once('close', () => resolve({ text, socket, closed }));
    socket.once('error', reject);
  });
}

describe('local HTTP server: authentication before the body, and timeouts', { timeout: 30_000 }, () => {
  let server: HttpServer;
  let calls = 0;

  before(async () => {
    server = await startHttpServer({
      host: '127.0.0.1',
      port: 0,
      users: [{ name: 'alice', token: ALICE_TOKEN, projects: ['vision'] }],
      handler: async () => {
        calls += 1;
        return { statusCode: 200, body: '{}' };
      },
      // Short, so that the test does not wait long; nothing here asserts how long anything took.
      headersTimeoutMs: 500,
      requestTimeoutMs: 1_000,
    });
  });
  after(() => server.close());
  beforeEach(() => {
    calls = 0;
  });

  const head = (authorization: string, length: number) =>
    `POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${authorization}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;

  it('answers 401 to a bad token while its 1 MB body has not been sent, and closes the connection', async () => {
    const { text, closed } = await holdOpen(
      server.url,
      head('Bearer not-a-configured-token', 1_000_000),
      '{"template":"',
    );
    assert.match(text, /^HTTP\/1\.1 401 /);
    assert.match(text, /\r\nconnection: close\r\n/i);
    await closed;
    assert.equal(calls, 0);
  });

  it('answers 401, not 413, to a bad token declaring a 10 MB body: nothing is read before authentication', async () => {
    const { text } = await holdOpen(server.url, head('Bearer not-a-configured-token', 10 * 1024 * 1024));
    assert.match(text, /^HTTP\/1\.1 401 /);
    assert.equal(calls, 0);
  });

  it('asks for the body of `Expect: 100-continue` only after the token is good', async () => {
    const expect = (authorization: string) =>
      head(authorization, 2).replace('\r\n\r\n', '\r\nExpect: 100-continue\r\n\r\n');
    const refused = await holdOpen(server.url, expect('Bearer not-a-configured-token'));
    assert.match(refused.text, /^HTTP\/1\.1 401 /);
    const accepted = await holdOpen(server.url, expect(`Bearer ${ALICE_TOKEN}`));
    assert.match(accepted.text, /^HTTP\/1\.1 100 Continue/);
    accepted.socket.destroy();
    assert.equal(calls, 0);
  });

  it('cuts off a signed-in request whose body never finishes, without calling the handler', async () => {
    const { text, closed } = await holdOpen(server.url, head(`Bearer ${ALICE_TOKEN}`, 100), '{"template":');
    assert.match(text, /^(HTTP\/1\.1 408 |$)/, 'a 408, or the connection closed');
    await closed;
    assert.equal(calls, 0);
  });

  it('cuts off a request whose headers never finish', async () => {
    const { text, closed } = await holdOpen(server.url, 'GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    assert.match(text, /^(HTTP\/1\.1 408 |$)/, 'a 408, or the connection closed');
    await closed;
    assert.equal(calls, 0);
  });
});
