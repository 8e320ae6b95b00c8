/**
 * The local driver's exit and lost reports, wired to the same core functions
 * the AWS compute-events Lambda calls for SSM command and EC2 state events.
 */
import { instanceId } from '../adapters/local-compute.js';
import { reportInstanceLost, reportNodeExit } from '../core/completion.js';
import type { Deps } from '../core/deps.js';

export function localCompletion(deps: () => Deps) {
  return {
    onExit: (jobId: string, exitCode: number) => reportNodeExit(deps(), jobId, instanceId(jobId), exitCode),
    onLost: (jobId: string, reason: string) => reportInstanceLost(deps(), jobId, instanceId(jobId), reason),
  };
}
