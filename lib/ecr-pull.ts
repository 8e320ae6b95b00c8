/**
 * Pulling private images from Amazon ECR on job instances: the instance role
 * reads the repositories `flare:ecrRepositories` names (default: every
 * repository of this account in the stack's region), and nothing else of ECR.
 * The instance logs docker in itself before a pull (lambdas/core/ecr.ts and
 * the instance script); that login needs ecr:GetAuthorizationToken, which
 * authorizes on no resource.
 */
import { Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';

/** What `docker pull` of an image asks of ECR, past the login. */
export const ECR_PULL_ACTIONS = [
  'ecr:BatchGetImage',
  'ecr:GetDownloadUrlForLayer',
  'ecr:BatchCheckLayerAvailability',
] as const;
/** Every repository of this account in the stack's region: the default scope. */
export const ALL_REPOSITORIES = '*';

/** The repository ARNs a list from `flare:ecrRepositories` stands for: names in this account and region, ARNs as they are. */
export function ecrRepositoryArns(stack: Stack, repositories: readonly string[]): string[] {
  return repositories.map((r) =>
    r.startsWith('arn:') ? r : stack.formatArn({ service: 'ecr', resource: 'repository', resourceName: r }),
  );
}

/**
 * Lets `role` pull from `repositories` (names or ARNs, `*` wildcards allowed; undefined: ALL_REPOSITORIES),
 * and returns their ARNs. An empty list grants nothing: the instances then pull from public registries only.
 */
export function grantEcrPull(role: iam.Role, repositories: readonly string[] = [ALL_REPOSITORIES]): string[] {
  const stack = Stack.of(role);
  const arns = ecrRepositoryArns(stack, repositories);
  if (arns.length === 0) return arns;
  role.addToPolicy(
    new iam.PolicyStatement({ sid: 'EcrLogin', actions: ['ecr:GetAuthorizationToken'], resources: ['*'] }),
  );
  role.addToPolicy(
    new iam.PolicyStatement({ sid: 'EcrPullFromListedRepositories', actions: [...ECR_PULL_ACTIONS], resources: arns }),
  );

  const acknowledge = (resource: string, reason: string) =>
    Validations.of(role).acknowledge({ id: `AwsSolutions-IAM5[Resource::${resource}]`, reason });
  acknowledge(
    '*',
    'ecr:GetAuthorizationToken (docker login to ECR) authorizes on no resource; pulls are limited to the repositories flare:ecrRepositories names.',
  );
  repositories.forEach((r, i) => {
    if (!r.includes('*')) return;
    // cdk-nag names a resource with the stack's pseudo parameters as placeholders.
    const shown = r.startsWith('arn:') ? r : `arn:<AWS::Partition>:ecr:<AWS::Region>:<AWS::AccountId>:repository/${r}`;
    acknowledge(
      shown,
      `flare:ecrRepositories[${i}] names repositories by pattern (${r}); read-only pull actions, the operator's chosen scope.`,
    );
  });
  return arns;
}
