/** Defaults for the deployment's tunables (Deps.policy), and the arithmetic on them. */
import type { Deps } from './deps.js';
import { MIN_VOLUME_SIZE_GB } from './schemas.js';

/** AwaitCompute checks every WaitForCompute (5 s): 120 checks are 10 minutes. */
export const DEFAULT_MAX_COMPUTE_CHECKS = 120;
export const COMPUTE_CHECK_INTERVAL_SECONDS = 5;
/** AwaitOutputs checks a stopping job's outputs upload every WaitForOutputs (10 s). */
export const OUTPUTS_CHECK_INTERVAL_SECONDS = 10;
export const DEFAULT_LAUNCH_BACKOFF_SECONDS = 30;
export const DEFAULT_MAX_LAUNCH_BACKOFF_SECONDS = 900;

export function maxComputeChecks(deps: Pick<Deps, 'policy'>): number {
  return deps.policy?.maxComputeChecks ?? DEFAULT_MAX_COMPUTE_CHECKS;
}

/** Checks that fit in an agent timeout, at least one. */
export function computeChecksFor(agentTimeoutSeconds: number): number {
  return Math.max(1, Math.ceil(agentTimeoutSeconds / COMPUTE_CHECK_INTERVAL_SECONDS));
}

/** The least root volume a template may ask for here: the deployment's AMI snapshot, never below the default AMI's. */
export function minVolumeSizeGb(deps: Pick<Deps, 'policy'>): number {
  return Math.max(MIN_VOLUME_SIZE_GB, deps.policy?.minVolumeSizeGb ?? MIN_VOLUME_SIZE_GB);
}

/** Exponential backoff for the n-th launch that found no capacity (n >= 1), capped. */
export function launchBackoffSeconds(deps: Pick<Deps, 'policy'>, attempt: number): number {
  const base = deps.policy?.launchBackoffSeconds ?? DEFAULT_LAUNCH_BACKOFF_SECONDS;
  const max = deps.policy?.maxLaunchBackoffSeconds ?? DEFAULT_MAX_LAUNCH_BACKOFF_SECONDS;
  return Math.min(max, base * 2 ** Math.min(30, Math.max(0, attempt - 1)));
}
