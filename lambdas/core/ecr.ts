/**
 * Images in a private Amazon ECR registry: which catalog references live
 * there, and the registry and region a job's instance logs docker in to before
 * it pulls one (core/container-command.ts instanceScript). Other registries
 * (Docker Hub, nvcr.io, public.ecr.aws) are pulled without a login.
 */

/**
 * `<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]`. Whatever it matches is letters,
 * digits, '.' and '-' only, so the registry and region may stand in a shell line as they are.
 */
const ECR_REGISTRY =
  /^(?<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?<region>[a-z]{2}(?:-[a-z]+)+-\d{1,2})\.amazonaws\.com(?:\.cn)?$/;
/** What the script may interpolate; checked again where the script is built. */
export const SHELL_SAFE_HOST = /^[a-z0-9.-]+$/;

export interface EcrImage {
  /** The reference's host, which `docker login` is given. */
  registry: string;
  account: string;
  region: string;
  /** The repository name, without tag or digest (`team/trainer`). */
  repository: string;
}

/** The ECR registry an image reference (with or without tag and digest) lives in; undefined for any other registry. */
export function ecrImage(reference: string): EcrImage | undefined {
  const slash = reference.indexOf('/');
  if (slash < 0) return undefined;
  const registry = reference.slice(0, slash);
  const groups = ECR_REGISTRY.exec(registry)?.groups;
  if (!groups) return undefined;
  const repository = reference
    .slice(slash + 1)
    .replace(/@.*$/, '')
    .replace(/:[^/]*$/, '');
  return { registry, account: groups.account, region: groups.region, repository };
}

/** The repository's ARN, as IAM names it (the partition follows from the host and region). */
export function ecrRepositoryArn(image: EcrImage): string {
  const partition = image.registry.endsWith('.amazonaws.com.cn')
    ? 'aws-cn'
    : image.region.startsWith('us-gov-')
      ? 'aws-us-gov'
      : 'aws';
  return `arn:${partition}:ecr:${image.region}:${image.account}:repository/${image.repository}`;
}

/**
 * Why the job instances could not pull `reference`, or undefined when they can (or it is not in ECR):
 * `allowed` are the repository ARNs the instance role may read (flare:ecrRepositories), with IAM's
 * `*` and `?` wildcards. A reference nobody could pull is refused when it is added, not at each job's start.
 */
export function ecrPullIssue(reference: string, allowed: readonly string[]): string | undefined {
  const image = ecrImage(reference);
  if (!image) return undefined;
  const arn = ecrRepositoryArn(image);
  if (allowed.some((pattern) => iamPattern(pattern).test(arn))) return undefined;
  const scope = allowed.length === 0 ? 'none' : allowed.join(', ');
  return `is in Amazon ECR (${arn}), which the job instances may not pull from; flare:ecrRepositories allows ${scope}`;
}

function iamPattern(pattern: string): RegExp {
  const escaped = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`);
}
