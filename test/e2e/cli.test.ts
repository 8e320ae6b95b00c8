/**
 * The `flare` CLI as a user runs it: `node --import tsx bin/flare.ts ...` as a
 * subprocess, against `flare local` started as a child process from a config
 * (process driver: jobs are real processes, no docker). Proves every command
 * reaches its route and shows the answer (tables and `--output json`), the
 * exit codes (0, 1, 2 with usage, 3, 4, and 5/6/7 for a job's outcome), live
 * progress with queue positions, `job logs --follow` streaming a job's output
 * as it is written, the connection rules (env, flags, profile file and its
 * permissions), and `--help` for every command.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { COMMANDS } from '../../cli/main.js';
import { waitFor } from '../support/harness.js';
import { startFlare, startLocalPlaneWithHome, type CliRun as Run } from '../support/flare-cli.js';
import {
  TOOLS_IMAGE,
  callApi,
  endActiveJobs,
  localTemplate,
  stopLocalPlane,
  untilJobState,
} from '../support/local-plane.js';
import { ROOT_TOKEN, ALICE_TOKEN, BOB_TOKEN, LOCAL_USERS } from '../support/identities.js';

const CAROL = 'carol-token-0123456789abcdef';
const TERMINAL = ['SUCCEEDED', 'FAILED', 'EXPIRED', 'CANCELLED'];

let dir: string;
/** HOME of the CLI: empty, so no profile of the machine's user is read. */
let home: string;
let plane: ChildProcess | undefined;
let url: string;

interface RunOptions {
  /** FLARE_TOKEN; null: none. @default ALICE_TOKEN */
  token?: string | null;
  /** FLARE_API_URL; null: none. @default the plane */
  apiUrl?: string | null;
  env?: Record<string, string>;
}

function start(args: string[], options: RunOptions = {}) {
  const token = options.token === undefined ? ALICE_TOKEN : options.token;
  const apiUrl = options.apiUrl === undefined ? url : options.apiUrl;
  return startFlare(args, {
    env: { HOME: home, FLARE_TOKEN: token ?? undefined, FLARE_API_URL: apiUrl ?? undefined, ...options.env },
  });
}

const flare = (args: string[], options?: RunOptions) => start(args, options).result;

/** The API directly, to arrange and to check what the CLI did. */
const api = (method: string, path: string, token = ROOT_TOKEN, body?: unknown) =>
  callApi(url, method, path, token, body);

const untilState = (id: string, states: string[]) => untilJobState(url, ROOT_TOKEN, id, states);

/** Submit through the CLI with --output json and return the job. */
async function submit(args: string[], options?: RunOptions): Promise<{ id: string; state: string; name: string }> {
  const run = await flare(['job', 'create', '--output', 'json', ...args], options);
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout);
}

/** A shell loop that ends once `file` exists: a job the test lets go when it wants. */
const gate = (file: string) => ['sh', '-c', `while [ ! -e '${file}' ]; do sleep 0.1; done`];

function assertUsage(run: Run, command: string, message: RegExp): void {
  assert.equal(run.code, 2, `${run.stdout}${run.stderr}`);
  assert.match(run.stderr, message);
  assert.match(run.stderr, new RegExp(`usage: flare ${command}`));
  assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flare-cli-'));
  const started = await startLocalPlaneWithHome(dir, {
    users: [...LOCAL_USERS, { name: 'carol', token: CAROL, projects: ['queue'] }],
    pools: [{ name: 'local', gpus: 4 }],
    quotas: [{ project: 'queue', resource: 'gpus', hardLimit: 1 }],
    templates: [localTemplate('sh', ['true']), localTemplate('q', ['true'], { project: 'queue' })],
  });
  ({ home, child: plane, url } = started);
});

after(async () => {
  if (url) await endActiveJobs(url, ROOT_TOKEN);
  await stopLocalPlane(plane, dir);
});

