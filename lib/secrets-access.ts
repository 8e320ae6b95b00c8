/**
 * Who may touch which of the deployment's secrets in Secrets Manager (names in
 * contract/secrets.ts): the API writes, lists and deletes project secrets and
 * reads their values only to mask them in the logs it serves; the workflow's
 * tasks copy a starting job's values into one secret per instance, tagged with
 * that instance's ARN; an instance reads only the copy tagged with its own ARN
 * (`${ec2:SourceInstanceARN}`), so never another job's, nor any project's.
 */
import { ArnFormat, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import { INSTANCE_TAG, secretsPrefix } from '../contract/secrets.js';

/** Every secret of this deployment under `path` (`projects/*`); a secret's ARN ends in `-` and six random characters. */
export function deploymentSecretArns(scope: Construct, path: string): string {
  const stack = Stack.of(scope);
  return stack.formatArn({
    service: 'secretsmanager',
    resource: 'secret',
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    resourceName: `${secretsPrefix(stack.stackName)}${path}`,
  });
}

/**
 * A policy of its own on `role` (so that its cdk-nag acknowledgements cover nothing else), with IAM5
 * acknowledged, with its reason, for each path of this deployment's secrets it names with a wildcard.
 */
function secretsPolicy(
  scope: Construct,
  id: string,
  role: iam.IRole,
  statements: iam.PolicyStatement[],
  wildcards: Record<string, string>,
): iam.Policy {
  const policy = new iam.Policy(scope, id, { roles: [role], statements });
  const prefix = secretsPrefix(Stack.of(scope).stackName);
  for (const [path, reason] of Object.entries(wildcards)) {
    Validations.of(policy).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:${prefix}${path}]`,
      reason,
    });
  }
  return policy;
}

/** The API's grants on project secrets. */
export function grantProjectSecrets(scope: Construct, role: iam.IRole, id = 'ProjectSecretsPolicy'): iam.Policy {
  const write = new iam.PolicyStatement({
    sid: 'WriteProjectSecrets',
    actions: [
      'secretsmanager:CreateSecret',
      'secretsmanager:TagResource',
      'secretsmanager:PutSecretValue',
      'secretsmanager:DescribeSecret',
      'secretsmanager:DeleteSecret',
      // To mask a job's secret values in the logs the API serves.
      'secretsmanager:GetSecretValue',
    ],
    resources: [deploymentSecretArns(scope, 'projects/*')],
  });
  // ListSecrets authorizes on the account only; the adapter filters by the deployment's prefix.
  const list = new iam.PolicyStatement({
    sid: 'ListSecrets',
    actions: ['secretsmanager:ListSecrets'],
    resources: ['*'],
  });
  const policy = secretsPolicy(scope, id, role, [write, list], {
    'projects/*':
      "Project secrets are created at run time (PUT /v1/projects/{project}/secrets/{name}); the grant stops at this deployment's projects/ prefix.",
  });
  Validations.of(policy).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::*]',
    reason:
      'secretsmanager:ListSecrets supports no resource-level permissions; it lists names and dates, never values.',
  });
  return policy;
}

/** The tasks' grants: read project secrets, and write and delete the per-instance copies of a starting job's values. */
export function grantJobSecretCopies(scope: Construct, role: iam.IRole, id = 'JobSecretCopiesPolicy'): iam.Policy {
  const read = new iam.PolicyStatement({
    sid: 'ReadProjectSecrets',
    actions: ['secretsmanager:GetSecretValue'],
    resources: [deploymentSecretArns(scope, 'projects/*')],
  });
  const write = new iam.PolicyStatement({
    sid: 'WriteJobCopies',
    actions: [
      'secretsmanager:CreateSecret',
      'secretsmanager:TagResource',
      'secretsmanager:PutSecretValue',
      'secretsmanager:DeleteSecret',
    ],
    resources: [deploymentSecretArns(scope, 'jobs/*')],
  });
  return secretsPolicy(scope, id, role, [read, write], {
    'projects/*':
      "A job names its project's secrets at run time; the grant stops at this deployment's projects/ prefix and is read-only.",
    'jobs/*':
      "A job's per-instance copies are named by job and instance id, known only at its start; the grant stops at this deployment's jobs/ prefix.",
  });
}

/** The IAM policy variable: the ARN of the instance whose role credentials signed the request. */
const SOURCE_INSTANCE_ARN = `\${ec2:SourceInstanceARN}`;

/** The instance role's one grant on secrets: the copy tagged with the calling instance's own ARN, nothing else. */
export function grantReadOwnJobSecrets(scope: Construct, role: iam.IRole, id = 'OwnJobSecretsPolicy'): iam.Policy {
  const readOwn = new iam.PolicyStatement({
    sid: 'ReadOwnJobSecrets',
    actions: ['secretsmanager:GetSecretValue'],
    resources: [deploymentSecretArns(scope, 'jobs/*')],
    conditions: { StringEquals: { [`aws:ResourceTag/${INSTANCE_TAG}`]: SOURCE_INSTANCE_ARN } },
  });
  return secretsPolicy(scope, id, role, [readOwn], {
    'jobs/*':
      "Conditioned on the secret's flare:instance tag being the calling instance's own ARN: each instance reads only its own job's copy.",
  });
}
