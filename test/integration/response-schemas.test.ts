/**
 * The responses `GET /v1/openapi.json` documents are the ones the API gives.
 * The real API handler over DynamoDB Local is driven through every route and
 * every documented status (jobs queued, waiting, running and finished;
 * templates with and without their optional fields; an image with two
 * versions; stats with data), and every answer is parsed with the schema its
 * own route documents for that status (`doc.responses[status].schema`), its
 * headers checked against the documented ones. The views are strict, so a
 * field the API sends but the document does not describe fails here.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { APIGatewayProxyEventV2WithJWTAuthorizer, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { z } from 'zod';
import { LocalJobLogs } from '../../lambdas/adapters/local-job-logs.js';
import { LocalSecretStore } from '../../lambdas/adapters/local-secrets.js';
import { JobState, TERMINAL_STATES } from '../../lambdas/core/job.js';
import { Job } from '../../lambdas/core/views.js';
import { apiRoutes, createApiHandler } from '../../lambdas/handlers/http/api.js';
import type { Route } from '../../lambdas/handlers/http/middleware.js';
import type { LimitStore } from '../../lambdas/ports/limits.js';
import {
  apiWorld,
  caller,
  IMAGE,
  startDynamo,
  template,
  type ApiResponse,
  type ApiWorld,
  type Caller,
  type Dynamo,
} from '../support/harness.js';

type Event = APIGatewayProxyEventV2WithJWTAuthorizer;

const ALICE = caller('alice', 'vision');
const ROOT = caller('root', 'admin');
const DIGEST = (c: string) => `sha256:${c.repeat(64)}`;

const FIXTURE = readFileSync(new URL('../fixtures/http/member-list-jobs.json', import.meta.url), 'utf8');

describe('every answer is what its route documents', () => {
  let dynamo: Dynamo;
  let w: ApiWorld;
  let routes: Route[];
  let handler: ReturnType<typeof createApiHandler>;
  let logDir: string;
  /** `METHOD /path/{param} status` of every answer checked. */
  const checked = new Set<string>();

  before(async () => {
    dynamo = await startDynamo();
    w = await apiWorld(dynamo, {
      pools: [{ name: 'local', gpus: 4 }],
      templates: [template({ name: 'train', command: ['python', 'train.py'], maxLiveTimeoutMinutes: 120 })],
    });
    logDir = await mkdtemp(join(tmpdir(), 'flare-response-schemas-'));
    w.deps.logs = new LocalJobLogs((id) => join(logDir, `${id}.log`));
    handler = createApiHandler(() => w.deps);
    routes = apiRoutes(() => w.deps);
  });
  after(async () => {
    await dynamo.local.stop();
    await rm(logDir, { recursive: true, force: true });
  });

  /** The route serving a concrete path, as matchRoute finds it. */
  function routeFor(method: string, path: string): Route {
    const segments = path.split('/').filter(Boolean);
    const found = routes.find((r) => {
      const pattern = r.path.split('/').filter(Boolean);
      // `{path+}` takes the rest of the path, as matchRoute does.
      const greedy = pattern.at(-1)?.endsWith('+}') ?? false;
      return (
        r.method === method &&
        (greedy ? segments.length >= pattern.length : pattern.length === segments.length) &&
        pattern.every((p, i) => p.startsWith('{') || p === segments[i])
      );
    });
    assert.ok(found, `no route for ${method} ${path}`);
    return found;
  }

  /** Ask the API; an answer with a documented status must match that documentation exactly. */
  async function call(
    method: string,
    path: string,
    as: Caller,
    options: { body?: unknown; query?: Record<string, string>; headers?: Record<string, string> } = {},
  ): Promise<ApiResponse> {
    const event = JSON.parse(FIXTURE) as Event;
    const query = options.query ?? {};
    Object.assign(event, { rawPath: path, rawQueryString: new URLSearchParams(query).toString() });
    event.requestContext.http.method = method;
    event.requestContext.http.path = path;
    if (Object.keys(query).length) event.queryStringParameters = query;
    else delete event.queryStringParameters;
    event.requestContext.authorizer.jwt.claims = as;
    Object.assign(event.headers, options.headers);
    if (options.body !== undefined) {
      event.body = JSON.stringify(options.body);
      event.headers['content-type'] = 'application/json';
    }
    const result = (await handler(event, {} as Context)) as APIGatewayProxyStructuredResultV2;
    const headers = Object.fromEntries(
      Object.entries(result.headers ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)]),
    );
    const response: ApiResponse = {
      status: result.statusCode!,
      headers,
      body: result.body ? JSON.parse(result.body) : undefined,
    };

    const route = routeFor(method, path);
    const documented = route.doc?.responses?.[response.status];
    if (response.status < 300)
      assert.ok(
        documented,
        `${method} ${route.path} answered ${response.status}, which it does not document: ${result.body}`,
      );
    if (!documented) return response;
    const where = `${method} ${route.path} ${response.status}`;
    const isJson = (headers['content-type'] ?? '').startsWith('application/json');
    if (documented.schema && (isJson || !documented.binary)) {
      const parsed = documented.schema.safeParse(response.body);
      assert.ok(
        parsed.success,
        `${where} does not match its documented schema:\n${parsed.success ? '' : z.prettifyError(parsed.error)}\nanswer: ${result.body}`,
      );
    } else if (documented.binary) {
      assert.equal(headers['content-type'], 'application/octet-stream', `${where}: a file's bytes`);
    } else {
      assert.equal(result.body ?? '', '', `${where} documents no body but has one`);
    }
    const documentedHeaders = Object.entries(documented.headers ?? {}).map(
      ([name, h]) => [name.toLowerCase(), h] as const,
    );
    for (const [name, header] of documentedHeaders)
      if (header.required) assert.ok(name in headers, `${where} lacks its documented header ${name}`);
    const known = new Set(['content-type', ...documentedHeaders.map(([name]) => name)]);
    for (const name of Object.keys(headers))
      assert.ok(known.has(name), `${where} sends the undocumented header ${name}`);
    checked.add(where);
    return response;
  }

  async function expect(
    status: number,
    method: string,
    path: string,
    as: Caller,
    options?: Parameters<typeof call>[3],
  ): Promise<any> {
    const response = await call(method, path, as, options);
    assert.equal(response.status, status, `${method} ${path}: ${JSON.stringify(response.body)}`);
    return response.body;
  }

  it('every route documents a success, and every success with a body has its schema', () => {
    for (const route of routes) {
      const successes = Object.entries(route.doc?.responses ?? {}).filter(
        ([status]) => Number(status) >= 200 && Number(status) < 300,
      );
      assert.ok(successes.length > 0, `${route.method} ${route.path} documents no 2xx response`);
      for (const [status, response] of successes) {
        if (status === '204') assert.equal(response.schema, undefined, `${route.method} ${route.path} 204 has no body`);
        else if (!response.binary) assert.ok(response.schema, `${route.method} ${route.path} ${status} has no schema`);
      }
    }
  });

  it('service: versions, v1, the OpenAPI document, health ok and degraded', async () => {
    assert.equal((await expect(200, 'GET', '/', ROOT)).versions[0].id, 'v1');
    const v1 = await expect(200, 'GET', '/v1', ROOT);
    assert.ok(v1.resources.some((r: { path: string }) => r.path === '/v1/jobs/{id}'));
    assert.equal((await expect(200, 'GET', '/v1/openapi.json', ROOT)).openapi, '3.1.0');
    assert.equal((await expect(200, 'GET', '/v1/health', ROOT)).status, 'ok');

    const limits = w.deps.limits;
    w.deps.limits = Object.assign(Object.create(limits) as LimitStore, {
      listPools: async () => {
        throw new Error('DynamoDB is down');
      },
    });
    try {
      const degraded = await expect(503, 'GET', '/v1/health', ROOT);
      assert.equal(degraded.components.store.status, 'unavailable');
    } finally {
      w.deps.limits = limits;
    }
  });

  it('images: added (201), added again unchanged (200), a second version, read and listed', async () => {
    const cuda = { name: 'cuda', reference: 'nvidia/cuda:12.4.1-base-ubuntu22.04', digest: DIGEST('b') };
    await expect(201, 'POST', '/v1/images', ROOT, { body: cuda });
    await expect(200, 'POST', '/v1/images', ROOT, { body: cuda });
    const two = await expect(201, 'POST', '/v1/images', ROOT, { body: { ...cuda, digest: DIGEST('c') } });
    assert.deepEqual(
      two.versions.map((v: { version: number }) => v.version),
      [1, 2],
    );
    assert.equal((await expect(200, 'GET', '/v1/images/cuda', ALICE)).versions.length, 2);
    const first = await expect(200, 'GET', '/v1/images', ALICE, { query: { limit: '1' } });
    assert.equal(first.items.length, 1);
    assert.ok(first.nextToken, 'a page with more after it has a nextToken');
    const rest = await expect(200, 'GET', '/v1/images', ALICE, { query: { nextToken: first.nextToken } });
    assert.equal(rest.nextToken, undefined);
  });

  it('templates: with no optional field, with every one, public; read, listed, changed, deleted', async () => {
    const minimal = await expect(201, 'POST', '/v1/templates', ALICE, {
      body: { name: 'minimal', pool: 'local', image: 'cuda', command: ['true'] },
    });
    assert.equal(minimal.volumeSizeGb, undefined);
    const full = await expect(201, 'POST', '/v1/templates', ALICE, {
      body: {
        name: 'full',
        project: 'vision',
        pool: 'local',
        gpus: 2,
        nodeCount: 1,
        image: 'cuda',
        imageVersion: 1,
        command: ['python', 'train.py'],
        env: { EPOCHS: '3' },
        volumeSizeGb: 100,
        maxLiveTimeoutMinutes: 120,
        defaultLiveTimeoutMinutes: 30,
        allowRoot: true,
      },
    });
    assert.equal(
      (
        await expect(201, 'POST', '/v1/templates', ROOT, {
          body: { name: 'hello', public: true, pool: 'local', image: IMAGE.name, command: ['echo', 'hi'] },
        })
      ).public,
      true,
    );
    assert.equal((await expect(200, 'GET', '/v1/templates/full', ALICE)).id, full.id);
    assert.ok((await expect(200, 'GET', '/v1/templates', ALICE)).items.length >= 4);
    const changed = await expect(200, 'PATCH', `/v1/templates/${full.id}`, ALICE, {
      body: { volumeSizeGb: null, imageVersion: 2, env: { EPOCHS: '5' } },
    });
    assert.equal(changed.volumeSizeGb, undefined);
    assert.equal(changed.revision, 2);
    await expect(204, 'DELETE', '/v1/templates/minimal', ALICE);
  });

  it('quotas and pools: created, listed, read, changed', async () => {
    await expect(201, 'POST', '/v1/quotas', ROOT, { body: { project: 'vision', resource: 'gpus', hardLimit: 2 } });
    await expect(201, 'POST', '/v1/quotas', ROOT, { body: { project: 'vision', resource: 'jobs', hardLimit: 10 } });
    assert.equal((await expect(200, 'GET', '/v1/quotas', ALICE)).items.length, 2);
    assert.equal((await expect(200, 'GET', '/v1/quotas/vision/gpus', ALICE)).hardLimit, 2);
    assert.equal((await expect(200, 'PATCH', '/v1/quotas/vision/gpus', ROOT, { body: { hardLimit: 3 } })).hardLimit, 3);
    assert.equal((await expect(200, 'GET', '/v1/pools', ALICE)).items[0].name, 'local');
    assert.equal((await expect(200, 'PATCH', '/v1/pools/local', ROOT, { body: { maxGpus: 6 } })).maxGpus, 6);
    assert.equal((await expect(200, 'GET', '/v1/pools/local/history', ALICE, { query: { hours: '2' } })).pool, 'local');
  });

  const ids: Record<'queued' | 'waiting' | 'running' | 'failed', string> = {
    queued: '',
    waiting: '',
    running: '',
    failed: '',
  };

  /** What the workflow would do (none runs here): start the container of a job admitted at its submit. */
  async function run(id: string) {
    const startedAt = new Date();
    return w.store.updateJob(id, [JobState.LAUNCHING], {
      state: JobState.RUNNING,
      startedAt: startedAt.toISOString(),
      expiresAt: new Date(startedAt.getTime() + 60 * 60_000).toISOString(),
      instanceIds: [`local-${id}`],
    });
  }

  it('jobs: submitted (and replayed), queued, waiting, running, failed with an exit code; read, listed, changed', async () => {
    const submit = (name: string, { headers, gpus }: { headers?: Record<string, string>; gpus?: number } = {}) =>
      call('POST', '/v1/jobs', ALICE, { body: { template: 'train', name, ...(gpus ? { gpus } : {}) }, headers });
    // The pool has room and nobody waits: admitted at once.
    const admitted = await submit('running', { headers: { 'idempotency-key': 'schemas-1' } });
    assert.equal(admitted.status, 202);
    assert.equal(admitted.body.state, JobState.LAUNCHING);
    const replayed = await submit('running', { headers: { 'idempotency-key': 'schemas-1' } });
    assert.equal(replayed.status, 202);
    assert.equal(replayed.headers['idempotent-replayed'], 'true');
    ids.running = admitted.body.id;
    ids.failed = (await submit('failed')).body.id;
    // vision's gpus quota (3) has 1 left: these need 2 and are stored waiting.
    for (const which of ['queued', 'waiting'] as const) {
      const response = await submit(which, { gpus: 2 });
      assert.equal(response.status, 202);
      assert.equal(response.body.state, JobState.WAITING);
      assert.equal(response.body.stateReason, 'project vision has 1 of 3 GPUs free, needs 2');
      ids[which] = response.body.id;
    }
    // As a job is stored whose admission at its submit lost its room (its Admit step decides).
    await w.store.updateJob(ids.queued, [JobState.WAITING], { state: JobState.PENDING }, [
      'stateReason',
      'promisedStartAt',
    ]);
    await run(ids.running);
    const failing = await run(ids.failed);
    await w.store.finishJob(failing, {
      state: JobState.FAILED,
      stateReason: 'exited with code 3',
      finishedAt: new Date().toISOString(),
      exitCode: 3,
    });

    const pending = await expect(200, 'GET', `/v1/jobs/${ids.queued}`, ALICE);
    assert.equal(pending.queuePosition, 0);
    const waiting = await expect(200, 'GET', `/v1/jobs/${ids.waiting}`, ALICE);
    assert.deepEqual(
      [waiting.state, waiting.queuePosition, typeof waiting.stateReason],
      [JobState.WAITING, 1, 'string'],
    );
    const running = await expect(200, 'GET', `/v1/jobs/${ids.running}`, ALICE);
    assert.equal(running.state, JobState.RUNNING);
    assert.ok(running.expiresAt && running.startedAt && running.admittedAt && running.instanceIds);
    const failed = await expect(200, 'GET', `/v1/jobs/${ids.failed}`, ALICE);
    assert.deepEqual([failed.state, failed.exitCode, typeof failed.finishedAt], [JobState.FAILED, 3, 'string']);

    const list = await expect(200, 'GET', '/v1/jobs', ALICE);
    assert.deepEqual(
      new Set(list.items.map((j: { state: string }) => j.state)),
      new Set([JobState.PENDING, JobState.WAITING, JobState.RUNNING, JobState.FAILED]),
    );
    assert.ok((await expect(200, 'GET', '/v1/jobs', ALICE, { query: { limit: '1' } })).nextToken);

    const extended = await expect(200, 'PATCH', `/v1/jobs/${ids.running}`, ALICE, { body: { liveTimeoutMinutes: 90 } });
    assert.equal(Date.parse(extended.expiresAt) - Date.parse(extended.startedAt), 90 * 60_000);
    assert.equal(
      (await expect(200, 'PATCH', `/v1/jobs/${ids.queued}`, ALICE, { body: { name: 'renamed' } })).name,
      'renamed',
    );
  });

  it('exec and sessions: a command run in a running job; a local shell, a local port and an AWS session planned', async () => {
    const compute = w.deps.compute;
    const plans = [
      { runtime: 'local', kind: 'shell', command: 'docker', args: ['exec', '-it', 'flare-j'], env: {}, cwd: '/tmp' },
      { runtime: 'local', kind: 'port-forward', host: '172.17.0.2', port: 8888 },
      {
        runtime: 'aws',
        kind: 'shell',
        region: 'eu-west-1',
        target: 'i-0aaa',
        documentName: 'FlareStack-JobShell',
        parameters: {},
      },
    ];
    w.deps.compute = Object.assign(Object.create(compute) as typeof compute, {
      exec: async () => ({ exitCode: 3, stdout: 'out', stderr: '', truncated: false, timedOut: false }),
      session: async () => plans.shift(),
    });
    try {
      const ran = await expect(200, 'POST', `/v1/jobs/${ids.running}/exec`, ALICE, { body: { command: ['true'] } });
      assert.equal(ran.exitCode, 3);
      for (const kind of ['shell', 'port-forward', 'shell']) {
        const body = kind === 'shell' ? { kind } : { kind, port: 8888 };
        assert.ok((await expect(200, 'POST', `/v1/jobs/${ids.running}/session`, ALICE, { body })).runtime);
      }
    } finally {
      w.deps.compute = compute;
    }
  });

  it('logs: the tail, and what came after it', async () => {
    await writeFile(join(logDir, `${ids.failed}.log`), 'epoch 1\nepoch 2\nTraceback: boom\n');
    const tail = await expect(200, 'GET', `/v1/jobs/${ids.failed}/logs`, ALICE, { query: { tail: '2' } });
    assert.deepEqual(
      tail.lines.map((l: { message: string }) => l.message),
      ['epoch 2', 'Traceback: boom'],
    );
    assert.ok(tail.nextToken);
    const next = await expect(200, 'GET', `/v1/jobs/${ids.failed}/logs`, ALICE, {
      query: { nextToken: tail.nextToken },
    });
    assert.deepEqual(next.lines, []);
  });

  it('outputs: listed, a file (bytes), a file on AWS (307 to a presigned URL, or with link=true its URL as JSON)', async () => {
    const dir = join(logDir, 'outputs');
    await mkdir(join(dir, 'sub'), { recursive: true });
    await writeFile(join(dir, 'sub', 'n.txt'), 'hello');
    w.deps.outputs = {
      list: async () => [{ path: 'sub/n.txt', size: 5, modifiedAt: '2030-01-01T00:00:00.000Z' }],
      download: async (_job, path) =>
        path === 'on-aws.bin'
          ? {
              kind: 'redirect',
              url: 'https://bucket.s3.amazonaws.com/vision/j/on-aws.bin?X-Amz-Signature=x',
              expiresAt: '2030-01-01T00:05:00.000Z',
            }
          : { kind: 'file', hostPath: join(dir, path), size: 5 },
      remove: async () => undefined,
    };
    try {
      const list = await expect(200, 'GET', `/v1/jobs/${ids.failed}/outputs`, ALICE);
      assert.equal(list.items[0].path, 'sub/n.txt');
      await expect(200, 'GET', `/v1/jobs/${ids.failed}/outputs/sub/n.txt`, ALICE);
      await expect(307, 'GET', `/v1/jobs/${ids.failed}/outputs/on-aws.bin`, ALICE);
      const link = await expect(200, 'GET', `/v1/jobs/${ids.failed}/outputs/on-aws.bin`, ALICE, {
        query: { link: 'true' },
      });
      assert.deepEqual(link, {
        url: 'https://bucket.s3.amazonaws.com/vision/j/on-aws.bin?X-Amz-Signature=x',
        expiresAt: '2030-01-01T00:05:00.000Z',
      });
      // A file of this machine has no URL: its bytes, link or not.
      await expect(200, 'GET', `/v1/jobs/${ids.failed}/outputs/sub/n.txt`, ALICE, { query: { link: 'true' } });
      const bad = await expect(400, 'GET', `/v1/jobs/${ids.failed}/outputs/sub/n.txt`, ALICE, {
        query: { link: 'yes' },
      });
      assert.deepEqual(
        bad.error.details.map((d: { field: string }) => d.field),
        ['link'],
      );
    } finally {
      delete w.deps.outputs;
    }
  });

  it('secrets: put (204), listed by name without values, deleted (204)', async () => {
    // apiWorld wires no secret store: the local plane's, in this test's directory.
    w.deps.secrets = new LocalSecretStore(join(logDir, 'data'));
    try {
      const secret = '/v1/projects/vision/secrets/HF_TOKEN';
      await expect(204, 'PUT', secret, ALICE, { body: { value: 'hf_abc' } });
      const list = await expect(200, 'GET', '/v1/projects/vision/secrets', ALICE);
      assert.deepEqual(
        list.items.map((s: { name: string }) => s.name),
        ['HF_TOKEN'],
      );
      await expect(204, 'DELETE', secret, ALICE);
      assert.deepEqual((await expect(200, 'GET', '/v1/projects/vision/secrets', ALICE)).items, []);
    } finally {
      delete w.deps.secrets;
    }
  });

  it('stats: overall with by-pool and by-project figures, and for one project', async () => {
    const all = await expect(200, 'GET', '/v1/stats', ROOT);
    assert.equal(all.projects, null);
    assert.equal(all.byPool.local.totalJobs, 4);
    assert.equal(all.byProject.vision.waitingSeconds.count, 2);
    assert.equal(typeof all.waitingSeconds.p50, 'number');
    assert.deepEqual((await expect(200, 'GET', '/v1/stats', ALICE, { query: { project: 'vision' } })).projects, [
      'vision',
    ]);
  });

  it('deleting: an active job is cancelled (202), a finished one removed (204); a quota removed (204)', async () => {
    assert.equal((await expect(202, 'DELETE', `/v1/jobs/${ids.queued}`, ALICE)).state, JobState.CANCELLED);
    const cancelling = await expect(202, 'DELETE', `/v1/jobs/${ids.running}`, ALICE);
    assert.ok(!TERMINAL_STATES.includes(cancelling.state), 'an admitted job is cancelled by its workflow');
    await expect(204, 'DELETE', `/v1/jobs/${ids.failed}`, ALICE);
    await expect(204, 'DELETE', '/v1/quotas/vision/gpus', ROOT);
  });

  it('the views refuse what they do not describe', async () => {
    const job = await expect(200, 'GET', `/v1/jobs/${ids.waiting}`, ALICE);
    assert.ok(Job.safeParse(job).success);
    assert.equal(Job.safeParse({ ...job, taskToken: 'AAA' }).success, false, 'an undocumented field fails');
    assert.equal(Job.safeParse({ ...job, state: 'JOB_WAITING' }).success, false, 'a state that does not exist fails');
    assert.equal(Job.safeParse({ ...job, createdAt: 'yesterday' }).success, false, 'a time that is not ISO 8601 fails');
    const { project: _, ...withoutProject } = job;
    assert.equal(Job.safeParse(withoutProject).success, false, 'a missing field fails');
  });

  it('every documented response was given and checked', () => {
    const documented = routes.flatMap((r) =>
      Object.keys(r.doc?.responses ?? {}).map((status) => `${r.method} ${r.path} ${status}`),
    );
    assert.deepEqual(
      documented.filter((d) => !checked.has(d)),
      [],
    );
  });
});