describe('flare job', () => {
  it('create, list, show, update and delete a job, in tables and in JSON', async () => {
    const gateFile = join(dir, 'release-crud');
    const created = await flare(['job', 'create', '--template', 'sh', '--name', 'crud', '--', ...gate(gateFile)]);
    assert.equal(created.code, 0, created.stderr);
    const id = /^submitted job (\S+) \(crud\): (?:PENDING|LAUNCHING)$/m.exec(created.stdout)?.[1];
    assert.ok(id, created.stdout);
    // Everything after `--` is the argv, flags and quotes included, never re-split.
    assert.deepEqual((await api('GET', `/v1/jobs/${id}`)).body.command, gate(gateFile));
    await untilState(id, ['RUNNING']);

    const list = await flare(['job', 'list']);
    assert.equal(list.code, 0, list.stderr);
    const [header, ...rows] = list.stdout.trimEnd().split('\n');
    assert.match(header, /^ID +NAME +PROJECT +STATE +GPUS +POOL +AGE +TIME LEFT +LATEST START +REASON$/);
    const row = rows.find((r) => r.startsWith(id));
    assert.ok(row, list.stdout);
    assert.match(
      row,
      new RegExp(`^${id} +crud +vision +RUNNING +1 +local +\\d+s +\\d+m\\d+s`),
      'a running job shows its time left',
    );
    const listed = JSON.parse((await flare(['job', 'list', '--output', 'json'])).stdout);
    assert.ok(listed.items.some((j: { id: string }) => j.id === id));
    assert.equal(
      (await flare(['job', 'list', '--state', 'SUCCEEDED', '--output', 'json'])).stdout.includes(id),
      false,
      '--state filters',
    );

    const show = await flare(['job', 'show', id]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, new RegExp(`^ID: +${id}$`, 'm'));
    assert.match(show.stdout, /^State: +RUNNING$/m);
    assert.match(show.stdout, /^Expires: +\S+ \(in \d+m\d+s\)$/m);
    const shown = JSON.parse((await flare(['job', 'show', id, '-o', 'json'])).stdout);
    assert.deepEqual(shown, (await api('GET', `/v1/jobs/${id}`)).body);

    const updated = await flare(['job', 'update', id, '--name', 'renamed', '--live-timeout', '30']);
    assert.equal(updated.code, 0, updated.stderr);
    assert.match(updated.stdout, /^Name: +renamed$/m);
    const after = (await api('GET', `/v1/jobs/${id}`)).body;
    assert.equal(after.name, 'renamed');
    assert.equal(after.liveTimeoutMinutes, 30);
    assert.equal(Date.parse(after.expiresAt) - Date.parse(after.startedAt), 30 * 60_000);
    assertUsage(await flare(['job', 'update', id]), 'job update', /nothing to change/);

    const cancel = await flare(['job', 'delete', id]);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.match(cancel.stdout, new RegExp(`^cancelling job ${id}`));
    await untilState(id, ['CANCELLED']);
    const remove = await flare(['job', 'delete', id]);
    assert.equal(remove.stdout, `removed job ${id}\n`);
    const gone = await flare(['job', 'show', id]);
    assert.equal(gone.code, 3);
    assert.equal(gone.stderr, `flare: job ${id} not found\n`);
  });

  it('create --array N --array-env FILE submits a sweep; list --array shows it by index; delete --array cancels it', async () => {
    const gateFile = join(dir, 'release-sweep');
    const envFile = join(dir, 'sweep-env.json');
    await writeFile(envFile, JSON.stringify([{ LR: '0.1' }, { LR: '0.01' }, { LR: '0.001' }]));
    const created = await flare([
      'job',
      'create',
      '--template',
      'sh',
      '--name',
      'sweep',
      '--array',
      '3',
      '--array-env',
      envFile,
      '--',
      ...gate(gateFile),
    ]);
    assert.equal(created.code, 0, created.stderr);
    const arrayId = /^submitted array (a-\S+): 3 jobs \(\d LAUNCHING, \d WAITING\)$/m.exec(created.stdout)?.[1];
    assert.ok(arrayId, created.stdout);
    const members = (await api('GET', `/v1/jobs?array=${arrayId}`)).body.items;
    assert.deepEqual(
      members.map((j: { arrayIndex: number; env: Record<string, string> }) => [j.arrayIndex, j.env.LR]),
      [
        [0, '0.1'],
        [1, '0.01'],
        [2, '0.001'],
      ],
    );

    const list = await flare(['job', 'list', '--array', arrayId]);
    assert.equal(list.code, 0, list.stderr);
    const rows = list.stdout.trimEnd().split('\n').slice(1);
    assert.deepEqual(
      rows.map((r) => r.split(/ +/)[1]),
      ['sweep[0]', 'sweep[1]', 'sweep[2]'],
    );

    const cancel = await flare(['job', 'delete', '--array', arrayId]);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.equal(cancel.stdout, `cancelling 3 of 3 jobs of array ${arrayId}\n`);
    for (const job of members) await untilState(job.id, ['CANCELLED']);

    assertUsage(
      await flare(['job', 'create', '--template', 'sh', '--array', 'two']),
      'job create',
      /--array must be a number/,
    );
    assertUsage(
      await flare(['job', 'create', '--template', 'sh', '--array-env', envFile]),
      'job create',
      /--array-env needs --array N/,
    );
    assertUsage(
      await flare(['job', 'create', '--template', 'sh', '--array', '2', '--wait']),
      'job create',
      /flare job list --array ID/,
    );
    const tooMany = await flare(['job', 'create', '--template', 'sh', '--array', '51']);
    assert.equal(tooMany.code, 1, tooMany.stderr);
    assert.match(tooMany.stderr, /array\.size/);
  });

  it('create --command takes a JSON array, and refuses anything else with a usage error', async () => {
    const job = await submit(['--template', 'sh', '--command', '["sh","-c","exit 0"]']);
    assert.deepEqual((await api('GET', `/v1/jobs/${job.id}`)).body.command, ['sh', '-c', 'exit 0']);
    assertUsage(
      await flare(['job', 'create', '--template', 'sh', '--command', 'python train.py']),
      'job create',
      /--command takes a JSON array of strings/,
    );
    assertUsage(
      await flare(['job', 'create', '--template', 'sh', '--command', '["a"]', '--', 'b']),
      'job create',
      /either after '--' or with --command/,
    );
    await untilState(job.id, TERMINAL);
  });

  it('create --wait prints progress and exits 0 for SUCCEEDED, 5 for FAILED, 6 for EXPIRED', async () => {
    const ok = await flare(['job', 'create', '--template', 'sh', '--wait', '--interval', '0.2', '--', 'true']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^submitted job \S+ \(sh\): (?:PENDING|LAUNCHING)$/m);
    assert.match(ok.stdout, /^\d\d:\d\d:\d\d SUCCEEDED  exited with code 0$/m);

    const failed = await flare(['job', 'create', '--template', 'sh', '--wait', '--interval', '0.2', '--', 'false']);
    assert.equal(failed.code, 5, failed.stdout + failed.stderr);
    assert.match(failed.stdout, /^\d\d:\d\d:\d\d FAILED  exited with code 1$/m);

    const expired = await flare([
      'job',
      'create',
      '--template',
      'sh',
      '--live-timeout',
      '0.05',
      '--wait',
      '--interval',
      '0.2',
      '--',
      'sleep',
      '30',
    ]);
    assert.equal(expired.code, 6, expired.stdout + expired.stderr);
    assert.match(
      expired.stdout,
      /^\d\d:\d\d:\d\d RUNNING  expires \d\d:\d\d:\d\d \(\d+s left\)$/m,
      'time to expiry while it runs',
    );
    assert.match(expired.stdout, /^\d\d:\d\d:\d\d EXPIRED  live timeout reached$/m);

    // With --output json, stdout is the final job alone; progress goes to stderr.
    const json = await flare([
      'job',
      'create',
      '--template',
      'sh',
      '--wait',
      '--interval',
      '0.2',
      '-o',
      'json',
      '--',
      'true',
    ]);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(JSON.parse(json.stdout).state, 'SUCCEEDED');
    assert.match(json.stderr, /SUCCEEDED/);
  });

  it('job wait shows the queue position and reason of a waiting job, then its end; 7 when it is cancelled', async () => {
    const release = join(dir, 'release-queue');
    const blocker = await submit(['--template', 'q', '--', ...gate(release)], { token: CAROL });
    await untilState(blocker.id, ['RUNNING']);
    const second = await submit(['--template', 'q', '--name', 'second'], { token: CAROL });
    const third = await submit(['--template', 'q', '--name', 'third'], { token: CAROL });
    await untilState(third.id, ['WAITING']);

    // The REASON column: place in the pool's queue and what the job waits for.
    const list = await flare(['job', 'list'], { token: CAROL });
    const rowOf = (id: string) => list.stdout.split('\n').find((r) => r.startsWith(id)) ?? '';
    // LATEST START: none can be promised while the project's own quota holds them back (others may pass them).
    assert.match(rowOf(second.id), / WAITING .* none +#1 in queue: project queue has 0 of 1 GPUs free, needs 1$/);
    assert.match(rowOf(third.id), / WAITING .* none +#2 in queue: /);
    const shown = await flare(['job', 'show', second.id], { token: CAROL });
    assert.match(shown.stdout, /^Latest start: +none: project queue's gpus quota \(0 of 1 free\) has no room/m);

    const waiting = start(['job', 'wait', third.id, '--interval', '0.2'], { token: CAROL });
    await waitFor('the first progress line', async () => waiting.stdout().includes('\n'));
    assert.match(waiting.stdout(), /^\d\d:\d\d:\d\d WAITING  #2 in queue: /);
    await writeFile(release, '');
    const waited = await waiting.result;
    assert.equal(waited.code, 0, waited.stdout + waited.stderr);
    assert.match(waited.stdout.trimEnd().split('\n').at(-1)!, /^\d\d:\d\d:\d\d SUCCEEDED  exited with code 0$/);

    const cancelled = await submit(['--template', 'sh', '--', ...gate(join(dir, 'never'))]);
    await untilState(cancelled.id, ['RUNNING']);
    const waiter = start(['job', 'wait', cancelled.id, '--interval', '0.2']);
    await waitFor('the wait to start', async () => waiter.stdout().includes('RUNNING'));
    assert.equal((await flare(['job', 'delete', cancelled.id])).code, 0);
    const end = await waiter.result;
    assert.equal(end.code, 7, end.stdout + end.stderr);
    assert.match(end.stdout, /CANCELLED  cancelled by alice/);
  });

  it('job logs prints the output, --tail the last lines, --output json the API answer', async () => {
    const job = await submit(['--template', 'sh', '--', 'sh', '-c', 'echo one; echo two; echo three >&2; printf four']);
    await untilState(job.id, TERMINAL);
    const all = await flare(['job', 'logs', job.id]);
    assert.equal(all.code, 0, all.stderr);
    assert.equal(all.stdout, 'one\ntwo\nthree\nfour\n');
    assert.equal((await flare(['job', 'logs', job.id, '--tail', '2'])).stdout, 'three\nfour\n');
    const json = JSON.parse((await flare(['job', 'logs', job.id, '--tail', '1', '-o', 'json'])).stdout);
    assert.deepEqual(json, {
      jobId: job.id,
      lines: [{ message: 'four' }],
      nextToken: String('one\ntwo\nthree\nfour'.length),
    });
    // Many jobs by now: --limit stops early and hands back where it stopped.
    const one = JSON.parse((await flare(['job', 'list', '--limit', '1', '-o', 'json'])).stdout);
    assert.equal(one.items.length, 1);
    assert.equal(typeof one.nextToken, 'string', 'more remain: the nextToken comes back');
    const bad = await flare(['job', 'logs', job.id, '--tail', '0']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^ {2}tail: must be at least 1$/m);
  });

  it('job logs --follow prints lines as the job writes them, each once, until it has ended', async () => {
    const go = join(dir, 'go-on');
    const script = `echo line 1; while [ ! -e '${go}' ]; do sleep 0.1; done; echo line 2; printf 'half '; sleep 0.5; echo line; printf 'no newline'`;
    const job = await submit(['--template', 'sh', '--', 'sh', '-c', script]);
    const follow = start(['job', 'logs', job.id, '--follow', '--interval', '0.2']);
    await waitFor('line 1 while the job runs', async () => follow.stdout().includes('line 1\n'), 60_000);
    assert.equal(follow.stdout(), 'line 1\n', 'nothing more yet: the job waits for the test');
    assert.ok(!TERMINAL.includes((await api('GET', `/v1/jobs/${job.id}`)).body.state));
    assert.equal(follow.child.exitCode, null, 'still following');
    await writeFile(go, '');
    const run = await follow.result;
    assert.equal(run.code, 0, run.stderr);
    assert.equal(
      run.stdout,
      'line 1\nline 2\nhalf line\nno newline\n',
      'every line once, a line written in two parts whole',
    );
  });
});

describe('flare template, image, quota, pool, stats, health', () => {
  it('template create (flags and --file), list, show, update, delete', async () => {
    const created = await flare([
      'template',
      'create',
      '--name',
      'train',
      '--project',
      'vision',
      '--pool',
      'local',
      '--image',
      'tools',
      '--gpus',
      '2',
      '--max-live-timeout',
      '90',
      '--env',
      'EPOCHS=3',
      '--',
      'python',
      'train.py',
      '--lr',
      '0.1',
    ]);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /^Name: +train$/m);
    assert.match(created.stdout, /^Max live timeout: +1h30m$/m);
    const stored = (await api('GET', '/v1/templates/train?project=vision')).body;
    assert.deepEqual(
      [stored.command, stored.gpus, stored.env, stored.maxLiveTimeoutMinutes],
      [['python', 'train.py', '--lr', '0.1'], 2, { EPOCHS: '3' }, 90],
    );

    const spec = join(dir, 'spec.json');
    await writeFile(
      spec,
      JSON.stringify({
        name: 'from-file',
        project: 'vision',
        pool: 'local',
        image: 'tools',
        command: ['nvidia-smi'],
        gpus: 1,
      }),
    );
    const fromFile = await flare(['template', 'create', '--file', spec, '--gpus', '3', '-o', 'json']);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.deepEqual(
      [JSON.parse(fromFile.stdout).name, JSON.parse(fromFile.stdout).gpus],
      ['from-file', 3],
      'flags override the file',
    );
    assertUsage(
      await flare(['template', 'create', '--name', 'x', '--pool', 'local']),
      'template create',
      /missing --image, the command/,
    );

    const list = await flare(['template', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^ID +NAME +PROJECT +POOL +GPUS +IMAGE +MAX TIMEOUT +COMMAND$/m);
    assert.match(
      list.stdout,
      /^tpl-\S+ +train +vision +local +2 +tools +1h30m +\["python","train.py","--lr","0.1"\]$/m,
    );
    assert.deepEqual(
      JSON.parse((await flare(['template', 'list', '-o', 'json'])).stdout)
        .items.map((t: { name: string }) => t.name)
        .sort(),
      ['from-file', 'sh', 'train'],
    );

    const show = await flare(['template', 'show', 'train']);
    assert.match(show.stdout, new RegExp(`^ID: +${stored.id}$`, 'm'));
    const updated = await flare([
      'template',
      'update',
      'train',
      '--project',
      'vision',
      '--max-live-timeout',
      '120',
      '--',
      'python',
      'train.py',
    ]);
    assert.equal(updated.code, 0, updated.stderr);
    const changed = (await api('GET', `/v1/templates/${stored.id}`)).body;
    assert.deepEqual(
      [changed.maxLiveTimeoutMinutes, changed.command, changed.gpus],
      [120, ['python', 'train.py'], 2],
      'only the fields given change',
    );

    const refused = await flare(['template', 'update', 'train', '--gpus', '0']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^ {2}gpus: /m);
    assert.equal(
      (await flare(['template', 'show', 'train'], { token: BOB_TOKEN })).code,
      3,
      "another project's template does not exist for bob",
    );

    const deleted = await flare(['template', 'delete', 'from-file', '--project', 'vision']);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal((await flare(['template', 'show', 'from-file'])).code, 3);
  });

  it('image add, list, show; members read, only admins add', async () => {
    const digest = `sha256:${'c'.repeat(64)}`;
    const added = await flare(
      ['image', 'add', 'tools', '--reference', 'docker.io/library/busybox:1.37', '--digest', digest],
      { token: ROOT_TOKEN },
    );
    assert.equal(added.code, 0, added.stderr);
    const show = await flare(['image', 'show', 'tools']);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, new RegExp(`^1 +docker.io/library/busybox:1.36 +${TOOLS_IMAGE.digest} `, 'm'));
    assert.match(show.stdout, new RegExp(`^2 +docker.io/library/busybox:1.37 +${digest} `, 'm'));
    const list = await flare(['image', 'list']);
    assert.match(list.stdout, /^tools +2 +docker.io\/library\/busybox:1.37 +sha256:c{12}… +2$/m);
    assert.equal(JSON.parse((await flare(['image', 'show', 'tools', '-o', 'json'])).stdout).versions.length, 2);
    const member = await flare([
      'image',
      'add',
      'mine',
      '--reference',
      'docker.io/library/alpine:3',
      '--digest',
      digest,
    ]);
    assert.equal(member.code, 4, member.stderr);
    assertUsage(await flare(['image', 'add', 'x', '--reference', 'r']), 'image add', /missing --digest/);
    assert.equal((await flare(['image', 'show', 'nope'])).code, 3);
  });

  it('quota create, list, show, update, delete', async () => {
    const created = await flare(['quota', 'create', 'vision', 'jobs', '--hard-limit', '5'], { token: ROOT_TOKEN });
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /^vision +jobs +5 +\d+$/m);
    const updated = await flare(['quota', 'update', 'vision', 'jobs', '--hard-limit', '7'], { token: ROOT_TOKEN });
    assert.equal(updated.code, 0, updated.stderr);
    assert.equal((await api('GET', '/v1/quotas/vision/jobs')).body.hardLimit, 7);
    const list = await flare(['quota', 'list']);
    assert.match(list.stdout, /^PROJECT +RESOURCE +LIMIT +USED$/m);
    assert.match(list.stdout, /^vision +jobs +7 +\d+$/m);
    assert.equal(JSON.parse((await flare(['quota', 'show', 'vision', 'jobs', '-o', 'json'])).stdout).hardLimit, 7);
    assert.equal(
      (await flare(['quota', 'update', 'vision', 'jobs', '--hard-limit', '9'])).code,
      4,
      'members do not write quotas',
    );
    const deleted = await flare(['quota', 'delete', 'vision', 'jobs'], { token: ROOT_TOKEN });
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal((await flare(['quota', 'show', 'vision', 'jobs'])).code, 3);
    assertUsage(
      await flare(['quota', 'create', 'vision'], { token: ROOT_TOKEN }),
      'quota create',
      /missing argument: RESOURCE/,
    );
  });

  it('pool list and update', async () => {
    const list = await flare(['pool', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^NAME +INSTANCE TYPE +GPUS\/INSTANCE +MAX GPUS +USED +FREE +WAITING +BACKFILL$/m);
    assert.match(list.stdout, /^local +local +\d+ +4 +.* off$/m, 'strict FIFO by default');
    const raised = await flare(['pool', 'update', 'local', '--max-gpus', '6'], { token: ROOT_TOKEN });
    assert.equal(raised.code, 0, raised.stderr);
    assert.equal((await api('GET', '/v1/pools')).body.items[0].maxGpus, 6);
    assert.equal((await flare(['pool', 'update', 'local', '--max-gpus', '8'])).code, 4, 'members do not change caps');
    assert.equal((await flare(['pool', 'update', 'local', '--max-gpus', '4'], { token: ROOT_TOKEN })).code, 0);
    const on = await flare(['pool', 'update', 'local', '--backfill', 'on'], { token: ROOT_TOKEN });
    assert.equal(on.code, 0, on.stderr);
    assert.match(on.stdout, /^local +local +\d+ +4 +.* on$/m);
    assert.equal((await api('GET', '/v1/pools')).body.items[0].backfill, true);
    assertUsage(
      await flare(['pool', 'update', 'local', '--backfill', 'maybe'], { token: ROOT_TOKEN }),
      'pool update',
      /--backfill takes on or off/,
    );
    assert.equal((await flare(['pool', 'update', 'local', '--backfill', 'off'], { token: ROOT_TOKEN })).code, 0);
  });

  it('stats and health', async () => {
    const stats = await flare(['stats']);
    assert.equal(stats.code, 0, stats.stderr);
    assert.match(
      stats.stdout,
      /^SCOPE +JOBS +ACTIVE +SUCCEEDED +FAILED +EXPIRED +CANCELLED +GPU-HOURS +WAIT P50 +WAIT P95$/m,
    );
    assert.match(stats.stdout, /^all +\d+ /m);
    assert.match(stats.stdout, /^project vision +\d+ /m);
    const json = JSON.parse((await flare(['stats', '--project', 'vision', '-o', 'json'])).stdout);
    assert.ok(json.totalJobs > 0);
    assert.equal(
      (await flare(['stats', '--project', 'audio'])).code,
      3,
      "another project's stats do not exist for alice",
    );

    const health = await flare(['health'], { token: null });
    assert.equal(health.code, 0, health.stderr);
    assert.match(health.stdout, /^Status: +ok$/m);
  });
});

describe('errors, connection and help', () => {
  it('usage errors exit 2 with the command’s usage, never a stack trace', async () => {
    assertUsage(await flare(['job', 'list', '--bogus']), 'job list', /^flare: unknown option '--bogus'$/m);
    assertUsage(await flare(['job', 'show']), 'job show', /^flare: missing argument: ID$/m);
    assertUsage(await flare(['job', 'show', 'a', 'b']), 'job show', /unexpected argument 'b'/);
    assertUsage(await flare(['job', 'create']), 'job create', /missing --template T/);
    assertUsage(await flare(['job', 'create', '--template']), 'job create', /option --template needs a value/);
    assertUsage(
      await flare(['job', 'create', '--template', 'sh', '--gpus', 'two']),
      'job create',
      /--gpus must be a number, got 'two'/,
    );
    assertUsage(await flare(['job', 'wait', 'x', '--interval', '0']), 'job wait', /--interval must be more than 0/);
    assertUsage(await flare(['job', 'list', '--output', 'yaml']), 'job list', /--output must be 'table' or 'json'/);
    assertUsage(
      await flare(['job', 'list', '--limit', '0']),
      'job list',
      /--limit must be a whole number of at least 1/,
    );
    assertUsage(await flare(['nope']), '<command>', /unknown command 'nope'/);
    assertUsage(await flare(['job', 'nope']), 'job', /unknown command 'job nope'/);
    const bare = await flare([]);
    assert.equal(bare.code, 2);
    assert.match(bare.stderr, /^usage: flare <command>/);
  });

  it('API errors: 404 exits 3, a bad token 4, refused input 1 naming each field, an unreachable API 1 naming its URL', async () => {
    const missing = await flare(['job', 'show', 'j-does-not-exist']);
    assert.deepEqual([missing.code, missing.stderr], [3, 'flare: job j-does-not-exist not found\n']);
    const other = await submit(['--template', 'sh'], { token: ALICE_TOKEN });
    assert.equal(
      (await flare(['job', 'show', other.id], { token: BOB_TOKEN })).code,
      3,
      "another project's job is not found",
    );

    const badToken = await flare(['job', 'list'], { token: 'wrong-token-0123456789' });
    assert.equal(badToken.code, 4);
    assert.match(badToken.stderr, /^flare: a valid bearer token is required$/m);

    const refused = await flare(['job', 'create', '--template', 'sh', '--gpus', '1.5', '--live-timeout=-1']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^flare: the API refused the request \(400 validation_error\):$/m);
    assert.match(refused.stderr, /^ {2}gpus: must be a whole number$/m);
    assert.match(refused.stderr, /^ {2}liveTimeoutMinutes: /m);

    const unreachable = await flare(['job', 'list'], { apiUrl: 'http://127.0.0.1:9' });
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /^flare: cannot reach the API at http:\/\/127\.0\.0\.1:9: /);
    assert.doesNotMatch(unreachable.stderr, /\n\s+at /);
    await untilState(other.id, TERMINAL);
  });

  it('no token or no URL is a clear message and exit 2; --api and --token win over the environment', async () => {
    const noToken = await flare(['job', 'list'], { token: null });
    assert.equal(noToken.code, 2);
    assert.match(noToken.stderr, /^flare: no API token: pass --token TOKEN, set FLARE_TOKEN, or put "token" in /);
    const noUrl = await flare(['job', 'list'], { apiUrl: null });
    assert.equal(noUrl.code, 2);
    assert.match(noUrl.stderr, /^flare: no API URL: pass --api URL, set FLARE_API_URL/);
    const flags = await flare(['--api', url, 'job', 'list', '--token', ALICE_TOKEN], {
      token: 'wrong-token-0123456789',
      apiUrl: 'http://127.0.0.1:9',
    });
    assert.equal(flags.code, 0, flags.stderr);
    assert.equal((await flare(['job', 'list'], { apiUrl: 'ftp://example.com' })).code, 2);
  });

  it('reads the profile file, and refuses one that holds a token others can read', async () => {
    const profile = join(dir, 'profile.json');
    await writeFile(profile, JSON.stringify({ apiUrl: url, token: ALICE_TOKEN }), { mode: 0o644 });
    await chmod(profile, 0o644);
    const open = await flare(['job', 'list'], { token: null, apiUrl: null, env: { FLARE_CONFIG: profile } });
    assert.equal(open.code, 2);
    assert.match(open.stderr, /holds a token but group or others may read or write it \(mode 644\); run: chmod 600 /);
    await chmod(profile, 0o600);
    const ok = await flare(['job', 'list'], { token: null, apiUrl: null, env: { FLARE_CONFIG: profile } });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^ID +NAME/);

    // The default place: ~/.config/flare/config.json.
    await mkdir(join(home, '.config', 'flare'), { recursive: true });
    await writeFile(
      join(home, '.config', 'flare', 'config.json'),
      JSON.stringify({ apiUrl: url, token: ALICE_TOKEN, apiURL: 'typo' }),
      { mode: 0o600 },
    );
    const typo = await flare(['job', 'list'], { token: null, apiUrl: null });
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /^ {2}apiURL: unknown key/m);
    await rm(join(home, '.config'), { recursive: true });
  });

  it('--help for every command and group, each with an example; flare --help lists them all', async () => {
    const top = await flare(['--help'], { token: null, apiUrl: null });
    assert.equal(top.code, 0);
    for (const command of COMMANDS)
      assert.match(top.stdout, new RegExp(`^ {2}${command.name} +\\S`, 'm'), command.name);
    assert.match(top.stdout, /^ {2}local +/m);
    assert.match(top.stdout, /5 FAILED, 6 EXPIRED, 7 CANCELLED/);

    const groups = ['job', 'template', 'image', 'quota', 'pool'];
    const names = [...COMMANDS.map((c) => c.name), ...groups, 'local'];
    const runs = new Map<string, Run>();
    for (let i = 0; i < names.length; i += 4) {
      await Promise.all(
        names
          .slice(i, i + 4)
          .map(async (name) =>
            runs.set(name, await flare([...name.split(' '), '--help'], { token: null, apiUrl: null })),
          ),
      );
    }
    for (const name of names) {
      const run = runs.get(name)!;
      assert.equal(run.code, 0, `${name}: ${run.stderr}`);
      assert.match(run.stdout, new RegExp(`^usage: flare ${name}\\b`), name);
      assert.match(
        run.stdout,
        new RegExp(`^example[s]?:\\n {2}flare ${name === 'local' ? 'local' : name.split(' ')[0]}\\b`, 'm'),
        `${name} has an example`,
      );
    }
    assert.match(runs.get('job wait')!.stdout, /^ {2}5 {2}the job FAILED/m, 'wait documents its exit codes');
    assert.match(runs.get('job create')!.stdout, /everything after '--' is the command/);
  });
});
