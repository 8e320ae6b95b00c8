/**
 * Event-driven completion: EventBridge rules on the account's default bus
 * that hand SSM Run Command completions and EC2 instance state changes to the
 * compute-events function, which ends the job's wait in the workflow.
 *
 * Nothing is dropped quietly: EventBridge retries delivery and then parks the
 * event in a dead-letter queue; the function's own failures (after Lambda's
 * asynchronous retries) go to the same queue, which raises an alarm.
 */
import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import { SqsDestination } from 'aws-cdk-lib/aws-lambda-destinations';
import { Construct } from 'constructs';
// The statuses and states forwarded are those the handler acts on: one list, in contract/.
import { FINAL_COMMAND_STATUSES, LOST_INSTANCE_STATES } from '../contract/compute-events.js';
import type { FlareAlarms } from './alarms.js';
import { RUN_COMMAND_DOCUMENT } from './compute.js';
import { integerInRange } from './construct-props.js';
import { DeadLetterQueue } from './dead-letter-queue.js';
import { FlareFunction } from './lambda-defaults.js';

export const COMMAND_STATUS_DETAIL_TYPE = 'EC2 Command Invocation Status-change Notification';
export const INSTANCE_STATE_DETAIL_TYPE = 'EC2 Instance State-change Notification';
export interface ComputeEventsProps {
  /** The handler's entry file. */
  readonly entry: string;
  readonly environment: Record<string, string>;
  readonly alarms: FlareAlarms;
  /** The Run Command document whose completions end a job's wait. @default 'AWS-RunShellScript' */
  readonly documentName?: string;
  /** EventBridge delivery retries before an event goes to the dead-letter queue. @default 8 */
  readonly retryAttempts?: number;
  /** How long EventBridge and Lambda keep trying one event. @default Duration.hours(2) */
  readonly maxEventAge?: Duration;
}

export class ComputeEvents extends Construct {
  public readonly handler: FlareFunction;
  public readonly commandRule: events.Rule;
  public readonly instanceRule: events.Rule;
  /** Events EventBridge could not deliver and invocations that failed every retry. */
  public readonly deadLetters: DeadLetterQueue;

  constructor(scope: Construct, id: string, props: ComputeEventsProps) {
    super(scope, id);
    const retryAttempts = integerInRange(this, 'retryAttempts', props.retryAttempts ?? 8, [0, 185]);
    const maxEventAge = props.maxEventAge ?? Duration.hours(2);
    // The tighter of EventBridge's (1 min - 24 h) and Lambda's (1 min - 6 h) bounds.
    if (maxEventAge.toSeconds() < 60 || maxEventAge.toSeconds() > 6 * 3600) {
      throw new Error(
        `${this.node.path}: maxEventAge must be from 1 minute to 6 hours, got ${maxEventAge.toHumanString()}`,
      );
    }

    this.deadLetters = new DeadLetterQueue(this, 'DeadLetters', {
      description:
        'compute events (SSM command completions, EC2 state changes) that EventBridge could not deliver or the compute-events function failed on.',
      alarms: props.alarms,
    });
    this.handler = new FlareFunction(this, 'Handler', {
      entry: props.entry,
      description: 'Flare compute events: SSM command completions and EC2 state changes end a job wait',
      environment: props.environment,
      timeout: Duration.seconds(30),
    });
    // Failures of the function itself, once Lambda's asynchronous retries are spent.
    this.handler.function.configureAsyncInvoke({
      retryAttempts: 2,
      maxEventAge,
      onFailure: new SqsDestination(this.deadLetters.queue),
    });

    const target = new targets.LambdaFunction(this.handler.function, {
      deadLetterQueue: this.deadLetters.queue,
      retryAttempts,
      maxEventAge,
    });
    this.commandRule = new events.Rule(this, 'CommandFinished', {
      description: 'Flare: a Run Command invocation reached a final status',
      eventPattern: {
        source: ['aws.ssm'],
        detailType: [COMMAND_STATUS_DETAIL_TYPE],
        detail: { 'document-name': [props.documentName ?? RUN_COMMAND_DOCUMENT], status: [...FINAL_COMMAND_STATUSES] },
      },
      targets: [target],
    });
    this.instanceRule = new events.Rule(this, 'InstanceLeaving', {
      description: 'Flare: an instance is stopping or terminating',
      eventPattern: {
        source: ['aws.ec2'],
        detailType: [INSTANCE_STATE_DETAIL_TYPE],
        detail: { state: [...LOST_INSTANCE_STATES] },
      },
      targets: [target],
    });
  }
}
