/**
 * DynamoDB Local (AWS's Java emulator) for the local control plane and the
 * integration tests: one JVM, bound to 127.0.0.1 by Flare's launcher, started
 * on a free port and stopped with the process. The emulator comes from the
 * cache of dynamodb-local-install.ts; see docs/dynamodb-local.md.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { DynamoDbLocalStartError, JavaNotFoundError, PortTakenError } from './dynamodb-local-errors.js';
import { LAUNCHER_CLASS, ensureDynamoDbLocal, ensureLauncher } from './dynamodb-local-install.js';
import { waitUntilAnswering } from './dynamodb-local-ready.js';
import { checkJava } from './java-runtime.js';

const STOP_GRACE_MS = 5_000;
const PORT_ATTEMPTS = 3;
const STDERR_TAIL_LINES = 40;

export interface StartDynamoDbLocalOptions {
  /** Directory for the database file; created if missing. Ignored when `inMemory`. */
  dataDir?: string;
  /** @default true when no `dataDir` is given */
  inMemory?: boolean;
  /** @default a free port on 127.0.0.1 */
  port?: number;
  /** Receives every line DynamoDB Local prints, and Flare's own notes about it. */
  log?: (line: string) => void;
}

export interface DynamoDbLocal {
  endpoint: string;
  port: number;
  /** The JVM's process id. */
  pid: number;
  /** Milliseconds from spawning the JVM until the first successful ListTables. */
  startupMs: number;
  /** Settles when the JVM has exited, whether stop() ended it or not (a supervisor tells which). */
  exited: Promise<JvmExit>;
  stop(): Promise<void>;
}

export interface JvmExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * Starts DynamoDB Local bound to 127.0.0.1 and resolves once it answers
 * ListTables. `-sharedDb`, so every client sees the same tables whatever its
 * credentials or region. Telemetry is off.
 */
export async function startDynamoDbLocal(options: StartDynamoDbLocalOptions = {}): Promise<DynamoDbLocal> {
  const log = options.log ?? (() => {});
  const inMemory = options.inMemory ?? options.dataDir === undefined;
  if (!inMemory && options.dataDir === undefined) {
    throw new TypeError('startDynamoDbLocal: give a dataDir, or inMemory: true');
  }
  const java = await checkJava();
  const bindAll = process.env.FLARE_DYNAMODB_LOCAL_BIND_ALL === '1';
  if (!java.canCompile && !bindAll) {
    throw new JavaNotFoundError(
      `${java.version} cannot compile Java (no jdk.compiler module), which Flare needs to bind DynamoDB Local ` +
        'to 127.0.0.1 only. Install a full runtime (Debian/Ubuntu: `apt-get install -y default-jre-headless` ships it; ' +
        'or any JDK), or set FLARE_DYNAMODB_LOCAL_BIND_ALL=1 to accept DynamoDB Local listening on all interfaces.',
    );
  }
  const emulator = await ensureDynamoDbLocal();
  const launcher = bindAll ? undefined : await ensureLauncher(emulator, java.command);
  if (!inMemory) await mkdir(options.dataDir!, { recursive: true });

  const fixedPort = options.port !== undefined && options.port !== 0;
  for (let attempt = 1; ; attempt++) {
    const port = fixedPort ? options.port! : await freeLoopbackPort();
    try {
      return await launch({ java: java.command, emulator, launcher, port, inMemory, dataDir: options.dataDir, log });
    } catch (error) {
      // The port was free when we looked; another process may have taken it since.
      if (fixedPort || attempt >= PORT_ATTEMPTS || !(error instanceof PortTakenError)) throw error;
      log(`flare: port ${port} was taken before DynamoDB Local could bind it; retrying on another port`);
    }
  }
}

interface LaunchParams {
  java: string;
  emulator: string;
  port: number;
  inMemory: boolean;
  dataDir: string | undefined;
  /** Class directory of the loopback launcher; without it, the stock `-jar` entry point (all interfaces). */
  launcher: string | undefined;
  log: (line: string) => void;
}

