/**
 * One control plane per data directory: `<dataDir>/plane.pid` names the one that
 * serves it. A second `flare local` on the same directory would start a second
 * DynamoDB Local on the same files and re-drive the first plane's jobs under it.
 */
import { randomBytes } from 'node:crypto';
import { link, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bootId } from '../adapters/local-supervisor/lock.mjs';
import { processAlive } from './run-command.js';

export const PLANE_LOCK = 'plane.pid';

export class DataDirInUseError extends Error {
  constructor(
    readonly dataDir: string,
    readonly pid: number,
  ) {
    super(
      `${dataDir} is in use by another Flare control plane (pid ${pid}); stop it first (Ctrl-C, or kill ${pid}), or give this one another dataDir`,
    );
    this.name = 'DataDirInUseError';
  }
}

/** Data directories locked by planes of this process: the pid alone cannot tell two of them apart. */
const held = new Set<string>();

/** `<pid>\n<boot id>\n<start time>\n`: a pid reused by another process, or from another boot, names nobody. */
function lockText(pid: number): string {
  return `${pid}\n${bootId()}\n${startTimeOf(pid) ?? ''}\n`;
}

/** The process's start time in clock ticks since boot (`/proc/<pid>/stat` field 22); undefined without procfs or for a zombie. */
function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] === 'Z' ? undefined : fields[19];
  } catch {
    return undefined;
  }
}

/** The pid of the plane a lock names while that plane runs, else undefined (the lock is stale). */
function holderOf(text: string, dataDir: string): number | undefined {
  const [pidText, boot, started] = text.split('\n');
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  if (pid === process.pid) return held.has(dataDir) ? pid : undefined;
  if (boot && bootId() && boot !== bootId()) return undefined;
  if (!processAlive(pid)) return undefined;
  // Without procfs (macOS) the signal probe is all there is.
  if (!started || startTimeOf(process.pid) === undefined) return pid;
  return startTimeOf(pid) === started ? pid : undefined;
}

/**
 * Take the data directory's lock, or throw DataDirInUseError naming the plane that
 * holds it; a stale lock (its plane was killed) is taken over. Resolves to its release.
 */
export async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const path = join(dataDir, PLANE_LOCK);
  const mine = lockText(process.pid);
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, mine, { mode: 0o600 });
  try {
    // link() creates the lock with its content in one step, or fails when there is one.
    for (let attempt = 0; ; attempt++) {
      try {
        await link(tmp, path);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 2) throw error;
      }
      const found = await readFile(path, 'utf8').catch(() => '');
      const holder = holderOf(found, dataDir);
      if (holder !== undefined) throw new DataDirInUseError(dataDir, holder);
      // Set aside, not removed: if another plane took the stale lock over meanwhile, its lock goes back.
      const aside = `${tmp}.stale`;
      await rename(path, aside).catch(() => {});
      const moved = await readFile(aside, 'utf8').catch(() => undefined);
      if (moved !== undefined && moved !== found) await link(aside, path).catch(() => {});
      await unlink(aside).catch(() => {});
    }
  } finally {
    await unlink(tmp).catch(() => {});
  }
  held.add(dataDir);
  return async () => {
    held.delete(dataDir);
    // Only our own: a lock another plane took over (ours was removed by hand) is left to it.
    if ((await readFile(path, 'utf8').catch(() => '')) === mine) await unlink(path).catch(() => {});
  };
}
