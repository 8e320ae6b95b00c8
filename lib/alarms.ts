/**
 * Where every Flare alarm goes: one SNS topic, encrypted with a key of its
 * own (CloudWatch cannot publish to a topic under the AWS-managed SNS key),
 * refusing publishers that do not use TLS, with the operator's email
 * subscribed when one is configured.
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';

export interface FlareAlarmsProps {
  /** Subscribed to the topic (the recipient must confirm). @default no subscription */
  readonly email?: string;
}

export class FlareAlarms extends Construct {
  public readonly topic: sns.Topic;
  public readonly key: kms.Key;
  /** Every alarm routed to the topic, in the order they were added. */
  public readonly alarms: cloudwatch.Alarm[] = [];
  private readonly action: SnsAction;

  constructor(scope: Construct, id: string, props: FlareAlarmsProps = {}) {
    super(scope, id);
    if (props.email !== undefined && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(props.email)) {
      throw new Error(`${this.node.path}: email must be an email address, got '${props.email}'`);
    }
    this.key = new kms.Key(this, 'Key', {
      description: 'Flare alarm topic',
      enableKeyRotation: true,
      // Alarm notifications are transient; nothing stays encrypted under this key.
      removalPolicy: RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(7),
    });
    // CloudWatch publishes alarm notifications with this key.
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
      }),
    );
    this.topic = new sns.Topic(this, 'Topic', {
      displayName: 'Flare alarms',
      masterKey: this.key,
      enforceSSL: true,
    });
    if (props.email !== undefined) this.topic.addSubscription(new EmailSubscription(props.email));
    this.action = new SnsAction(this.topic);
  }

  /** Route an alarm (and its return to OK) to the topic. */
  public add<T extends cloudwatch.Alarm>(alarm: T): T {
    alarm.addAlarmAction(this.action);
    alarm.addOkAction(this.action);
    this.alarms.push(alarm);
    return alarm;
  }
}