async function launch(p: LaunchParams): Promise<DynamoDbLocal> {
  const storage = p.inMemory ? ['-inMemory'] : ['-dbPath', p.dataDir!];
  const serverArgs = ['-sharedDb', '-disableTelemetry', '-port', String(p.port), ...storage];
  // C1-only JIT and the serial collector cut start-up from ~3 s to ~2 s on two CPUs; a local
  // emulator for one machine never needs the peak throughput C2 would buy later.
  const jvmOptions = [
    '-XX:TieredStopAtLevel=1',
    '-XX:+UseSerialGC',
    `-Djava.library.path=${join(p.emulator, 'DynamoDBLocal_lib')}`,
  ];
  const jar = join(p.emulator, 'DynamoDBLocal.jar');
  const args =
    p.launcher === undefined
      ? [...jvmOptions, '-jar', jar, ...serverArgs]
      : [...jvmOptions, '-cp', [jar, p.launcher].join(delimiter), LAUNCHER_CLASS, ...serverArgs];
  if (p.launcher === undefined)
    p.log('flare: FLARE_DYNAMODB_LOCAL_BIND_ALL=1: DynamoDB Local listens on all interfaces');

  const startedAt = performance.now();
  const child = spawn(p.java, args, {
    cwd: p.emulator,
    env: { ...process.env, DDB_LOCAL_TELEMETRY: '0' },
    stdio: ['pipe', 'pipe', 'pipe'],
    // Its own process group, so Ctrl-C at the terminal reaches only the plane, which stops it in
    // order (else the JVM dies first and the plane restarts it); the launcher's stdin watch ends it if the plane dies.
    detached: p.launcher !== undefined,
  });
  track(child);
  const tail: string[] = [];
  const onLine = (line: string) => {
    tail.push(line);
    if (tail.length > STDERR_TAIL_LINES) tail.shift();
    p.log(line);
  };
  forEachLine(child.stdout!, onLine);
  forEachLine(child.stderr!, onLine);
  const exited = new Promise<JvmExit>((resolve) => {
    // 'close', not 'exit': by then stdout and stderr are drained, so the tail holds the JVM's last words.
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  const spawnFailed = new Promise<never>((_, reject) => {
    child.once('error', (error) => reject(new DynamoDbLocalStartError(`could not run ${p.java}`, { cause: error })));
  });

  let exitedEarly = false;
  const early = exited.then(({ code, signal }) => {
    exitedEarly = true;
    const output = tail.join('\n');
    const message = `DynamoDB Local exited before it was ready (code ${code}, signal ${signal}):\n${output}`;
    throw /Failed to bind|BindException|Address already in use/.test(output)
      ? new PortTakenError(message)
      : new DynamoDbLocalStartError(message);
  });
  // Both are observed by the race below; these keep their later rejections
  // (the JVM exiting on stop(), say) from counting as unhandled.
  early.catch(() => {});
  spawnFailed.catch(() => {});

  const endpoint = `http://127.0.0.1:${p.port}`;
  const stop = async () => {
    // No pid: spawn itself failed, and there is nothing to wait for.
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
    }
    untrack(child);
  };

  try {
    await Promise.race([waitUntilAnswering(endpoint, () => exitedEarly), early, spawnFailed]);
  } catch (error) {
    await stop();
    throw error;
  }
  const startupMs = Math.round(performance.now() - startedAt);
  p.log(`flare: DynamoDB Local ready at ${endpoint} in ${startupMs} ms`);
  // Do not hold the event loop open: a test that forgets stop() still ends, and the exit hook kills the JVM.
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr])
    (stream as unknown as { unref?: () => void }).unref?.();
  return { endpoint, port: p.port, pid: child.pid!, startupMs, exited, stop };
}

/** Binds 127.0.0.1:0 to learn a free port, then releases it. */
export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('could not read the port of a loopback listener'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

// Children still running when this process exits are killed. The launcher
// also exits on its own when its stdin closes, which covers SIGKILL of Node.
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function track(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of running) c.kill('SIGKILL');
    });
  }
}

function untrack(child: ChildProcess): void {
  running.delete(child);
}

function forEachLine(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let buffered = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buffered += chunk;
    let newline: number;
    while ((newline = buffered.indexOf('\n')) !== -1) {
      onLine(buffered.slice(0, newline).replace(/\r$/, ''));
      buffered = buffered.slice(newline + 1);
    }
  });
  stream.on('end', () => {
    if (buffered !== '') onLine(buffered);
    buffered = '';
  });
}
