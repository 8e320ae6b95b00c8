/**
 * The compute events Lambda: EventBridge hands it SSM command status changes
 * (a node's container exited, or its command was never delivered or was
 * cancelled) and EC2 instance state changes (an instance went away). Thin: validate the event, find the job it concerns, report it to core,
 * which records it once and ends the workflow's Run wait. Reports that no
 * longer concern a running job (our own Stop, an earlier attempt) change
 * nothing there. An event of another shape is thrown, never dropped: it is
 * retried and then lands where the rule sends failures.
 *
 * Each report carries when the exit or loss happened, never when this Lambda runs:
 * core ends a job EXPIRED when that time is at or after its expiresAt (expiry wins),
 * so a late, retried or duplicated event gives the same verdict as a prompt one.
 */
import middy from '@middy/core';
import { z } from 'zod';
import type { Ec2SsmCompute } from '../../adapters/ec2-ssm-compute.js';
import type { CommandOutcome } from '../../adapters/ssm-commands.js';
import { COMMAND_ABORTED, COMMAND_ENDED, LOST_INSTANCE_STATES } from '../../../contract/compute-events.js';
import { reportCommandFailed, reportInstanceLost, reportNodeExit } from '../../core/completion.js';
import type { Deps } from '../../core/deps.js';
import { FlareError } from '../../core/errors.js';
import { parse } from '../../core/schemas.js';
import { awsCompute, awsDeps } from '../aws-deps.js';
import { observed } from '../aws-observability.js';

/** What this handler asks of the compute adapter. */
export type ComputeEventLookups = Pick<Ec2SsmCompute, 'commandOutcome' | 'jobOfInstance'>;

export const COMMAND_STATUS_CHANGE = 'EC2 Command Invocation Status-change Notification';
export const INSTANCE_STATE_CHANGE = 'EC2 Instance State-change Notification';

/** StatusDetails of an invocation the instance's agent never received: the container never started. */
const NOT_DELIVERED = ['DeliveryTimedOut', 'Undeliverable', 'Terminated'];
/** SSM has not settled the invocation the event announced; asking again later will see it. */
const COMMAND_UNSETTLED = ['Pending', 'InProgress', 'Delayed', 'Cancelling'];

const instanceId = z.string().regex(/^i-[0-9a-f]{8,17}$/, 'must be an EC2 instance id');
/** EventBridge's `time`: when the source emitted the event (whole seconds), kept across retries. */
const eventTime = z.iso.datetime({ error: 'must be an ISO 8601 UTC time such as 2030-01-01T00:00:00Z' });

export const CommandStatusEvent = z.object({
  source: z.literal('aws.ssm'),
  'detail-type': z.literal(COMMAND_STATUS_CHANGE),
  time: eventTime,
  detail: z.object({
    'command-id': z.string().regex(/^[0-9a-f-]{36}$/, 'must be an SSM command id'),
    'instance-id': instanceId,
    'document-name': z.string().min(1),
    status: z.string().min(1),
  }),
});

export const InstanceStateEvent = z.object({
  source: z.literal('aws.ec2'),
  'detail-type': z.literal(INSTANCE_STATE_CHANGE),
  time: eventTime,
  detail: z.object({
    'instance-id': instanceId,
    state: z.enum(['pending', 'running', ...LOST_INSTANCE_STATES]),
  }),
});

export const ComputeEvent = z.discriminatedUnion('detail-type', [CommandStatusEvent, InstanceStateEvent], {
  error: `must be '${COMMAND_STATUS_CHANGE}' (source aws.ssm) or '${INSTANCE_STATE_CHANGE}' (source aws.ec2)`,
});
export type ComputeEvent = z.infer<typeof ComputeEvent>;

/** GetCommandInvocation still shows the invocation running although the event said it ended: retry the event. */
export class CommandNotSettled extends FlareError {}

export async function handleComputeEvent(deps: Deps, lookups: ComputeEventLookups, raw: unknown): Promise<void> {
  const event = parse(ComputeEvent, raw);
  if (event['detail-type'] === COMMAND_STATUS_CHANGE) {
    const { 'command-id': commandId, 'instance-id': instanceId, status } = event.detail;
    if (
      !(COMMAND_ENDED as readonly string[]).includes(status) &&
      !(COMMAND_ABORTED as readonly string[]).includes(status)
    )
      return deps.log.info('ignored command status', { commandId, instanceId, status });
    const outcome = await lookups.commandOutcome(commandId, instanceId);
    if (!outcome) return deps.log.info("ignored a command that is not Flare's", { commandId, instanceId });
    if (COMMAND_UNSETTLED.includes(outcome.status))
      throw new CommandNotSettled(`command ${commandId} on ${instanceId} is ${outcome.status}, not ${status} yet`);
    const details = outcome.statusDetails?.replace(/\s+/g, '');
    // Past SSM's 48 h execution bound the script stops reporting, but the container runs on detached: the live timeout rules.
    const runsOn = outcome.status === 'TimedOut' && details !== 'DeliveryTimedOut';
    if (
      runsOn ||
      (!(COMMAND_ENDED as readonly string[]).includes(outcome.status) &&
        !(COMMAND_ABORTED as readonly string[]).includes(outcome.status))
    ) {
      return deps.log.info('ignored command status', { commandId, instanceId, status: outcome.status, details });
    }
    // The script's end is the container's exit (to the millisecond); the event's own time bounds it from above.
    const at = outcome.endedAt ?? isoTime(event.time);
    if ((COMMAND_ENDED as readonly string[]).includes(outcome.status) && outcome.exitCode !== undefined)
      return reportNodeExit(deps, outcome.jobId, instanceId, outcome.exitCode, at);
    // Nothing will report this node's exit: fail the job now rather than at its live timeout (a Flare cancel or expiry recorded first wins).
    return reportCommandFailed(deps, outcome.jobId, instanceId, commandFailure(outcome.status, details), at);
  }

  const { 'instance-id': instanceId, state } = event.detail;
  if (!(LOST_INSTANCE_STATES as readonly string[]).includes(state))
    return deps.log.info('ignored instance state', { instanceId, state });
  const jobId = await lookups.jobOfInstance(instanceId);
  if (!jobId) return deps.log.info("ignored an instance that is not Flare's", { instanceId, state });
  // The state change's own time: an instance its dead-man switch powered off after expiresAt ends the job EXPIRED.
  return reportInstanceLost(deps, jobId, instanceId, `instance ${instanceId} is ${state}`, isoTime(event.time));
}

/** The job's reason when its container command ended without an exit code. */
function commandFailure(status: CommandOutcome['status'], details: string | undefined): string {
  if (details && NOT_DELIVERED.includes(details)) return `container command not delivered: SSM ${details}`;
  return `container command ended without an exit code: SSM ${status}${details && details !== status ? ` (${details})` : ''}`;
}

/** An event time as core stores times (toISOString), so outcomes from either source read alike. */
function isoTime(time: string): string {
  return new Date(time).toISOString();
}

export function createComputeEventsHandler(deps: () => Deps, compute: () => ComputeEventLookups) {
  return middy<unknown, void>().handler((event) => handleComputeEvent(deps(), compute(), event));
}

export const handler = observed(createComputeEventsHandler(awsDeps({ compute: awsCompute }), awsCompute), {
  metrics: true,
});
