/**
 * DynamoDB Local (AWS's Java emulator) for the local control plane and the
 * integration tests.
 *
 * The emulator is not a dependency: it ships inside the npm package
 * `amplify-dynamodb-simulator`, whose own dependency tree is huge, so we fetch
 * that one tarball lazily with `npm pack` (npm's registry, proxy and cache
 * settings apply, so it works wherever `npm ci` works), check it against the
 * integrity pinned below, and keep only `package/emulator/`. See
 * docs/dynamodb-local.md.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';

export const DYNAMODB_LOCAL_PACKAGE = 'amplify-dynamodb-simulator';
export const DYNAMODB_LOCAL_PACKAGE_VERSION = '2.9.30';
/** `npm view amplify-dynamodb-simulator@2.9.30 dist.integrity`. It carries DynamoDB Local 1.25.1. */
export const DYNAMODB_LOCAL_PACKAGE_INTEGRITY =
  'sha512-xTeeRLvzEfqyd5lh3bH4c0kHvSHHmmhD5ZDsHFKAQ5g2Zl6JqlFdutaQhCLHzxEp6Ry1o7TB6niIoXuQAnSewQ==';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const COMPLETE_MARKER = '.flare-complete.json';
const LAUNCHER_CLASS = 'FlareLoopbackRunner';
const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;
const PORT_ATTEMPTS = 3;
const STDERR_TAIL_LINES = 40;

/**
 * The loopback launcher's source (what it does is said in the file). It is compiled once per source
 * version with the runtime's own `jdk.compiler` module (Java 11+); running it in source-file mode
 * instead would cost ~4 s on every start.
 */
const LAUNCHER_SOURCE_FILE = fileURLToPath(new URL(`./${LAUNCHER_CLASS}.java`, import.meta.url));

export class JavaNotFoundError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'JavaNotFoundError';
  }
}

export class DynamoDbLocalIntegrityError extends Error {
  constructor(
    readonly file: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`integrity mismatch for ${file}: expected ${expected}, got ${actual}; refusing to use it`);
    this.name = 'DynamoDbLocalIntegrityError';
  }
}

export class DynamoDbLocalInstallError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DynamoDbLocalInstallError';
  }
}

export class DynamoDbLocalStartError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DynamoDbLocalStartError';
  }
}

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

/** `FLARE_DYNAMODB_LOCAL_DIR`, else `<repo>/node_modules/.cache/flare/dynamodb-local-<version>/`. */
export function dynamoDbLocalDir(): string {
  const override = process.env.FLARE_DYNAMODB_LOCAL_DIR;
  if (override !== undefined && override !== '') return override;
  return join(REPO_ROOT, 'node_modules', '.cache', 'flare', `dynamodb-local-${DYNAMODB_LOCAL_PACKAGE_VERSION}`);
}

/**
 * Checks `file` against a Subresource Integrity string (`sha512-<base64>`, as
 * npm writes it). Throws DynamoDbLocalIntegrityError on mismatch.
 */
export async function verifyIntegrity(file: string, expected: string): Promise<void> {
  const match = /^(sha512|sha384|sha256)-([A-Za-z0-9+/]+={0,2})$/.exec(expected.trim());
  if (match === null) throw new TypeError(`not a supported integrity string: ${expected}`);
  const algorithm = match[1];
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  const actual = `${algorithm}-${hash.digest('base64')}`;
  if (actual !== expected.trim()) throw new DynamoDbLocalIntegrityError(file, expected, actual);
}

interface CompleteMarker {
  package: string;
  version: string;
  integrity: string;
  installedAt: string;
}

/**
 * Makes sure the emulator is in the cache and returns its directory (the one
 * holding DynamoDBLocal.jar and DynamoDBLocal_lib/). Safe when several
 * processes call it at once: each extracts into its own temporary directory
 * beside the cache and renames it into place; the loser of the rename race
 * discards its copy and uses the winner's.
 */
export async function ensureDynamoDbLocal(options: { dir?: string } = {}): Promise<string> {
  const dir = options.dir ?? dynamoDbLocalDir();
  if (!(await isInstalled(dir))) await install(dir);
  return dir;
}

