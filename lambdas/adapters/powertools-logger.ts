/**
 * The Logger port on Powertools for AWS Lambda: one JSON line per entry with the Lambda context
 * (function, request id, cold start, X-Ray trace) once `injectLambdaContext` ran for the invocation,
 * and `correlation_id` when the handler names the job it works on.
 */
import { Logger as PowertoolsLogger } from '@aws-lambda-powertools/logger';
import type { Logger } from '../core/deps.js';

export { PowertoolsLogger };

export function powertoolsLogger(serviceName: string): PowertoolsLogger {
  return new PowertoolsLogger({ serviceName });
}

/** The port's calls as Powertools entries: `data` becomes top-level keys, as the console logger wrote them. */
export function loggerPort(logger: PowertoolsLogger): Logger {
  return {
    info: (message, data) => (data ? logger.info(message, data) : logger.info(message)),
    warn: (message, data) => (data ? logger.warn(message, data) : logger.warn(message)),
    error: (message, data) => (data ? logger.error(message, data) : logger.error(message)),
  };
}
