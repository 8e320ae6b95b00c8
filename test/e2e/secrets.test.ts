/**
 * Project secrets on the local control plane (`flare local` as a child process,
 * the process driver, real HTTP, the real CLI): write-only through the API and
 * `flare secret put` (value from stdin), stored 0600 in the data directory, a
 * job's `secrets` resolved into its environment only (not its record, not a
 * command line, not the files the driver keeps), masked as *** in served logs,
 * and a missing secret refused with a 400 naming `secrets`.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../support/harness.js';
import { runFlare } from '../support/flare-cli.js';
import type { LocalPlane } from '../support/local-plane.js';
import { callApi, localTemplate, startLocalPlaneIn, stopLocalPlane, untilJobState } from '../support/local-plane.js';

const ALICE = 'alice-secrets-0123456789abcdef';
const BOB = 'bob-secrets-0123456789abcdefgh';
const TERMINAL = ['SUCCEEDED', 'FAILED', 'EXPIRED', 'CANCELLED'];
/** A value no other part of the system could make up. */
const VALUE = 'sk-test-9f2c41e0d7b3a6c58e1f';

let dir: string;
let plane: LocalPlane | undefined;

const api = (method: string, path: string, token = ALICE, body?: unknown) =>
  callApi(plane!.url, method, path, token, body);
const ended = (id: string) => untilJobState(plane!.url, ALICE, id, TERMINAL);
const fields = (body: any): string[] => body.error.details.map((d: { field: string }) => d.field);

/** The CLI as a user runs it, with `stdin` piped in (null: an empty pipe). */
const flare = (args: string[], stdin: string | null = null) =>
  runFlare(args, { env: { HOME: dir, FLARE_API_URL: plane!.url, FLARE_TOKEN: ALICE }, input: stdin ?? '' });

/** Every file under `root`, recursively. */
async function filesUnder(root: string): Promise<string[]> {
  const entries = await readdir(root, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flare-secrets-'));
  plane = await startLocalPlaneIn(dir, {
    users: [
      { name: 'alice', token: ALICE, projects: ['vision'] },
      { name: 'bob', token: BOB, projects: ['audio'] },
    ],
    pools: [{ name: 'local', gpus: 2 }],
    templates: [
      // Prints the value (masked when served), keeps it where the test can check the job got it, and
      // waits for the test's go so that its command lines can be looked at while it runs.
      localTemplate('print', [
        'sh',
        '-c',
        `echo "key=$API_KEY done"; printf %s "$API_KEY" > "${dir}/got-$FLARE_JOB_ID"; while [ ! -e "${dir}/go" ]; do sleep 0.1; done`,
      ]),
      localTemplate('keyed', ['sh', '-c', `printf %s "$API_KEY" > "${dir}/got-$FLARE_JOB_ID"`], {
        secrets: { API_KEY: 'openai' },
      }),
      // Holds the whole pool until the test lets it go, so that the next job waits.
      localTemplate('hold', ['sh', '-c', `while [ ! -e "${dir}/hold-go" ]; do sleep 0.1; done`], { gpus: 2 }),
    ],
  });
});

after(async () => {
  await writeFile(join(dir, 'go'), '').catch(() => undefined);
  await stopLocalPlane(plane?.child, dir);
});

