/**
 * Debugging a job through the `flare` CLI as a user runs it (a subprocess of
 * `bin/flare.ts` against `flare local` started from a config, process driver):
 * the last lines of output under a job that failed or expired.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../support/harness.js';
import { ALICE_TOKEN as ALICE, BOB_TOKEN as BOB, LOCAL_USERS, ROOT_TOKEN as ROOT } from '../support/identities.js';
import { startFlare, startLocalPlaneWithHome } from '../support/flare-cli.js';
import { callApi, endActiveJobs, localTemplate, stopLocalPlane, untilJobState } from '../support/local-plane.js';

/** Another member of alice's project. */
const DAVE = 'dave-token-debug-01234567890a';

let dir: string;
let home: string;
let plane: ChildProcess | undefined;
let url: string;

interface RunOptions {
  token?: string;
  /** Written to the CLI's stdin, then closed; none: no stdin. */
  input?: string;
  env?: Record<string, string>;
}

function start(args: string[], options: RunOptions = {}) {
  return startFlare(args, {
    env: { HOME: home, FLARE_TOKEN: options.token ?? ALICE, FLARE_API_URL: url, ...options.env },
    input: options.input,
  });
}

const flare = (args: string[], token = ALICE) => start(args, { token }).result;

const api = (method: string, path: string, token = ROOT, body?: unknown) => callApi(url, method, path, token, body);

const untilState = (id: string, states: string[]) => untilJobState(url, ROOT, id, states);

/** A job that runs until the test is over (the after hook cancels it), with an env of its own. */
async function runningJob(): Promise<string> {
  const created = await api('POST', '/v1/jobs', ALICE, {
    template: 'sh',
    env: { GREETING: 'hello from the job' },
    command: ['sleep', '600'],
  });
  assert.equal(created.status, 202, JSON.stringify(created.body));
  await untilState(created.body.id, ['RUNNING']);
  return created.body.id;
}

/** A job that prints `line-1` .. `line-30`, then exits 1. */
const THIRTY_LINES_THEN_FAIL = ['sh', '-c', 'for i in $(seq 1 30); do echo line-$i; done; exit 1'];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flare-cli-debug-'));
  const started = await startLocalPlaneWithHome(dir, {
    users: [...LOCAL_USERS, { name: 'dave', token: DAVE, projects: ['vision'] }],
    // Room for every job the tests leave running until the after hook.
    pools: [{ name: 'local', gpus: 16 }],
    templates: [localTemplate('sh', ['true'])],
  });
  ({ home, child: plane, url } = started);
});

after(async () => {
  if (url) await endActiveJobs(url, ROOT);
  await stopLocalPlane(plane, dir);
});

describe('the last lines of output under a job that failed or expired', () => {
  it('create --wait prints the last 20 lines after FAILED', async () => {
    const run = await flare([
      'job',
      'create',
      '--template',
      'sh',
      '--wait',
      '--interval',
      '0.2',
      '--',
      ...THIRTY_LINES_THEN_FAIL,
    ]);
    assert.equal(run.code, 5, run.stdout + run.stderr);
    const tail = Array.from({ length: 20 }, (_, i) => `  line-${i + 11}`).join('\n');
    assert.match(
      run.stdout,
      /^\d\d:\d\d:\d\d FAILED {2}exited with code 1\nlast 20 line\(s\) of output \(all of it: flare job logs \S+\):\n/m,
    );
    assert.ok(run.stdout.endsWith(`${tail}\n`), run.stdout);
    assert.doesNotMatch(run.stdout, /line-10\b/, 'only the last 20');
  });

  it('job wait prints them after EXPIRED, and with --output json on stderr', async () => {
    const created = await api('POST', '/v1/jobs', ALICE, {
      template: 'sh',
      liveTimeoutMinutes: 0.05,
      command: ['sh', '-c', 'echo warming up; echo still going; sleep 60'],
    });
    assert.equal(created.status, 202, JSON.stringify(created.body));
    const run = await flare(['job', 'wait', created.body.id, '--interval', '0.2']);
    assert.equal(run.code, 6, run.stdout + run.stderr);
    // The supervisor's own line about the expiry follows the job's output.
    assert.match(
      run.stdout,
      /EXPIRED {2}live timeout reached\nlast \d+ line\(s\) of output .*\n {2}warming up\n {2}still going\n/,
    );

    const json = await flare(['job', 'wait', created.body.id, '-o', 'json']);
    assert.equal(json.code, 6, json.stderr);
    assert.equal(JSON.parse(json.stdout).state, 'EXPIRED');
    assert.match(json.stderr, /\n {2}warming up\n {2}still going\n/);
  });

  it('says nothing more after SUCCEEDED', async () => {
    const run = await flare(['job', 'create', '--template', 'sh', '--wait', '--interval', '0.2', '--', 'echo', 'fine']);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.doesNotMatch(run.stdout, /fine|of output/);
  });
});

