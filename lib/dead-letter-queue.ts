/**
 * A queue where work that failed every retry is kept for an operator, with an
 * alarm as soon as anything lands in it. Encrypted (SQS-managed keys, which
 * EventBridge and Lambda can write to without key grants), TLS only, and
 * kept for the longest retention SQS allows.
 */
import { Duration, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { FlareAlarms } from './alarms.js';

export interface DeadLetterQueueProps {
  /** What ends up here, for the alarm description and the runbook. */
  readonly description: string;
  readonly alarms: FlareAlarms;
  /** @default Duration.days(14) */
  readonly retentionPeriod?: Duration;
  /**
   * True when another queue's redrive policy names this one, which cdk-nag
   * recognises as a DLQ on its own; otherwise (an EventBridge target DLQ, a
   * Lambda on-failure destination) SQS3 is acknowledged here.
   * @default false
   */
  readonly isRedriveTarget?: boolean;
}

export class DeadLetterQueue extends Construct {
  public readonly queue: sqs.Queue;
  /** Fires when the queue holds at least one visible message. */
  public readonly alarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: DeadLetterQueueProps) {
    super(scope, id);
    if (props.description.trim().length === 0) throw new Error(`${this.node.path}: description is required`);
    this.queue = new sqs.Queue(this, 'Queue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: props.retentionPeriod ?? Duration.days(14),
    });
    this.alarm = props.alarms.add(
      new cloudwatch.Alarm(this, 'NotEmpty', {
        alarmDescription: `Flare: ${props.description} See "Dead-letter queues" in docs/operations.md.`,
        metric: this.queue.metricApproximateNumberOfMessagesVisible({
          period: Duration.minutes(1),
          statistic: cloudwatch.Stats.MAXIMUM,
        }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );
    if (props.isRedriveTarget) return;
    Validations.of(this.queue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: `This queue is itself a dead-letter queue (${props.description}); cdk-nag only recognises DLQs named in another queue's redrive policy or a function's DeadLetterConfig.`,
    });
  }
}
