/**
 * Job output, locally: LocalJobLogs against real files (tails across chunk
 * boundaries, a last line without newline, a file far too large to read whole,
 * the follow cursor), then `GET /v1/jobs/{id}/logs` over real HTTP on the local
 * control plane after a real job has run and written its output, and while one
 * writes it (following with nextToken).
 */
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LocalJobLogs } from '../../lambdas/adapters/local-job-logs.js';
import { ValidationError } from '../../lambdas/core/errors.js';
import type { Job } from '../../lambdas/core/job.js';
import { LocalConfig, parse } from '../../lambdas/core/schemas.js';
import { startControlPlane, type ControlPlane } from '../../lambdas/local/control-plane.js';
import { quietLog, waitFor } from '../support/harness.js';
import { ROOT_TOKEN, ALICE_TOKEN, BOB_TOKEN, LOCAL_USERS } from '../support/identities.js';
import { localPlaneConfig, localTemplate } from '../support/local-plane.js';

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
  const tailOf = async (
    id: string,
    tail: number | undefined,
    options?: ConstructorParameters<typeof LocalJobLogs>[1],
  ) => (await logs(options).read(job(id), tail === undefined ? {} : { tail })).lines.map((l) => l.message);

  it('a job without a log file yet has no lines', async () => {
    assert.deepEqual(
      await logs().read(job('never-ran'), { tail: 10 }),
      { lines: [], nextToken: '0' },
      'a follower starts at offset 0',
    );
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
        assert.deepEqual(
          await tailOf('many', tail, { chunkBytes }),
          expected,
          `chunkBytes ${chunkBytes}, tail ${tail}`,
        );
        assert.deepEqual(
          await tailOf('many-open', tail, { chunkBytes }),
          expected,
          `no final newline, chunkBytes ${chunkBytes}, tail ${tail}`,
        );
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
    assert.throws(() => logs({ maxLines: 0 }), RangeError);
  });

  describe('following with the cursor', () => {
    const read = (
      id: string,
      options: Parameters<LocalJobLogs['read']>[1],
      bounds?: ConstructorParameters<typeof LocalJobLogs>[1],
    ) => logs(bounds).read(job(id), options);
    const texts = (r: { lines: Array<{ message: string }> }) => r.lines.map((l) => l.message);

    it('a tail read hands out the byte offset of the end of the file; a read after it returns only what was appended', async () => {
      const path = pathOf('growing');
      await writeFile(path, 'one\ntwo\n');
      const first = await read('growing', { tail: 1 });
      assert.deepEqual(first, { lines: [{ message: 'two' }], nextToken: '8' });

      assert.deepEqual(
        await read('growing', { after: '8' }),
        { lines: [], nextToken: '8' },
        'nothing new: no lines, the same cursor',
      );
      await appendFile(path, 'three\nfour\n');
      const next = await read('growing', { after: first.nextToken });
      assert.deepEqual(next, { lines: [{ message: 'three' }, { message: 'four' }], nextToken: '19' });
      assert.deepEqual(
        texts(await read('growing', { after: '0' })),
        ['one', 'two', 'three', 'four'],
        'offset 0 is the whole output',
      );
    });

    it('holds back a line without its newline while the job runs, and returns it once it ends', async () => {
      const path = pathOf('progress');
      await writeFile(path, 'done 1\nepoch 2: 50%');
      const running = await read('progress', { after: '0' });
      assert.deepEqual(running, { lines: [{ message: 'done 1' }], nextToken: '7' });
      await appendFile(path, ' 100%\nepoch 3');
      assert.deepEqual(
        await read('progress', { after: '7' }),
        { lines: [{ message: 'epoch 2: 50% 100%' }], nextToken: '25' },
        'the line comes whole, never split',
      );
      assert.deepEqual(await read('progress', { after: '25', ended: true }), {
        lines: [{ message: 'epoch 3' }],
        nextToken: '32',
      });
      assert.deepEqual(await read('progress', { after: '32', ended: true }), { lines: [], nextToken: '32' });
    });

    it('a job without output yet starts at offset 0, and following it picks up its first lines', async () => {
      const none = await read('not-yet', { tail: 10 });
      assert.deepEqual(none, { lines: [], nextToken: '0' });
      assert.deepEqual(await read('not-yet', { after: '0' }), { lines: [], nextToken: '0' });
      await writeFile(pathOf('not-yet'), 'hello\n');
      assert.deepEqual(await read('not-yet', { after: none.nextToken }), {
        lines: [{ message: 'hello' }],
        nextToken: '6',
      });
    });

    it('returns at most maxLines and maxBytes per read; following the cursor reads everything exactly once', async () => {
      const all = Array.from({ length: 50 }, (_, i) => `line ${i} ${'é'.repeat(i % 4)}`);
      await writeFile(pathOf('paged'), `${all.join('\n')}\n`);
      for (const bounds of [{ maxLines: 7 }, { maxBytes: 40 }, { maxLines: 3, maxBytes: 1000 }]) {
        const seen: string[] = [];
        let cursor = '0';
        for (let reads = 0; reads < 100; reads++) {
          const r = await read('paged', { after: cursor }, bounds);
          assert.ok(r.lines.length <= (bounds.maxLines ?? Infinity), JSON.stringify(bounds));
          seen.push(...texts(r));
          if (r.nextToken === cursor) break;
          cursor = r.nextToken!;
        }
        assert.deepEqual(seen, all, JSON.stringify(bounds));
      }
    });

    it('passes a line longer than maxBytes on in pieces that never split a character', async () => {
      await writeFile(pathOf('endless'), 'ééééé'); // 10 bytes, no newline, still running
      const first = await read('endless', { after: '0' }, { maxBytes: 5 });
      assert.deepEqual(first, { lines: [{ message: 'éé' }], nextToken: '4' });
      const second = await read('endless', { after: '4' }, { maxBytes: 5 });
      assert.deepEqual(second, { lines: [{ message: 'éé' }], nextToken: '8' });
      assert.deepEqual(
        await read('endless', { after: '8' }, { maxBytes: 5 }),
        { lines: [], nextToken: '8' },
        'the rest fits: it waits for its newline',
      );
    });

    it('refuses a cursor it did not hand out, naming nextToken', async () => {
      await writeFile(pathOf('short'), 'abc\n');
      for (const after of ['5', '-1', '1.5', 'abc', '01', '99999999999999999']) {
        await assert.rejects(read('short', { after }), (error: unknown) => {
          assert.ok(error instanceof ValidationError, after);
          assert.deepEqual(
            error.details.map((d) => d.field),
            ['nextToken'],
          );
          return true;
        });
      }
      await assert.rejects(read('missing-file', { after: '3' }), ValidationError);
    });
  });
});