describe('sshPublicKey is refused, never dropped', () => {
  const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEIQczXkVx9q alice@example';
  const refusal = (answer: { status: number; body: any }) => {
    assert.equal(answer.status, 400, JSON.stringify(answer.body));
    const detail = answer.body.error.details.find((d: { field: string }) => d.field === 'sshPublicKey');
    assert.ok(detail, JSON.stringify(answer.body));
    assert.match(detail.reason, /flare job shell/);
  };

  it('on a job or a template, with a 400 naming it and pointing to flare job shell; nothing stored', async () => {
    const before = (await api('GET', '/v1/jobs?limit=1000')).body.items.length;
    refusal(await api('POST', '/v1/jobs', ALICE, { template: 'sh', sshPublicKey: KEY }));
    assert.equal((await api('GET', '/v1/jobs?limit=1000')).body.items.length, before);

    const template = { name: 'keyed', project: 'vision', pool: 'local', image: 'tools', command: ['true'] };
    refusal(await api('POST', '/v1/templates', ALICE, { ...template, sshPublicKey: KEY }));
    assert.equal((await api('GET', '/v1/templates/keyed', ALICE)).status, 404);
    refusal(await api('PATCH', '/v1/templates/sh', ALICE, { sshPublicKey: KEY }));
  });

  it('the CLI has no flag for it', async () => {
    const run = await flare(['job', 'create', '--template', 'sh', '--ssh-public-key-file', '/dev/null']);
    assert.equal(run.code, 2, run.stdout + run.stderr);
    assert.match(run.stderr, /ssh-public-key-file/);
  });
});

