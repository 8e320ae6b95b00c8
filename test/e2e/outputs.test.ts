/**
 * Outputs on the local control plane (`flare local` as a child process, the
 * process driver, real HTTP): what a job writes under $FLARE_OUTPUT_DIR is kept
 * whatever its outcome, listed and served by the API, capped, and removed with
 * the job.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runFlare } from '../support/flare-cli.js';
import type { LocalPlane } from '../support/local-plane.js';
import { callApi, localTemplate, startLocalPlaneIn, stopLocalPlane, untilJobState } from '../support/local-plane.js';

const ALICE = 'alice-outputs-0123456789abcdef';
const BOB = 'bob-outputs-0123456789abcdefgh';
/** The per-job cap of this plane: the `big` job's two 1.2 MB files do not both fit. */
const MAX_BYTES = 2_000_000;
const TERMINAL = ['SUCCEEDED', 'FAILED', 'EXPIRED', 'CANCELLED'];

let dir: string;
let plane: LocalPlane | undefined;

const api = (method: string, path: string, token = ALICE, body?: unknown) =>
  callApi(plane!.url, method, path, token, body);
const submit = async (template: string, extra: Record<string, unknown> = {}) => {
  const answer = await api('POST', '/v1/jobs', ALICE, { template, ...extra });
  assert.equal(answer.status, 202, JSON.stringify(answer.body));
  return answer.body.id as string;
};
const ended = (id: string) => untilJobState(plane!.url, ALICE, id, TERMINAL);

