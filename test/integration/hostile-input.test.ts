/**
 * Hostile input against the whole local control plane, in process: the local
 * API Gateway stand-in over real HTTP (requests written byte for byte where
 * fetch would tidy them), the API Lambda, DynamoDB Local, the real ASL, jobs
 * run as real processes, and Slack and Teams webhooks posted to a loopback
 * receiver.
 *
 * Each case proves the safe outcome — the status that fits, the error shape
 * `{ error: { code, message, details? } }` naming the field, nothing stored
 * (jobs, templates and images are read before and after), never a 500 — or,
 * for text that is only data (shell metacharacters in argv), that it is
 * stored verbatim and never interpreted.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isTerminal, type Job } from '../../lambdas/core/job.js';
import { LocalConfig, parse } from '../../lambdas/core/schemas.js';
import { startControlPlane, type ControlPlane } from '../../lambdas/local/control-plane.js';
import { quietLog, waitFor } from '../support/harness.js';
import { ROOT_TOKEN, ALICE_TOKEN, BOB_TOKEN, LOCAL_USERS } from '../support/identities.js';

const CARL = 'carl-token-0123456789abcdefg';
/** A member of vision whose token expired a minute before the plane started. */
const EVE = 'eve-token-0123456789abcdefgh';
/** A member of vision whose token expires in a year. */
const FRANK = 'frank-token-0123456789abcdef';

const DIGEST = `sha256:${'d'.repeat(64)}`;
const FLOOD_LIMIT = 3;
const MAX_TIMEOUT = 120;

