/**
 * The chat notifier: for each configured channel, a rule on the Flare bus
 * (by project and state) puts `{ channel, event }` on one queue; a function
 * drains the queue and posts to the channel's Slack or Teams webhook, whose
 * URL is a Secrets Manager secret only this function may read.
 *
 * The queue makes delivery retryable and visible: a message that fails five
 * receives moves to a dead-letter queue with an alarm, and an event
 * EventBridge could not put on the queue lands in a second one.
 */
import { ArnFormat, Duration, Stack } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { FlareAlarms } from './alarms.js';
import { integerInRange } from './construct-props.js';
import { DeadLetterQueue } from './dead-letter-queue.js';
import { FlareFunction } from './lambda-defaults.js';
import type { NotificationChannelSetting } from './settings.js';

/** docs/concepts.md's event contract on the Flare bus. */
export const FLARE_EVENT_SOURCE = 'flare';
export const JOB_STATE_CHANGE = 'Job State Change';

export interface ChatNotifierProps {
  /** The handler's entry file. */
  readonly entry: string;
  /** At least one channel. */
  readonly channels: readonly NotificationChannelSetting[];
  readonly bus: events.IEventBus;
  /** Deliveries are deduplicated by event id here. */
  readonly idempotencyTable: dynamodb.ITable;
  readonly alarms: FlareAlarms;
  /** Receives of one message before it moves to the dead-letter queue. @default 5 */
  readonly maxReceiveCount?: number;
  /** @default Duration.seconds(60) */
  readonly timeout?: Duration;
}

export class ChatNotifier extends Construct {
  public readonly handler: FlareFunction;
  /** `{ channel, event }` messages waiting for delivery. */
  public readonly queue: sqs.Queue;
  /** Messages that failed `maxReceiveCount` deliveries. */
  public readonly deadLetters: DeadLetterQueue;
  /** Events EventBridge could not put on the queue. */
  public readonly undeliverable: DeadLetterQueue;
  /** One rule per channel, by channel id. */
  public readonly rules: Readonly<Record<string, events.Rule>>;
  /** The webhook secrets, by channel id. */
  public readonly secrets: Readonly<Record<string, secretsmanager.ISecret>>;

  constructor(scope: Construct, id: string, props: ChatNotifierProps) {
    super(scope, id);
    if (props.channels.length === 0)
      throw new Error(`${this.node.path}: channels must name at least one channel (deploy no notifier otherwise)`);
    const ids = props.channels.map((c) => c.id);
    if (new Set(ids).size !== ids.length)
      throw new Error(`${this.node.path}: channel ids must be unique, got ${ids.join(', ')}`);
    const maxReceiveCount = integerInRange(this, 'maxReceiveCount', props.maxReceiveCount ?? 5, [1, 1000]);
    const timeout = props.timeout ?? Duration.seconds(60);

    const secrets: Record<string, secretsmanager.ISecret> = {};
    for (const channel of props.channels) {
      secrets[channel.id] = secretsmanager.Secret.fromSecretNameV2(this, `Secret-${channel.id}`, channel.secretName);
    }
    this.secrets = secrets;

    this.deadLetters = new DeadLetterQueue(this, 'DeadLetters', {
      description: `chat notifications that failed ${maxReceiveCount} deliveries (webhook down, secret missing or wrong).`,
      alarms: props.alarms,
      isRedriveTarget: true,
    });
    this.undeliverable = new DeadLetterQueue(this, 'Undeliverable', {
      description: 'Job State Change events EventBridge could not put on the notification queue.',
      alarms: props.alarms,
    });
    this.queue = new sqs.Queue(this, 'Queue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      // AWS's advice for a Lambda-consumed queue: six times the function timeout.
      visibilityTimeout: Duration.seconds(timeout.toSeconds() * 6),
      retentionPeriod: Duration.days(4),
      deadLetterQueue: { queue: this.deadLetters.queue, maxReceiveCount },
    });

    const channels = props.channels.map((c) => ({
      id: c.id,
      type: c.type,
      secretArn: secrets[c.id].secretArn,
      ...(c.projects ? { projects: c.projects } : {}),
      ...(c.states ? { states: c.states } : {}),
    }));
    this.handler = new FlareFunction(this, 'Handler', {
      entry: props.entry,
      description: 'Flare chat notifier: posts job state changes to Slack and Teams webhooks',
      environment: {
        NOTIFY_CHANNELS: Stack.of(this).toJsonString(channels),
        IDEMPOTENCY_TABLE: props.idempotencyTable.tableName,
      },
      timeout,
    });
    this.handler.function.addEventSource(
      new SqsEventSource(this.queue, {
        batchSize: 5,
        reportBatchItemFailures: true,
        // Webhooks rate-limit; a couple of concurrent posters is plenty for job events.
        maxConcurrency: 2,
      }),
    );
    // A delivery's claim (a conditional put, read back when taken), its mark (put) and its release (delete).
    props.idempotencyTable.grant(this.handler.role, 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:DeleteItem');
    this.grantReadWebhooks(this.handler.role, props.channels);

    const rules: Record<string, events.Rule> = {};
    for (const channel of props.channels) {
      const detail: Record<string, string[]> = {};
      if (channel.projects) detail.project = [...channel.projects];
      if (channel.states) detail.state = [...channel.states];
      rules[channel.id] = new events.Rule(this, `Rule-${channel.id}`, {
        eventBus: props.bus,
        description: `Flare: job state changes for chat channel ${channel.id}`,
        eventPattern: {
          source: [FLARE_EVENT_SOURCE],
          detailType: [JOB_STATE_CHANGE],
          ...(Object.keys(detail).length > 0 ? { detail } : {}),
        },
        targets: [
          new targets.SqsQueue(this.queue, {
            message: events.RuleTargetInput.fromObject({ channel: channel.id, event: events.EventField.fromPath('$') }),
            deadLetterQueue: this.undeliverable.queue,
            retryAttempts: 8,
            maxEventAge: Duration.hours(2),
          }),
        ],
      });
    }
    this.rules = rules;
  }

  /**
   * `secretsmanager:GetSecretValue` on exactly these secrets. A secret's ARN
   * ends in `-` and six random characters that are unknown before it exists,
   * hence the `-??????` (not `*`, which would also match `name-suffix-...`).
   * A secret under an operator's own key also needs `kms:Decrypt` on that key,
   * only through Secrets Manager in this region (`kms:ViaService`).
   */
  private grantReadWebhooks(grantee: iam.IGrantable, channels: readonly NotificationChannelSetting[]): void {
    const stack = Stack.of(this);
    const arns = [...new Set(channels.map((c) => c.secretName))].map((name) =>
      stack.formatArn({
        service: 'secretsmanager',
        resource: 'secret',
        resourceName: `${name}-??????`,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      }),
    );
    iam.Grant.addToPrincipal({ grantee, actions: ['secretsmanager:GetSecretValue'], resourceArns: arns });
    const keys = [...new Set(channels.flatMap((c) => (c.kmsKeyArn ? [c.kmsKeyArn] : [])))];
    if (keys.length === 0) return;
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'DecryptWebhookSecrets',
        actions: ['kms:Decrypt'],
        resources: keys,
        conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${stack.region}.amazonaws.com` } },
      }),
    );
  }
}
