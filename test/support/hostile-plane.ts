/**
 * The plane the hostile-input tests (test/integration/hostile-*.test.ts) attack, and how they attack it:
 * the local control plane in process (the local API Gateway stand-in over real HTTP, the API Lambda,
 * DynamoDB Local, the real ASL, jobs run as real processes) with Slack and Teams webhooks posted to a
 * loopback receiver; requests written byte for byte where fetch would tidy them.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { isTerminal, type Job } from '../../lambdas/core/job.js';
import { LocalConfig, parse } from '../../lambdas/core/schemas.js';
import { startControlPlane, type ControlPlane } from '../../lambdas/local/control-plane.js';
import { quietLog, waitFor } from './harness.js';
import { ROOT_TOKEN, LOCAL_USERS } from './identities.js';

export const CARL = 'carl-token-0123456789abcdefg';
/** A member of vision whose token expired a minute before the plane started. */
export const EVE = 'eve-token-0123456789abcdefgh';
/** A member of vision whose token expires in a year. */
export const FRANK = 'frank-token-0123456789abcdef';

export const DIGEST = `sha256:${'d'.repeat(64)}`;
export const FLOOD_LIMIT = 3;
export const MAX_TIMEOUT = 120;

export interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  body: any;
}

interface Send {
  /** A bearer token; `authorization` sets the header as given instead. */
  token?: string;
  authorization?: string;
  /** JSON-encoded unless `raw` is given. */
  body?: unknown;
  /** The body exactly as sent. */
  raw?: string | Buffer;
  contentType?: string;
  headers?: Record<string, string>;
}

let current: ControlPlane | undefined;
let hooks: Server;
let dataDir: string;
/** What the Slack and Teams webhooks were posted, in order. */
export const posts: Array<{ path: string; body: any }> = [];
const markers: string[] = [];

/** The plane `useHostilePlane` started. */
export function plane(): ControlPlane {
  assert.ok(current, 'useHostilePlane() starts the plane before the tests');
  return current;
}

/** One request with the path exactly as written (fetch would normalise `..` and percent-escapes). */
export function send(method: string, path: string, options: Send = {}): Promise<Response> {
  const body = options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const headers: Record<string, string> = { ...options.headers };
  if (options.authorization !== undefined) headers.authorization = options.authorization;
  else if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (body !== undefined) {
    headers['content-type'] = options.contentType ?? 'application/json';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  const { hostname, port } = new URL(plane().url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          parsed = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body: parsed });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A request written as raw bytes on a socket: for headers no HTTP client would send. */
export function sendRaw(head: Buffer): Promise<Response> {
  const { hostname, port } = new URL(plane().url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.end(head));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const [top, ...rest] = raw.split('\r\n\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(top)?.[1] ?? 0);
      const text = rest.join('\r\n\r\n');
      let body: unknown;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        body = undefined;
      }
      resolve({ status, headers: {}, text, body });
    });
  });
}

/** The error shape, the status, the code and (for 400s) exactly the fields named. */
export function expectError(response: Response, status: number, fields?: string[]): void {
  const context = `${response.status} ${response.text.slice(0, 500)}`;
  assert.equal(response.status, status, context);
  const error = response.body?.error;
  assert.equal(typeof error?.code, 'string', `error shape: ${context}`);
  assert.equal(typeof error?.message, 'string', `error shape: ${context}`);
  const codes: Record<number, string> = {
    400: 'validation_error',
    401: 'unauthorized',
    403: 'forbidden',
    404: 'not_found',
    409: 'conflict',
    413: 'payload_too_large',
    422: 'unprocessable',
    429: 'quota_exceeded',
  };
  if (codes[status]) assert.equal(error.code, codes[status], context);
  if (fields) {
    assert.ok(Array.isArray(error.details), `details: ${context}`);
    for (const d of error.details) assert.deepEqual(Object.keys(d).sort(), ['field', 'reason'], context);
    assert.deepEqual(error.details.map((d: { field: string }) => d.field).sort(), [...fields].sort(), context);
  }
}

/** What a refused request must not change: every job (id, name, timeout), template (id, revision) and image version. */
export async function stored(): Promise<unknown> {
  const { jobs: store, catalog } = plane().deps;
  const jobs = await store.listJobs({ projects: undefined }, { limit: 1000 });
  return {
    jobs: jobs.items.map((j) => [j.id, j.name, j.liveTimeoutMinutes, j.state === 'CANCELLED']).sort(),
    templates: (await catalog.listTemplates()).map((t) => [t.id, t.revision]).sort(),
    images: (await catalog.listImages()).map((i) => [i.name, i.versions.length]).sort(),
  };
}

