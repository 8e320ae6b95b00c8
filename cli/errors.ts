/**
 * How the CLI ends: a CliError carries its exit code and the lines to show
 * under `flare: <message>`; anything else is a bug in the CLI.
 */

/** Exit codes, documented in `flare --help`. */
export const ExitCode = {
  OK: 0,
  /** The API refused or failed (4xx other than below, 5xx), or could not be reached. */
  API: 1,
  /** Unknown command or flag, a missing or malformed argument, no API URL or token. */
  USAGE: 2,
  NOT_FOUND: 3,
  /** 401 or 403. */
  AUTH: 4,
  /** `job wait` / `job create --wait`: the job ended FAILED. */
  JOB_FAILED: 5,
  /** ... EXPIRED (its live timeout was reached). */
  JOB_EXPIRED: 6,
  /** ... CANCELLED. */
  JOB_CANCELLED: 7,
} as const;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = ExitCode.API,
    /** Shown indented under the message, one per line (e.g. `field: reason`). */
    readonly details: readonly string[] = [],
    options?: { cause?: unknown; retryable?: boolean },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.retryable = options?.retryable ?? false;
  }

  /** A network error or a 5xx/429: a poll may try again. */
  readonly retryable: boolean;
}

/** Bad command line: shown with the command's usage, exit code 2. */
export class UsageError extends CliError {
  constructor(
    message: string,
    readonly usage?: string,
  ) {
    super(message, ExitCode.USAGE);
  }
}

/** An error answer of the API: `{ error: { code, message, details: [{ field, reason }] } }`. */
export class ApiError extends CliError {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields: ReadonlyArray<{ field: string; reason: string }>,
  ) {
    super(
      describe(status, code, message, fields),
      exitCodeFor(status),
      [...fields.map((d) => `${d.field}: ${d.reason}`), ...hint(status)],
      {
        retryable: status >= 500 || status === 429,
      },
    );
  }
}

function exitCodeFor(status: number): number {
  if (status === 404) return ExitCode.NOT_FOUND;
  if (status === 401 || status === 403) return ExitCode.AUTH;
  return ExitCode.API;
}

/** A validation message only repeats its details: say what happened instead. */
function describe(
  status: number,
  code: string,
  message: string,
  fields: ReadonlyArray<{ field: string; reason: string }>,
): string {
  if (fields.length && message === fields.map((d) => `${d.field}: ${d.reason}`).join('; '))
    return `the API refused the request (${status} ${code}):`;
  return message;
}

function hint(status: number): string[] {
  return status === 401 ? ['check --token, FLARE_TOKEN or the profile'] : [];
}