describe('project secrets over HTTP', () => {
  it('puts, lists names only, deletes; never reads a value back; another project is a 404', async () => {
    assert.equal(
      (await api('PUT', '/v1/projects/vision/secrets/db-pass', ALICE, { value: 'hunter2-xyz' })).status,
      204,
    );
    assert.equal(
      (await api('PUT', '/v1/projects/vision/secrets/db-pass', ALICE, { value: 'hunter3-xyz' })).status,
      204,
    );
    const list = await api('GET', '/v1/projects/vision/secrets');
    assert.equal(list.status, 200);
    const entry = list.body.items.find((s: { name: string }) => s.name === 'db-pass');
    assert.deepEqual(Object.keys(entry).sort(), ['name', 'updatedAt']);
    assert.ok(!JSON.stringify(list.body).includes('hunter'), 'no value in the list');
    assert.equal((await api('GET', '/v1/projects/vision/secrets/db-pass')).status, 405, 'no route reads a value');

    // Bob is no member of vision: its secrets do not exist for him.
    assert.equal((await api('GET', '/v1/projects/vision/secrets', BOB)).status, 404);
    assert.equal((await api('PUT', '/v1/projects/vision/secrets/x', BOB, { value: 'v' })).status, 404);
    assert.equal((await api('DELETE', '/v1/projects/vision/secrets/db-pass', BOB)).status, 404);

    // Stored 0600 in a 0700 directory of the data directory.
    const file = join(dir, 'data', 'secrets', 'vision.json');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, 'data', 'secrets'))).mode & 0o777, 0o700);
    assert.equal(JSON.parse(await readFile(file, 'utf8'))['db-pass'].value, 'hunter3-xyz');

    assert.equal((await api('DELETE', '/v1/projects/vision/secrets/db-pass')).status, 204);
    assert.equal((await api('DELETE', '/v1/projects/vision/secrets/db-pass')).status, 404);
    const after = await api('GET', '/v1/projects/vision/secrets');
    assert.ok(!after.body.items.some((s: { name: string }) => s.name === 'db-pass'));
  });

  it('refuses bad names and values with a 400 naming the field, storing nothing', async () => {
    const bad = [
      ['/v1/projects/vision/secrets/1abc', { value: 'v' }, ['name']],
      ['/v1/projects/vision/secrets/a.b', { value: 'v' }, ['name']],
      [`/v1/projects/vision/secrets/${'a'.repeat(65)}`, { value: 'v' }, ['name']],
      ['/v1/projects/vision/secrets/ok', { value: '' }, ['value']],
      ['/v1/projects/vision/secrets/ok', { value: 'a\u0000b' }, ['value']],
      ['/v1/projects/vision/secrets/ok', { value: 'x'.repeat(16_385) }, ['value']],
      ['/v1/projects/vision/secrets/ok', { value: 'v', extra: 1 }, ['extra']],
      ['/v1/projects/vision/secrets/ok', {}, ['value']],
    ] as const;
    for (const [path, body, expected] of bad) {
      const answer = await api('PUT', path, ALICE, body);
      assert.equal(answer.status, 400, `${path} ${JSON.stringify(body).slice(0, 40)}`);
      assert.deepEqual(fields(answer.body), expected);
    }
    const list = await api('GET', '/v1/projects/vision/secrets');
    assert.ok(!list.body.items.some((s: { name: string }) => s.name === 'ok'));
  });
});

