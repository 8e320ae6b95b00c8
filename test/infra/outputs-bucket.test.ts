/**
 * The outputs bucket: private, encrypted, TLS only, expired by a lifecycle rule
 * whose days come from `flare:outputsRetentionDays` (default 30), kept when the
 * stack goes, cdk-nag clean (S1 acknowledged with its reason); the API may list,
 * read and delete it and is told its name, and nothing else in the stack may.
 */
import assert from 'node:assert/strict';
import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { before, describe, it } from 'node:test';
import { DEFAULT_OUTPUTS_RETENTION_DAYS, OutputsBucket } from '../../lib/outputs-bucket.js';
import { logicalId, render, synthStack, type SynthesizedStack } from '../support/cdk-synth.js';

function bucketAlone(retentionDays?: number): { app: App; template: Template } {
  const app = new App();
  const stack = new Stack(app, 'S');
  new OutputsBucket(stack, 'Outputs', retentionDays === undefined ? {} : { retentionDays });
  return { app, template: Template.fromStack(stack) };
}

describe('OutputsBucket', () => {
  it('blocks public access, encrypts, refuses plain HTTP, and expires outputs after 30 days by default', () => {
    const { template } = bucketAlone();
    assert.equal(DEFAULT_OUTPUTS_RETENTION_DAYS, 30);
    template.hasResource('AWS::S3::Bucket', {
      DeletionPolicy: 'Retain',
      Properties: {
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
        },
        LifecycleConfiguration: {
          Rules: [
            Match.objectLike({
              Id: 'expire-outputs',
              Status: 'Enabled',
              ExpirationInDays: 30,
              AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
            }),
          ],
        },
      },
    });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          Match.objectLike({
            Effect: 'Deny',
            Action: 's3:*',
            Condition: { NumericLessThan: { 's3:TlsVersion': 1.2 } },
          }),
        ]),
      },
    });
  });

  it('takes its retention in days and refuses one that is not a whole positive number', () => {
    bucketAlone(7).template.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: { Rules: [Match.objectLike({ ExpirationInDays: 7 })] },
    });
    for (const bad of [0, -1, 1.5]) assert.throws(() => bucketAlone(bad), /retentionDays must be a whole number/);
  });

  it('has no cdk-nag finding left unacknowledged', () => {
    const { app } = bucketAlone();
    const report = new AwsSolutionsChecks().validateScope(app);
    const findings = report.violations.flatMap((v) =>
      v.violatingResources.map((r) => `${v.ruleName}: ${r.constructPath}`),
    );
    assert.deepEqual(findings, []);
  });
});

describe('the stack and its outputs bucket', () => {
  let synth: SynthesizedStack;
  before(() => {
    synth = synthStack({ 'flare:outputsRetentionDays': '90' });
  });

  it('reads its retention from flare:outputsRetentionDays, refuses a bad one and a bad flare:outputsMaxBytes by key', () => {
    synth.template.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: { Rules: [Match.objectLike({ Id: 'expire-outputs', ExpirationInDays: 90 })] },
    });
    assert.throws(() => synthStack({ 'flare:outputsRetentionDays': '0' }), /flare:outputsRetentionDays/);
    assert.throws(
      () => synthStack({ 'flare:outputsMaxBytes': '0' }),
      /context flare:outputsMaxBytes: must be a whole number of bytes from 1 to/,
    );
  });

  it('tells the API and the tasks function its name; the API lists, reads and deletes, the tasks function only puts (to sign uploads), the instances nothing', () => {
    const { stack, resources } = synth;
    const bucket = logicalId(stack, stack.outputs.bucket);
    const api = resources[logicalId(stack, stack.api.function)]!;
    const tasks = resources[logicalId(stack, stack.tasks.function)]!;
    assert.equal(render(api.Properties.Environment.Variables.OUTPUTS_BUCKET), `<${bucket}>`);
    assert.equal(render(tasks.Properties.Environment.Variables.OUTPUTS_BUCKET), `<${bucket}>`);
    assert.equal(tasks.Properties.Environment.Variables.OUTPUTS_MAX_BYTES, String(10 * 2 ** 30), 'the default cap');
    const touching = Object.entries(resources).filter(
      ([, r]) => r.Type === 'AWS::IAM::Policy' && JSON.stringify(r.Properties.PolicyDocument).includes(`"${bucket}"`),
    );
    const apiRole = logicalId(stack, stack.api.role as never);
    const tasksRole = logicalId(stack, stack.tasks.role as never);
    const grants = touching.map(([, r]) => [
      r.Properties.Roles.map(render),
      r.Properties.PolicyDocument.Statement.map((st: { Action: string | string[]; Resource: unknown }) => [
        [st.Action].flat(),
        render(st.Resource),
      ]),
    ]);
    assert.deepEqual(
      grants,
      [
        [
          [`<${apiRole}>`],
          [
            [['s3:ListBucket'], `<${bucket}.Arn>`],
            [['s3:GetObject', 's3:DeleteObject'], `<${bucket}.Arn>/*`],
          ],
        ],
        [[`<${tasksRole}>`], [[['s3:PutObject'], `<${bucket}.Arn>/*`]]],
      ],
      'the API: list, read and delete, never a write; the tasks function: put only; no other role',
    );
    const instanceRole = logicalId(stack, stack.compute.instanceRole);
    const instancePolicies = Object.values(resources).filter(
      (r) => r.Type === 'AWS::IAM::Policy' && r.Properties.Roles.map(render).includes(`<${instanceRole}>`),
    );
    assert.ok(instancePolicies.length > 0);
    assert.doesNotMatch(JSON.stringify(instancePolicies), /"s3:/, 'the instance role has no S3 action at all');
  });
});
