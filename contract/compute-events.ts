/**
 * The EC2 and SSM events that end a job's wait on AWS: the rules in lib/compute-events.ts forward
 * exactly these, and lambdas/handlers/events/compute-events.ts acts on exactly these.
 */

/** The invocation is over: the script exited (with the container's code) or never could run. */
export const COMMAND_ENDED = ['Success', 'Failed'] as const;

/**
 * The invocation ended without the script's own exit: SSM's final Status values TimedOut and Cancelled,
 * and the StatusDetails names its documentation lists among final invocation states, taken alike should
 * an event carry one.
 */
export const COMMAND_ABORTED = [
  'TimedOut',
  'Cancelled',
  'DeliveryTimedOut',
  'ExecutionTimedOut',
  'Undeliverable',
  'Terminated',
] as const;

/** Every final command status: what the rule forwards to the handler. */
export const FINAL_COMMAND_STATUSES = [...COMMAND_ENDED, ...COMMAND_ABORTED] as const;

/** Instance states from which a job's node will not come back: a stopped GPU instance runs nothing, and Flare never restarts one. */
export const LOST_INSTANCE_STATES = ['shutting-down', 'terminated', 'stopping', 'stopped'] as const;
