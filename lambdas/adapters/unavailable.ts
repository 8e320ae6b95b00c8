/**
 * The one place an AWS SDK error that means "the service is down or busy, try
 * later" becomes a domain error (StoreUnavailable, WorkflowsUnavailable) that
 * the HTTP layer answers with 503 and the workflow retries. Errors are told by
 * the SDK's `name` and Node's `code` strings, never by class: a minified
 * bundle renames classes.
 */
import type { Unavailable } from '../core/errors.js';

/** DynamoDB's, Step Functions' and S3's names for "too many requests, slow down". */
const THROTTLED = new Set([
  'SlowDown',
  'ThrottlingException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'TooManyRequestsException',
]);

/** Their names for a fault on their side, which a later request may not meet. */
const FAILING = new Set([
  'InternalServerError',
  'InternalFailure',
  'ServiceUnavailable',
  'ServiceUnavailableException',
]);

/** The SDK's names for a request that got no answer in time. */
const TIMED_OUT = new Set(['TimeoutError', 'RequestTimeout', 'RequestTimeoutException']);

/** Node's socket errors: nobody listening, connection dropped, no route. */
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

/** A transaction item's cancellation code when DynamoDB throttled it. */
const THROTTLED_ITEM = new Set(['ThrottlingError', 'ProvisionedThroughputExceeded']);

interface SdkLikeError {
  name?: unknown;
  code?: unknown;
  $metadata?: { httpStatusCode?: number };
  CancellationReasons?: Array<{ Code?: string }>;
}

/**
 * Why `error` means the service is unavailable for now ("throttled
 * (ThrottlingException)", "unreachable (ECONNREFUSED)"), or undefined when
 * it is any other error. Says nothing about hosts or ports: the text reaches
 * API clients.
 */
export function unavailableReason(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { name, code, $metadata, CancellationReasons } = error as SdkLikeError;
  if (typeof name === 'string' && THROTTLED.has(name)) return `throttled (${name})`;
  if (typeof name === 'string' && FAILING.has(name)) return `failing (${name})`;
  if (typeof name === 'string' && TIMED_OUT.has(name)) return `not answering in time (${name})`;
  if (typeof code === 'string' && UNREACHABLE.has(code)) return `unreachable (${code})`;
  if (name === 'TransactionCanceledException' && CancellationReasons) {
    const codes = CancellationReasons.map((r) => r.Code ?? 'None');
    // A condition that said no decides the answer; throttled items alone mean "try again".
    if (codes.some((c) => THROTTLED_ITEM.has(c)) && codes.every((c) => c === 'None' || THROTTLED_ITEM.has(c)))
      return 'throttled (TransactionCanceledException: ThrottlingError)';
  }
  if ($metadata?.httpStatusCode === 503) return `failing (HTTP 503${typeof name === 'string' ? ` ${name}` : ''})`;
  return undefined;
}

type Sender = { send(...args: never[]): Promise<unknown> };

/**
 * `client` with `send` throwing `unavailable(message, { cause })` for the
 * errors above (after the SDK's own retries), and every other error as it
 * was. Every adapter built on the returned client gets the mapping; the
 * client itself is left as it was (a test may mock its `send`).
 */
export function reportUnavailable<C extends Sender>(
  client: C,
  service: string,
  unavailable: new (message: string, options: { cause: unknown }) => Unavailable,
): C {
  const guarded = Object.create(client) as C;
  const send = async (...args: never[]) => {
    try {
      return await client.send(...args);
    } catch (error) {
      const reason = unavailableReason(error);
      if (reason === undefined) throw error;
      throw new unavailable(`${service} is ${reason}; try again later`, { cause: error });
    }
  };
  Object.defineProperty(guarded, 'send', { value: send });
  return guarded;
}
