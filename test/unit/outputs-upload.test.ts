/**
 * The AWS upload of a job's outputs: the script SSM runs on its instance, run
 * here for real (sh and python3, a `docker` stand-in on PATH) against a local
 * HTTP server that reads S3's POST form; the form's policy as signed by
 * S3OutputsUpload; and the job's record built from the script's report.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { S3Client } from '@aws-sdk/client-s3';
import { postPolicyOf, S3OutputsUpload } from '../../lambdas/adapters/s3-outputs-upload.js';
import {
  readUploadReport,
  UPLOAD_PROGRAM,
  uploadedOutputsRecord,
  uploadScript,
  type OutputsUploadRequest,
} from '../../lambdas/core/outputs-upload.js';
import { ValidationError } from '../../lambdas/core/errors.js';

const run = promisify(execFile);

interface Posted {
  fields: Record<string, string>;
  body: Buffer;
}

/** Reads a multipart/form-data POST into its fields and the file's bytes; answers 204 or `refuse(fields)`. */
function formServer(posted: Posted[], refuse: (fields: Record<string, string>) => number | undefined): Server {
  return createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      assert.equal(raw.length, Number(req.headers['content-length']), 'Content-Length is the body sent');
      const boundary = /boundary=([0-9a-f]+)$/.exec(req.headers['content-type'] ?? '')![1];
      const fields: Record<string, string> = {};
      let body = Buffer.alloc(0);
      const sep = Buffer.from(`--${boundary}`);
      let at = raw.indexOf(sep) + sep.length;
      while (raw.subarray(at, at + 2).toString() === '\r\n') {
        const next = raw.indexOf(Buffer.from(`\r\n--${boundary}`), at);
        const part = raw.subarray(at + 2, next);
        const split = part.indexOf('\r\n\r\n');
        const name = /name="([^"]+)"/.exec(part.subarray(0, split).toString())![1];
        const value = part.subarray(split + 4);
        if (name === 'file') body = value;
        else fields[name] = value.toString('utf8');
        at = next + 2 + sep.length;
      }
      posted.push({ fields, body });
      const status = refuse(fields) ?? 204;
      res.writeHead(status).end();
    });
  });
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/bucket/`;
}

describe('the upload script, run as the instance runs it', () => {
  let dir: string;
  let bin: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flare-upload-'));
    bin = join(dir, 'bin');
    await mkdir(bin);
    // Answers `container inspect` with $FAKE_RUNNING: whether the job's container still runs.
    await writeFile(
      join(bin, 'docker'),
      `#!/bin/sh\necho "$@" >> ${join(dir, 'docker.log')}\n[ "$1" = container ] && echo "$FAKE_RUNNING"\nexit 0\n`,
    );
    await chmod(join(bin, 'docker'), 0o755);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  async function runScript(outputs: string, request: OutputsUploadRequest, running = false) {
    const script = uploadScript('j-7', outputs, request);
    await rm(join(dir, 'docker.log'), { force: true });
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, FAKE_RUNNING: String(running) };
    try {
      const { stdout } = await run('sh', ['-c', script], { env });
      return { code: 0, stdout };
    } catch (error) {
      const e = error as { code: number; stdout: string };
      return { code: e.code, stdout: e.stdout };
    }
  }

  it('posts whole files in path order under the prefix while they fit the cap, skips links, and reports it', async () => {
    const outputs = join(dir, 'outputs-a');
    await mkdir(join(outputs, 'sub'), { recursive: true });
    await writeFile(join(outputs, 'a.txt'), 'aaaa'); // 4
    await writeFile(join(outputs, 'b.bin'), Buffer.alloc(10, 1)); // 10: over the cap after a.txt
    await writeFile(join(outputs, 'sub', 'it\'s "quoted" $(x).txt'), 'cc'); // 2: still fits
    await symlink('/etc/passwd', join(outputs, 'link'));
    const posted: Posted[] = [];
    const server = formServer(posted, () => undefined);
    const url = await listen(server);
    try {
      const request: OutputsUploadRequest = {
        url,
        fields: { policy: 'cG9saWN5', 'x-amz-signature': 'sig' },
        prefix: 'vision/j-7/',
        maxBytes: 8,
        maxFileBytes: 8,
      };
      const { code, stdout } = await runScript(outputs, request);
      assert.equal(code, 0, stdout);
      // An expired job's container was stopped already: nothing to stop.
      assert.equal(
        await readFile(join(dir, 'docker.log'), 'utf8'),
        'container inspect --format {{.State.Running}} flare-j-7\n',
      );
      assert.deepEqual(
        posted.map((p) => [p.fields.key, p.body.toString(), p.fields.policy, p.fields['x-amz-signature']]),
        [
          ['vision/j-7/a.txt', 'aaaa', 'cG9saWN5', 'sig'],
          ['vision/j-7/sub/it\'s "quoted" $(x).txt', 'cc', 'cG9saWN5', 'sig'],
        ],
      );
      const report = readUploadReport(stdout)!;
      assert.deepEqual(uploadedOutputsRecord(report, 8), {
        count: 2,
        bytes: 6,
        truncated: true,
        error: 'over the 8-byte cap: 1 files (10 bytes) were not kept',
      });
    } finally {
      server.close();
    }
  });

  it('stops a container that still runs first; says when S3 refused a file, exits 1, and never leaves the request on the instance', async () => {
    const outputs = join(dir, 'outputs-b');
    await mkdir(outputs, { recursive: true });
    await writeFile(join(outputs, 'a.txt'), 'aaaa');
    await writeFile(join(outputs, 'b.txt'), 'bb');
    const posted: Posted[] = [];
    const server = formServer(posted, (f) => (f.key === 'vision/j-7/a.txt' ? 403 : undefined));
    const url = await listen(server);
    try {
      const { code, stdout } = await runScript(
        outputs,
        { url, fields: {}, prefix: 'vision/j-7/', maxBytes: 100, maxFileBytes: 100 },
        true,
      );
      assert.equal(code, 1);
      // A cancelled job still runs: its container is stopped before its files are read.
      assert.deepEqual((await readFile(join(dir, 'docker.log'), 'utf8')).trim().split('\n'), [
        'container inspect --format {{.State.Running}} flare-j-7',
        'stop --time 10 flare-j-7',
      ]);
      assert.deepEqual(uploadedOutputsRecord(readUploadReport(stdout)!, 100), {
        count: 1,
        bytes: 2,
        error: 'upload failed for 1 files (4 bytes): HTTP 403',
      });
      await assert.rejects(() => run('test', ['-e', '/run/flare/j-7.upload.json']));
    } finally {
      server.close();
    }
  });

  it('carries the request only base64-encoded; the program has no single quote; bad ids and prefixes make no script', () => {
    const request: OutputsUploadRequest = {
      url: "http://x/'; rm -rf / #",
      fields: { policy: '$(reboot)' },
      prefix: 'vision/j-7/',
      maxBytes: 1,
      maxFileBytes: 1,
    };
    const script = uploadScript('j-7', '/var/lib/flare/outputs/j-7', request);
    assert.doesNotMatch(script, /reboot|rm -rf/);
    assert.doesNotMatch(UPLOAD_PROGRAM, /'/);
    assert.throws(() => uploadScript('J;x', '/o', request), ValidationError);
    assert.throws(() => uploadScript('j-7', '/o', { ...request, prefix: 'vision/j-8/' }), ValidationError);
    assert.throws(() => uploadScript('j-7', '/o/../etc', request), ValidationError);
  });
});

