/**
 * The control plane under test: `startControlPlane` from a config file this
 * harness writes (process driver, one pool of `slots` slots, a user and an
 * admin with tokens), run in this process so that its event bus, workflow
 * executions and ports can be observed; the submit load comes from a worker
 * thread over HTTP.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isTerminal, type JobState } from '../../lambdas/core/job.js';
import { LocalConfig, parse } from '../../lambdas/core/schemas.js';
import type { Logger } from '../../lambdas/core/deps.js';
import type { JobStateChange } from '../../lambdas/ports/events.js';
import { startControlPlane, type ControlPlane } from '../../lambdas/local/control-plane.js';
import { defaultTableNames } from '../../lambdas/local/tables.js';
import { isSupervisorCommand } from '../../lambdas/adapters/local-supervisor/lock.mjs';
import { ApiClient } from './http.js';
import { childPids, cpuSnapshot, Meter, meterDynamoDb, meterPlane, type CpuSnapshot } from './instrument.js';

export const POOL = 'local';
export const PROJECT = 'bench';
export const TEMPLATE = 'tiny';

export interface BenchPlaneOptions {
  /** Everything goes here: config, data directory, the jobs' timestamp file. */
  dir: string;
  slots: number;
  /** DynamoDB Local in memory instead of on disk (what `flare local` does). */
  inMemory: boolean;
}

export interface BenchPlane {
  plane: ControlPlane;
  url: string;
  configPath: string;
  user: ApiClient;
  admin: ApiClient;
  userToken: string;
  meter: Meter;
  events: EventRecorder;
  stamps: StampFile;
  /** Warnings and errors the plane logged. */
  problems: string[];
  /** CPU used so far by the plane, DynamoDB Local and the ended job processes. */
  cpu(): CpuSnapshot;
  stop(): Promise<void>;
}

export async function startBenchPlane(options: BenchPlaneOptions): Promise<BenchPlane> {
  const userToken = `bench-user-${randomBytes(12).toString('hex')}`;
  const adminToken = `bench-admin-${randomBytes(12).toString('hex')}`;
  const raw = {
    host: '127.0.0.1',
    port: 0,
    dataDir: 'data',
    users: [
      { name: 'bench', token: userToken, projects: [PROJECT] },
      { name: 'admin', token: adminToken, admin: true },
    ],
    pools: [{ name: POOL, gpus: options.slots }],
    images: [{ name: 'busybox', reference: 'docker.io/library/busybox:1.36', digest: `sha256:${'0'.repeat(64)}` }],
    templates: [
      {
        name: TEMPLATE,
        project: PROJECT,
        pool: POOL,
        gpus: 1,
        image: 'busybox',
        command: ['true'],
        maxLiveTimeoutMinutes: 1440,
      },
    ],
    compute: { driver: 'process' },
    // The reconciler is a periodic sweep, not per-job work: keep it out of the figures.
    reconcileSeconds: 3600,
  };
  const configPath = join(options.dir, 'flare.bench.json');
  await writeFile(configPath, `${JSON.stringify(raw, null, 2)}\n`);
  const config = parse(LocalConfig, JSON.parse(readFileSync(configPath, 'utf8')));

  const meter = new Meter(defaultTableNames().jobs);
  meterDynamoDb(meter);
  const problems: string[] = [];
  const log: Logger = {
    info: () => {},
    warn: (message, data) => void problems.push(`warn: ${message} ${data ? JSON.stringify(data) : ''}`),
    error: (message, data) => {
      problems.push(`error: ${message} ${data ? JSON.stringify(data) : ''}`);
      process.stderr.write(`flare plane: ${message} ${data ? JSON.stringify(data) : ''}\n`);
    },
  };
  const plane = await startControlPlane(config, { baseDir: options.dir, inMemory: options.inMemory, log });
  meterPlane(plane, meter);
  const dynamoPids = childPids('java');
  const events = new EventRecorder();
  plane.events.subscribe((event) => events.record(event));
  const user = new ApiClient(plane.url, userToken);
  const admin = new ApiClient(plane.url, adminToken);
  return {
    plane,
    url: plane.url,
    configPath,
    user,
    admin,
    userToken,
    meter,
    events,
    stamps: new StampFile(join(options.dir, 'stamps')),
    problems,
    cpu: () => cpuSnapshot(dynamoPids, supervisorPid(plane.dataDir)),
    async stop() {
      user.close();
      admin.close();
      await plane.stop();
      await stopSupervisor(plane.dataDir);
    },
  };
}

/** The local job supervisor's pid (first line of its lock file), when there is one. */
function supervisorPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, 'supervisor.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The job supervisor is detached (its jobs outlive the plane, as instances
 * would): SIGTERM stops every job it runs, records their exits and ends it, so
 * no job of this run outlives the run. Waits up to 15 s for it to go.
 */
async function stopSupervisor(dataDir: string): Promise<void> {
  const pid = supervisorPid(dataDir);
  if (!pid) return;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (!isSupervisorCommand(cmdline.split('\0'), dataDir)) return; // gone, and the pid reused
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  process.kill(pid, 'SIGTERM');
  for (let waited = 0; waited < 15_000 && alive(); waited += 50) await sleep(50);
}

/** Every job state change, stamped with the wall clock when the bus delivered it. */
export class EventRecorder {
  private readonly jobs = new Map<string, Map<JobState, number>>();
  private readonly log: { jobId: string; state: JobState; at: number }[] = [];
  private readonly waiters = new Set<() => void>();

