/**
 * What runs on this machine, read from /proc: the processes of this run's jobs
 * (their environment carries `SOAK_RUN=<runId>` and `FLARE_JOB_ID`), the
 * DynamoDB Local JVM of a data directory, and its job supervisor. Linux only.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isSupervisorCommand } from '../../lambdas/adapters/local-supervisor/lock.mjs';

export const RUN_ENV = 'SOAK_RUN';

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function pids(): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number);
}

/** State and start time (clock ticks since boot) from /proc/<pid>/stat; the command name may hold spaces and parentheses. */
function stat(pid: number): { state: string; start: string } | undefined {
  const text = read(`/proc/${pid}/stat`);
  if (!text) return undefined;
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0], start: fields[19] };
}

export function cmdline(pid: number): string[] {
  return (read(`/proc/${pid}/cmdline`) ?? '').split('\0').filter(Boolean);
}

export function alive(pid: number): boolean {
  const s = stat(pid);
  return s !== undefined && s.state !== 'Z';
}

/** Reads of the environment of a process not (yet) a job's: a freshly forked one still has its parent's until it execs. */
const ENV_READS = 3;

/**
 * Finds the processes of this run's jobs. A pid is known by its start time, so
 * a reused pid is read again; a process's environment is read once it is a
 * job's, or a few times while it might still be before its exec.
 */
export class JobProcesses {
  private readonly known = new Map<number, { start: string; jobId?: string; reads: number }>();
  private readonly marker: string;

  constructor(runId: string) {
    this.marker = `${RUN_ENV}=${runId}`;
  }

  /** Job id → its live (not zombie) pids, now. */
  scan(): Map<string, number[]> {
    const found = new Map<string, number[]>();
    const present = new Set<number>();
    for (const pid of pids()) {
      const s = stat(pid);
      if (!s) continue;
      present.add(pid);
      let entry = this.known.get(pid);
      if (!entry || entry.start !== s.start) this.known.set(pid, (entry = { start: s.start, reads: 0 }));
      if (entry.jobId === undefined && entry.reads < ENV_READS) {
        entry.reads++;
        const env = (read(`/proc/${pid}/environ`) ?? '').split('\0');
        if (env.includes(this.marker))
          entry.jobId = env.find((v) => v.startsWith('FLARE_JOB_ID='))?.slice('FLARE_JOB_ID='.length);
      }
      if (entry.jobId === undefined || s.state === 'Z') continue;
      found.set(entry.jobId, [...(found.get(entry.jobId) ?? []), pid]);
    }
    for (const pid of this.known.keys()) if (!present.has(pid)) this.known.delete(pid);
    // Only what is still alive after the whole scan counts: two jobs sampled together really ran together.
    for (const [jobId, list] of found) {
      const live = list.filter(alive);
      if (live.length) found.set(jobId, live);
      else found.delete(jobId);
    }
    return found;
  }
}

/** DynamoDB Local JVMs whose command line names this data directory's store (`-dbPath <dataDir>/dynamodb`). */
export function dynamoDbPids(dataDir: string): number[] {
  const store = join(dataDir, 'dynamodb');
  return pids().filter((pid) => {
    const args = cmdline(pid);
    return (
      args.some((a) => a.endsWith('java') || a.includes('/java')) &&
      args.some((a) => a === store || a.startsWith(`${store}/`)) &&
      alive(pid)
    );
  });
}

/** The job supervisor of a data directory: the pid in its lock file, if that process is the supervisor. */
export function supervisorPid(dataDir: string): number | undefined {
  const pid = Number((read(join(dataDir, 'supervisor.pid')) ?? '').split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const args = cmdline(pid);
  return isSupervisorCommand(args, dataDir) && alive(pid) ? pid : undefined;
}

/** Processes whose command line names `text` (a config path, say). */
export function pidsNaming(text: string): number[] {
  return pids().filter((pid) => pid !== process.pid && cmdline(pid).some((a) => a.includes(text)));
}

export function kill(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Resolves true once every pid is gone, false after `ms`. */
export async function gone(list: readonly number[], ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (list.every((pid) => !alive(pid))) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}
