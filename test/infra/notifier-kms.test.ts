/**
 * Webhook secrets under an operator's own KMS key: the operator creates the
 * channels' secrets (the stack never does) and may encrypt one with a customer
 * managed key, named on its channel as `kmsKeyArn`. The notifier's role then
 * may `kms:Decrypt` with that key only through Secrets Manager in the stack's
 * region, judged by the IAM simulation (@cloud-copilot/iam-simulate) of the
 * synthesized policies; without `kmsKeyArn` it gets no KMS permission at all.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { App } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { FlareStack } from '../../lib/flare-stack.js';
import { secretArn, type CfnTemplate } from '../artifact/support/cfn-resolve.js';
import { type RolePolicies, rolePolicies } from '../artifact/support/iam-check.js';
import { decide } from '../artifact/support/policy-simulation.js';
import { ARTIFACT_ACCOUNT, ARTIFACT_REGION } from '../artifact/support/types.js';
import { grantsOf } from '../support/cdk-policies.js';
import { logicalId, removeStandIns, standIns, synthStack, type SynthesizedStack } from '../support/cdk-synth.js';

const KEY = `arn:aws:kms:${ARTIFACT_REGION}:${ARTIFACT_ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
const OTHER_KEY = `arn:aws:kms:${ARTIFACT_REGION}:${ARTIFACT_ACCOUNT}:key/mrk-0123456789abcdef0123456789abcdef`;
const VIA_SECRETS_MANAGER = { 'kms:ViaService': `secretsmanager.${ARTIFACT_REGION}.amazonaws.com` };
const channels = [
  { id: 'vision-slack', type: 'slack', secretName: 'flare/webhooks/vision-slack', kmsKeyArn: KEY },
  // Same key twice: one grant.
  { id: 'vision-teams', type: 'teams', secretName: 'flare/webhooks/vision-teams', kmsKeyArn: KEY },
  { id: 'ops-teams', type: 'teams', secretName: 'flare/webhooks/ops-teams' },
];

/** KMS's default key policy: the account's IAM policies decide who may use the key. */
const DEFAULT_KEY_POLICY = {
  Version: '2012-10-17',
  Statement: [
    {
      Sid: 'Enable IAM User Permissions',
      Effect: 'Allow',
      Principal: { AWS: `arn:aws:iam::${ARTIFACT_ACCOUNT}:root` },
      Action: 'kms:*',
      Resource: '*',
    },
  ],
};
/** A key policy that names its users itself, and not the notifier. */
const CLOSED_KEY_POLICY = {
  Version: '2012-10-17',
  Statement: [
    {
      Effect: 'Allow',
      Principal: { AWS: `arn:aws:iam::${ARTIFACT_ACCOUNT}:role/someone-else` },
      Action: 'kms:Decrypt',
      Resource: '*',
    },
  ],
};

let synth: SynthesizedStack;
let notifier: RolePolicies;
before(() => {
  synth = synthStack({ 'flare:notifications': channels });
  const roles = rolePolicies(synth.template.toJSON() as CfnTemplate);
  notifier = roles.get(logicalId(synth.stack, synth.stack.notifier!.handler.role))!;
  assert.ok(notifier, 'the notifier role');
});
after(removeStandIns);

/** What KMS answers the notifier for `action` on `key`: its role's policies and the key's policy. */
async function onKey(
  action: string,
  key: string,
  context: Record<string, string> = {},
  keyPolicy: unknown = DEFAULT_KEY_POLICY,
): Promise<string> {
  const result = await runSimulation(
    {
      request: {
        principal: notifier.roleArn,
        action,
        resource: { resource: key, accountId: ARTIFACT_ACCOUNT },
        contextVariables: context,
      },
      identityPolicies: notifier.identityPolicies,
      resourcePolicy: keyPolicy,
      serviceControlPolicies: [],
      resourceControlPolicies: [],
    },
    {},
  );
  if (result.resultType === 'error') throw new Error(JSON.stringify(result.errors));
  return result.overallResult;
}

