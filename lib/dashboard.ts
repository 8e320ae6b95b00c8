/**
 * One CloudWatch dashboard, `<stack name>-flare`: the figures the functions write as
 * EMF (contract/metrics.ts names them; docs/operations.md says what each means)
 * beside the state of every alarm, so the first page an on-call engineer opens shows
 * both whether jobs flow and what is already ringing.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import { METRIC, METRICS_NAMESPACE, METRICS_SERVICE } from '../contract/metrics.js';

/** The namespace the functions write to (they get it as POWERTOOLS_METRICS_NAMESPACE). */
export const FLARE_METRICS_NAMESPACE = METRICS_NAMESPACE;

export interface FlareDashboardProps {
  /** Shown beside the figures, with their state. @default none */
  readonly alarms?: readonly cloudwatch.IAlarm[];
  /** @default FLARE_METRICS_NAMESPACE ('Flare') */
  readonly namespace?: string;
  /** The `deployment` dimension the functions write (their DEPLOYMENT_NAME). @default the stack's name */
  readonly deployment?: string;
  /** @default `<stack name>-flare` */
  readonly dashboardName?: string;
  /** The period of every graph. @default 1 minute */
  readonly period?: Duration;
}

export class FlareDashboard extends Construct {
  public readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: FlareDashboardProps = {}) {
    super(scope, id);
    const stack = Stack.of(this);
    const namespace = props.namespace ?? FLARE_METRICS_NAMESPACE;
    const deployment = props.deployment ?? stack.stackName;
    const period = props.period ?? Duration.minutes(1);
    const metric = (metricName: string, statistic: string, label: string) =>
      new cloudwatch.Metric({
        namespace,
        metricName,
        statistic,
        label,
        period,
        dimensionsMap: { service: METRICS_SERVICE, deployment },
      });
    // One line per reason, whatever reasons appear: EMF writes LaunchFailures with a `reason` dimension.
    const byReason = new cloudwatch.MathExpression({
      expression: `SEARCH('{${namespace},deployment,reason,service} MetricName="${METRIC.launchFailures}" deployment="${deployment}"', 'Sum', ${period.toSeconds()})`,
      label: 'launch failures',
      period,
    });
    const graph = (title: string, left: cloudwatch.IMetric[], unit?: string) =>
      new cloudwatch.GraphWidget({
        title,
        left,
        width: 8,
        height: 6,
        ...(unit ? { leftYAxis: { label: unit, showUnits: false, min: 0 } } : {}),
      });

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: props.dashboardName ?? `${stack.stackName}-flare`,
      defaultInterval: Duration.hours(3),
    });
    this.dashboard.addWidgets(
      graph('Admissions (jobs given their GPUs)', [metric(METRIC.admissions, 'Sum', 'admissions')]),
      graph(
        'Queue wait: submit to admission',
        [
          metric(METRIC.queueWait, 'p50', 'p50'),
          metric(METRIC.queueWait, 'p99', 'p99'),
          metric(METRIC.queueWait, 'Maximum', 'max'),
        ],
        'ms',
      ),
      graph(
        'Drain latency (one pass of one pool)',
        [metric(METRIC.drainLatency, 'p50', 'p50'), metric(METRIC.drainLatency, 'p99', 'p99')],
        'ms',
      ),
    );
    this.dashboard.addWidgets(
      graph('DynamoDB transaction conflicts (retried)', [metric(METRIC.transactionConflicts, 'Sum', 'conflicts')]),
      graph('Expiries (live timeout ran out)', [metric(METRIC.expiries, 'Sum', 'expiries')]),
      graph('Launch failures by reason', [byReason]),
    );
    if (props.alarms?.length) {
      this.dashboard.addWidgets(
        new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: [...props.alarms], width: 24, height: 4 }),
      );
    }
  }
}
