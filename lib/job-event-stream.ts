/**
 * The outbox for `Job State Change` events: the jobs table's stream feeds a
 * function that publishes one event per stored state change to the Flare
 * bus. A change is published because it was stored, never instead of being
 * stored, and at least once: failed records are retried (the batch split to
 * isolate a bad record, with partial-batch responses so good records are not
 * resent), and what still fails is recorded in a dead-letter queue with an
 * alarm.
 */
import { Duration, Validations } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as events from 'aws-cdk-lib/aws-events';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource, SqsDlq } from 'aws-cdk-lib/aws-lambda-event-sources';
import { Construct } from 'constructs';
import type { FlareAlarms } from './alarms.js';
import { integerInRange } from './construct-props.js';
import { DeadLetterQueue } from './dead-letter-queue.js';
import { FlareFunction } from './lambda-defaults.js';

export interface JobEventStreamProps {
  /** The handler's entry file. */
  readonly entry: string;
  /** The jobs table; it must have a stream with old and new images. */
  readonly table: dynamodb.ITable;
  readonly bus: events.IEventBus;
  readonly alarms: FlareAlarms;
  /** Retries of a failing record before it is given up. @default 10 */
  readonly retryAttempts?: number;
  /** @default 100 */
  readonly batchSize?: number;
}

export class JobEventStream extends Construct {
  public readonly handler: FlareFunction;
  public readonly source: DynamoEventSource;
  /** Where the stream records of batches that failed every retry are described. */
  public readonly deadLetters: DeadLetterQueue;

  constructor(scope: Construct, id: string, props: JobEventStreamProps) {
    super(scope, id);
    if (!props.table.tableStreamArn)
      throw new Error(`${this.node.path}: the table has no stream; give it one with NEW_AND_OLD_IMAGES`);
    const retryAttempts = integerInRange(this, 'retryAttempts', props.retryAttempts ?? 10, [0, 10000]);
    const batchSize = integerInRange(this, 'batchSize', props.batchSize ?? 100, [1, 1000]);

    this.deadLetters = new DeadLetterQueue(this, 'DeadLetters', {
      description:
        'jobs-table stream batches whose Job State Change events could not be published after every retry (the message names the shard and sequence numbers).',
      alarms: props.alarms,
    });
    this.handler = new FlareFunction(this, 'Handler', {
      entry: props.entry,
      description: 'Flare outbox: publishes Job State Change events from the jobs table stream',
      environment: { EVENT_BUS_NAME: props.bus.eventBusName },
      timeout: Duration.seconds(30),
    });
    this.source = new DynamoEventSource(props.table, {
      startingPosition: lambda.StartingPosition.TRIM_HORIZON,
      batchSize,
      // One poller per shard keeps each job's changes in order.
      parallelizationFactor: 1,
      bisectBatchOnError: true,
      reportBatchItemFailures: true,
      retryAttempts,
      onFailure: new SqsDlq(this.deadLetters.queue),
      // Deleting a (terminal) job is not a state change.
      filters: [lambda.FilterCriteria.filter({ eventName: lambda.FilterRule.or('INSERT', 'MODIFY') })],
    });
    this.handler.function.addEventSource(this.source);
    props.bus.grantPutEventsTo(this.handler.role);
    Validations.of(this.handler.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'dynamodb:ListStreams (which CDK adds for a stream event source) and X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions; stream reads are on the jobs stream ARN only.',
    });
  }
}
