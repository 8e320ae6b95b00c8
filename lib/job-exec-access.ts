/**
 * What the API function needs for `POST /v1/jobs/{id}/exec`
 * (lambdas/adapters/ssm-exec.ts): Run Command with AWS-RunShellScript on this
 * deployment's own instances only (the managed-by and deployment tags), and
 * reading the invocation back. Nothing else: the API never launches, stops or
 * opens Session Manager sessions (the CLI does that with its user's own
 * credentials).
 */
import { Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { FlareCompute } from './compute.js';

export function grantExecInJobs(compute: FlareCompute, role: iam.IRole, id = 'ExecInJobsPolicy'): iam.Policy {
  const policy = new iam.Policy(compute, id, {
    statements: [
      ...compute.runCommandStatements(),
      new iam.PolicyStatement({
        sid: 'ReadCommandResults',
        actions: ['ssm:GetCommandInvocation'],
        resources: ['*'],
      }),
    ],
    roles: [role],
  });
  Validations.of(policy).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*]',
    reason:
      "A job's instance ids are known only at run time; the statement is conditioned on this deployment's managed-by and deployment resource tags.",
  });
  Validations.of(policy).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::*]',
    reason: 'ssm:GetCommandInvocation supports no resource-level permissions; it is read-only.',
  });
  return policy;
}
