/**
 * Who may read a job's secrets on AWS, by the IAM simulation
 * (@cloud-copilot/iam-simulate) of the real synthesized FlareStack's policies
 * (bundling skipped): a job instance reads only the copy of its job's values
 * tagged with its own ARN, never another instance's copy and never a project
 * secret; the tasks read project secrets and write the copies; the API writes
 * project secrets and reads them only under its deployment's prefix. Every
 * allowed request has a denied twin, so a check that allowed everything fails.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { INSTANCE_TAG, jobSecretName, projectSecretName } from '../../contract/secrets.js';
import { secretArn } from './support/cfn-resolve.js';
import { decide, stackPolicies, type StackPolicies } from './support/policy-simulation.js';
import { ARTIFACT_ACCOUNT, ARTIFACT_REGION } from './support/types.js';

let stack: StackPolicies;
const role = (prefix: string) => stack.role(prefix);

const instanceArn = (id: string) => `arn:aws:ec2:${ARTIFACT_REGION}:${ARTIFACT_ACCOUNT}:instance/${id}`;
const JOB_COPY = secretArn(jobSecretName('FlareStack', 'job-1', 'i-0aaaaaaaaaaaaaaa1'));
const PROJECT_SECRET = secretArn(projectSecretName('FlareStack', 'vision', 'openai-key'));

before(() => {
  stack = stackPolicies();
});

describe('job secrets by the IAM simulation', () => {
  it('lets an instance read the copy tagged with its own ARN, and nothing else', async () => {
    const instance = role('ComputeInstanceRole');
    const own = {
      'ec2:SourceInstanceARN': instanceArn('i-0aaaaaaaaaaaaaaa1'),
      [`aws:ResourceTag/${INSTANCE_TAG}`]: instanceArn('i-0aaaaaaaaaaaaaaa1'),
    };
    assert.equal(await decide(instance, 'secretsmanager:GetSecretValue', JOB_COPY, own), 'Allowed');
    // Another instance (another job, or the same project's) asking for that copy.
    assert.equal(
      await decide(instance, 'secretsmanager:GetSecretValue', JOB_COPY, {
        ...own,
        'ec2:SourceInstanceARN': instanceArn('i-0bbbbbbbbbbbbbbb2'),
      }),
      'ImplicitlyDenied',
    );
    // Credentials used off the instance carry no source instance.
    assert.equal(
      await decide(instance, 'secretsmanager:GetSecretValue', JOB_COPY, {
        [`aws:ResourceTag/${INSTANCE_TAG}`]: instanceArn('i-0aaaaaaaaaaaaaaa1'),
      }),
      'ImplicitlyDenied',
    );
    // A project secret, even with a tag made up to match.
    assert.equal(await decide(instance, 'secretsmanager:GetSecretValue', PROJECT_SECRET, own), 'ImplicitlyDenied');
    for (const action of ['secretsmanager:PutSecretValue', 'secretsmanager:DeleteSecret'])
      assert.equal(await decide(instance, action, JOB_COPY, own), 'ImplicitlyDenied', action);
    assert.equal(
      await decide(instance, 'secretsmanager:ListSecrets', '*', {
        'ec2:SourceInstanceARN': own['ec2:SourceInstanceARN'],
      }),
      'ImplicitlyDenied',
    );
  });

  it('lets the tasks read project secrets and write the copies, and the API write project secrets, both in this deployment only', async () => {
    const tasks = role('TasksRole');
    const api = role('ApiRole');
    assert.equal(await decide(tasks, 'secretsmanager:GetSecretValue', PROJECT_SECRET), 'Allowed');
    assert.equal(await decide(tasks, 'secretsmanager:CreateSecret', JOB_COPY), 'Allowed');
    assert.equal(await decide(tasks, 'secretsmanager:DeleteSecret', JOB_COPY), 'Allowed');
    assert.equal(await decide(tasks, 'secretsmanager:PutSecretValue', PROJECT_SECRET), 'ImplicitlyDenied');
    for (const action of ['CreateSecret', 'PutSecretValue', 'DeleteSecret', 'GetSecretValue'])
      assert.equal(await decide(api, `secretsmanager:${action}`, PROJECT_SECRET), 'Allowed', action);
    assert.equal(await decide(api, 'secretsmanager:GetSecretValue', JOB_COPY), 'ImplicitlyDenied');
    const otherDeployment = secretArn(projectSecretName('OtherStack', 'vision', 'openai-key'));
    for (const who of [tasks, api])
      assert.equal(await decide(who, 'secretsmanager:GetSecretValue', otherDeployment), 'ImplicitlyDenied');
  });
});
