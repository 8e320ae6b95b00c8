/**
 * How a handler's AWS entry point logs and measures: the Logger and Metrics ports on Powertools,
 * and `observed`, the middy wrapper that gives every log line the Lambda context (cold start,
 * request id, X-Ray trace) and the job's id as `correlation_id`, and writes the invocation's
 * metrics (EMF) when it returns or throws. Only the exported `handler`s are wrapped: the local
 * runner calls the same create*Handler functions and keeps its console logger.
 */
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { loggerPort, powertoolsLogger, type PowertoolsLogger } from '../adapters/powertools-logger.js';
import { metricsPort, powertoolsMetrics, type PowertoolsMetrics } from '../adapters/powertools-metrics.js';
import { METRICS_SERVICE } from '../../contract/metrics.js';
import type { Logger, Metrics } from '../core/deps.js';
import { ObservabilityEnv, readEnv } from './aws-env.js';

/** The service of the functions that share Deps (API, tasks, compute events, reconciler). */
export const FLARE_SERVICE = METRICS_SERVICE;
/** The functions with deps of their own, each logging as its own service. */
export const NOTIFIER_SERVICE = 'flare-notifier';
export const STREAM_PUBLISHER_SERVICE = 'flare-stream-publisher';
export const SEED_POOLS_SERVICE = 'flare-seed-pools';

const loggers = new Map<string, PowertoolsLogger>();
let metrics: PowertoolsMetrics | undefined;

function loggerFor(service: string): PowertoolsLogger {
  let logger = loggers.get(service);
  if (!logger) loggers.set(service, (logger = powertoolsLogger(service)));
  return logger;
}

function metricsInstance(): PowertoolsMetrics {
  metrics ??= powertoolsMetrics({ serviceName: FLARE_SERVICE, deployment: readEnv(ObservabilityEnv).DEPLOYMENT_NAME });
  return metrics;
}

export function awsLogger(service = FLARE_SERVICE): Logger {
  return loggerPort(loggerFor(service));
}

export function awsMetrics(): Metrics {
  return metricsPort(metricsInstance());
}

export interface ObservedOptions<E> {
  /** @default FLARE_SERVICE */
  service?: string;
  /** Write the Metrics port's figures and a ColdStart metric. @default false (the function reports none) */
  metrics?: boolean;
  /** The job the invocation works on, if the event names one: every line logged meanwhile carries it. */
  correlationId?: (event: E) => string | undefined;
}

export function observed<E, R>(handler: (event: E, context: Context) => Promise<R>, options: ObservedOptions<E> = {}) {
  const logger = loggerFor(options.service ?? FLARE_SERVICE);
  const wrapped = middy<E, R>((event: E, context: Context) => handler(event, context)).use(
    injectLambdaContext(logger, { resetKeys: true }),
  );
  const correlate = options.correlationId;
  if (correlate) {
    wrapped.use({
      before: (request) => {
        const id = correlate(request.event);
        if (id) logger.setCorrelationId(id);
      },
    });
  }
  if (options.metrics) wrapped.use(logMetrics(metricsInstance(), { captureColdStartMetric: true }));
  return wrapped;
}

/** The `jobId` of a workflow task's input. */
export function jobIdOfTask(event: unknown): string | undefined {
  const id = (event as { jobId?: unknown } | null)?.jobId;
  return typeof id === 'string' ? id : undefined;
}