/** `request` is refused as `status` (naming `fields`), and nothing is stored. */
export async function refused(request: () => Promise<Response>, status: number, fields?: string[]): Promise<Response> {
  const before = await stored();
  const response = await request();
  expectError(response, status, fields);
  assert.deepEqual(await stored(), before, 'a refused request stored nothing');
  return response;
}

export async function submit(token: string, body: unknown, headers?: Record<string, string>): Promise<Job> {
  const response = await send('POST', '/v1/jobs', { token, body, headers });
  assert.equal(response.status, 202, response.text);
  return response.body;
}

export const job = async (id: string): Promise<Job> => (await plane().deps.jobs.getJob(id))!;
export const untilEnded = (id: string) =>
  waitFor(
    `job ${id} to end`,
    async () => ((j) => (j && isTerminal(j.state) ? j : undefined))(await plane().deps.jobs.getJob(id)),
    60_000,
    100,
  );
export const cancel = async (id: string) => {
  await send('DELETE', `/v1/jobs/${id}`, { token: ROOT_TOKEN });
  return untilEnded(id);
};

export function marker(): string {
  const path = join(tmpdir(), `flare-hostile-${randomBytes(6).toString('hex')}`);
  markers.push(path);
  return path;
}

/** Starts the plane (and the webhook receiver) before the tests of the calling suite, and ends both after. */
export function useHostilePlane(): void {
  before(async () => {
    hooks = createServer((req, res) => {
      let text = '';
      req.on('data', (d) => (text += d));
      req.on('end', () => {
        posts.push({ path: req.url ?? '', body: JSON.parse(text) });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => hooks.listen(0, '127.0.0.1', r));
    const hook = `http://127.0.0.1:${(hooks.address() as { port: number }).port}`;
    dataDir = await mkdtemp(join(tmpdir(), 'flare-hostile-'));
    const tmpl = (name: string, project: string, command: string[], pool = 'local') => ({
      name,
      project,
      pool,
      gpus: 1,
      image: 'tools',
      command,
      maxLiveTimeoutMinutes: MAX_TIMEOUT,
    });
    const config = parse(LocalConfig, {
      port: 0,
      dataDir,
      users: [
        ...LOCAL_USERS,
        { name: 'carl', token: CARL, projects: ['crowd'] },
        { name: 'eve', token: EVE, projects: ['vision'], expiresAt: new Date(Date.now() - 60_000).toISOString() },
        {
          name: 'frank',
          token: FRANK,
          projects: ['vision'],
          expiresAt: new Date(Date.now() + 365 * 86_400_000).toISOString(),
        },
      ],
      pools: [
        { name: 'local', gpus: 2 },
        { name: 'crowdpool', gpus: 1 },
      ],
      quotas: [{ project: 'crowd', resource: 'jobs', hardLimit: FLOOD_LIMIT }],
      images: [{ name: 'tools', reference: 'docker.io/library/busybox:1.36', digest: DIGEST }],
      templates: [
        tmpl('echo', 'vision', ['echo', 'hello']),
        // The same name in another project: the Idempotency-Key case sends byte-identical bodies.
        tmpl('echo', 'audio', ['echo', 'hello']),
        tmpl('hold', 'vision', ['sleep', '30']),
        tmpl('crowd', 'crowd', ['sleep', '30'], 'crowdpool'),
      ],
      compute: { driver: 'process' },
      notifications: [
        { type: 'slack', url: `${hook}/slack`, projects: ['vision'] },
        { type: 'teams', url: `${hook}/teams`, projects: ['vision'] },
      ],
    });
    current = await startControlPlane(config, {
      inMemory: true,
      log: quietLog,
      compute: { pollMs: 100, stopGraceMs: 1000 },
    });
  });

  after(async () => {
    if (current) {
      for (const active of await current.deps.queue.listActiveJobs()) await cancel(active.id).catch(() => undefined);
      await current.stop();
    }
    hooks?.closeAllConnections();
    await new Promise((r) => hooks?.close(r));
    await rm(dataDir, { recursive: true, force: true });
    for (const path of markers) await rm(path, { force: true });
  });
}
