/**
 * The operational figures core reports (named in contract/metrics.ts): what an on-call engineer
 * reads on the dashboard (lib/dashboard.ts; docs/operations.md says what each means).
 * Core only says what happened; the Metrics port (core/deps.ts) decides where it goes.
 */
import { METRIC } from '../../contract/metrics.js';
import type { Deps, Metrics } from './deps.js';
import { JobState, type Job } from './job.js';

export { METRIC };

const NO_METRICS: Metrics = { count: () => {}, milliseconds: () => {} };

export function metricsOf(deps: Pick<Deps, 'metrics'>): Metrics {
  return deps.metrics ?? NO_METRICS;
}

/** `run`, with its duration reported as `name` whether it succeeds or throws. */
export async function timed<T>(deps: Pick<Deps, 'metrics'>, name: string, run: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await run();
  } finally {
    metricsOf(deps).milliseconds(name, performance.now() - started);
  }
}

/** An admission committed (core/admission.ts, the one place that admits): counted, with how long the job waited. */
export function admitted(deps: Pick<Deps, 'metrics'>, job: Job): void {
  metricsOf(deps).count(METRIC.admissions);
  if (job.admittedAt)
    metricsOf(deps).milliseconds(METRIC.queueWait, Math.max(0, Date.parse(job.admittedAt) - Date.parse(job.createdAt)));
}

/** A launch gave `job` no compute: the workflow's error name is the reason (NoCapacity when it has none). */
export function launchFailed(deps: Pick<Deps, 'metrics'>, error?: { Error: string } | null): void {
  metricsOf(deps).count(METRIC.launchFailures, 1, { reason: (error?.Error ?? 'NoCapacity').slice(0, 64) });
}

/** A job reached its terminal state: an expiry, or a launch that failed before the job ran. */
export function jobEnded(deps: Pick<Deps, 'metrics'>, finished: Job, error?: { Error: string } | null): void {
  if (finished.state === JobState.EXPIRED) metricsOf(deps).count(METRIC.expiries);
  else if (error && finished.admittedAt && !finished.startedAt) launchFailed(deps, error);
}
