/**
 * The operational metrics the functions write (lambdas/core/metrics.ts reports them, Powertools
 * writes them as EMF) and lib/dashboard.ts graphs: one list, so the two cannot drift apart.
 */

/** The CloudWatch namespace of every figure. */
export const METRICS_NAMESPACE = 'Flare';
/** The `service` dimension of the figures, and the log service of the functions that share Deps. */
export const METRICS_SERVICE = 'flare';

export const METRIC = {
  /** A job took its GPUs (stored admitted at submit, or admitted from the queue). */
  admissions: 'Admissions',
  /** From a job's submit to its admission, per admitted job. */
  queueWait: 'QueueWaitMs',
  /** One drain pass of one pool, start to end. */
  drainLatency: 'DrainLatencyMs',
  /** A DynamoDB transaction lost to another one touching the same items (and was retried). */
  transactionConflicts: 'TransactionConflicts',
  /** A job ended EXPIRED: its live timeout ran out. */
  expiries: 'Expiries',
  /** A launch did not give a job its compute (requeued for no capacity, or failed before it ran), by `reason`. */
  launchFailures: 'LaunchFailures',
} as const;
