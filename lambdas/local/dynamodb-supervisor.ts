/**
 * Keeps DynamoDB Local running for the local control plane: when the JVM
 * exits without being asked to (killed, crashed), it is started again on the
 * same port and data directory, so the SDK clients, which know only the
 * endpoint, carry on once it answers. Attempts back off (doubling to a cap)
 * and only the first failure of an outage and every Nth after it are logged.
 * The data survives on disk (`-dbPath`); an in-memory emulator comes back
 * empty, and the plane's restart hook creates the tables again.
 */
import type { Logger } from '../core/deps.js';
import {
  startDynamoDbLocal,
  type DynamoDbLocal,
  type JvmExit,
  type StartDynamoDbLocalOptions,
} from './dynamodb-local.js';

export interface SuperviseDynamoDbLocalOptions extends Omit<StartDynamoDbLocalOptions, 'log'> {
  /** Restarts and failures (one line each, bounded as above). */
  log: Logger;
  /** Every line the JVM prints. @default dropped */
  output?: (line: string) => void;
  /** The wait before the first restart attempt of an outage, doubled per failed attempt. @default 500 */
  firstDelayMs?: number;
  /** @default 15000 */
  maxDelayMs?: number;
  /** Log the first failure of an outage, then every Nth. @default 10 */
  logEvery?: number;
  /** What starts one JVM. @default startDynamoDbLocal */
  start?: (options: StartDynamoDbLocalOptions) => Promise<DynamoDbLocal>;
}

export interface DynamoDbLocalHealth {
  /** `ok` while a JVM answers; `restarting` from its unexpected exit until a new one answers. */
  status: 'ok' | 'restarting';
  pid?: number;
  /** Restarts since the plane started. */
  restarts: number;
  /** While restarting: since when, how the JVM ended, attempts that failed so far and the last one's error. */
  downSince?: string;
  lastExit?: string;
  failedAttempts?: number;
  lastError?: string;
}

export interface SupervisedDynamoDbLocal {
  readonly endpoint: string;
  readonly port: number;
  /** The running JVM's pid; undefined while it is down. */
  pid(): number | undefined;
  health(): DynamoDbLocalHealth;
  /** Runs after every restart, once the new JVM answers (e.g. to create the tables of an in-memory emulator). */
  onRestart(listener: () => Promise<void>): void;
  /** Stops the JVM and the supervision; a stop is not an exit to restart from. */
  stop(): Promise<void>;
}

/** A JVM that ran this long before it died starts a new outage: delays and log counts begin again. */
const STABLE_MS = 60_000;

export async function superviseDynamoDbLocal(options: SuperviseDynamoDbLocalOptions): Promise<SupervisedDynamoDbLocal> {
  const {
    log,
    output,
    firstDelayMs = 500,
    maxDelayMs = 15_000,
    logEvery = 10,
    start = startDynamoDbLocal,
    ...jvm
  } = options;
  const launch = (port: number) => start({ ...jvm, port, ...(output ? { log: output } : {}) });
  let current: DynamoDbLocal | undefined = await launch(jvm.port ?? 0);
  const { endpoint, port } = current;

  let stopped = false;
  let restarts = 0;
  let upSince = Date.now();
  let failures = 0; // exits and failed attempts since a JVM last ran for STABLE_MS
  // `logged`: its exit was logged, so its end is too (a crash loop logs one outage in ten).
  let outage:
    | { since: Date; lastExit: string; failedAttempts: number; logged: boolean; lastError?: string }
    | undefined;
  let timer: NodeJS.Timeout | undefined;
  let attempt: Promise<void> | undefined;
  const listeners: Array<() => Promise<void>> = [];

  const noisy = () => failures === 1 || failures % logEvery === 0;

  const schedule = () => {
    const delay = Math.min(firstDelayMs * 2 ** Math.max(0, failures - 1), maxDelayMs);
    timer = setTimeout(() => (attempt = restart().finally(() => (attempt = undefined))), delay);
    timer.unref();
  };

  const watch = (instance: DynamoDbLocal) => {
    void instance.exited.then((exit) => {
      if (stopped || current !== instance) return;
      current = undefined;
      if (Date.now() - upSince >= STABLE_MS) failures = 0;
      failures += 1;
      outage = { since: new Date(), lastExit: describeExit(exit), failedAttempts: 0, logged: noisy() };
      if (outage.logged)
        log.error('DynamoDB Local exited unexpectedly; restarting it', {
          pid: instance.pid,
          exit: outage.lastExit,
          port,
          failures,
        });
      schedule();
    });
  };

  const restart = async () => {
    if (stopped) return;
    let instance: DynamoDbLocal;
    try {
      instance = await launch(port);
    } catch (error) {
      failures += 1;
      const lastError = String(error).split('\n')[0].slice(0, 300);
      if (outage) Object.assign(outage, { failedAttempts: outage.failedAttempts + 1, lastError });
      if (noisy())
        log.error('DynamoDB Local could not be restarted; trying again', { port, failures, error: lastError });
      if (!stopped) schedule();
      return;
    }
    if (stopped) return instance.stop();
    current = instance;
    restarts += 1;
    upSince = Date.now();
    if (outage?.logged)
      log.warn('DynamoDB Local restarted', {
        pid: instance.pid,
        port,
        downMs: Date.now() - outage.since.getTime(),
        failures,
        restarts,
      });
    outage = undefined;
    watch(instance);
    for (const listener of listeners) {
      try {
        await listener();
      } catch (error) {
        log.error('after the DynamoDB Local restart', { error: String(error) });
      }
    }
  };

  watch(current);
  return {
    endpoint,
    port,
    pid: () => current?.pid,
    health: () =>
      current
        ? { status: 'ok', pid: current.pid, restarts }
        : {
            status: 'restarting',
            restarts,
            ...(outage
              ? {
                  downSince: outage.since.toISOString(),
                  lastExit: outage.lastExit,
                  failedAttempts: outage.failedAttempts,
                }
              : {}),
            ...(outage?.lastError ? { lastError: outage.lastError } : {}),
          },
    onRestart: (listener) => void listeners.push(listener),
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await attempt;
      await current?.stop();
      current = undefined;
    },
  };
}

function describeExit(exit: JvmExit): string {
  return exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
}
