/**
 * How the EC2 client retries. EC2 answers InsufficientInstanceCapacity with a
 * server error (HTTP 500), which the SDK's standard strategy resends with the
 * same ClientToken: the same type in the same subnet, refused again, while
 * the next subnet or fallback type could have had room. Capacity errors
 * therefore go straight back to the launch loop, which moves on; throttling
 * and real server faults keep the standard retries.
 */
import { StandardRetryStrategy } from '@smithy/core/retry';
import type { RetryErrorInfo, StandardRetryToken } from '@smithy/types';
import { CAPACITY_ERROR_CODES } from './ec2-launch.js';

/** The SDK's default number of attempts. */
export const EC2_MAX_ATTEMPTS = 3;

export class CapacityFailsFast extends StandardRetryStrategy {
  constructor(maxAttempts = EC2_MAX_ATTEMPTS) {
    super(maxAttempts);
  }

  override async refreshRetryTokenForRetry(
    token: StandardRetryToken,
    errorInfo: RetryErrorInfo,
  ): Promise<StandardRetryToken> {
    const name = (errorInfo.error as { name?: string } | undefined)?.name;
    // Thrown here, the SDK gives up and throws the EC2 error itself to the caller.
    if (name && CAPACITY_ERROR_CODES.includes(name))
      throw new Error(`${name}: not retried, the launch tries the next subnet or type`);
    return super.refreshRetryTokenForRetry(token, errorInfo);
  }
}
