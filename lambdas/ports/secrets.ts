/** A secret as listed: never its value. */
export interface SecretSummary {
  name: string;
  /** ISO 8601 UTC: when its value was last put. */
  updatedAt: string;
}

/**
 * A project's named, write-only values: files in the data directory locally,
 * Secrets Manager on AWS. Names are checked by core (core/secrets.ts) before
 * they reach a store.
 */
export interface SecretStore {
  /** Create or replace. */
  put(project: string, name: string, value: string, updatedAt: string): Promise<void>;
  /** Every secret of the project, by name. */
  list(project: string): Promise<SecretSummary[]>;
  /** False when the project had no secret by that name. */
  delete(project: string, name: string): Promise<boolean>;
  /** Which of `names` the project has no secret by. */
  missing(project: string, names: readonly string[]): Promise<string[]>;
  /**
   * The values of `names` (those that exist), for the job's environment (local driver)
   * and for masking them in the logs the API serves.
   */
  values(project: string, names: readonly string[]): Promise<Map<string, string>>;
}