  record(event: JobStateChange): void {
    const at = Date.now();
    let states = this.jobs.get(event.jobId);
    if (!states) this.jobs.set(event.jobId, (states = new Map()));
    if (!states.has(event.state)) states.set(event.state, at);
    this.log.push({ jobId: event.jobId, state: event.state, at });
    for (const wake of [...this.waiters]) wake();
  }

  at(jobId: string, state: JobState): number | undefined {
    return this.jobs.get(jobId)?.get(state);
  }

  /** The terminal state a job reached, if it has. */
  terminal(jobId: string): { state: JobState; at: number } | undefined {
    for (const [state, at] of this.jobs.get(jobId) ?? []) if (isTerminal(state)) return { state, at };
    return undefined;
  }

  /** Resolves when `test` returns a value; rejects after `timeoutMs`. */
  async until<T>(what: string, test: () => T | undefined, timeoutMs: number): Promise<T> {
    const found = test();
    if (found !== undefined) return found;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const check = () => {
        const value = test();
        if (value === undefined) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(value);
      };
      this.waiters.add(check);
    });
  }

  whenState(jobId: string, state: JobState, timeoutMs: number): Promise<number> {
    return this.until(`job ${jobId} ${state}`, () => this.at(jobId, state), timeoutMs);
  }

  whenTerminal(jobId: string, timeoutMs: number): Promise<{ state: JobState; at: number }> {
    return this.until(`job ${jobId} to end`, () => this.terminal(jobId), timeoutMs);
  }

  /** Resolves when every job has ended, with the last end time. */
  whenAllTerminal(jobIds: readonly string[], timeoutMs: number): Promise<number> {
    const pending = new Set(jobIds);
    let last = 0;
    return this.until(
      `${jobIds.length} jobs to end`,
      () => {
        for (const id of pending) {
          const end = this.terminal(id);
          if (!end) continue;
          pending.delete(id);
          last = Math.max(last, end.at);
        }
        return pending.size === 0 ? last : undefined;
      },
      timeoutMs,
    );
  }

  /** The first `state` event at or after `after` (wall ms), of a job not in `except`. */
  next(
    state: JobState,
    after: number,
    except: ReadonlySet<string>,
    timeoutMs: number,
  ): Promise<{ jobId: string; at: number }> {
    return this.until(
      `a job to enter ${state}`,
      () => this.log.find((e) => e.state === state && e.at >= after && !except.has(e.jobId)),
      timeoutMs,
    );
  }

  /** Terminal states of these jobs, counted. */
  outcomes(jobIds: readonly string[]): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const id of jobIds) {
      const state = this.terminal(id)?.state ?? 'not ended';
      counts[state] = (counts[state] ?? 0) + 1;
    }
    return counts;
  }

  /** How many events these jobs produced. */
  eventCount(jobIds: ReadonlySet<string>): number {
    return this.log.filter((e) => jobIds.has(e.jobId)).length;
  }
}

/**
 * The file jobs write their own timestamps to (`<id> <what> <ns since epoch>`),
 * with `date +%s%N`: when a job's first instruction ran, and when it got SIGTERM.
 * Slurm jobs write the same lines, so both sides are timed the same way.
 */
export class StampFile {
  constructor(readonly path: string) {}

  /** argv that records `start`, then runs `argv` (no shell interpolation of paths: they are arguments). */
  startThen(idVariable: string, argv: string[]): string[] {
    return ['sh', '-c', `echo "$${idVariable} start $(date +%s%N)" >> "$0"; exec "$@"`, this.path, ...argv];
  }

  /** A shell line (Slurm's --wrap) doing the same. */
  startThenScript(idVariable: string, script: string): string {
    return `echo "$${idVariable} start $(date +%s%N)" >> ${shellQuote(this.path)}; ${script}`;
  }

  /** argv that records `start`, sleeps, and records `term` when SIGTERM arrives. */
  sleepRecordingTerm(idVariable: string, seconds: number): string[] {
    return ['sh', '-c', this.termScript(idVariable, '"$0"', '"$1"'), this.path, String(seconds)];
  }

  termScript(idVariable: string, file: string, seconds: string): string {
    return `echo "$${idVariable} start $(date +%s%N)" >> ${file}; trap 'echo "$${idVariable} term $(date +%s%N)" >> ${file}; exit 143' TERM; sleep ${seconds} & wait`;
  }

  /** Wall-clock ms of every `what` line, by job id (the first line wins). */
  async read(what: 'start' | 'term'): Promise<Map<string, number>> {
    const text = await readFile(this.path, 'utf8').catch(() => '');
    const found = new Map<string, number>();
    for (const line of text.split('\n')) {
      const [id, kind, ns] = line.trim().split(/\s+/);
      if (!id || kind !== what || !ns || found.has(id)) continue;
      found.set(id, Number(BigInt(ns) / 1000n) / 1000);
    }
    return found;
  }

  /** Polls (every 2 ms, as the Slurm peer's bench.py does) until the job has written `what`. */
  async when(jobId: string, what: 'start' | 'term', timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const at = (await this.read(what)).get(jobId);
      if (at !== undefined) return at;
      if (Date.now() > deadline)
        throw new Error(`timed out after ${timeoutMs} ms waiting for job ${jobId} to record ${what}`);
      await sleep(2);
    }
  }
}

export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}