describe('webhook secrets under a customer managed key', () => {
  it('creates no secret: the operator brings them, under the key they choose', () => {
    synth.template.resourceCountIs('AWS::SecretsManager::Secret', 0);
  });

  it("grants the notifier kms:Decrypt on the channels' key, once, only via Secrets Manager in the stack's region", () => {
    synth.template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: logicalId(synth.stack, synth.stack.notifier!.handler.role) }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          {
            Sid: 'DecryptWebhookSecrets',
            Effect: 'Allow',
            Action: 'kms:Decrypt',
            Resource: KEY,
            Condition: {
              StringEquals: {
                'kms:ViaService': { 'Fn::Join': ['', ['secretsmanager.', { Ref: 'AWS::Region' }, '.amazonaws.com']] },
              },
            },
          },
        ]),
      },
    });
  });

  it('lets the notifier decrypt with that key through Secrets Manager only, and with no other key', async () => {
    const webhook = secretArn('flare/webhooks/vision-slack');
    assert.equal(await decide(notifier, 'secretsmanager:GetSecretValue', webhook), 'Allowed');
    assert.equal(await onKey('kms:Decrypt', KEY, VIA_SECRETS_MANAGER), 'Allowed');
    // A direct call (no service in between), another service, another region, another key.
    assert.equal(await onKey('kms:Decrypt', KEY), 'ImplicitlyDenied', 'direct');
    assert.equal(
      await onKey('kms:Decrypt', KEY, { 'kms:ViaService': `s3.${ARTIFACT_REGION}.amazonaws.com` }),
      'ImplicitlyDenied',
      'via S3',
    );
    assert.equal(
      await onKey('kms:Decrypt', KEY, { 'kms:ViaService': 'secretsmanager.eu-north-1.amazonaws.com' }),
      'ImplicitlyDenied',
      'another region',
    );
    assert.equal(await onKey('kms:Decrypt', OTHER_KEY, VIA_SECRETS_MANAGER), 'ImplicitlyDenied', 'another key');
    for (const action of ['kms:Encrypt', 'kms:GenerateDataKey', 'kms:ReEncryptFrom'])
      assert.equal(await onKey(action, KEY, VIA_SECRETS_MANAGER), 'ImplicitlyDenied', action);
  });

  it("needs a key policy that lets the account's IAM policies grant its use (KMS's default one), as docs/operations.md says", async () => {
    assert.equal(await onKey('kms:Decrypt', KEY, VIA_SECRETS_MANAGER, CLOSED_KEY_POLICY), 'ImplicitlyDenied');
  });

  it('grants no KMS action when no channel names a key', () => {
    const plain = synthStack({ 'flare:notifications': [channels[2]] });
    const kms = [...grantsOf(plain.stack, plain.resources, plain.stack.notifier!.handler).keys()].filter((a) =>
      a.startsWith('kms:'),
    );
    assert.deepEqual(kms, []);
  });

  it('refuses a key given by alias, or anything but a key ARN, naming the field', () => {
    for (const kmsKeyArn of [
      `arn:aws:kms:${ARTIFACT_REGION}:${ARTIFACT_ACCOUNT}:alias/flare-webhooks`,
      'alias/aws/secretsmanager',
      '1234abcd-12ab-34cd-56ef-1234567890ab',
      `${KEY}*`,
    ]) {
      const context = { 'flare:notifications': [{ ...channels[0], kmsKeyArn }], 'aws:cdk:bundling-stacks': [] };
      assert.throws(
        () => new FlareStack(new App({ context }), 'FlareStack', standIns()),
        {
          name: 'InvalidSetting',
          message: /^context flare:notifications\[0\]\.kmsKeyArn: must be the ARN of a KMS key/,
        },
        kmsKeyArn,
      );
    }
  });

  it('reports no unacknowledged cdk-nag finding', () => {
    const report = new AwsSolutionsChecks().validateScope(synth.stack);
    assert.deepEqual(
      report.violations.flatMap((v) => v.violatingResources.map((r) => `${v.ruleName}: ${r.constructPath}`)),
      [],
    );
  });
});