describe('a job with secrets', () => {
  it("gets the value in its environment only: not its record, a command line or the driver's files; served logs show ***", async () => {
    assert.equal((await api('PUT', '/v1/projects/vision/secrets/openai', ALICE, { value: VALUE })).status, 204);
    const submitted = await api('POST', '/v1/jobs', ALICE, { template: 'print', secrets: { API_KEY: 'openai' } });
    assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
    const id = submitted.body.id as string;
    const got = join(dir, `got-${id}`);
    await waitFor('the job to have its value', async () => existsSync(got) || undefined, 60_000, 100);
    assert.equal(await readFile(got, 'utf8'), VALUE, 'the job had the value in its environment');

    // While it runs: no process of this machine has the value on its command line.
    for (const pid of (await readdir('/proc')).filter((p) => /^\d+$/.test(p))) {
      const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      assert.ok(!cmdline.includes(VALUE), `process ${pid} shows the value: ${cmdline}`);
    }
    // Nothing the plane or the driver keeps holds it (the job's own raw output aside: the job printed it).
    const jobDir = join(dir, 'data', 'jobs', id);
    assert.ok(!existsSync(join(jobDir, 'secrets.json')), 'the runner removed the values file once the job was spawned');
    for (const file of await filesUnder(join(dir, 'data'))) {
      if (file.startsWith(join(dir, 'data', 'secrets')) || file === join(jobDir, 'output.log')) continue;
      const bytes = await readFile(file).catch(() => Buffer.alloc(0));
      assert.ok(!bytes.includes(VALUE), `${file} holds the value`);
    }

    await writeFile(join(dir, 'go'), '');
    const job = await ended(id);
    assert.equal(job.state, 'SUCCEEDED', job.stateReason);
    assert.deepEqual(job.secrets, { API_KEY: 'openai' }, 'the record keeps the mapping');
    assert.ok(!JSON.stringify(job).includes(VALUE), 'and never the value');
    assert.ok(!(await api('GET', '/v1/jobs')).body.items.some((j: object) => JSON.stringify(j).includes(VALUE)));

    const logs = await api('GET', `/v1/jobs/${id}/logs`);
    assert.equal(logs.status, 200);
    assert.deepEqual(
      logs.body.lines.map((l: { message: string }) => l.message),
      ['key=*** done'],
    );
  });

  it("takes the template's secrets, and refuses a missing secret or a name also in env with a 400 naming secrets", async () => {
    await api('PUT', '/v1/projects/vision/secrets/openai', ALICE, { value: VALUE });
    const fromTemplate = await api('POST', '/v1/jobs', ALICE, { template: 'keyed' });
    assert.equal(fromTemplate.status, 202, JSON.stringify(fromTemplate.body));
    assert.deepEqual(fromTemplate.body.secrets, { API_KEY: 'openai' });
    assert.equal((await ended(fromTemplate.body.id)).state, 'SUCCEEDED');
    assert.equal(await readFile(join(dir, `got-${fromTemplate.body.id}`), 'utf8'), VALUE);

    const before = (await api('GET', '/v1/jobs?limit=1000')).body.items.length;
    const missing = await api('POST', '/v1/jobs', ALICE, { template: 'print', secrets: { API_KEY: 'nope' } });
    assert.equal(missing.status, 400);
    assert.deepEqual(fields(missing.body), ['secrets.API_KEY']);
    assert.match(missing.body.error.details[0].reason, /no secret named 'nope'/);
    const both = await api('POST', '/v1/jobs', ALICE, {
      template: 'print',
      env: { API_KEY: 'plain' },
      secrets: { API_KEY: 'openai' },
    });
    assert.equal(both.status, 400);
    assert.deepEqual(fields(both.body), ['secrets.API_KEY']);
    const badName = await api('POST', '/v1/jobs', ALICE, { template: 'print', secrets: { API_KEY: 'no/slash' } });
    assert.equal(badName.status, 400);
    assert.deepEqual(fields(badName.body), ['secrets.API_KEY']);
    const arrayClash = await api('POST', '/v1/jobs', ALICE, {
      template: 'print',
      secrets: { API_KEY: 'openai' },
      array: { size: 2, env: [{}, { API_KEY: 'plain' }] },
    });
    assert.equal(arrayClash.status, 400, JSON.stringify(arrayClash.body));
    assert.deepEqual(fields(arrayClash.body), ['array.env.1.API_KEY']);
    assert.equal((await api('GET', '/v1/jobs?limit=1000')).body.items.length, before, 'nothing stored');
  });
});