interface Response {
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

let plane: ControlPlane;
let hooks: Server;
let dataDir: string;
const posts: Array<{ path: string; body: any }> = [];
const markers: string[] = [];

/** One request with the path exactly as written (fetch would normalise `..` and percent-escapes). */
function send(method: string, path: string, options: Send = {}): Promise<Response> {
  const body = options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const headers: Record<string, string> = { ...options.headers };
  if (options.authorization !== undefined) headers.authorization = options.authorization;
  else if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (body !== undefined) {
    headers['content-type'] = options.contentType ?? 'application/json';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  const { hostname, port } = new URL(plane.url);
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
function sendRaw(head: Buffer): Promise<Response> {
  const { hostname, port } = new URL(plane.url);
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
function expectError(response: Response, status: number, fields?: string[]): void {
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
async function stored(): Promise<unknown> {
  const { jobs: store, catalog } = plane.deps;
  const jobs = await store.listJobs({ projects: undefined }, { limit: 1000 });
  return {
    jobs: jobs.items.map((j) => [j.id, j.name, j.liveTimeoutMinutes, j.state === 'CANCELLED']).sort(),
    templates: (await catalog.listTemplates()).map((t) => [t.id, t.revision]).sort(),
    images: (await catalog.listImages()).map((i) => [i.name, i.versions.length]).sort(),
  };
}

/** `request` is refused as `status` (naming `fields`), and nothing is stored. */
async function refused(request: () => Promise<Response>, status: number, fields?: string[]): Promise<Response> {
  const before = await stored();
  const response = await request();
  expectError(response, status, fields);
  assert.deepEqual(await stored(), before, 'a refused request stored nothing');
  return response;
}

async function submit(token: string, body: unknown, headers?: Record<string, string>): Promise<Job> {
  const response = await send('POST', '/v1/jobs', { token, body, headers });
  assert.equal(response.status, 202, response.text);
  return response.body;
}

const job = async (id: string): Promise<Job> => (await plane.deps.jobs.getJob(id))!;
const untilEnded = (id: string) =>
  waitFor(
    `job ${id} to end`,
    async () => ((j) => (j && isTerminal(j.state) ? j : undefined))(await plane.deps.jobs.getJob(id)),
    60_000,
    100,
  );
const cancel = async (id: string) => {
  await send('DELETE', `/v1/jobs/${id}`, { token: ROOT_TOKEN });
  return untilEnded(id);
};

function marker(): string {
  const path = join(tmpdir(), `flare-hostile-${randomBytes(6).toString('hex')}`);
  markers.push(path);
  return path;
}

describe('hostile input', () => {
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
    plane = await startControlPlane(config, {
      inMemory: true,
      log: quietLog,
      compute: { pollMs: 100, stopGraceMs: 1000 },
    });
  });

  after(async () => {
    if (plane) {
      for (const active of await plane.deps.queue.listActiveJobs()) await cancel(active.id).catch(() => undefined);
      await plane.stop();
    }
    hooks?.closeAllConnections();
    await new Promise((r) => hooks?.close(r));
    await rm(dataDir, { recursive: true, force: true });
    for (const path of markers) await rm(path, { force: true });
  });

  describe('command: argv only, stored verbatim, never interpreted', () => {
    it('keeps shell metacharacters and newlines as argv elements: stored as sent, and `; touch` creates no file', async () => {
      const file = marker();
      const command = [
        'echo',
        `; touch ${file}`,
        `$(touch ${file})`,
        `\`touch ${file}\``,
        `| touch ${file}`,
        `&& touch ${file}`,
        'two\nlines',
        '$HOME',
        '*',
        "'single'",
        '"double"',
        '\\',
      ];
      const submitted = await submit(ALICE_TOKEN, { template: 'echo', command });
      assert.deepEqual(submitted.command, command, 'the answer carries the command as sent');
      assert.deepEqual(
        (await job(submitted.id)).command,
        command,
        'the stored command is the input, element for element',
      );

      assert.equal((await untilEnded(submitted.id)).state, 'SUCCEEDED');
      // echo printed its arguments as they are: no expansion, no globbing, no second command.
      const logs = await send('GET', `/v1/jobs/${submitted.id}/logs`, { token: ALICE_TOKEN });
      assert.equal(logs.status, 200, logs.text);
      assert.equal(logs.body.lines.map((l: { message: string }) => l.message).join('\n'), command.slice(1).join(' '));
      assert.equal(existsSync(file), false, `${file} must not exist: an argv element was run by a shell`);
    });

    it('runs a first element with `; touch` in it as one (missing) program: the job fails and no file appears', async () => {
      const file = marker();
      const command = [`true; touch ${file}`];
      const submitted = await submit(ALICE_TOKEN, { template: 'echo', command });
      assert.deepEqual((await job(submitted.id)).command, command);
      assert.equal((await untilEnded(submitted.id)).state, 'FAILED');
      assert.equal(existsSync(file), false, `${file} must not exist`);
    });

    it('stores control characters other than NUL in argv as data', async () => {
      const command = ['echo', 'esc\u001b[2J', 'bell\u0007', 'tab\there', 'cr\rlf'];
      const submitted = await submit(ALICE_TOKEN, { template: 'echo', command });
      assert.deepEqual((await job(submitted.id)).command, command);
      await untilEnded(submitted.id);
    });

    const notArgv: Array<[string, unknown, string[]]> = [
      ['a string (argv only, never a shell line)', 'ls -la; rm -rf /', ['command']],
      ['an object', { argv: ['ls'] }, ['command']],
      ['a number', 42, ['command']],
      ['null', null, ['command']],
      ['a boolean', true, ['command']],
      ['an empty array', [], ['command']],
      ['nested arrays', [['ls', '-la']], ['command.0']],
      ['an array of numbers', [1, 2], ['command.0', 'command.1']],
      ['an empty element', ['echo', ''], ['command.1']],
      ['a NUL in an element', ['echo', 'a\u0000b'], ['command.1']],
      ['a 5000-character element', ['echo', 'x'.repeat(5000)], ['command.1']],
      ['257 elements', Array.from({ length: 257 }, () => 'x'), ['command']],
    ];
    for (const [what, command, fields] of notArgv) {
      it(`refuses a job command that is ${what} (400 naming it), storing nothing`, async () => {
        await refused(
          () => send('POST', '/v1/jobs', { token: ALICE_TOKEN, body: { template: 'echo', command } }),
          400,
          fields,
        );
      });
    }

    it('refuses a template command that is a string or an object, storing nothing', async () => {
      const base = { name: 'shelly', project: 'vision', pool: 'local', image: 'tools' };
      await refused(
        () => send('POST', '/v1/templates', { token: ALICE_TOKEN, body: { ...base, command: 'sh -c "id"' } }),
        400,
        ['command'],
      );
      await refused(
        () => send('POST', '/v1/templates', { token: ALICE_TOKEN, body: { ...base, command: { 0: 'id' } } }),
        400,
        ['command'],
      );
      await refused(() => send('PATCH', '/v1/templates/echo', { token: ALICE_TOKEN, body: { command: 'id' } }), 400, [
        'command',
      ]);
    });
  });

  describe('NUL and control characters in names and env', () => {
    const cases: Array<[string, Record<string, unknown>, string[]]> = [
      ['a NUL in the name', { name: 'job\u0000x' }, ['name']],
      ['an escape sequence in the name', { name: 'red\u001b[31m' }, ['name']],
      ['a newline in the name', { name: 'line\nbreak' }, ['name']],
      ['a DEL in the name', { name: 'del\u007f' }, ['name']],
      ['a NUL in an env value', { env: { GOOD: 'a\u0000b' } }, ['env.GOOD']],
      ['a NUL in an env name', { env: { 'BAD\u0000': 'x' } }, ['env.BAD\u0000']],
      ['a newline in an env name', { env: { 'A\nB': 'x' } }, ['env.A\nB']],
      ['an env name with `=`', { env: { 'A=B': 'x' } }, ['env.A=B']],
      ['an env value that is not a string', { env: { N: 1 } }, ['env.N']],
    ];
    for (const [what, extra, fields] of cases) {
      it(`refuses ${what} (400 naming it), storing nothing`, async () => {
        await refused(
          () => send('POST', '/v1/jobs', { token: ALICE_TOKEN, body: { template: 'echo', ...extra } }),
          400,
          fields,
        );
      });
    }

    // Raw JSON: in a JS literal `__proto__` would set the prototype, where JSON.parse makes an own key.
    const reserved: Array<[string, string, string[]]> = [
      ['`__proto__` naming an object (once dropped without a word)', '{"__proto__":{"A":"x"}}', ['env.__proto__']],
      ['`__proto__` naming a string', '{"__proto__":"x","GOOD":"y"}', ['env.__proto__']],
      ['`constructor`', '{"constructor":"x"}', ['env.constructor']],
      ['`prototype` beside a bad value', '{"prototype":"x","N":2}', ['env.prototype', 'env.N']],
      ['an object as a value', '{"A":{"B":"c"}}', ['env.A']],
      ['an array for the map', '["A=x"]', ['env']],
      ['a name Flare sets (once refused only when the job started)', '{"FLARE_JOB_ID":"x"}', ['env.FLARE_JOB_ID']],
      [
        "the NVIDIA runtime's device selector",
        '{"NVIDIA_VISIBLE_DEVICES":"all","OK":"y"}',
        ['env.NVIDIA_VISIBLE_DEVICES'],
      ],
    ];
    for (const [what, env, fields] of reserved) {
      it(`refuses an env with ${what} (400 naming it), on a job, a new template and a template change, storing nothing`, async () => {
        await refused(
          () => send('POST', '/v1/jobs', { token: ALICE_TOKEN, raw: `{"template":"echo","env":${env}}` }),
          400,
          fields,
        );
        await refused(
          () =>
            send('POST', '/v1/templates', {
              token: ALICE_TOKEN,
              raw: `{"name":"envy","project":"vision","pool":"local","image":"tools","command":["true"],"env":${env}}`,
            }),
          400,
          fields,
        );
        const templates = await send('GET', '/v1/templates?project=vision', { token: ALICE_TOKEN });
        const echo = templates.body.items.find((t: { name: string }) => t.name === 'echo');
        await refused(
          () => send('PATCH', `/v1/templates/${echo.id}`, { token: ALICE_TOKEN, raw: `{"env":${env}}` }),
          400,
          fields,
        );
      });
    }

    it('refuses control characters in a template name and a job rename', async () => {
      await refused(
        () =>
          send('POST', '/v1/templates', {
            token: ALICE_TOKEN,
            body: { name: 'x\u0000', project: 'vision', pool: 'local', image: 'tools', command: ['true'] },
          }),
        400,
        ['name'],
      );
      const submitted = await submit(ALICE_TOKEN, { template: 'echo' });
      await refused(
        () => send('PATCH', `/v1/jobs/${submitted.id}`, { token: ALICE_TOKEN, body: { name: 'a\u0007b' } }),
        400,
        ['name'],
      );
    });
  });

  describe('image references', () => {
    const add = (body: Record<string, unknown>) => () =>
      send('POST', '/v1/images', {
        token: ROOT_TOKEN,
        body: { name: 'evil', reference: 'docker.io/library/busybox:1.36', digest: DIGEST, ...body },
      });
    const references = [
      '-v',
      '--privileged',
      '-x/y:1',
      '--network=host',
      'busybox latest',
      ' busybox',
      'busybox\n',
      'busybox\tx',
      'busybox\u0000',
      `busybox@${DIGEST}`,
      'Busybox',
      '',
    ];
    for (const reference of references) {
      it(`refuses to add the reference ${JSON.stringify(reference)} (400 naming it), storing nothing`, async () => {
        await refused(add({ reference }), 400, ['reference']);
      });
    }
    for (const [what, digest] of [
      ['no digest', undefined],
      ['a short digest', 'sha256:abc'],
      ['another algorithm', `md5:${'d'.repeat(32)}`],
      ['an upper-case digest', `SHA256:${'D'.repeat(64)}`],
      ['whitespace in the digest', `sha256:${'d'.repeat(63)} `],
      ['a digest that is not a string', 7],
    ] as const) {
      it(`refuses an image with ${what} (400 naming digest)`, async () => {
        await refused(
          () =>
            send('POST', '/v1/images', {
              token: ROOT_TOKEN,
              body: {
                name: 'evil',
                reference: 'docker.io/library/busybox:1.36',
                ...(digest === undefined ? {} : { digest }),
              },
            }),
          400,
          ['digest'],
        );
      });
    }

    it('lets a template name catalog images only: a raw reference, a leading dash or whitespace is a 400 naming image', async () => {
      const base = { name: 'imaged', project: 'vision', pool: 'local', command: ['true'] };
      for (const image of [
        '-tools',
        '--privileged',
        'tools latest',
        'tools\n',
        'docker.io/library/busybox:1.36',
        `tools@${DIGEST}`,
        'nope',
      ]) {
        await refused(() => send('POST', '/v1/templates', { token: ALICE_TOKEN, body: { ...base, image } }), 400, [
          'image',
        ]);
      }
      await refused(() => send('PATCH', '/v1/templates/echo', { token: ALICE_TOKEN, body: { image: '-v' } }), 400, [
        'image',
      ]);
    });

    it('does not let a job name an image at all', async () => {
      await refused(
        () =>
          send('POST', '/v1/jobs', {
            token: ALICE_TOKEN,
            body: { template: 'echo', image: 'docker.io/library/alpine:latest' },
          }),
        400,
        ['image'],
      );
    });
  });

  describe('numbers', () => {
    const submitRaw = (fragment: string) => () =>
      send('POST', '/v1/jobs', { token: ALICE_TOKEN, raw: `{"template":"echo",${fragment}}` });
    for (const value of ['0', '-1', '1.5', '"2"', '1e309', '-1e309', 'null', 'true', '1025', '[1]']) {
      it(`refuses gpus ${value} (400 naming gpus), storing nothing`, async () => {
        await refused(submitRaw(`"gpus":${value}`), 400, ['gpus']);
      });
    }

    it('says a number beyond a double (1e309, -1e309) is out of range, for every numeric field of every body', async () => {
      const submitted = await submit(ALICE_TOKEN, { template: 'echo' });
      const templates = await send('GET', '/v1/templates?project=vision', { token: ALICE_TOKEN });
      const echo = templates.body.items.find((t: { name: string }) => t.name === 'echo');
      const template = (field: string, value: string) =>
        `{"name":"big","project":"vision","pool":"local","image":"tools","command":["true"],"${field}":${value}}`;
      const bodies: Array<[string, string, string, string, (value: string) => string]> = [
        ['POST', '/v1/jobs', ALICE_TOKEN, 'gpus', (v) => `{"template":"echo","gpus":${v}}`],
        ['POST', '/v1/jobs', ALICE_TOKEN, 'liveTimeoutMinutes', (v) => `{"template":"echo","liveTimeoutMinutes":${v}}`],
        ['PATCH', `/v1/jobs/${submitted.id}`, ALICE_TOKEN, 'liveTimeoutMinutes', (v) => `{"liveTimeoutMinutes":${v}}`],
        ...[
          'gpus',
          'nodeCount',
          'imageVersion',
          'volumeSizeGb',
          'maxLiveTimeoutMinutes',
          'defaultLiveTimeoutMinutes',
        ].map((field): [string, string, string, string, (value: string) => string] => [
          'POST',
          '/v1/templates',
          ALICE_TOKEN,
          field,
          (v) => template(field, v),
        ]),
        ['PATCH', `/v1/templates/${echo.id}`, ALICE_TOKEN, 'gpus', (v) => `{"gpus":${v}}`],
        [
          'POST',
          '/v1/quotas',
          ROOT_TOKEN,
          'hardLimit',
          (v) => `{"project":"vision","resource":"templates","hardLimit":${v}}`,
        ],
        ['PATCH', '/v1/quotas/crowd/jobs', ROOT_TOKEN, 'hardLimit', (v) => `{"hardLimit":${v}}`],
        ['PATCH', '/v1/pools/local', ROOT_TOKEN, 'maxGpus', (v) => `{"maxGpus":${v}}`],
      ];
      for (const [method, path, token, field, body] of bodies) {
        for (const value of ['1e309', '-1e309']) {
          const response = await refused(() => send(method, path, { token, raw: body(value) }), 400, [field]);
          assert.match(
            response.body.error.details[0].reason,
            /out of range/,
            `${method} ${path} ${field}=${value}: ${response.text}`,
          );
        }
      }
      await untilEnded(submitted.id);
    });

    it('refuses more GPUs than the pool can ever hold as well-formed but impossible (422)', async () => {
      await refused(submitRaw('"gpus":3'), 422);
    });

    it('refuses template GPU counts of 0, 1.5 and 1e309', async () => {
      for (const gpus of ['0', '1.5', '1e309']) {
        await refused(
          () =>
            send('POST', '/v1/templates', {
              token: ALICE_TOKEN,
              raw: `{"name":"g","project":"vision","pool":"local","image":"tools","command":["true"],"gpus":${gpus}}`,
            }),
          400,
          ['gpus'],
        );
      }
    });

    for (const value of [
      '0',
      '-1',
      '-0.5',
      '"NaN"',
      'null',
      '"60"',
      '1e309',
      '-1e309',
      String(MAX_TIMEOUT + 1),
      String(MAX_TIMEOUT + 0.001),
    ]) {
      it(`refuses liveTimeoutMinutes ${value} (400 naming it), storing nothing`, async () => {
        await refused(submitRaw(`"liveTimeoutMinutes":${value}`), 400, ['liveTimeoutMinutes']);
      });
    }

    it("accepts the template's max itself, and a fraction of a minute", async () => {
      const atMax = await submit(ALICE_TOKEN, { template: 'echo', liveTimeoutMinutes: MAX_TIMEOUT });
      assert.equal((await job(atMax.id)).liveTimeoutMinutes, MAX_TIMEOUT);
      const fraction = await submit(ALICE_TOKEN, { template: 'echo', liveTimeoutMinutes: 0.5 });
      assert.equal((await job(fraction.id)).liveTimeoutMinutes, 0.5);
      await Promise.all([untilEnded(atMax.id), untilEnded(fraction.id)]);
    });

    it('refuses the same bad timeouts on PATCH of an active job, and takes the max', async () => {
      const held = await submit(ALICE_TOKEN, { template: 'hold', liveTimeoutMinutes: 10 });
      try {
        for (const value of ['0', '-1', '"NaN"', 'null', '1e309', String(MAX_TIMEOUT + 1)]) {
          await refused(
            () => send('PATCH', `/v1/jobs/${held.id}`, { token: ALICE_TOKEN, raw: `{"liveTimeoutMinutes":${value}}` }),
            400,
            ['liveTimeoutMinutes'],
          );
        }
        const changed = await send('PATCH', `/v1/jobs/${held.id}`, {
          token: ALICE_TOKEN,
          body: { liveTimeoutMinutes: MAX_TIMEOUT },
        });
        assert.equal(changed.status, 200, changed.text);
        assert.equal((await job(held.id)).liveTimeoutMinutes, MAX_TIMEOUT);
      } finally {
        await cancel(held.id);
      }
    });
  });

  describe('unknown fields', () => {
    const smuggled = {
      privileged: true,
      volumes: ['/:/host'],
      network: 'host',
      devices: ['/dev/mem'],
      capAdd: ['SYS_ADMIN'],
    };
    const names = Object.keys(smuggled);

    it('refuses a job with privileged, volumes, network, devices or capAdd, naming each', async () => {
      await refused(
        () => send('POST', '/v1/jobs', { token: ALICE_TOKEN, body: { template: 'echo', ...smuggled } }),
        400,
        names,
      );
    });

    it('refuses them on a template, on a template change and on a job change', async () => {
      const template = { name: 'smuggler', project: 'vision', pool: 'local', image: 'tools', command: ['true'] };
      await refused(
        () => send('POST', '/v1/templates', { token: ALICE_TOKEN, body: { ...template, ...smuggled } }),
        400,
        names,
      );
      await refused(() => send('PATCH', '/v1/templates/echo', { token: ALICE_TOKEN, body: smuggled }), 400, names);
      const submitted = await submit(ALICE_TOKEN, { template: 'echo' });
      await refused(
        () => send('PATCH', `/v1/jobs/${submitted.id}`, { token: ALICE_TOKEN, body: { name: 'ok', ...smuggled } }),
        400,
        names,
      );
    });
  });

  describe('tenancy', () => {
    it('refuses a body project the token does not name (403), for jobs and templates, storing nothing', async () => {
      await refused(
        () => send('POST', '/v1/jobs', { token: ALICE_TOKEN, body: { template: 'echo', project: 'audio' } }),
        403,
      );
      await refused(
        () => send('POST', '/v1/jobs', { token: BOB_TOKEN, body: { template: 'echo', project: 'vision' } }),
        403,
      );
      await refused(
        () =>
          send('POST', '/v1/templates', {
            token: ALICE_TOKEN,
            body: { name: 'intruder', project: 'audio', pool: 'local', image: 'tools', command: ['true'] },
          }),
        403,
      );
    });

    it("answers 404 for another project's job by id to GET, PATCH, DELETE and logs, and leaves it alone", async () => {
      const held = await submit(ALICE_TOKEN, { template: 'hold', name: 'alices' });
      try {
        for (const [method, path, body] of [
          ['GET', `/v1/jobs/${held.id}`, undefined],
          ['PATCH', `/v1/jobs/${held.id}`, { name: 'stolen', liveTimeoutMinutes: 1 }],
          ['DELETE', `/v1/jobs/${held.id}`, undefined],
          ['GET', `/v1/jobs/${held.id}/logs`, undefined],
        ] as const) {
          const response = await refused(() => send(method, path, { token: BOB_TOKEN, body }), 404);
          assert.doesNotMatch(response.text, /vision|alice/, 'a 404 says nothing about the job');
        }
        const after = await job(held.id);
        assert.equal(after.name, 'alices');
        assert.ok(!isTerminal(after.state), 'not cancelled by another project');
      } finally {
        await cancel(held.id);
      }
    });
  });

  describe('tokens', () => {
    it('refuses an expired token with 401 saying only that it expired', async () => {
      for (const path of ['/v1/jobs', '/v1/pools']) {
        const response = await send('GET', path, { token: EVE });
        expectError(response, 401);
        assert.deepEqual(response.body, { error: { code: 'unauthorized', message: 'the token has expired' } });
        assert.match(String(response.headers['www-authenticate']), /^Bearer error="invalid_token"/);
      }
      await refused(() => send('POST', '/v1/jobs', { token: EVE, body: { template: 'echo' } }), 401);
    });

    it('takes a token whose expiry is ahead, and a public route needs no token at all', async () => {
      assert.equal((await send('GET', '/v1/jobs', { token: FRANK })).status, 200);
      assert.equal((await send('GET', '/v1/health', { token: EVE })).status, 200);
    });

    const malformed: Array<[string, string | Buffer | undefined]> = [
      ['no Authorization header', undefined],
      ['an empty header', ''],
      ['only the scheme', 'Bearer'],
      ['another scheme', `Basic ${ALICE_TOKEN}`],
      ['no scheme', ALICE_TOKEN],
      ['two spaces after the scheme', `Bearer  ${ALICE_TOKEN}`],
      ['a tab after the scheme', `Bearer\t${ALICE_TOKEN}`],
      ['two tokens', `Bearer ${ALICE_TOKEN} ${ALICE_TOKEN}`],
      ['a token with a trailing character', `Bearer ${ALICE_TOKEN}x`],
      ['a latin-1 byte appended', Buffer.concat([Buffer.from(`Bearer ${ALICE_TOKEN}`), Buffer.from([0xe9])])],
      ['a UTF-8 token', Buffer.from(`Bearer ${ALICE_TOKEN.slice(0, -2)}ключ`, 'utf8')],
      ['a 10 KB token', `Bearer ${'x'.repeat(10 * 1024)}`],
      ['a 10 KB token that starts with a valid one', `Bearer ${ALICE_TOKEN}${'x'.repeat(10 * 1024)}`],
    ];
    for (const [what, header] of malformed) {
      it(`answers 401 (never a 500) to ${what}`, async () => {
        const head = Buffer.concat([
          Buffer.from(`GET /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n`),
          header === undefined
            ? Buffer.alloc(0)
            : Buffer.concat([Buffer.from('Authorization: '), Buffer.from(header), Buffer.from('\r\n')]),
          Buffer.from('\r\n'),
        ]);
        expectError(await sendRaw(head), 401);
      });
    }

    it('accepts the scheme in any case, as RFC 7235 says', async () => {
      assert.equal((await send('GET', '/v1/jobs', { authorization: `bearer ${ALICE_TOKEN}` })).status, 200);
      assert.equal((await send('GET', '/v1/jobs', { authorization: `Bearer ${ALICE_TOKEN}` })).status, 200);
    });

    it('refuses a control character in the header before anything runs (never a 500)', async () => {
      const response = await sendRaw(
        Buffer.from(
          `GET /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer ${ALICE_TOKEN}\u0001\r\n\r\n`,
        ),
      );
      assert.ok([400, 401].includes(response.status), `status ${response.status}`);
    });
  });

  describe('bodies', () => {
    it('answers 413 to a 2 MB body (the local gateway) and to a 100 KB one (the API Lambda), storing nothing', async () => {
      await refused(
        () =>
          send('POST', '/v1/jobs', {
            token: ALICE_TOKEN,
            body: { template: 'echo', name: 'x'.repeat(2 * 1024 * 1024) },
          }),
        413,
      );
      await refused(
        () =>
          send('POST', '/v1/jobs', {
            token: ALICE_TOKEN,
            body: { template: 'echo', env: { BIG: 'x'.repeat(100 * 1024) } },
          }),
        413,
      );
    });

    it('refuses deeply nested JSON with a 400 naming the field', async () => {
      // As deep as fits under the API's 64 KiB body limit.
      const depth = 10_000;
      await refused(
        () =>
          send('POST', '/v1/jobs', {
            token: ALICE_TOKEN,
            raw: `{"template":"echo","command":${'['.repeat(3 * depth)}${']'.repeat(3 * depth)}}`,
          }),
        400,
        ['command.0'],
      );
      await refused(
        () =>
          send('POST', '/v1/jobs', {
            token: ALICE_TOKEN,
            raw: `{"template":"echo","env":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`,
          }),
        400,
        ['env.a'],
      );
      await refused(
        () =>
          send('POST', '/v1/jobs', {
            token: ALICE_TOKEN,
            raw: `{"template":"echo","x":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`,
          }),
        400,
        ['x'],
      );
    });

    for (const raw of [
      '[]',
      '["echo"]',
      '[{"template":"echo"}]',
      '"echo"',
      '42',
      'null',
      'true',
      '{',
      '{"template":"echo"} {}',
      '',
      '   ',
    ]) {
      it(`refuses the body ${JSON.stringify(raw)} (400 naming the body), storing nothing`, async () => {
        await refused(() => send('POST', '/v1/jobs', { token: ALICE_TOKEN, raw }), 400, ['(body)']);
      });
    }

    for (const [contentType, raw] of [
      ['application/x-www-form-urlencoded', 'template=echo&command=id'],
      [
        'multipart/form-data; boundary=x',
        '--x\r\nContent-Disposition: form-data; name="template"\r\n\r\necho\r\n--x--\r\n',
      ],
      ['application/octet-stream', Buffer.from([0xff, 0xfe, 0x00, 0x7b])],
      ['text/plain', 'template: echo'],
    ] as const) {
      it(`refuses a ${contentType.split(';')[0]} body (400), storing nothing`, async () => {
        await refused(() => send('POST', '/v1/jobs', { token: ALICE_TOKEN, raw, contentType }), 400, ['Content-Type']);
      });
    }

    // A JSON object sent under a type that is not JSON: a client that means something else, or a form
    // that slipped past CORS. Nothing may come of it.
    for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'application/octet-stream']) {
      it(`refuses a JSON job sent as ${contentType} (400), storing nothing`, async () => {
        const response = await send('POST', '/v1/jobs', {
          token: ALICE_TOKEN,
          raw: JSON.stringify({ template: 'echo', name: `as ${contentType}` }),
          contentType,
        });
        if (response.status === 202) await untilEnded(response.body.id);
        assert.notEqual(response.status, 202, `a JSON body sent as ${contentType} was accepted and stored`);
        expectError(response, 400);
        assert.deepEqual(
          response.body.error.details.map((d: { field: string }) => d.field),
          ['Content-Type'],
        );
      });
    }
  });

  describe('paths', () => {
    for (const path of [
      '/v1/jobs/%zz',
      '/v1/jobs/%',
      '/v1/jobs/%E0%A4%A',
      '/v1/jobs/%C0%AF',
      '/v1/jobs/%zz/logs',
      '/v1/templates/%zz',
      '/v1/images/%ff',
      '/v1/quotas/%zz/gpus',
    ]) {
      it(`answers 404 to invalid percent-encoding: ${path}`, async () => {
        expectError(await send('GET', path, { token: ALICE_TOKEN }), 404);
      });
    }

    it('answers 400 or 404 to a NUL or a control character in an id (never a 500)', async () => {
      for (const path of [
        '/v1/jobs/%00',
        '/v1/jobs/a%00b/logs',
        '/v1/templates/%00',
        '/v1/images/%00',
        '/v1/jobs/%0A',
        '/v1/templates/%1B',
      ]) {
        const response = await send('GET', path, { token: ALICE_TOKEN });
        assert.ok([400, 404].includes(response.status), `${path}: ${response.status} ${response.text}`);
        expectError(response, response.status);
      }
    });

    it('treats path traversal in ids as ids that do not exist (404), and does nothing to the job it points at', async () => {
      const held = await submit(ALICE_TOKEN, { template: 'hold' });
      try {
        for (const [method, path, status] of [
          ['GET', '/v1/jobs/..%2F..%2F..%2Fetc%2Fpasswd', 404],
          ['GET', '/v1/jobs/..%2F..%2F..%2Fetc%2Fpasswd/logs', 404],
          ['GET', `/v1/jobs/..%2F${held.id}/logs`, 404],
          ['GET', '/v1/jobs/%2e%2e/logs', 404],
          ['GET', '/v1/jobs/../../etc/passwd', 404],
          ['DELETE', `/v1/jobs/..%2F${held.id}`, 404],
          ['DELETE', `/v1/jobs/${held.id}%2F..`, 404],
          ['PATCH', `/v1/jobs/.%2F${held.id}`, 404],
          ['GET', '/v1/templates/..%2F..%2Fecho', 404],
          ['GET', '/v1/images/..%2Ftools', 404],
          ['GET', '/v1/quotas/..%2Fcrowd/jobs', 400],
        ] as const) {
          const response = await refused(
            () => send(method, path, { token: ALICE_TOKEN, ...(method === 'PATCH' ? { body: { name: 'x' } } : {}) }),
            status,
          );
          assert.doesNotMatch(response.text, /root:/, 'no file was read');
        }
        assert.ok(!isTerminal((await job(held.id)).state));
      } finally {
        await cancel(held.id);
      }
    });

    it('refuses ids longer than they can be (400 naming the parameter)', async () => {
      const long = 'a'.repeat(8000);
      await refused(() => send('GET', `/v1/jobs/${'a'.repeat(129)}`, { token: ALICE_TOKEN }), 400, ['id']);
      await refused(() => send('DELETE', `/v1/jobs/${long}`, { token: ALICE_TOKEN }), 400, ['id']);
      await refused(() => send('GET', `/v1/jobs/${long}/logs`, { token: ALICE_TOKEN }), 400, ['id']);
      await refused(() => send('GET', `/v1/templates/${long}`, { token: ALICE_TOKEN }), 400, ['id']);
      await refused(() => send('GET', `/v1/images/${long}`, { token: ALICE_TOKEN }), 400, ['name']);
      await refused(() => send('GET', `/v1/quotas/${long}/gpus`, { token: ALICE_TOKEN }), 400, ['project']);
      await refused(() => send('PATCH', `/v1/pools/${long}`, { token: ROOT_TOKEN, body: { maxGpus: 1 } }), 400, [
        'name',
      ]);
    });
  });

  describe('page tokens', () => {
    const token = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
    const forged: Array<[string, string]> = [
      ['2,000 characters of base64', 'A'.repeat(2000)],
      ['longer than any token (3,000 characters)', 'A'.repeat(3000)],
      ['not base64 JSON', 'not-a-token'],
      [
        'raw base64 of a key, as tokens once were',
        Buffer.from(`2026-01-01T00:00:00.000Z#j-${'0'.repeat(16)}`).toString('base64url'),
      ],
      ["the pools list's token", token({ list: 'pools', after: 'local' })],
      [
        'a jobs token naming a 1,000-byte key',
        token({ list: 'jobs', after: `2026-01-01T00:00:00.000Z#${'a'.repeat(1000)}` }),
      ],
      ['a jobs token naming a key of another shape', token({ list: 'jobs', after: 'vision and audio' })],
      ['a JSON array', token(['jobs'])],
    ];
    for (const [what, value] of forged) {
      it(`answers 400 naming nextToken to ${what}, on every list that takes one (never a 500)`, async () => {
        const held = await submit(ALICE_TOKEN, { template: 'echo' });
        const q = `nextToken=${encodeURIComponent(value)}`;
        const lists: Array<[string, string]> = [
          [ALICE_TOKEN, `/v1/jobs?${q}`],
          [ALICE_TOKEN, `/v1/jobs?project=vision&${q}`],
          [ROOT_TOKEN, `/v1/jobs?${q}`],
          [ROOT_TOKEN, `/v1/jobs?state=SUCCEEDED&${q}`],
          [ALICE_TOKEN, `/v1/pools?${q}`],
          [ALICE_TOKEN, `/v1/quotas?${q}`],
          [ALICE_TOKEN, `/v1/templates?${q}`],
          [ALICE_TOKEN, `/v1/images?${q}`],
          [ALICE_TOKEN, `/v1/jobs/${held.id}/logs?${q}`],
        ];
        for (const [who, path] of lists) {
          // The pools token is a good token of /v1/pools: only the others must refuse it.
          if (what.startsWith("the pools list's") && path.startsWith('/v1/pools')) continue;
          const response = await send('GET', path, { token: who });
          expectError(response, 400, ['nextToken']);
        }
        await untilEnded(held.id);
      });
    }

    it("takes each list's own token back (the next page follows the first)", async () => {
      const [a, b] = [await submit(ALICE_TOKEN, { template: 'echo' }), await submit(ALICE_TOKEN, { template: 'echo' })];
      for (const [who, path] of [
        [ALICE_TOKEN, '/v1/jobs?limit=1'],
        [ROOT_TOKEN, '/v1/jobs?limit=1'],
        [ALICE_TOKEN, '/v1/templates?limit=1'],
      ]) {
        const first = await send('GET', path, { token: who });
        assert.equal(first.status, 200, first.text);
        assert.equal(typeof first.body.nextToken, 'string', `${path}: more follow`);
        const second = await send('GET', `${path}&nextToken=${encodeURIComponent(first.body.nextToken)}`, {
          token: who,
        });
        assert.equal(second.status, 200, second.text);
        assert.notEqual(second.body.items[0].id, first.body.items[0].id);
      }
      await Promise.all([untilEnded(a.id), untilEnded(b.id)]);
    });
  });

  describe('idempotency keys', () => {
    it('keeps a key per project: the same key and body from another project is its own job', async () => {
      const key = `shared-key-${randomBytes(4).toString('hex')}`;
      const body = { template: 'echo' };
      const mine = await submit(ALICE_TOKEN, body, { 'idempotency-key': key });
      const theirs = await submit(BOB_TOKEN, body, { 'idempotency-key': key });
      assert.notEqual(theirs.id, mine.id);
      assert.deepEqual([mine.project, theirs.project], ['vision', 'audio']);
      // Each replays its own job, never the other's.
      assert.equal((await submit(ALICE_TOKEN, body, { 'idempotency-key': key })).id, mine.id);
      assert.equal((await submit(BOB_TOKEN, body, { 'idempotency-key': key })).id, theirs.id);
      await Promise.all([untilEnded(mine.id), untilEnded(theirs.id)]);
    });

    it('refuses a malformed key (400 naming it), storing nothing', async () => {
      for (const key of ['a b', 'x'.repeat(129), 'ключ']) {
        const header = Buffer.from(key, 'utf8').toString('latin1');
        await refused(
          () =>
            send('POST', '/v1/jobs', {
              token: ALICE_TOKEN,
              body: { template: 'echo' },
              headers: { 'idempotency-key': header },
            }),
          400,
          ['Idempotency-Key'],
        );
      }
    });
  });

  describe('notifications', () => {
    it('escapes Slack and Teams mention and link syntax in job names; the job keeps its name as given', async () => {
      const name = '<!channel> <@U123> <https://evil|click> [click](https://evil) @here';
      const submitted = await submit(ALICE_TOKEN, { template: 'echo', name });
      assert.equal((await job(submitted.id)).name, name);
      await untilEnded(submitted.id);
      const mine = (p: { body: any }) => JSON.stringify(p.body).includes(submitted.id);
      const slack = await waitFor('Slack posts', async () =>
        ((found) => found.length >= 2 && found)(posts.filter((p) => p.path === '/slack' && mine(p))),
      );
      const teams = await waitFor('Teams posts', async () =>
        ((found) => found.length >= 2 && found)(posts.filter((p) => p.path === '/teams' && mine(p))),
      );

      const texts = (value: unknown): string[] =>
        typeof value === 'string'
          ? [value]
          : Array.isArray(value)
            ? value.flatMap(texts)
            : value && typeof value === 'object'
              ? Object.values(value).flatMap(texts)
              : [];
      // What each renders as a mention or a link: Slack's <…> syntax and bare @here (Mattermost); Teams' Markdown links and autolinks.
      const live = {
        '/slack': ['<!channel>', '<@U123>', '<https://evil|click>', '@here'],
        '/teams': ['<!channel>', '<https://evil|click>', '[click](https://evil)'],
      };
      for (const post of [...slack, ...teams]) {
        for (const text of texts(post.body)) {
          for (const syntax of live[post.path as keyof typeof live]) {
            assert.ok(
              !text.includes(syntax),
              `${post.path} posted ${JSON.stringify(syntax)} unescaped: ${JSON.stringify(text)}`,
            );
          }
        }
      }
      assert.ok(
        slack.some((p) => p.body.text.includes('&lt;!channel&gt; &lt;@\u200bU123&gt; &lt;https://evil|click&gt;')),
        JSON.stringify(slack[0].body.text),
      );
      assert.ok(
        teams.some((p) => texts(p.body).some((t) => t.includes('\\<!channel\\>'))),
        JSON.stringify(teams[0].body),
      );
    });
  });

  describe('a flood of submits', () => {
    it(`answers 429 to one project past its jobs quota only: ${FLOOD_LIMIT} stored, another project still gets 202`, async () => {
      const flood = Array.from({ length: 12 }, (_, i) =>
        send('POST', '/v1/jobs', { token: CARL, body: { template: 'crowd', name: `flood-${i}` } }),
      );
      const other = send('POST', '/v1/jobs', {
        token: BOB_TOKEN,
        body: { template: 'echo', name: 'during-the-flood' },
      });
      const responses = await Promise.all(flood);
      const bob = await other;
      const crowdJobs = await plane.deps.jobs.listJobs({ projects: ['crowd'] }, { limit: 1000 });
      try {
        const statuses = responses.map((r) => r.status).sort();
        assert.deepEqual(
          statuses,
          [...Array(FLOOD_LIMIT).fill(202), ...Array(12 - FLOOD_LIMIT).fill(429)],
          responses.map((r) => r.text).join('\n'),
        );
        for (const r of responses.filter((r) => r.status === 429)) expectError(r, 429);
        assert.equal(bob.status, 202, bob.text);
        assert.equal(crowdJobs.items.length, FLOOD_LIMIT, 'stored jobs of the flooding project == its limit');
        assert.deepEqual(
          crowdJobs.items.map((j) => j.id).sort(),
          responses
            .filter((r) => r.status === 202)
            .map((r) => r.body.id)
            .sort(),
        );
      } finally {
        await Promise.all(crowdJobs.items.map((j) => cancel(j.id)));
        if (bob.status === 202) await untilEnded(bob.body.id);
      }
    });
  });
});
