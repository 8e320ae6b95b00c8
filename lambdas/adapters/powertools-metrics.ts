/**
 * The Metrics port on Powertools for AWS Lambda: CloudWatch Embedded Metric Format lines on stdout,
 * which CloudWatch Logs turns into metrics (no PutMetricData call, no IAM grant). Figures are buffered
 * and written once per invocation by the `logMetrics` middleware; one split by a dimension is written
 * at once, in a line of its own (EMF gives every metric of a line the same dimensions).
 */
import { Metrics as PowertoolsMetrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { METRICS_NAMESPACE } from '../../contract/metrics.js';
import type { Metrics } from '../core/deps.js';

export { PowertoolsMetrics };

/** `deployment`: the stack's name, a dimension of every figure so that two stacks in one account stay apart. */
export function powertoolsMetrics(options: {
  serviceName: string;
  deployment?: string;
  namespace?: string;
}): PowertoolsMetrics {
  return new PowertoolsMetrics({
    namespace: options.namespace ?? process.env.POWERTOOLS_METRICS_NAMESPACE ?? METRICS_NAMESPACE,
    serviceName: options.serviceName,
    ...(options.deployment ? { defaultDimensions: { deployment: options.deployment } } : {}),
    // Most invocations measure nothing (a GET, a check): that is not worth a warning line each.
    logger: {
      debug: () => {},
      info: (...a: unknown[]) => console.info(...a),
      warn: quietOnEmpty,
      error: (...a: unknown[]) => console.error(...a),
    },
  });
}

function quietOnEmpty(...content: unknown[]): void {
  if (typeof content[0] === 'string' && content[0].startsWith('No application metrics to publish')) return;
  console.warn(...content);
}

export function metricsPort(metrics: PowertoolsMetrics): Metrics {
  return {
    count(name, value = 1, dimensions) {
      if (!dimensions) return void metrics.addMetric(name, MetricUnit.Count, value);
      const single = metrics.singleMetric();
      for (const [key, dimension] of Object.entries(dimensions)) single.addDimension(key, dimension);
      single.addMetric(name, MetricUnit.Count, value);
    },
    milliseconds: (name, value) => void metrics.addMetric(name, MetricUnit.Milliseconds, value),
  };
}
