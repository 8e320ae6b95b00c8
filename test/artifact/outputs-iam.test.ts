/**
 * Who may write a job's outputs on AWS: the IAM simulation
 * (@cloud-copilot/iam-simulate) of the real synthesized FlareStack's policies
 * (bundling skipped), and the form the tasks function signs for a stopping
 * job's instance (S3OutputsUpload), checked as S3 checks a presigned POST
 * (support/s3-post-policy.ts). The instance role may put nothing in S3; an
 * upload with the form is the tasks role's s3:PutObject on the key, and the
 * form's policy lets through only keys under the job's own `<project>/<jobId>/`,
 * files within the cap, before its expiry. Every allowed request has a refused twin.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { S3Client } from '@aws-sdk/client-s3';
import { S3OutputsUpload } from '../../lambdas/adapters/s3-outputs-upload.js';
import type { OutputsUploadRequest } from '../../lambdas/core/outputs-upload.js';
import { refOf } from './support/cfn-resolve.js';
import { decide, stackPolicies, type StackPolicies } from './support/policy-simulation.js';
import { postPolicyRefusal } from './support/s3-post-policy.js';
import { ARTIFACT_REGION } from './support/types.js';

let stack: StackPolicies;
let bucket: string;
const role = (prefix: string) => stack.role(prefix);
const object = (key: string) => `arn:aws:s3:::${bucket}/${key}`;

before(() => {
  stack = stackPolicies();
  const [bucketId] = Object.entries(stack.template.Resources).find(([, r]) => r.Type === 'AWS::S3::Bucket')!;
  bucket = refOf(stack.template, bucketId);
});

describe('job outputs by the IAM simulation and the upload form', () => {
  it('gives the instance role no S3 access at all, and the tasks role only PutObject (to sign forms)', async () => {
    const instance = role('ComputeInstanceRole');
    const tasks = role('TasksRole');
    const key = object('vision/job-1/result.txt');
    for (const action of ['s3:PutObject', 's3:GetObject', 's3:DeleteObject'])
      assert.equal(await decide(instance, action, key), 'ImplicitlyDenied', `instance ${action}`);
    assert.equal(await decide(instance, 's3:ListBucket', `arn:aws:s3:::${bucket}`), 'ImplicitlyDenied');
    assert.equal(await decide(tasks, 's3:PutObject', key), 'Allowed');
    for (const action of ['s3:GetObject', 's3:DeleteObject'])
      assert.equal(await decide(tasks, action, key), 'ImplicitlyDenied', `tasks ${action}`);
    assert.equal(await decide(tasks, 's3:PutObject', 'arn:aws:s3:::another-bucket/vision/job-1/x'), 'ImplicitlyDenied');
  });

  it('lets a form signed for job-1 upload only under vision/job-1/, within the cap, before it expires', async () => {
    const tasks = role('TasksRole');
    const signedAt = new Date('2030-01-01T00:00:00.000Z');
    // As the bundled tasks function signs it: with its role's credentials (the harness's secret key).
    const client = new S3Client({
      region: ARTIFACT_REGION,
      credentials: { accessKeyId: tasks.role, secretAccessKey: 'artifact-test-secret', sessionToken: 'session' },
    });
    const form: OutputsUploadRequest = await new S3OutputsUpload(client, bucket, 1000, () => signedAt).request({
      id: 'job-1',
      project: 'vision',
    });
    const uploaded = async (key: string, size = 10, at = new Date(signedAt.getTime() + 60_000)) => {
      const refusal = postPolicyRefusal({ bucket, fields: { ...form.fields, key }, size, at }, 'artifact-test-secret');
      if (refusal) return `refused by the form: ${refusal}`;
      return decide(tasks, 's3:PutObject', object(key));
    };
    assert.equal(await uploaded('vision/job-1/result.txt'), 'Allowed');
    assert.equal(await uploaded('vision/job-1/sub/n.txt'), 'Allowed');
    assert.match(await uploaded('vision/job-2/result.txt'), /^refused by the form: .*starts-with.*vision\/job-1\//);
    assert.match(await uploaded('audio/job-1/result.txt'), /^refused by the form: .*starts-with/);
    assert.match(await uploaded('vision/job-1'), /^refused by the form: .*starts-with/);
    assert.match(await uploaded('vision/job-1/big.bin', 1001), /^refused by the form: Entity/);
    assert.match(
      await uploaded('vision/job-1/late.txt', 10, new Date(signedAt.getTime() + 3600_000)),
      /^refused by the form: .*expired/,
    );
    // A policy widened on the instance no longer matches its signature.
    const widened = Buffer.from(
      Buffer.from(form.fields.policy!, 'base64').toString('utf8').replace('vision/job-1/', 'vision/'),
    ).toString('base64');
    assert.match(
      postPolicyRefusal(
        { bucket, fields: { ...form.fields, policy: widened, key: 'vision/job-2/x' }, size: 1, at: signedAt },
        'artifact-test-secret',
      ) ?? '',
      /SignatureDoesNotMatch/,
    );
    // Another bucket named in the form, or a field the policy does not cover.
    assert.match(
      postPolicyRefusal(
        { bucket: 'another-bucket', fields: { ...form.fields, key: 'vision/job-1/x' }, size: 1, at: signedAt },
        'artifact-test-secret',
      ) ?? '',
      /bucket/,
    );
    assert.match(
      postPolicyRefusal(
        {
          bucket,
          fields: { ...form.fields, key: 'vision/job-1/x', 'x-amz-meta-owner': 'me' },
          size: 1,
          at: signedAt,
        },
        'artifact-test-secret',
      ) ?? '',
      /Extra input fields/,
    );
  });
});
