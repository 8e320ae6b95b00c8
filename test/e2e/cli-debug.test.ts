/**
 * Debugging a job through the `flare` CLI as a user runs it (a subprocess of
 * `bin/flare.ts` against `flare local` started from a config, process driver):
 * the last lines of output under a job that failed or expired.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { callApi, endActiveJobs, startLocalPlane, stopLocalPlane, untilJobState } from '../support/local-plane.js';

const ROOT = 'root-token-debug-0123456789ab';
const ALICE = 'alice-token-debug-0123456789a';
/** Another member of alice's project. */
const DAVE = 'dave-token-debug-01234567890a';
const BOB = 'bob-token-debug-0123456789abc';
const DIGEST = `sha256:${'d'.repeat(64)}`;

let dir: string;
let home: string;
let plane: ChildProcess | undefined;
let url: string;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function flare(args: string[], token = ALICE): Promise<Run> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FLARE_')));
  const child = spawn(process.execPath, ['--import', 'tsx', 'bin/flare.ts', ...args], {
    env: { ...env, HOME: home, FLARE_TOKEN: token, FLARE_API_URL: url },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

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
  home = join(dir, 'home');
  await mkdir(home);
  await writeFile(
    join(dir, 'flare.local.json'),
    JSON.stringify({
      port: 0,
      dataDir: 'data',
      users: [
        { name: 'root', token: ROOT, admin: true },
        { name: 'alice', token: ALICE, projects: ['vision'] },
        { name: 'dave', token: DAVE, projects: ['vision'] },
        { name: 'bob', token: BOB, projects: ['audio'] },
      ],
      pools: [{ name: 'local', gpus: 4 }],
      images: [{ name: 'tools', reference: 'docker.io/library/busybox:1.36', digest: DIGEST }],
      templates: [{ name: 'sh', project: 'vision', pool: 'local', image: 'tools', command: ['true'] }],
      compute: { driver: 'process' },
    }),
  );
  ({ child: plane, url } = await startLocalPlane(join(dir, 'flare.local.json')));
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
