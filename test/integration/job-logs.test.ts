/**
 * Job output, locally: LocalJobLogs against real files (tails across chunk
 * boundaries, a last line without newline, a file far too large to read whole),
 * then `GET /v1/jobs/{id}/logs` over real HTTP on the local control plane after
 * a real job has run and written its output.
 */
import assert from 'node:assert/strict';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LocalJobLogs } from '../../lambdas/adapters/local-job-logs.js';
import type { Job } from '../../lambdas/core/job.js';
import { LocalConfig, parse } from '../../lambdas/core/schemas.js';
import { startControlPlane, type ControlPlane } from '../../lambdas/local/control-plane.js';
import { quietLog, waitFor } from '../support/harness.js';

const job = (id: string) => ({ id, project: 'vision' }) as Job;

describe('LocalJobLogs on real files', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flare-logs-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const pathOf = (id: string) => join(dir, `${id}.log`);
  const logs = (options?: ConstructorParameters<typeof LocalJobLogs>[1]) => new LocalJobLogs(pathOf, options);
  const tailOf = async (id: string, tail: number | undefined, options?: ConstructorParameters<typeof LocalJobLogs>[1]) =>
    (await logs(options).read(job(id), tail === undefined ? {} : { tail })).lines.map((l) => l.message);

  it('a job without a log file yet has no lines', async () => {
    assert.deepEqual(await logs().read(job('never-ran'), { tail: 10 }), { lines: [] });
  });

  it('an empty log file has no lines', async () => {
    await writeFile(pathOf('empty'), '');
    assert.deepEqual(await tailOf('empty', 10), []);
  });

  it('returns the last lines, oldest first, without their newlines and without times', async () => {
    await writeFile(pathOf('small'), 'one\ntwo\nthree\n');
    const { lines } = await logs().read(job('small'), { tail: 2 });
    assert.deepEqual(lines, [{ message: 'two' }, { message: 'three' }]);
    assert.deepEqual(await tailOf('small', 3), ['one', 'two', 'three']);
    assert.deepEqual(await tailOf('small', 100), ['one', 'two', 'three']);
    assert.deepEqual(await tailOf('small', undefined), ['one', 'two', 'three']);
  });

  it('counts a last line without newline as a line, and keeps empty lines', async () => {
    await writeFile(pathOf('partial'), 'one\n\nthree\nstill being written');
    assert.deepEqual(await tailOf('partial', 1), ['still being written']);
    assert.deepEqual(await tailOf('partial', 3), ['', 'three', 'still being written']);
    await writeFile(pathOf('blank'), '\n');
    assert.deepEqual(await tailOf('blank', 5), ['']);
  });

  it('drops the carriage return of CRLF lines', async () => {
    await writeFile(pathOf('crlf'), 'a\r\nb\r\n');
    assert.deepEqual(await tailOf('crlf', 5), ['a', 'b']);
  });

  it('finds the same tail whatever the chunk size, across chunk boundaries and multi-byte characters', async () => {
    const all = Array.from({ length: 200 }, (_, i) => `${i % 7 === 0 ? '' : `line ${i} ${'é—'.repeat(i % 5)}`}`);
    await writeFile(pathOf('many'), `${all.join('\n')}\n`);
    await writeFile(pathOf('many-open'), all.join('\n'));
    for (const chunkBytes of [1, 3, 16, 1000, 64 * 1024]) {
      for (const tail of [1, 2, 7, 64, 199, 200, 201]) {
        const expected = all.slice(-tail);
        assert.deepEqual(await tailOf('many', tail, { chunkBytes }), expected, `chunkBytes ${chunkBytes}, tail ${tail}`);
        assert.deepEqual(await tailOf('many-open', tail, { chunkBytes }), expected, `no final newline, chunkBytes ${chunkBytes}, tail ${tail}`);
      }
    }
  });

  it('reads the tail of a file far larger than memory would allow, from its end', async () => {
    // 8 GiB, sparse: reading it whole would fail (larger than a Buffer) or take minutes.
    const size = 8 * 1024 ** 3;
    const path = pathOf('huge');
    const handle = await open(path, 'w');
    try {
      const end = Buffer.from('epoch 98\nepoch 99\ndone');
      await handle.truncate(size - end.length);
      await handle.write(end, 0, end.length, size - end.length);
    } finally {
      await handle.close();
    }
    const started = Date.now();
    assert.deepEqual(await tailOf('huge', 2), ['epoch 99', 'done']);
    assert.ok(Date.now() - started < 2000, 'the tail is found near the end, not by reading the file');

    // Fewer newlines than asked: it stops at maxBytes, the oldest line cut at its start.
    const lines = await tailOf('huge', 10, { maxBytes: 4096, chunkBytes: 1000 });
    const tailBytes = 'epoch 98\nepoch 99\ndone'.length;
    assert.deepEqual(lines, [`${'\0'.repeat(4096 - tailBytes)}epoch 98`, 'epoch 99', 'done']);
  });

  it('does not start with a broken character when maxBytes cuts one', async () => {
    await writeFile(pathOf('cut'), `${'é'.repeat(10)}\nend\n`); // é is 2 bytes
    assert.deepEqual(await tailOf('cut', 5, { maxBytes: 9 }), ['éé', 'end']); // 9 bytes: half an é, éé, \n, end, \n
  });

  it('refuses nonsensical bounds', () => {
    assert.throws(() => logs({ chunkBytes: 0 }), RangeError);
    assert.throws(() => logs({ maxBytes: 1.5 }), RangeError);
  });
});

