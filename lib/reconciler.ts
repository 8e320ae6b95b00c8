/**
 * The reconciler: a function run on a fixed schedule that repairs what lost
 * events and crashes leave behind (orphan instances, jobs whose instances are
 * lost, stuck jobs, drifted usage counters, a queue nobody drained). It runs
 * again in one period, so a failed run is not retried; two failed runs in a
 * row raise an alarm.
 */
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import { Construct } from 'constructs';
import type { FlareAlarms } from './alarms.js';
import { integerInRange } from './construct-props.js';
import { FlareFunction } from './lambda-defaults.js';

export interface ReconcilerProps {
  /** The handler's entry file. */
  readonly entry: string;
  readonly environment: Record<string, string>;
  readonly alarms: FlareAlarms;
  /** Minutes between runs, 1 to 60. @default 5 */
  readonly periodMinutes?: number;
}

export class Reconciler extends Construct {
  public readonly handler: FlareFunction;
  public readonly schedule: events.Rule;
  /** Fires when two runs in a row end in an error. */
  public readonly errorsAlarm: cloudwatch.Alarm;
  public readonly periodMinutes: number;

  constructor(scope: Construct, id: string, props: ReconcilerProps) {
    super(scope, id);
    const period = integerInRange(this, 'periodMinutes', props.periodMinutes ?? 5, [1, 60]);
    this.periodMinutes = period;

    this.handler = new FlareFunction(this, 'Handler', {
      entry: props.entry,
      description: 'Flare reconciler: orphan and lost instances, stuck jobs, usage counters, queue drain',
      environment: props.environment,
      // Never longer than one period, so runs do not overlap.
      timeout: Duration.seconds(Math.min(period * 60, 300)),
      memorySize: 1024,
    });
    // The next scheduled run repeats the work; a retry would only overlap it.
    this.handler.function.configureAsyncInvoke({
      retryAttempts: 0,
      maxEventAge: Duration.seconds(Math.max(60, period * 60)),
    });

    this.schedule = new events.Rule(this, 'Schedule', {
      description: `Flare: run the reconciler every ${period} minute(s)`,
      schedule: events.Schedule.rate(Duration.minutes(period)),
      targets: [
        new targets.LambdaFunction(this.handler.function, {
          retryAttempts: 2,
          maxEventAge: Duration.seconds(Math.max(60, period * 60)),
        }),
      ],
    });

    this.errorsAlarm = props.alarms.add(
      new cloudwatch.Alarm(this, 'Failing', {
        alarmDescription:
          'Flare: the reconciler failed in two consecutive periods; orphan instances and stuck jobs are not being repaired. Read its log group (docs/operations.md).',
        metric: this.handler.function.metricErrors({
          period: Duration.minutes(period),
          statistic: cloudwatch.Stats.SUM,
        }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 2,
        datapointsToAlarm: 2,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );
  }
}
