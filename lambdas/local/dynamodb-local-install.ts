/**
 * The emulator's cache: DynamoDB Local ships inside the npm package
 * `amplify-dynamodb-simulator`, whose own dependency tree is huge, so that one
 * tarball is fetched lazily with `npm pack` (npm's registry, proxy and cache
 * settings apply, so it works wherever `npm ci` works), checked against the
 * integrity pinned below, and only `package/emulator/` is kept. Flare's
 * loopback launcher is compiled into the same cache. See docs/dynamodb-local.md.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DynamoDbLocalInstallError, DynamoDbLocalIntegrityError } from './dynamodb-local-errors.js';
import { processAlive, runCommand } from './run-command.js';

export const DYNAMODB_LOCAL_PACKAGE = 'amplify-dynamodb-simulator';
export const DYNAMODB_LOCAL_PACKAGE_VERSION = '2.9.30';
/** `npm view amplify-dynamodb-simulator@2.9.30 dist.integrity`. It carries DynamoDB Local 1.25.1. */
export const DYNAMODB_LOCAL_PACKAGE_INTEGRITY =
  'sha512-xTeeRLvzEfqyd5lh3bH4c0kHvSHHmmhD5ZDsHFKAQ5g2Zl6JqlFdutaQhCLHzxEp6Ry1o7TB6niIoXuQAnSewQ==';
/** The loopback launcher's class, in `<emulator>/flare-launcher-<hash>/` (ensureLauncher). */
export const LAUNCHER_CLASS = 'FlareLoopbackRunner';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const COMPLETE_MARKER = '.flare-complete.json';

/**
 * The loopback launcher's source (what it does is said in the file). It is compiled once per source
 * version with the runtime's own `jdk.compiler` module (Java 11+); running it in source-file mode
 * instead would cost ~4 s on every start.
 */
const LAUNCHER_SOURCE_FILE = fileURLToPath(new URL(`./${LAUNCHER_CLASS}.java`, import.meta.url));

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
  await removeAbandonedWork(dir);
  if (!(await isInstalled(dir))) await install(dir);
  return dir;
}

/**
 * The work directories of installs whose process is gone: Ctrl-C during a first
 * `npm start` kills it before its own clean-up, leaving a part of the tarball behind.
 */
async function removeAbandonedWork(dir: string): Promise<void> {
  const prefix = `.${basename(dir)}.tmp-`;
  const entries = await readdir(dirname(dir)).catch(() => [] as string[]);
  for (const entry of entries) {
    if (!entry.startsWith(prefix)) continue;
    const pid = Number.parseInt(entry.slice(prefix.length), 10);
    if (Number.isInteger(pid) && pid > 0 && !processAlive(pid))
      await rm(join(dirname(dir), entry), { recursive: true, force: true });
  }
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
    await runCommand('tar', ['-xzf', tarball, '--no-same-owner', '-C', work, 'package/emulator']);
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
export async function ensureLauncher(emulator: string, java: string): Promise<string> {
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
      await runCommand(java, [...javac, '-cp', join(emulator, 'DynamoDBLocal.jar'), '-d', work, source]);
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
    stdout = await runCommand(
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

function isErrno(error: unknown, ...codes: string[]): boolean {
  return error instanceof Error && codes.includes((error as NodeJS.ErrnoException).code ?? '');
}
