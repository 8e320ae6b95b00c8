/** Small fakes of the ports for unit tests: no DynamoDB, no process, nothing to start. */
import type { Logger } from '../../lambdas/core/deps.js';

/**
 * A port with only the methods given: calling any other throws, naming the port and the method, so a fake
 * stays the size of what its callers use and a call they should not make fails loudly.
 */
export function partialPort<T extends object>(port: string, methods: Partial<T> = {}): T {
  return new Proxy(methods, {
    get(target, member) {
      // `then` and symbols are probes (await, inspection), not calls: answer them as a plain object would.
      if (member in target || member === 'then' || typeof member === 'symbol') return Reflect.get(target, member);
      return () => {
        throw new Error(`${port}.${member} is not faked: the code under test was not expected to call it`);
      };
    },
  }) as T;
}

export interface LogEntry {
  level: 'info' | 'warn' | 'error';
  message: string;
  data?: Record<string, unknown>;
}

/** A Logger that keeps what was logged, in order. */
export function recordingLog(): {
  log: Logger;
  entries: LogEntry[];
  /** How many entries start with `message`. */
  count(message: string): number;
} {
  const entries: LogEntry[] = [];
  const at = (level: LogEntry['level']) => (message: string, data?: Record<string, unknown>) =>
    void entries.push({ level, message, data });
  return {
    log: { info: at('info'), warn: at('warn'), error: at('error') },
    entries,
    count: (message) => entries.filter((e) => e.message.startsWith(message)).length,
  };
}