async function isInstalled(dir: string): Promise<boolean> {
  let text: string;
  try {
    text = await readFile(join(dir, COMPLETE_MARKER), 'utf8');
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return false;
    throw error;
  }
  const marker = JSON.parse(text) as CompleteMarker;
  if (marker.integrity !== DYNAMODB_LOCAL_PACKAGE_INTEGRITY) {
    throw new DynamoDbLocalInstallError(
      `${dir} holds ${marker.package}@${marker.version} (${marker.integrity}), not the pinned ` +
        `${DYNAMODB_LOCAL_PACKAGE}@${DYNAMODB_LOCAL_PACKAGE_VERSION}; delete it or point FLARE_DYNAMODB_LOCAL_DIR elsewhere`,
    );
  }
  return true;
}

async function install(dir: string): Promise<void> {
  const parent = dirname(dir);
  await mkdir(parent, { recursive: true });
  // Beside the destination, so the final rename stays on one file system.
  const work = await mkdtemp(join(parent, `.${basename(dir)}.tmp-${process.pid}-`));
  try {
    const tarball = await packTarball(work);
    await verifyIntegrity(tarball, DYNAMODB_LOCAL_PACKAGE_INTEGRITY);
    await run('tar', ['-xzf', tarball, '--no-same-owner', '-C', work, 'package/emulator']);
    const staged = join(work, 'package', 'emulator');
    await stat(join(staged, 'DynamoDBLocal.jar'));
    const marker: CompleteMarker = {
      package: DYNAMODB_LOCAL_PACKAGE,
      version: DYNAMODB_LOCAL_PACKAGE_VERSION,
      integrity: DYNAMODB_LOCAL_PACKAGE_INTEGRITY,
      installedAt: new Date().toISOString(),
    };
    await writeFile(join(staged, COMPLETE_MARKER), `${JSON.stringify(marker, null, 2)}\n`);
    await moveIntoPlace(staged, dir, parent);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function moveIntoPlace(staged: string, dir: string, parent: string): Promise<void> {
  try {
    await rename(staged, dir);
    return;
  } catch (error) {
    if (!isErrno(error, 'ENOTEMPTY', 'EEXIST', 'EPERM')) throw error;
  }
  // Someone got there first. Their directory is complete if it has the marker,
  // because the marker is written before the rename.
  if (await isInstalled(dir)) return;
  // A directory without the marker was not made by this code (or predates it):
  // set it aside atomically, then retry once.
  const aside = join(parent, `.${basename(dir)}.stale-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await rename(dir, aside);
  } catch (error) {
    if (!isErrno(error, 'ENOENT')) throw error;
  }
  await rm(aside, { recursive: true, force: true });
  try {
    await rename(staged, dir);
  } catch (error) {
    if (isErrno(error, 'ENOTEMPTY', 'EEXIST', 'EPERM') && (await isInstalled(dir))) return;
    throw new DynamoDbLocalInstallError(`could not move DynamoDB Local into ${dir}`, { cause: error });
  }
}

/**
 * Compiles the loopback launcher into `<emulator>/flare-launcher-<hash>/`
 * unless that is already there, and returns that class directory. Same
 * temp-dir-then-rename scheme as the emulator itself.
 */
async function ensureLauncher(emulator: string, java: string): Promise<string> {
  const launcherSource = await readFile(LAUNCHER_SOURCE_FILE, 'utf8');
  const hash = createHash('sha256').update(launcherSource).digest('hex').slice(0, 12);
  const classes = join(emulator, `flare-launcher-${hash}`);
  if (await exists(join(classes, `${LAUNCHER_CLASS}.class`))) return classes;
  const work = await mkdtemp(join(emulator, `.flare-launcher-${hash}.tmp-${process.pid}-`));
  try {
    const source = join(work, `${LAUNCHER_CLASS}.java`);
    await writeFile(source, launcherSource);
    const javac = ['-m', 'jdk.compiler/com.sun.tools.javac.Main', '-proc:none', '-nowarn', '--release', '11'];
    try {
      await run(java, [...javac, '-cp', join(emulator, 'DynamoDBLocal.jar'), '-d', work, source]);
    } catch (error) {
      throw new DynamoDbLocalInstallError(`could not compile the DynamoDB Local launcher with ${java}`, {
        cause: error,
      });
    }
    await chmod(work, 0o755); // mkdtemp makes it private; the rest of the cache is world-readable
    try {
      await rename(work, classes);
    } catch (error) {
      if (
        !(isErrno(error, 'ENOTEMPTY', 'EEXIST', 'EPERM') && (await exists(join(classes, `${LAUNCHER_CLASS}.class`))))
      ) {
        throw new DynamoDbLocalInstallError(`could not move the DynamoDB Local launcher into ${classes}`, {
          cause: error,
        });
      }
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return classes;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return false;
    throw error;
  }
}

async function packTarball(destination: string): Promise<string> {
  const spec = `${DYNAMODB_LOCAL_PACKAGE}@${DYNAMODB_LOCAL_PACKAGE_VERSION}`;
  // Under `npm run`/`npm test`, use the very npm that is running; else the one on PATH.
  const npmCli = process.env.npm_execpath;
  const [command, prefix] =
    npmCli !== undefined && /npm-cli\.c?js$/.test(npmCli) ? [process.execPath, [npmCli]] : ['npm', []];
  let stdout: string;
  try {
    stdout = await run(
      command,
      [...prefix, 'pack', spec, '--pack-destination', destination, '--json', '--ignore-scripts'],
      {
        cwd: destination,
      },
    );
  } catch (error) {
    throw new DynamoDbLocalInstallError(`npm pack ${spec} failed; is the npm registry reachable?`, { cause: error });
  }
  const packed = JSON.parse(stdout) as Array<{ filename: string }>;
  const filename = packed[0]?.filename;
  if (filename === undefined) throw new DynamoDbLocalInstallError(`npm pack ${spec} reported no file: ${stdout}`);
  return join(destination, filename);
}

/** Where the JVM comes from: `$JAVA_HOME/bin/java` when JAVA_HOME is set, else `java` on PATH. */
export function javaCommand(): string {
  const home = process.env.JAVA_HOME;
  return home !== undefined && home !== '' ? join(home, 'bin', 'java') : 'java';
}

export interface JavaRuntime {
  command: string;
  /** First line of `java -version`. */
  version: string;
  /** Whether it can compile Flare's launcher: Java 11+ with the jdk.compiler module. */
  canCompile: boolean;
}

/** Runs `java -version`; throws JavaNotFoundError, with install instructions, when there is no usable Java. */
export async function checkJava(command: string = javaCommand()): Promise<JavaRuntime> {
  let output: string;
  try {
    output = await run(command, ['-version'], { stderrToStdout: true });
  } catch (error) {
    throw new JavaNotFoundError(
      `DynamoDB Local needs a Java runtime (11 or later), and \`${command} -version\` failed. ` +
        'Install one (Debian/Ubuntu: `apt-get install -y default-jre-headless`; macOS: `brew install openjdk`), ' +
        'or set JAVA_HOME to an existing Java installation.',
      { cause: error },
    );
  }
  const version = output.split('\n')[0]?.trim() ?? '';
  let modules = '';
  try {
    modules = await run(command, ['--list-modules']);
  } catch {
    // Java 8 has no --list-modules; it could not compile the launcher for Java 11 either.
  }
  return { command, version, canCompile: /^jdk\.compiler@/m.test(modules) };
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

class PortTakenError extends DynamoDbLocalStartError {}

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

async function waitUntilAnswering(endpoint: string, gaveUp: () => boolean): Promise<void> {
  const client = new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 1,
    // A JVM still warming up may accept and then sit on a request; give up on it and ask again.
    requestHandler: { connectionTimeout: 1_000, requestTimeout: 5_000, throwOnRequestTimeout: true },
  });
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastError: unknown;
  try {
    while (Date.now() < deadline && !gaveUp()) {
      try {
        await client.send(new ListTablesCommand({ Limit: 1 }));
        return;
      } catch (error) {
        lastError = error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } finally {
    client.destroy();
  }
  // The JVM has exited: the early-exit promise reports why, so this one must not settle first.
  if (gaveUp()) return new Promise<never>(() => {});
  throw new DynamoDbLocalStartError(`DynamoDB Local did not answer at ${endpoint} within ${READY_TIMEOUT_MS} ms`, {
    cause: lastError,
  });
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

/** Runs a command to completion and returns its stdout; rejects with its stderr on a non-zero exit. */
function run(
  command: string,
  args: string[],
  options: { cwd?: string; stderrToStdout?: boolean } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd ?? tmpdir(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0) resolve(options.stderrToStdout ? stderr + stdout : stdout);
      else reject(new Error(`${command} ${args.join(' ')} exited with ${code ?? signal}: ${stderr.trim()}`));
    });
  });
}

function isErrno(error: unknown, ...codes: string[]): boolean {
  return error instanceof Error && codes.includes((error as NodeJS.ErrnoException).code ?? '');
}
