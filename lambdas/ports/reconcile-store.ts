import type { QuotaResource } from '../core/schemas.js';

/** What a mark is about: an orphan instance, a job whose instances are missing, a stuck job, a drifted usage counter. */
export type MarkKind = 'orphan' | 'lost' | 'stuck' | 'usage';

/**
 * One run's observation of a problem. The reconciler acts only when a later run
 * sees the same `observed` again, so no repair rests on a single, possibly stale,
 * reading of an eventually consistent source.
 */
export interface Mark {
  /** A fingerprint of what was seen (the job's state, the counter's values, ...). */
  observed: string;
  /** ISO 8601 UTC. */
  markedAt: string;
}

/** A usage counter: a project's quota row for one resource, or a pool's GPU row. */
export type CounterRef = { kind: 'quota'; project: string; resource: QuotaResource } | { kind: 'pool'; pool: string };

/** A counter row as stored. Each field is undefined when its attribute (or the whole row) is absent. */
export interface CounterRow {
  ref: CounterRef;
  used?: number;
  available?: number;
  /** The quota's `hardLimit` or the pool's `maxGpus`. */
  limit?: number;
}

/** The reconciler's own state (marks, with a time to live) and its guarded counter repairs. */
export interface ReconcileStore {
  /** The unexpired marks of `kind` among `subjects`, by subject; a mark past its expiry counts as absent. */
  getMarks(kind: MarkKind, subjects: readonly string[], now: Date): Promise<Map<string, Mark>>;
  /** Record (or replace) a mark; the store forgets it after `expiresAt`. */
  putMark(kind: MarkKind, subject: string, mark: Mark, expiresAt: Date): Promise<void>;
  /** Forget marks; subjects without one are ignored. */
  clearMarks(kind: MarkKind, subjects: readonly string[]): Promise<void>;
  /** Every quota and pool row, read strongly consistently. */
  listCounters(): Promise<CounterRow[]>;
  /**
   * Set the counter's `used` (and `available = limit - used` where there is a limit),
   * only if `used`, `available` and the limit are still exactly those in `read`:
   * an admission or release since the read makes it a no-op. False when it did not apply.
   */
  repairCounter(read: CounterRow, used: number): Promise<boolean>;
}
