import type { Logger } from '../core/deps.js';

/** One JSON line per entry (what CloudWatch Logs Insights and `jq` read). */
export function consoleLogger(
  base: Record<string, unknown> = {},
  sink: (line: string) => void = (l) => process.stderr.write(`${l}\n`),
): Logger {
  const write = (level: string, message: string, data?: Record<string, unknown>) =>
    sink(JSON.stringify({ level, time: new Date().toISOString(), message, ...base, ...data }));
  return {
    info: (m, d) => write('info', m, d),
    warn: (m, d) => write('warn', m, d),
    error: (m, d) => write('error', m, d),
  };
}