const ALICE = 'alice-token-0123456789abcdef';
const BOB = 'bob-token-0123456789abcdefgh';
const ROOT = 'root-token-0123456789abcdefg';

describe('GET /v1/jobs/{id}/logs on the local control plane', () => {
  let dataDir: string;
  let plane: ControlPlane;
  let wired: unknown;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'flare-logs-plane-'));
    const config = parse(LocalConfig, {
      port: 0,
      dataDir,
      users: [
        { name: 'root', token: ROOT, admin: true },
        { name: 'alice', token: ALICE, projects: ['vision'] },
        { name: 'bob', token: BOB, projects: ['audio'] },
      ],
      pools: [{ name: 'local', gpus: 2 }],
      images: [{ name: 'tools', reference: 'docker.io/library/busybox:1.36', digest: `sha256:${'c'.repeat(64)}` }],
      templates: [
        {
          name: 'chatty',
          project: 'vision',
          pool: 'local',
          image: 'tools',
          command: ['sh', '-c', 'for i in 1 2 3 4 5; do echo "line $i"; done; echo "on stderr" >&2; printf "no newline"'],
        },
        { name: 'silent', project: 'vision', pool: 'local', image: 'tools', command: ['sleep', '30'] },
      ],
      compute: { driver: 'process' },
    });
    plane = await startControlPlane(config, { inMemory: true, log: quietLog, compute: { pollMs: 100, stopGraceMs: 1000 } });
    wired = plane.deps.logs;
  });

  after(async () => {
    await plane?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  async function api(method: string, path: string, token: string, body?: unknown) {
    const res = await fetch(`${plane.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }

  const untilState = (id: string, states: string[]) =>
    waitFor(`job ${id} in ${states.join('|')}`, async () => {
      const { body } = await api('GET', `/v1/jobs/${id}`, ROOT);
      return states.includes(body?.state) ? body : undefined;
    }, 60_000, 100);

  it('reads job output from the job’s log file (LocalJobLogs is wired into the control plane)', () => {
    assert.ok(wired instanceof LocalJobLogs, 'startControlPlane sets deps.logs to a LocalJobLogs over LocalCompute.logPath');
  });

  it('returns the output a finished job wrote, stdout and stderr, last line without newline included', async () => {
    const submitted = await api('POST', '/v1/jobs', ALICE, { template: 'chatty' });
    assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
    const id: string = submitted.body.id;
    assert.equal((await untilState(id, ['SUCCEEDED', 'FAILED'])).state, 'SUCCEEDED');

    const tail = await api('GET', `/v1/jobs/${id}/logs?tail=3`, ALICE);
    assert.equal(tail.status, 200, JSON.stringify(tail.body));
    assert.deepEqual(tail.body, { jobId: id, lines: [{ message: 'line 5' }, { message: 'on stderr' }, { message: 'no newline' }] });

    const all = await api('GET', `/v1/jobs/${id}/logs`, ALICE);
    assert.deepEqual(all.body.lines.map((l: { message: string }) => l.message), ['line 1', 'line 2', 'line 3', 'line 4', 'line 5', 'on stderr', 'no newline']);

    // Visibility as for the job itself: another project's member gets 404, an admin reads it.
    const bob = await api('GET', `/v1/jobs/${id}/logs`, BOB);
    assert.equal(bob.status, 404);
    assert.equal(bob.body.error.code, 'not_found');
    assert.equal((await api('GET', `/v1/jobs/${id}/logs?tail=1`, ROOT)).body.lines[0].message, 'no newline');

    const bad = await api('GET', `/v1/jobs/${id}/logs?tail=0`, ALICE);
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body.error.details.map((d: { field: string }) => d.field), ['tail']);
  });

  it('a job that has written nothing has an empty list', async () => {
    const submitted = await api('POST', '/v1/jobs', ALICE, { template: 'silent' });
    assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
    const id: string = submitted.body.id;
    try {
      const before = await api('GET', `/v1/jobs/${id}/logs`, ALICE); // queued or just started: no file, or an empty one
      assert.deepEqual(before, { status: 200, body: { jobId: id, lines: [] } });
      await untilState(id, ['RUNNING']);
      assert.deepEqual((await api('GET', `/v1/jobs/${id}/logs`, ALICE)).body, { jobId: id, lines: [] });
    } finally {
      await api('DELETE', `/v1/jobs/${id}`, ROOT);
      await untilState(id, ['CANCELLED', 'FAILED', 'SUCCEEDED', 'EXPIRED']);
    }
  });
});
