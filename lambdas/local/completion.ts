/**
 * The local driver's exit and lost reports, wired to the same core functions
 * the AWS compute-events Lambda calls for SSM command and EC2 state events.
 */
import { instanceId, type ExitRecord } from '../adapters/local-compute.js';
import { reportInstanceLost, reportNodeExit } from '../core/completion.js';
import type { Deps } from '../core/deps.js';

export function localCompletion(deps: () => Deps) {
  return {
    // The record's own time: an exit found after an outage happened when the supervisor saw it, not now.
    onExit: (jobId: string, exitCode: number, record: ExitRecord) =>
      reportNodeExit(deps(), jobId, instanceId(jobId), exitCode, record.finishedAt, record.reason === 'expired'),
    onLost: (jobId: string, reason: string, at?: string) =>
      reportInstanceLost(deps(), jobId, instanceId(jobId), reason, at),
  };
}