describe('GET /v1/jobs/{id}/logs on the local control plane', () => {
  let dataDir: string;
  let plane: ControlPlane;
  let wired: unknown;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'flare-logs-plane-'));
    const config = parse(
      LocalConfig,
      localPlaneConfig({
        dataDir,
        users: LOCAL_USERS,
        pools: [{ name: 'local', gpus: 2 }],
        templates: [
          localTemplate('chatty', [
            'sh',
            '-c',
            'for i in 1 2 3 4 5; do echo "line $i"; done; echo "on stderr" >&2; printf "no newline"',
          ]),
          localTemplate('silent', ['sleep', '30']),
          localTemplate('ticker', [
            'sh',
            '-c',
            'for i in 1 2 3 4; do echo "tick $i"; sleep 0.4; done; printf "partial "; sleep 0.5; echo "then whole"; printf "last without newline"',
          ]),
        ],
      }),
    );
    plane = await startControlPlane(config, {
      inMemory: true,
      log: quietLog,
      compute: { pollMs: 100, stopGraceMs: 1000 },
    });
    wired = plane.deps.logs;
  });

  after(async () => {
    await plane?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  async function api(method: string, path: string, token: string, body?: unknown) {
    const res = await fetch(`${plane.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }

  const untilState = (id: string, states: string[]) =>
    waitFor(
      `job ${id} in ${states.join('|')}`,
      async () => {
        const { body } = await api('GET', `/v1/jobs/${id}`, ROOT_TOKEN);
        return states.includes(body?.state) ? body : undefined;
      },
      60_000,
      100,
    );

  it('reads job output from the job’s log file (LocalJobLogs is wired into the control plane)', () => {
    assert.ok(
      wired instanceof LocalJobLogs,
      'startControlPlane sets deps.logs to a LocalJobLogs over LocalCompute.logPath',
    );
  });

  it('returns the output a finished job wrote, stdout and stderr, last line without newline included', async () => {
    const submitted = await api('POST', '/v1/jobs', ALICE_TOKEN, { template: 'chatty' });
    assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
    const id: string = submitted.body.id;
    assert.equal((await untilState(id, ['SUCCEEDED', 'FAILED'])).state, 'SUCCEEDED');

    const tail = await api('GET', `/v1/jobs/${id}/logs?tail=3`, ALICE_TOKEN);
    assert.equal(tail.status, 200, JSON.stringify(tail.body));
    const size = String(Buffer.byteLength('line 1\nline 2\nline 3\nline 4\nline 5\non stderr\nno newline'));
    assert.deepEqual(tail.body, {
      jobId: id,
      lines: [{ message: 'line 5' }, { message: 'on stderr' }, { message: 'no newline' }],
      nextToken: size,
    });

    const all = await api('GET', `/v1/jobs/${id}/logs`, ALICE_TOKEN);
    assert.deepEqual(
      all.body.lines.map((l: { message: string }) => l.message),
      ['line 1', 'line 2', 'line 3', 'line 4', 'line 5', 'on stderr', 'no newline'],
    );

    // Visibility as for the job itself: another project's member gets 404, an admin reads it.
    const bob = await api('GET', `/v1/jobs/${id}/logs`, BOB_TOKEN);
    assert.equal(bob.status, 404);
    assert.equal(bob.body.error.code, 'not_found');
    assert.equal((await api('GET', `/v1/jobs/${id}/logs?tail=1`, ROOT_TOKEN)).body.lines[0].message, 'no newline');

    const bad = await api('GET', `/v1/jobs/${id}/logs?tail=0`, ALICE_TOKEN);
    assert.equal(bad.status, 400);
    assert.deepEqual(
      bad.body.error.details.map((d: { field: string }) => d.field),
      ['tail'],
    );

    // The cursor: from 0 the whole output of the ended job, at its end nothing more.
    const from0 = await api('GET', `/v1/jobs/${id}/logs?nextToken=0`, ALICE_TOKEN);
    assert.deepEqual(from0.body, { ...all.body, nextToken: size });
    assert.deepEqual((await api('GET', `/v1/jobs/${id}/logs?nextToken=${size}`, ALICE_TOKEN)).body, {
      jobId: id,
      lines: [],
      nextToken: size,
    });
    const both = await api('GET', `/v1/jobs/${id}/logs?tail=5&nextToken=0`, ALICE_TOKEN);
    assert.equal(both.status, 400);
    assert.deepEqual(both.body.error.details, [{ field: 'tail', reason: 'cannot be combined with nextToken' }]);
    const foreign = await api('GET', `/v1/jobs/${id}/logs?nextToken=99999`, ALICE_TOKEN);
    assert.equal(foreign.status, 400);
    assert.deepEqual(
      foreign.body.error.details.map((d: { field: string }) => d.field),
      ['nextToken'],
    );
    assert.equal(
      (await api('GET', `/v1/jobs/${id}/logs?nextToken=0`, BOB_TOKEN)).status,
      404,
      'the cursor reveals nothing of another project',
    );
  });

  it('follows a running job: each answer holds only the lines written since the last one, every line exactly once', async () => {
    const submitted = await api('POST', '/v1/jobs', ALICE_TOKEN, { template: 'ticker' });
    assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
    const id: string = submitted.body.id;
    const seen: string[] = [];
    let cursor = '0';
    let answersWithLines = 0;
    for (;;) {
      const state = (await api('GET', `/v1/jobs/${id}`, ALICE_TOKEN)).body.state;
      const next = await api('GET', `/v1/jobs/${id}/logs?nextToken=${encodeURIComponent(cursor)}`, ALICE_TOKEN);
      assert.equal(next.status, 200, JSON.stringify(next.body));
      seen.push(...next.body.lines.map((l: { message: string }) => l.message));
      if (next.body.lines.length) answersWithLines++;
      cursor = next.body.nextToken;
      if (['SUCCEEDED', 'FAILED', 'EXPIRED', 'CANCELLED'].includes(state)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(seen, ['tick 1', 'tick 2', 'tick 3', 'tick 4', 'partial then whole', 'last without newline']);
    assert.ok(answersWithLines > 1, 'the lines came in more than one answer, while the job ran');
  });

  it('a job that has written nothing has an empty list', async () => {
    const submitted = await api('POST', '/v1/jobs', ALICE_TOKEN, { template: 'silent' });
    assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
    const id: string = submitted.body.id;
    try {
      const before = await api('GET', `/v1/jobs/${id}/logs`, ALICE_TOKEN); // queued or just started: no file, or an empty one
      assert.deepEqual(before, { status: 200, body: { jobId: id, lines: [], nextToken: '0' } });
      await untilState(id, ['RUNNING']);
      assert.deepEqual((await api('GET', `/v1/jobs/${id}/logs`, ALICE_TOKEN)).body, {
        jobId: id,
        lines: [],
        nextToken: '0',
      });
    } finally {
      await api('DELETE', `/v1/jobs/${id}`, ROOT_TOKEN);
      await untilState(id, ['CANCELLED', 'FAILED', 'SUCCEEDED', 'EXPIRED']);
    }
  });
});
