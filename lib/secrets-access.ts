/**
 * Who may touch which of the deployment's secrets in Secrets Manager (names in
 * contract/secrets.ts): the API writes, lists and deletes project secrets and
 * reads their values only to mask them in the logs it serves. Nothing else of
 * the account's Secrets Manager is reachable.
 */
import { ArnFormat, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import { secretsPrefix } from '../contract/secrets.js';

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

/** The API's grants on project secrets: its own policy, so that its acknowledgements cover nothing else. */
export function grantProjectSecrets(scope: Construct, role: iam.IRole, id = 'ProjectSecretsPolicy'): iam.Policy {
  const projects = deploymentSecretArns(scope, 'projects/*');
  const policy = new iam.Policy(scope, id, {
    roles: [role],
    statements: [
      new iam.PolicyStatement({
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
        resources: [projects],
      }),
      new iam.PolicyStatement({
        sid: 'ListSecrets',
        // ListSecrets authorizes on the account only; the adapter filters by the deployment's prefix.
        actions: ['secretsmanager:ListSecrets'],
        resources: ['*'],
      }),
    ],
  });
  const acknowledge = (finding: string, reason: string) =>
    Validations.of(policy).acknowledge({ id: `AwsSolutions-IAM5[${finding}]`, reason });
  acknowledge(
    'Resource::*',
    'secretsmanager:ListSecrets supports no resource-level permissions; it lists names and dates, never values.',
  );
  acknowledge(
    `Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:${secretsPrefix(Stack.of(scope).stackName)}projects/*`,
    "Project secrets are created at run time (PUT /v1/projects/{project}/secrets/{name}); the grant stops at this deployment's projects/ prefix.",
  );
  return policy;
}
