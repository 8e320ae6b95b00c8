/**
 * The operational figures core reports (named in contract/metrics.ts): what an on-call engineer
 * reads on the dashboard (lib/dashboard.ts; docs/operations.md says what each means).
 * Core only says what happened; the Metrics port (core/deps.ts) decides where it goes.
 */
import { METRIC } from '../../contract/metrics.js';
import type { Deps, Metrics } from './deps.js';
import { JobState, type Job } from './job.js';
import type { JobStore } from '../ports/job-store.js';

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

/**
 * The store, reporting every admission it commits. Every admission path (submit, drain, Admit step,
 * reconciler) ends in `admit` or an admitted `createJob`, so counting here counts each once.
 */
export function meteredStore<S extends Pick<JobStore, 'admit' | 'createJob'>>(store: S, metrics: Metrics): S {
  const admitted = (job: Job) => {
    metrics.count(METRIC.admissions);
    if (job.admittedAt)
      metrics.milliseconds(METRIC.queueWait, Math.max(0, Date.parse(job.admittedAt) - Date.parse(job.createdAt)));
  };
  const overrides: Pick<JobStore, 'admit' | 'createJob'> = {
    async admit(job, admittedAt) {
      const result = await store.admit(job, admittedAt);
      if (result.admitted) admitted(result.job);
      return result;
    },
    async createJob(job, claim, admitAt) {
      const result = await store.createJob(job, claim, admitAt);
      if (result.created && result.job.state === JobState.LAUNCHING) admitted(result.job);
      return result;
    },
  };
  return new Proxy(store, {
    get(target, member) {
      if (member === 'admit' || member === 'createJob') return overrides[member];
      const value = Reflect.get(target, member, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
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
