/**
 * Sessions into jobs on AWS are logged by construction (lib/session-documents.ts):
 * the stack's shell document streams every session to its own log group, which
 * the instances may write to and nothing else, encrypted with a key of its own
 * that only CloudWatch Logs may use, for that group only (judged by the IAM
 * simulation, @cloud-copilot/iam-simulate, of the key's policy); the port-forward document
 * reaches only a container address; the API names both documents; cdk-nag clean.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { runUnsafeSimulation } from '@cloud-copilot/iam-simulate';
import { AwsSolutionsChecks } from 'cdk-nag';
import { CONTAINER_HOST_PATTERN, SHELL_PROFILE } from '../../lib/session-documents.js';
import { type CfnTemplate, arnOf, resolveValue } from '../artifact/support/cfn-resolve.js';
import { ARTIFACT_ACCOUNT, ARTIFACT_REGION } from '../artifact/support/types.js';
import { actionsOf, statements } from '../support/cdk-policies.js';
import { logicalId, removeStandIns, synthStack, type SynthesizedStack } from '../support/cdk-synth.js';

let synth: SynthesizedStack;
before(() => {
  synth = synthStack();
});
after(() => removeStandIns());

function documentNamed(name: string): any {
  const found = Object.values(synth.resources).filter(
    (r) => r.Type === 'AWS::SSM::Document' && r.Properties.Name === name,
  );
  assert.equal(found.length, 1, name);
  return found[0]!.Properties;
}

describe("the stack's Session Manager documents", () => {
  it('streams every shell session to its own log group, with a retention, and starts it in the job container', () => {
    const { stack, resources } = synth;
    const shell = documentNamed('FlareStack-JobShell');
    assert.equal(shell.DocumentType, 'Session');
    assert.equal(shell.UpdateMethod, 'NewVersion');
    assert.equal(shell.Content.sessionType, 'Standard_Stream');
    const logGroup = logicalId(stack, stack.sessions.logGroup);
    assert.deepEqual(shell.Content.inputs.cloudWatchLogGroupName, { Ref: logGroup });
    assert.equal(shell.Content.inputs.cloudWatchStreamingEnabled, true);
    // Session Manager then refuses to stream to a group without a KMS key.
    assert.equal(shell.Content.inputs.cloudWatchEncryptionEnabled, true);
    assert.equal(shell.Content.inputs.runAsEnabled, false);
    assert.equal(shell.Content.inputs.shellProfile.linux, SHELL_PROFILE);
    assert.match(SHELL_PROFILE, /exec sudo docker exec --interactive --tty "\$container"/);
    assert.equal(resources[logGroup]!.Properties.RetentionInDays, 30);
  });

  it('encrypts the session log group with its own rotated key', () => {
    const { stack, template } = synth;
    const key = logicalId(stack, stack.sessions.logKey);
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    assert.equal(synth.resources[key]!.Properties.EnableKeyRotation, true);
    template.hasResourceProperties('AWS::Logs::LogGroup', {
      LogGroupName: '/flare/FlareStack/sessions',
      KmsKeyId: { 'Fn::GetAtt': [key, 'Arn'] },
    });
  });

  it('lets CloudWatch Logs use the key for the session log group only, and no role of the stack use it', async () => {
    const { stack, resources } = synth;
    const template = synth.template.toJSON() as CfnTemplate;
    const key = logicalId(stack, stack.sessions.logKey);
    const keyArn = arnOf(template, key);
    const keyPolicy = resolveValue(template, resources[key]!.Properties.KeyPolicy);
    const logGroupArn = (name: string) => `arn:aws:logs:${ARTIFACT_REGION}:${ARTIFACT_ACCOUNT}:log-group:${name}`;
    // runUnsafeSimulation: runSimulation drops a `kms:EncryptionContext:<key>` whose key has colons (aws:logs:arn);
    // the policy goes in pre-validated (iam-policy's ValidatedPolicy) so that it has the name the unsafe run reports.
    const onKey = (principal: string, action: string, context: Record<string, string>) =>
      runUnsafeSimulation(
        {
          request: {
            principal,
            action,
            resource: { resource: keyArn, accountId: ARTIFACT_ACCOUNT },
            contextVariables: context,
          },
          identityPolicies: [],
          resourcePolicy: { __validated: true, policyDocument: keyPolicy, metadata: { name: key }, errors: [] },
          serviceControlPolicies: [],
          resourceControlPolicies: [],
        },
        {},
      );
    const logs = `logs.${ARTIFACT_REGION}.amazonaws.com`;
    const sessions = { 'kms:EncryptionContext:aws:logs:arn': logGroupArn('/flare/FlareStack/sessions') };
    for (const action of ['kms:GenerateDataKey', 'kms:Encrypt', 'kms:Decrypt', 'kms:DescribeKey'])
      assert.equal(await onKey(logs, action, sessions), 'Allowed', action);
    const other = { 'kms:EncryptionContext:aws:logs:arn': logGroupArn('/flare/FlareStack/other') };
    assert.equal(await onKey(logs, 'kms:GenerateDataKey', other), 'ImplicitlyDenied', 'another log group');
    assert.equal(await onKey(logs, 'kms:Decrypt', {}), 'ImplicitlyDenied', 'no log group');
    assert.equal(
      await onKey('s3.amazonaws.com', 'kms:GenerateDataKey', sessions),
      'ImplicitlyDenied',
      'another service',
    );
    assert.equal(await onKey(logs, 'kms:ScheduleKeyDeletion', sessions), 'ImplicitlyDenied');
    // The account administers the key (CDK's default statement); no role of the stack is granted any use of it.
    const onTheKey = statements(resources).filter(({ statement }) => JSON.stringify(statement).includes(key));
    assert.deepEqual(
      onTheKey.filter(({ statement }) => actionsOf(statement).some((a) => a.startsWith('kms:'))),
      [],
    );
  });

  it('forwards ports only to a container address on the instance', () => {
    const port = documentNamed('FlareStack-JobPortForward');
    assert.equal(port.Content.sessionType, 'Port');
    assert.equal(port.Content.properties.type, 'LocalPortForwarding');
    assert.equal(port.Content.parameters.host.allowedPattern, CONTAINER_HOST_PATTERN);
    const host = new RegExp(CONTAINER_HOST_PATTERN);
    for (const ok of ['172.17.0.2', '172.31.255.4', '192.168.0.9', 'localhost']) assert.ok(host.test(ok), ok);
    for (const bad of ['169.254.169.254', '10.0.1.5', '172.32.0.1', 'example.com', '172.17.0.2 ; x'])
      assert.ok(!host.test(bad), bad);
    const portNumber = new RegExp(port.Content.parameters.portNumber.allowedPattern);
    for (const ok of ['1', '8888', '65535']) assert.ok(portNumber.test(ok), ok);
    for (const bad of ['0', '65536', '08', '']) assert.ok(!portNumber.test(bad), bad);
  });

  it('lets the instances write the session log group, and no other function or role', () => {
    const { stack, resources } = synth;
    const logGroupArn = { 'Fn::GetAtt': [logicalId(stack, stack.sessions.logGroup), 'Arn'] };
    const onIt = statements(resources).filter(
      ({ statement }) => JSON.stringify(statement.Resource) === JSON.stringify(logGroupArn),
    );
    assert.deepEqual(
      onIt.map(({ policy, statement }) => [resources[policy]!.Properties.Roles, actionsOf(statement).sort()]),
      [
        [
          [{ Ref: logicalId(stack, stack.compute.instanceRole) }],
          ['logs:CreateLogStream', 'logs:DescribeLogStreams', 'logs:PutLogEvents'],
        ],
      ],
    );
  });

  it('tells the API (only) which documents to answer POST /session with, and outputs them', () => {
    const { stack, resources, template } = synth;
    const env = resources[logicalId(stack, stack.api.function)]!.Properties.Environment.Variables;
    assert.equal(env.SESSION_SHELL_DOCUMENT, 'FlareStack-JobShell');
    assert.equal(env.SESSION_PORT_DOCUMENT, 'FlareStack-JobPortForward');
    for (const fn of [stack.tasks, stack.computeEvents.handler, stack.reconciler.handler]) {
      const other = resources[logicalId(stack, fn.function)]!.Properties.Environment.Variables;
      assert.equal(other.SESSION_SHELL_DOCUMENT, undefined, fn.node.path);
    }
    const outputs = template.toJSON().Outputs;
    assert.equal(outputs.SessionShellDocument.Value, 'FlareStack-JobShell');
    assert.equal(outputs.SessionPortForwardDocument.Value, 'FlareStack-JobPortForward');
    assert.deepEqual(outputs.SessionLogGroupName.Value, { Ref: logicalId(stack, stack.sessions.logGroup) });
  });

  it('has no cdk-nag finding on the sessions left unacknowledged', () => {
    const report = new AwsSolutionsChecks().validateScope(synth.stack.sessions);
    const findings = report.violations.flatMap((v) =>
      v.violatingResources.map((r) => `${v.ruleName}: ${r.constructPath}`),
    );
    assert.deepEqual(findings, []);
  });
});
