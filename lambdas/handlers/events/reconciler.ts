/**
 * The reconciler Lambda, run on a schedule (lib/reconciler.ts): one call into
 * core's `reconcile`. A run that fails in any part throws after the other parts
 * ran, so the failure shows in the function's error metric; the next scheduled
 * run is the retry.
 */
import middy from '@middy/core';
import type { Deps } from '../../core/deps.js';
import { reconcile, type ReconcileOptions, type ReconcileReport } from '../../core/reconcile.js';
import type { ReconcileStore } from '../../ports/reconcile-store.js';
import { awsCompute, awsDeps, awsReconcileStore } from '../aws-deps.js';
import { observed } from '../aws-observability.js';

/**
 * Keyed to the schedule's bounds (1 to 60 minutes, lib/settings.ts): a mark
 * outlives the longest period, and a run less than 30 s after the last (a manual
 * invocation) does not count as the second observation.
 */
export const RECONCILER_OPTIONS: ReconcileOptions = { markTtlSeconds: 4 * 3600, minMarkAgeSeconds: 30 };

export function createReconcilerHandler(
  deps: () => Deps,
  store: () => ReconcileStore,
  options: ReconcileOptions = RECONCILER_OPTIONS,
) {
  // The scheduled event carries nothing the run needs.
  return middy<unknown, ReconcileReport>().handler(() => reconcile(deps(), store(), options));
}

export const handler = observed(createReconcilerHandler(awsDeps({ compute: awsCompute }), awsReconcileStore), {
  metrics: true,
});
