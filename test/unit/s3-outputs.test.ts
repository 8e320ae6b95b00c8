/**
 * S3Outputs against the AWS SDK with aws-sdk-client-mock: the exact
 * ListObjectsV2, HeadObject and DeleteObjects requests, paging, and a real
 * SigV4 presigned GET for the 307.
 */
import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import {
  DeleteObjectsCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { attachment, OUTPUT_URL_SECONDS, outputPrefix, S3Outputs } from '../../lambdas/adapters/s3-outputs.js';
import type { Job } from '../../lambdas/core/job.js';
import { awsError } from '../support/aws-errors.js';

const client = new S3Client({ region: 'eu-west-1', credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test' } });
const s3 = mockClient(client);
const BUCKET = 'flare-outputs-123';
const job = { id: 'j-7', project: 'vision' } as Job;
const T = new Date('2030-01-01T00:00:00.000Z');

beforeEach(() => s3.reset());

describe('S3Outputs', () => {
  test("lists the job's prefix page by page, paths relative to it, skipping keys no path can name", async () => {
    s3.on(ListObjectsV2Command, { Bucket: BUCKET, Prefix: 'vision/j-7/' }).resolves({
      Contents: [
        { Key: 'vision/j-7/sub/n.txt', Size: 3, LastModified: T },
        { Key: 'vision/j-7/sub/', Size: 0, LastModified: T },
      ],
      IsTruncated: true,
      NextContinuationToken: 'page-2',
    });
    s3.on(ListObjectsV2Command, { Bucket: BUCKET, Prefix: 'vision/j-7/', ContinuationToken: 'page-2' }).resolves({
      Contents: [{ Key: 'vision/j-7/a.txt', Size: 5, LastModified: T }],
      IsTruncated: false,
    });
    const files = await new S3Outputs(client, BUCKET).list(job);
    assert.deepEqual(files, [
      { path: 'a.txt', size: 5, modifiedAt: T.toISOString() },
      { path: 'sub/n.txt', size: 3, modifiedAt: T.toISOString() },
    ]);
    assert.deepEqual(
      s3.commandCalls(ListObjectsV2Command).map((c) => c.args[0].input),
      [
        { Bucket: BUCKET, Prefix: 'vision/j-7/' },
        { Bucket: BUCKET, Prefix: 'vision/j-7/', ContinuationToken: 'page-2' },
      ],
    );
  });

  test('answers a kept file with a presigned GET of its key, valid for 5 minutes', async () => {
    s3.on(HeadObjectCommand).resolves({ ContentLength: 5 });
    const found = await new S3Outputs(client, BUCKET).download(job, 'sub/n.txt');
    assert.deepEqual(
      s3.commandCalls(HeadObjectCommand).map((c) => c.args[0].input),
      [{ Bucket: BUCKET, Key: 'vision/j-7/sub/n.txt' }],
    );
    assert.equal(found?.kind, 'redirect');
    const url = new URL((found as { url: string }).url);
    assert.equal(url.hostname, `${BUCKET}.s3.eu-west-1.amazonaws.com`);
    assert.equal(url.pathname, '/vision/j-7/sub/n.txt');
    assert.equal(url.searchParams.get('X-Amz-Expires'), String(OUTPUT_URL_SECONDS));
    assert.equal(OUTPUT_URL_SECONDS, 300);
    assert.equal(url.searchParams.get('response-content-type'), 'application/octet-stream');
    assert.match(url.searchParams.get('X-Amz-Signature') ?? '', /^[0-9a-f]{64}$/);
    assert.equal(url.searchParams.get('response-content-disposition'), "attachment; filename*=UTF-8''n.txt");
    const expiresIn = Date.parse((found as { expiresAt: string }).expiresAt) - Date.now();
    assert.ok(expiresIn > 290_000 && expiresIn <= 300_000, `the answer says when the URL expires (${expiresIn} ms)`);
  });

  test('a browser following the URL saves the file under its own name, whatever characters it has', () => {
    assert.equal(attachment('sub/model.pt'), "attachment; filename*=UTF-8''model.pt");
    assert.equal(
      attachment("runs/r\u00e9sum\u00e9 (1)'s *.txt"),
      "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9%20%281%29%27s%20%2A.txt",
    );
    assert.equal(attachment('a"b;c\\d.txt'), "attachment; filename*=UTF-8''a%22b%3Bc%5Cd.txt");
  });

  test('a key that is not there is no file (404), other errors are not hidden', async () => {
    s3.on(HeadObjectCommand).rejects(awsError(S3ServiceException, 'NotFound', { status: 404 }));
    assert.equal(await new S3Outputs(client, BUCKET).download(job, 'nothing.txt'), undefined);
    s3.on(HeadObjectCommand).rejects(awsError(S3ServiceException, 'AccessDenied', { status: 403 }));
    await assert.rejects(new S3Outputs(client, BUCKET).download(job, 'a.txt'), /AccessDenied/);
  });

  test('removes every key of the prefix in batches of 1000, and fails when S3 kept some', async () => {
    const keys = Array.from({ length: 1001 }, (_, i) => `vision/j-7/f${String(i).padStart(4, '0')}`);
    s3.on(ListObjectsV2Command).resolves({ Contents: keys.map((Key) => ({ Key, Size: 1, LastModified: T })) });
    s3.on(DeleteObjectsCommand).resolves({});
    await new S3Outputs(client, BUCKET).remove(job);
    const deletes = s3.commandCalls(DeleteObjectsCommand).map((c) => c.args[0].input);
    assert.equal(deletes.length, 2);
    assert.deepEqual(deletes[1], { Bucket: BUCKET, Delete: { Objects: [{ Key: keys[1000] }], Quiet: true } });
    assert.equal(deletes[0]!.Delete!.Objects!.length, 1000);

    s3.on(DeleteObjectsCommand).resolves({ Errors: [{ Key: keys[0], Code: 'AccessDenied' }] });
    await assert.rejects(new S3Outputs(client, BUCKET).remove(job), /could not delete 1 outputs of job j-7/);
  });

  test('a prefix is built only from a checked project and job id', () => {
    assert.equal(outputPrefix(job), 'vision/j-7/');
    for (const bad of [
      { id: '../x', project: 'vision' },
      { id: 'j-1', project: 'a/b' },
      { id: 'j-1', project: '' },
    ])
      assert.throws(() => outputPrefix(bad), /cannot name a key prefix/);
  });
});
