/**
 * Domain errors. Core throws these; only the HTTP layer maps them to status
 * codes, and the state machine's Retry/Catch match them by `name`.
 */
export class FlareError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

export interface FieldIssue {
  field: string;
  reason: string;
}

export class ValidationError extends FlareError {
  constructor(readonly details: FieldIssue[]) {
    super(details.map((d) => `${d.field}: ${d.reason}`).join('; '));
  }
}

export class PayloadTooLarge extends FlareError {
  constructor(readonly limitBytes: number) {
    super(`request body is larger than ${limitBytes} bytes`);
  }
}

export class Unauthorized extends FlareError {}
export class Forbidden extends FlareError {}

export class NotFound extends FlareError {
  constructor(
    readonly kind: string,
    readonly id: string,
  ) {
    super(`${kind} ${id} not found`);
  }
}

export class JobNotFound extends NotFound {
  constructor(id: string) {
    super('job', id);
    this.name = 'JobNotFound';
  }
}

export class Conflict extends FlareError {}
export class IdempotencyConflict extends Conflict {}

/** Well-formed but impossible, e.g. more GPUs than the pool can ever hold. */
export class Unprocessable extends FlareError {}

export class QuotaExceeded extends FlareError {
  constructor(
    readonly project: string,
    readonly resource: string,
    message: string,
  ) {
    super(message);
  }
}

export class InvalidTransition extends FlareError {
  constructor(
    readonly jobId: string,
    readonly from: string,
    readonly to: string,
  ) {
    super(`job ${jobId} cannot go from ${from} to ${to}`);
  }
}

/** A conditional write lost a race; the caller re-reads and decides again. */
export class StaleJob extends FlareError {
  constructor(readonly jobId: string) {
    super(`job ${jobId} changed while it was being updated`);
  }
}

/** Compute could not be had: no capacity, launch refused. Not retried by the workflow. */
export class LaunchFailed extends FlareError {}

/** The compute never became ready within its bound. */
export class ComputeNotReady extends FlareError {}

/**
 * Every subnet and instance type of the pool said "no capacity" (or the
 * account's vCPU limit was reached). Not a failure of the job: the workflow
 * releases its GPUs and puts it back at the head of its queue with a backoff.
 * `operatorProblem` marks causes only an operator can fix (a service quota),
 * which are also published as an operator event.
 */
export class NoCapacity extends FlareError {
  constructor(
    message: string,
    readonly operatorProblem = false,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    // The workflow sees only the name: an operator problem gets its own, so the Requeue step can raise it.
    if (operatorProblem) this.name = CAPACITY_LIMIT_REACHED;
  }
}

/** The error name of a NoCapacity that only an operator can fix. */
export const CAPACITY_LIMIT_REACHED = 'CapacityLimitReached';

/** What a 503 asks the client to wait before retrying, in seconds. */
export const RETRY_AFTER_SECONDS = 5;

/**
 * A service Flare depends on could not be reached, timed out or is throttling:
 * the same request may succeed later. The HTTP layer answers 503 with
 * Retry-After; the workflow's Retry matches the subclasses' names.
 */
export class Unavailable extends FlareError {
  readonly retryAfterSeconds = RETRY_AFTER_SECONDS;
}

/** DynamoDB (the job store) is unreachable or throttling. The name is spelt out: bundles minify class names. */
export class StoreUnavailable extends Unavailable {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailable';
  }
}

/** Secrets Manager is unreachable or throttling. */
export class SecretsUnavailable extends Unavailable {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SecretsUnavailable';
  }
}

/** S3 (the outputs bucket) is unreachable or throttling (SlowDown). */
export class OutputsUnavailable extends Unavailable {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OutputsUnavailable';
  }
}

/** Step Functions is unreachable or throttling. */
export class WorkflowsUnavailable extends Unavailable {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WorkflowsUnavailable';
  }
}