describe('a secret deleted while its job waits', () => {
  it('fails the job when it would start, naming the secret; its GPUs are released and the queue goes on', async () => {
    await api('PUT', '/v1/projects/vision/secrets/short-lived', ALICE, { value: VALUE });
    const hold = await api('POST', '/v1/jobs', ALICE, { template: 'hold' });
    assert.equal(hold.status, 202, JSON.stringify(hold.body));
    const waiting = await api('POST', '/v1/jobs', ALICE, {
      template: 'keyed',
      gpus: 1,
      secrets: { API_KEY: 'short-lived' },
    });
    assert.equal(waiting.status, 202, JSON.stringify(waiting.body));
    assert.equal(waiting.body.state, 'WAITING', 'the pool is held');
    // Accepted while the secret existed; deleted before the job could start.
    assert.equal((await api('DELETE', '/v1/projects/vision/secrets/short-lived')).status, 204);
    await writeFile(join(dir, 'hold-go'), '');

    const job = await ended(waiting.body.id);
    assert.equal(job.state, 'FAILED');
    assert.match(job.stateReason, /no secret named 'short-lived'/, 'the reason names the missing secret');
    assert.ok(!existsSync(join(dir, `got-${waiting.body.id}`)), 'its command never ran');
    assert.ok(!JSON.stringify(job).includes(VALUE));
    assert.equal((await ended(hold.body.id)).state, 'SUCCEEDED');
    const pool = await waitFor(
      'the pool to be free again',
      async () => {
        const pools = await api('GET', '/v1/pools');
        const local = pools.body.items.find((p: { name: string }) => p.name === 'local');
        return local.usedGpus === 0 ? local : undefined;
      },
      30_000,
      100,
    );
    assert.equal(pool.availableGpus, 2);
    // The queue goes on: a job submitted now starts and ends.
    await api('PUT', '/v1/projects/vision/secrets/openai', ALICE, { value: VALUE });
    const next = await api('POST', '/v1/jobs', ALICE, { template: 'keyed' });
    assert.equal((await ended(next.body.id)).state, 'SUCCEEDED');
  });
});

describe('flare secret and job create --secret', () => {
  it('puts a value from stdin, lists and deletes it, and a job maps it with --secret', async () => {
    const put = await flare(['secret', 'put', 'cli-key', '--project', 'vision'], `${VALUE}\n`);
    assert.equal(put.code, 0, put.stderr);
    assert.match(put.stdout, /secret cli-key of project vision stored/);
    assert.ok(!put.stdout.includes(VALUE) && !put.stderr.includes(VALUE));

    const list = await flare(['secret', 'list', '--project', 'vision']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^NAME +UPDATED/);
    assert.match(list.stdout, /^cli-key +/m);
    assert.ok(!list.stdout.includes(VALUE));

    const created = await flare([
      'job',
      'create',
      '--template',
      'print',
      '--secret',
      'API_KEY=cli-key',
      '--output',
      'json',
    ]);
    assert.equal(created.code, 0, created.stderr);
    const id = JSON.parse(created.stdout).id as string;
    await waitFor(
      'the job to have its value',
      async () => existsSync(join(dir, `got-${id}`)) || undefined,
      60_000,
      100,
    );
    assert.equal(await readFile(join(dir, `got-${id}`), 'utf8'), VALUE, 'one trailing newline dropped');
    await writeFile(join(dir, 'go'), '');
    await ended(id);
    const show = await flare(['job', 'show', id]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /^Secrets: +API_KEY from cli-key$/m);
    assert.ok(!show.stdout.includes(VALUE));
    const logs = await flare(['job', 'logs', id]);
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /key=\*\*\* done/);
    assert.ok(!logs.stdout.includes(VALUE));

    const deleted = await flare(['secret', 'delete', 'cli-key', '--project', 'vision']);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal((await flare(['secret', 'delete', 'cli-key', '--project', 'vision'])).code, 3, 'gone: not found');
  });

  it('refuses an empty stdin, a missing project and a bad --secret with usage errors; the help says env is visible', async () => {
    const empty = await flare(['secret', 'put', 'k', '--project', 'vision'], '');
    assert.equal(empty.code, 2);
    assert.match(empty.stderr, /no value on stdin/);
    const noProject = await flare(['secret', 'put', 'k'], 'v');
    assert.equal(noProject.code, 2);
    assert.match(noProject.stderr, /missing --project P/);
    const badPair = await flare(['job', 'create', '--template', 'print', '--secret', 'API_KEY']);
    assert.equal(badPair.code, 2);
    assert.match(badPair.stderr, /--secret takes ENV=NAME/);
    assert.equal(
      (await api('GET', '/v1/projects/vision/secrets')).body.items.some((s: { name: string }) => s.name === 'k'),
      false,
    );

    const help = await flare(['job', 'create', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--env values are stored with the job and shown to every member/);
    assert.match(help.stdout, /--secret ENV=NAME/);
  });
});
