// What names the job supervisor of a data directory, read the same way by the
// supervisor (to take a stale lock over) and by LocalCompute (to tell whether a
// job's supervisor still runs, and where to reach it). Plain JavaScript with
// node:* imports only, like the supervisor that loads it.
import fs from 'node:fs';
import path from 'node:path';

/** `<pid>\n<boot id>\n<nonce>\n`, created exclusively by the supervisor that serves the directory. */
export const LOCK_NAME = 'supervisor.pid';
export const SOCKET_NAME = 'supervisor.sock';
/** What a supervisor's command line ends with; the second, its name before it moved here (one may still run). */
const SCRIPTS = ['/local-supervisor/supervisor.mjs', '/local-job-supervisor.mjs'];
/** Room in sockaddr_un.sun_path (108 bytes on Linux, 104 on macOS), NUL included. */
const MAX_SOCKET_PATH = 100;

let boot;
/** This boot's id ('' without procfs): a pid recorded in another boot names nobody. */
export function bootId() {
  if (boot === undefined) {
    try {
      boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      boot = '';
    }
  }
  return boot;
}

/**
 * The supervisor a lock file's text names, while it runs: its pid alive in this
 * boot and running supervisor.mjs for this data directory (a reused pid
 * does not count). By name, not path: one started from another checkout counts.
 */
export function liveSupervisor(lockText, dataDir) {
  const [pidText, lockBoot, nonce] = lockText.split('\n');
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0 || !nonce) return undefined;
  if (lockBoot && bootId() && lockBoot !== bootId()) return undefined;
  try {
    process.kill(pid, 0);
  } catch (error) {
    if (error.code !== 'EPERM') return undefined;
  }
  try {
    // A zombie's is empty.
    const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (!isSupervisorCommand(args, dataDir)) return undefined;
  } catch {
    if (fs.existsSync('/proc/self')) return undefined; // no procfs (macOS): trust the signal probe
  }
  return { pid, nonce };
}

/** True when a command line (`/proc/<pid>/cmdline` split at NULs) is a job supervisor of `dataDir`. */
export function isSupervisorCommand(args, dataDir) {
  return args.some((arg) => SCRIPTS.some((script) => arg.endsWith(script))) && args.includes(path.resolve(dataDir));
}

/**
 * The socket's path when it fits in sun_path; undefined when the data directory
 * is too deep, and the socket is reached through a descriptor of the directory:
 * `/proc/self/fd/<fd>/supervisor.sock` (Linux only).
 */
export function directSocketPath(dataDir) {
  const direct = path.join(dataDir, SOCKET_NAME);
  return Buffer.byteLength(direct) <= MAX_SOCKET_PATH ? direct : undefined;
}