describe('exec in a running job', () => {
  it("runs an argv in the job's environment and scratch directory, no shell, and answers its code and output", async () => {
    const id = await runningJob();
    const probe = 'echo "$FLARE_JOB_ID|$CUDA_VISIBLE_DEVICES|$GREETING|$(pwd)"; echo oops >&2; exit 3';
    const ran = await api('POST', `/v1/jobs/${id}/exec`, ALICE, { command: ['sh', '-c', probe] });
    assert.equal(ran.status, 200, JSON.stringify(ran.body));
    const [jobId, devices, greeting, cwd] = ran.body.stdout.trim().split('|');
    assert.equal(jobId, id);
    assert.match(devices, /^\d+$/);
    assert.equal(greeting, 'hello from the job');
    assert.match(cwd, new RegExp(`/scratch/${id}$`));
    assert.deepEqual(
      {
        exitCode: ran.body.exitCode,
        stderr: ran.body.stderr,
        truncated: ran.body.truncated,
        timedOut: ran.body.timedOut,
      },
      { exitCode: 3, stderr: 'oops\n', truncated: false, timedOut: false },
    );

    // Words are arguments, never shell syntax.
    const literal = await api('POST', `/v1/jobs/${id}/exec`, ALICE, { command: ['echo', '$HOME;', '`id`'] });
    assert.equal(literal.body.stdout, '$HOME; `id`\n');
    const missing = await api('POST', `/v1/jobs/${id}/exec`, ALICE, { command: ['no-such-program-here'] });
    assert.equal(missing.body.exitCode, 127);

    // Output is bounded: 64 KiB of each stream, and the answer says it was cut.
    const big = await api('POST', `/v1/jobs/${id}/exec`, ALICE, {
      command: ['sh', '-c', "head -c 100000 /dev/zero | tr '\\0' a"],
    });
    assert.equal(big.body.stdout.length, 64 * 1024);
    assert.equal(big.body.truncated, true);
  });

  it("has the job's secrets in its environment, and the answer shows their values as ***", async () => {
    const put = await api('PUT', '/v1/projects/vision/secrets/exec-token', ALICE, { value: 's3cr3t-v4lue' });
    assert.equal(put.status, 204, JSON.stringify(put.body));
    const created = await api('POST', '/v1/jobs', ALICE, {
      template: 'sh',
      secrets: { API_TOKEN: 'exec-token' },
      command: ['sleep', '600'],
    });
    assert.equal(created.status, 202, JSON.stringify(created.body));
    await untilState(created.body.id, ['RUNNING']);
    const probe = 'test "$API_TOKEN" = s3cr3t-v4lue && echo present; echo "token=$API_TOKEN" >&2';
    const ran = await api('POST', `/v1/jobs/${created.body.id}/exec`, ALICE, { command: ['sh', '-c', probe] });
    assert.deepEqual([ran.body.stdout, ran.body.stderr], ['present\n', 'token=***\n']);
  });

  it('is for the owner and admins: 403 to another member, 404 to another project, 409 once it is not running, 400 naming command', async () => {
    const id = await runningJob();
    assert.equal((await api('POST', `/v1/jobs/${id}/exec`, ROOT, { command: ['true'] })).status, 200);
    const other = await api('POST', `/v1/jobs/${id}/exec`, DAVE, { command: ['true'] });
    assert.equal(other.status, 403, JSON.stringify(other.body));
    assert.match(other.body.error.message, /owner/);
    assert.equal((await api('POST', `/v1/jobs/${id}/exec`, BOB, { command: ['true'] })).status, 404);
    for (const body of [{}, { command: 'ls -l' }, { command: [] }, { command: ['ls'], tty: true }]) {
      const bad = await api('POST', `/v1/jobs/${id}/exec`, ALICE, body);
      assert.equal(bad.status, 400, JSON.stringify(body));
      assert.ok(
        bad.body.error.details.some((d: { field: string }) => d.field === 'command' || d.field === 'tty'),
        JSON.stringify(bad.body),
      );
    }
    await api('DELETE', `/v1/jobs/${id}`, ALICE);
    await untilState(id, ['CANCELLED']);
    const ended = await api('POST', `/v1/jobs/${id}/exec`, ALICE, { command: ['true'] });
    assert.equal(ended.status, 409, JSON.stringify(ended.body));
    assert.match(ended.body.error.message, /CANCELLED/);
  });

  it("flare job exec prints the command's stdout and stderr and exits with its code", async () => {
    const id = await runningJob();
    const run = await flare(['job', 'exec', id, '--', 'sh', '-c', 'echo "out $GREETING"; echo err >&2; exit 4']);
    assert.deepEqual(run, { code: 4, stdout: 'out hello from the job\n', stderr: 'err\n' });
    const json = await flare(['job', 'exec', id, '-o', 'json', '--', 'true']);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(JSON.parse(json.stdout).exitCode, 0);
    const usage = await flare(['job', 'exec', id]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /after '--'/);
    const refused = await flare(['job', 'exec', id, '--', 'true'], DAVE);
    assert.equal(refused.code, 4, refused.stderr);
  });
});