describe('S3OutputsUpload', () => {
  it("signs a form whose policy pins the job's prefix, the cap per file, the bucket and a short expiry", async () => {
    const client = new S3Client({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret', sessionToken: 'token' },
    });
    const now = new Date('2030-01-01T00:00:00.000Z');
    const form = await new S3OutputsUpload(client, 'flare-outputs-1', 1000, () => now).request({
      id: 'j-7',
      project: 'vision',
    });
    assert.equal(form.url, 'https://flare-outputs-1.s3.eu-west-1.amazonaws.com/');
    assert.equal(form.prefix, 'vision/j-7/');
    assert.deepEqual(postPolicyOf(form.fields), {
      expiration: '2030-01-01T00:11:00.000Z',
      conditions: [
        { bucket: 'flare-outputs-1' },
        ['starts-with', '$key', 'vision/j-7/'],
        ['content-length-range', 0, 1000],
        { 'x-amz-algorithm': 'AWS4-HMAC-SHA256' },
        { 'x-amz-credential': 'AKIDTEST/20300101/eu-west-1/s3/aws4_request' },
        { 'x-amz-date': '20300101T000000Z' },
        { 'x-amz-security-token': 'token' },
      ],
    });
    // SigV4 for a POST policy: the signing key of the day, region and s3 over the base64 policy.
    const hmac = (k: string | Buffer, d: string) => createHmac('sha256', k).update(d).digest();
    const key = hmac(hmac(hmac(hmac('AWS4secret', '20300101'), 'eu-west-1'), 's3'), 'aws4_request');
    assert.equal(form.fields['x-amz-signature'], hmac(key, form.fields.policy!).toString('hex'));
    assert.equal(form.fields['x-amz-security-token'], 'token');
  });

  it('caps one file at what a single POST takes (5 GiB) when the per-job cap is larger', async () => {
    const client = new S3Client({ region: 'eu-west-1', credentials: { accessKeyId: 'A', secretAccessKey: 's' } });
    const form = await new S3OutputsUpload(client, 'b-1', 10 * 2 ** 30).request({ id: 'j-7', project: 'vision' });
    assert.equal(form.maxBytes, 10 * 2 ** 30);
    assert.equal(form.maxFileBytes, 5 * 2 ** 30);
    assert.deepEqual(postPolicyOf(form.fields).conditions[2], ['content-length-range', 0, 5 * 2 ** 30]);
  });
});