/** A raw GET: fetch() would resolve `..` segments before sending them. */
function rawGet(path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${plane!.url}${path}`, { headers: { authorization: `Bearer ${ALICE}` } }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const sh = (script: string) => ['sh', '-c', script];

/** `flare ...` as a user runs it, against this plane as alice. */
const flare = (args: string[]) => runFlare(args, { env: { HOME: dir, FLARE_API_URL: plane!.url, FLARE_TOKEN: ALICE } });

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flare-outputs-'));
  const template = (name: string, command: string[]) => localTemplate(name, command, { gpus: 1 });
  plane = await startLocalPlaneIn(dir, {
    users: [
      { name: 'alice', token: ALICE, projects: ['vision'] },
      { name: 'bob', token: BOB, projects: ['audio'] },
    ],
    pools: [{ name: 'local', gpus: 4 }],
    templates: [
      template(
        'writer',
        sh(
          'cd "$FLARE_OUTPUT_DIR" && mkdir -p sub/deep && printf hello > a.txt && printf "%s" "$FLARE_JOB_ID" > sub/deep/n.txt' +
            ' && ln -s /etc escape && ln -s /etc/hostname leak.txt && pwd > ../../where-$FLARE_JOB_ID',
        ),
      ),
      template(
        'big',
        sh('cd "$FLARE_OUTPUT_DIR" && head -c 1200000 /dev/zero > a.bin && head -c 1200000 /dev/zero > b.bin'),
      ),
      template('long', sh('printf kept > "$FLARE_OUTPUT_DIR/partial.txt" && sleep 60')),
      template(
        'results',
        sh(
          'cd "$FLARE_OUTPUT_DIR" && mkdir -p sub && head -c 1500000 /dev/urandom > model.bin && printf \'{"loss":0.1}\' > sub/metrics.json',
        ),
      ),
    ],
    outputs: { maxBytes: MAX_BYTES },
  });
});

after(async () => {
  await stopLocalPlane(plane?.child, dir);
});

describe('job outputs on the local control plane', () => {
  it('keeps the files a job wrote under $FLARE_OUTPUT_DIR, lists them, serves their bytes and records count and bytes', async () => {
    const id = await submit('writer');
    const job = await ended(id);
    assert.equal(job.state, 'SUCCEEDED', job.stateReason);
    assert.deepEqual(job.outputs, { count: 2, bytes: 5 + id.length });

    const list = await api('GET', `/v1/jobs/${id}/outputs`);
    assert.equal(list.status, 200);
    // Symbolic links are neither listed nor followed: `escape` would lead to /etc.
    assert.deepEqual(
      list.body.items.map((f: { path: string; size: number }) => [f.path, f.size]),
      [
        ['a.txt', 5],
        ['sub/deep/n.txt', id.length],
      ],
    );
    assert.ok(list.body.items.every((f: { modifiedAt: string }) => !Number.isNaN(Date.parse(f.modifiedAt))));

    const file = await fetch(`${plane!.url}/v1/jobs/${id}/outputs/sub/deep/n.txt`, {
      headers: { authorization: `Bearer ${ALICE}` },
    });
    assert.equal(file.status, 200);
    assert.equal(file.headers.get('content-type'), 'application/octet-stream');
    assert.equal(file.headers.get('content-length'), String(id.length));
    assert.equal(await file.text(), id);
    // Encoded slashes name the same file.
    assert.equal((await rawGet(`/v1/jobs/${id}/outputs/sub%2Fdeep%2Fn.txt`)).body, id);

    for (const link of ['leak.txt', 'escape/hostname', 'escape/passwd'])
      assert.equal((await api('GET', `/v1/jobs/${id}/outputs/${link}`)).status, 404, link);
    assert.equal((await api('GET', `/v1/jobs/${id}/outputs/nothing.txt`)).status, 404);
    assert.equal((await api('GET', `/v1/jobs/${id}/outputs`, BOB)).status, 404, "another project's job does not exist");
    assert.equal((await api('GET', `/v1/jobs/${id}/outputs/a.txt`, BOB)).status, 404);
  });

  it('refuses a path that leaves the output directory, however encoded, with a 400 naming path', async () => {
    const id = await submit('writer');
    await ended(id);
    // Dot segments the URL parser resolves (as API Gateway does) leave the route: no file is reached.
    for (const path of ['../../../flare.local.json', 'sub/../../../../flare.local.json', '%2e%2e/%2e%2e/x']) {
      const answer = await rawGet(`/v1/jobs/${id}/outputs/${path}`);
      assert.equal(answer.status, 404, `${path}: ${answer.body}`);
      assert.equal(JSON.parse(answer.body).error.code, 'not_found', path);
    }
    for (const path of [
      '..%2F..%2F..%2Fflare.local.json',
      'sub%2F..%2F..%2Fa.txt',
      '%2Fetc%2Fpasswd',
      'sub%2F.%2Fdeep%2Fn.txt',
      'a%00.txt',
      'sub%5C..%5Ca.txt',
    ]) {
      const answer = await rawGet(`/v1/jobs/${id}/outputs/${path}`);
      assert.equal(answer.status, 400, `${path}: ${answer.body}`);
      const error = JSON.parse(answer.body).error;
      assert.equal(error.code, 'validation_error');
      assert.deepEqual(
        error.details.map((d: { field: string }) => d.field),
        ['path'],
        path,
      );
    }
  });

  it('applies the per-job cap: whole files in path order, and the job says what was left out', async () => {
    const id = await submit('big');
    const job = await ended(id);
    assert.equal(job.state, 'SUCCEEDED', job.stateReason);
    assert.equal(job.outputs.count, 1);
    assert.equal(job.outputs.bytes, 1_200_000);
    assert.equal(job.outputs.truncated, true);
    assert.match(job.outputs.error, /over the 2000000-byte cap: 1 files \(1200000 bytes\) were not kept/);
    const list = await api('GET', `/v1/jobs/${id}/outputs`);
    assert.deepEqual(
      list.body.items.map((f: { path: string }) => f.path),
      ['a.bin'],
    );
    assert.equal((await api('GET', `/v1/jobs/${id}/outputs/b.bin`)).status, 404);
  });

  it('keeps the outputs of an expired and of a cancelled job', async () => {
    const expiring = await submit('long', { liveTimeoutMinutes: 0.05 });
    const cancelled = await submit('long');
    await untilJobState(plane!.url, ALICE, cancelled, ['RUNNING']);
    const outputOf = (id: string) => join(dir, 'data', 'outputs', 'vision', id, 'partial.txt');
    await untilJobState(plane!.url, ALICE, cancelled, ['RUNNING']);
    // The file is written before the job is stopped.
    while (!existsSync(outputOf(cancelled))) await new Promise((r) => setTimeout(r, 100));
    assert.equal((await api('DELETE', `/v1/jobs/${cancelled}`)).status, 202);
    for (const [id, state] of [
      [expiring, 'EXPIRED'],
      [cancelled, 'CANCELLED'],
    ]) {
      const job = await ended(id!);
      assert.equal(job.state, state);
      assert.deepEqual(job.outputs, { count: 1, bytes: 4 });
      const file = await fetch(`${plane!.url}/v1/jobs/${id}/outputs/partial.txt`, {
        headers: { authorization: `Bearer ${ALICE}` },
      });
      assert.equal(await file.text(), 'kept');
    }
  });

  it('removes the outputs and the scratch directory with the job', async () => {
    const id = await submit('writer');
    await ended(id);
    const outputs = join(dir, 'data', 'outputs', 'vision', id);
    const scratch = join(dir, 'data', 'scratch', id);
    assert.ok(existsSync(join(outputs, 'a.txt')));
    assert.ok(existsSync(scratch));
    assert.equal((await api('DELETE', `/v1/jobs/${id}`)).status, 204);
    assert.equal(existsSync(outputs), false, 'outputs removed');
    assert.equal(existsSync(scratch), false, 'scratch removed');
    assert.equal((await api('GET', `/v1/jobs/${id}/outputs`)).status, 404);
  });

  it('flare job outputs lists them, --output json gives the API answer, --download saves them with a progress bar for large files', async () => {
    const id = await submit('results');
    assert.equal((await ended(id)).state, 'SUCCEEDED');
    const model = await readFile(join(dir, 'data', 'outputs', 'vision', id, 'model.bin'));

    const list = await flare(['job', 'outputs', id]);
    assert.equal(list.code, 0, list.stderr);
    const lines = list.stdout.trim().split('\n');
    assert.match(lines[0]!, /^PATH +SIZE +MODIFIED$/);
    assert.match(lines[1]!, /^model\.bin +1\.5 MB +\d{4}-\d\d-\d\dT/);
    assert.match(lines[2]!, /^sub\/metrics\.json +12 B +\d{4}-/);

    const json = await flare(['job', 'outputs', id, '--output', 'json']);
    assert.deepEqual(JSON.parse(json.stdout), (await api('GET', `/v1/jobs/${id}/outputs`)).body);

    const show = await flare(['job', 'show', id]);
    assert.match(show.stdout, /^Outputs: +2 files, 1\.5 MB$/m);

    const target = join(dir, 'fetched');
    const download = await flare(['job', 'outputs', id, '--download', target]);
    assert.equal(download.code, 0, download.stderr);
    assert.deepEqual(await readFile(join(target, 'model.bin')), model);
    assert.equal(await readFile(join(target, 'sub', 'metrics.json'), 'utf8'), '{"loss":0.1}');
    assert.match(download.stdout, /^2 files, 1\.5 MB saved to /);
    // The 1.5 MB file is drawn with a bar that ends full; the small one is one line.
    assert.match(download.stderr, /\[#{30}\] 100% {2}1\.5 MB \/ 1\.5 MB {2}model\.bin\n/);
    assert.match(download.stderr, /^sub\/metrics\.json {2}12 B$/m);

    const missing = await flare(['job', 'outputs', 'j-nothing']);
    assert.equal(missing.code, 3, 'a job that does not exist: exit 3');
  });

  it('flare job outputs --array gathers every job of a sweep, one folder per index', async () => {
    const answer = await api('POST', '/v1/jobs', ALICE, { template: 'writer', array: { size: 2 } });
    assert.equal(answer.status, 202, JSON.stringify(answer.body));
    const { arrayId, items } = answer.body as { arrayId: string; items: Array<{ id: string; arrayIndex: number }> };
    for (const job of items) assert.equal((await ended(job.id)).state, 'SUCCEEDED');

    const list = await flare(['job', 'outputs', '--array', arrayId]);
    assert.equal(list.code, 0, list.stderr);
    const rows = list.stdout.trim().split('\n');
    assert.match(rows[0]!, /^INDEX +JOB +PATH +SIZE +MODIFIED$/);
    assert.equal(rows.length, 5, 'two files of each of two jobs');
    assert.match(rows[1]!, new RegExp(`^0 +${items[0]!.id} +a\\.txt +5 B`));

    const target = join(dir, 'sweep');
    const download = await flare(['job', 'outputs', '--array', arrayId, '--download', target]);
    assert.equal(download.code, 0, download.stderr);
    for (const job of items) {
      assert.equal(await readFile(join(target, String(job.arrayIndex), 'a.txt'), 'utf8'), 'hello');
      assert.equal(await readFile(join(target, String(job.arrayIndex), 'sub', 'deep', 'n.txt'), 'utf8'), job.id);
    }
    const bytes = items.reduce((sum, job) => sum + 5 + job.id.length, 0);
    assert.match(
      download.stdout,
      new RegExp(`^4 files of 2 jobs, ${bytes} B saved to .*\\(one folder per index\\)$`, 'm'),
    );

    const both = await flare(['job', 'outputs', items[0]!.id, '--array', arrayId]);
    assert.equal(both.code, 2, 'a job id and --array: usage error');
    const unknown = await flare(['job', 'outputs', '--array', 'a-0000000000000000']);
    assert.equal(unknown.code, 3, unknown.stderr);
  });
});