describe('shell and port-forward', () => {
  it('POST /session: owner and admins only, a RUNNING job only, port required for a port-forward', async () => {
    const id = await runningJob();
    const shell = await api('POST', `/v1/jobs/${id}/session`, ALICE, { kind: 'shell' });
    assert.equal(shell.status, 200, JSON.stringify(shell.body));
    assert.equal(shell.body.runtime, 'local');
    assert.equal(shell.body.env.FLARE_JOB_ID, id);
    assert.equal((await api('POST', `/v1/jobs/${id}/session`, DAVE, { kind: 'shell' })).status, 403);
    assert.equal((await api('POST', `/v1/jobs/${id}/session`, BOB, { kind: 'shell' })).status, 404);
    const noPort = await api('POST', `/v1/jobs/${id}/session`, ALICE, { kind: 'port-forward' });
    assert.equal(noPort.status, 400);
    assert.equal(noPort.body.error.details[0].field, 'port');
    await api('DELETE', `/v1/jobs/${id}`, ALICE);
    await untilState(id, ['CANCELLED']);
    assert.equal((await api('POST', `/v1/jobs/${id}/session`, ALICE, { kind: 'shell' })).status, 409);
  });

  it("flare job shell runs a shell in the job's environment and directory, on this terminal", async () => {
    const id = await runningJob();
    const run = await start(['job', 'shell', id], { input: 'echo "$FLARE_JOB_ID|$GREETING|$(pwd)"; exit 5\n' }).result;
    assert.equal(run.code, 5, run.stderr);
    const [jobId, greeting, cwd] = run.stdout.trim().split('|');
    assert.deepEqual([jobId, greeting], [id, 'hello from the job']);
    assert.match(cwd!, new RegExp(`/scratch/${id}$`));
  });

  it("flare job port-forward proxies a local port to the job's port until interrupted", async () => {
    const [jobPort, localPort] = await Promise.all([freePort(), freePort()]);
    const server = `require('http').createServer((q, r) => r.end('hi from the job')).listen(${jobPort})`;
    const created = await api('POST', '/v1/jobs', ALICE, { template: 'sh', command: [process.execPath, '-e', server] });
    const id = created.body.id;
    await untilState(id, ['RUNNING']);
    await waitFor(
      'the job to listen',
      () =>
        fetch(`http://127.0.0.1:${jobPort}/`).then(
          () => true,
          () => undefined,
        ),
      30_000,
      100,
    );

    const same = await flare(['job', 'port-forward', id, String(jobPort)]);
    assert.equal(same.code, 0, same.stderr);
    assert.match(same.stdout, /already reachable at 127\.0\.0\.1:\d+/);

    const proxy = start(['job', 'port-forward', id, `${localPort}:${jobPort}`]);
    await waitFor('the proxy to listen', async () => /forwarding/.test(proxy.stdout()) || undefined, 30_000, 100);
    assert.equal(await (await fetch(`http://127.0.0.1:${localPort}/`)).text(), 'hi from the job');
    proxy.child.kill('SIGINT');
    assert.equal((await proxy.result).code, 0);

    const bad = await flare(['job', 'port-forward', id, '70000']);
    assert.equal(bad.code, 2);
  });

  it("on AWS starts aws ssm start-session with the API's session, or prints the exact command without the plugin", async () => {
    const plan = {
      runtime: 'aws',
      kind: 'port-forward',
      region: 'eu-west-1',
      target: 'i-0aaa',
      documentName: 'FlareStack-JobPortForward',
      parameters: { host: ['172.17.0.2'], portNumber: ['8888'], localPortNumber: ['8888'] },
    };
    // The stack's shell document takes no parameters: its profile finds the container (lib/session-documents.ts).
    const shell = {
      runtime: 'aws',
      kind: 'shell',
      region: 'eu-west-1',
      target: 'i-0aaa',
      documentName: 'FlareStack-JobShell',
      parameters: {},
    };
    const asked: unknown[] = [];
    const fake = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        const asking = JSON.parse(body);
        asked.push({ path: req.url, body: asking });
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(asking.kind === 'shell' ? shell : plan));
      });
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    const api = `http://127.0.0.1:${(fake.address() as { port: number }).port}`;
    try {
      const bin = join(dir, 'aws-bin');
      await mkdir(bin, { recursive: true });
      const without = await start(['job', 'port-forward', 'j-1', '9999:8888'], {
        env: { FLARE_API_URL: api, PATH: bin },
      }).result;
      assert.equal(without.code, 1);
      assert.match(without.stderr, /aws and session-manager-plugin not found on PATH/);
      const line = `aws ssm start-session --region eu-west-1 --target i-0aaa --document-name FlareStack-JobPortForward --parameters '{"host":["172.17.0.2"],"portNumber":["8888"],"localPortNumber":["9999"]}'`;
      assert.ok(without.stderr.includes(line), without.stderr);
      assert.deepEqual(asked, [{ path: '/v1/jobs/j-1/session', body: { kind: 'port-forward', port: 8888 } }]);

      // With both on PATH it runs aws itself; this stand-in prints what it was given.
      await writeFile(join(bin, 'aws'), '#!/bin/sh\nfor a in "$@"; do echo "$a"; done\nexit 3\n', { mode: 0o755 });
      await writeFile(join(bin, 'session-manager-plugin'), '#!/bin/sh\n', { mode: 0o755 });
      const ran = await start(['job', 'shell', 'j-1'], { env: { FLARE_API_URL: api, PATH: bin } }).result;
      assert.equal(ran.code, 3, ran.stderr);
      assert.deepEqual(ran.stdout.trim().split('\n'), [
        'ssm',
        'start-session',
        '--region',
        'eu-west-1',
        '--target',
        'i-0aaa',
        '--document-name',
        'FlareStack-JobShell',
      ]);
    } finally {
      fake.close();
    }
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}
