/**
 * The local twin of the scheduled reconciler Lambda: core's `reconcile` every
 * `periodSeconds`, never two runs at once. A failed run is logged and the next
 * period is the retry, as on AWS.
 */
import type { Deps } from '../core/deps.js';
import { reconcile, ReconcileFailed, type ReconcileReport } from '../core/reconcile.js';
import type { ReconcileStore } from '../ports/reconcile-store.js';

export interface ReconcileLoop {
  /** Run once now (after any run in progress); what the tests and `stop` use. */
  runNow(): Promise<ReconcileReport | undefined>;
  stop(): Promise<void>;
}

export function startReconcileLoop(deps: Deps, store: ReconcileStore, periodSeconds: number): ReconcileLoop {
  // A mark outlives a few periods; a second sighting must come at least half a period after the first.
  const options = {
    markTtlSeconds: Math.max(3600, periodSeconds * 4),
    minMarkAgeSeconds: Math.floor(periodSeconds / 2),
  };
  let running: Promise<ReconcileReport | undefined> = Promise.resolve(undefined);
  let stopped = false;

  const runOnce = (): Promise<ReconcileReport | undefined> => {
    running = running.then(async () => {
      if (stopped) return undefined;
      try {
        const report = await reconcile(deps, store, options);
        if (hasRepairs(report)) deps.log.info('reconciler run', { ...summary(report) });
        return report;
      } catch (error) {
        const report = error instanceof ReconcileFailed ? error.report : undefined;
        deps.log.error('reconciler run failed', { error: String(error), ...(report ? summary(report) : {}) });
        return report;
      }
    });
    return running;
  };

  const timer = setInterval(() => void runOnce(), periodSeconds * 1000);
  timer.unref();
  return {
    runNow: runOnce,
    async stop() {
      clearInterval(timer);
      stopped = true;
      await running;
    },
  };
}

function hasRepairs(report: ReconcileReport): boolean {
  const s = summary(report);
  return Object.values(s).some((n) => typeof n === 'number' && n > 0);
}

function summary(report: ReconcileReport) {
  return {
    orphansMarked: report.orphans.marked.length,
    orphansTerminated: report.orphans.terminated.length,
    lostMarked: report.lost.marked.length,
    lostReported: report.lost.reported.length,
    stuckMarked: report.stuck.marked.length,
    redriven: report.stuck.redriven.length,
    usageMarked: report.usage.marked.length,
    usageRepaired: report.usage.repaired.length,
    admitted: report.drained.reduce((n, d) => n + d.admitted.length, 0),
    errors: report.errors.length,
  };
}
