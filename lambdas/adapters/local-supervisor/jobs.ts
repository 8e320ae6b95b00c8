/**
 * What a control plane reads of the jobs a supervisor runs, as the supervisor
 * (supervisor.mjs, job-run.mjs) writes them, and how it stops them. Everything
 * about a job lives in `<dataDir>/jobs/<id>/`:
 *
 *   spec.json   what to run (RunnerSpec), written before the job is started
 *   pid         the job's pid (its process group, led by the runner's shim), the
 *               boot it ran in, and the supervisor (pid, nonce) that runs it
 *   exit-code   the job's exit code, written by the shim as the job ends, so a
 *               supervisor that adopts the job after a crash still learns it
 *   output.log  the job's stdout and stderr
 *   exit.json   ExitRecord, written once, atomically, when the job is over; one
 *               the supervisor cannot write, it tells connected planes instead
 *
 * and its working directory is `<dataDir>/scratch/<id>/` (mounted at /scratch
 * in docker mode). The supervisor's lock is `<dataDir>/supervisor.pid`, its
 * socket `<dataDir>/supervisor.sock`.
 *
 * Whether a job's supervisor or its process group still lives is read here
 * too. Nothing here blocks the event loop.
 */
import { open, readdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { existsSync } from 'node:fs';
import type { Logger } from '../../core/deps.js';
import { LocalComputeError, type SupervisorLink } from './link.js';
import { bootId, liveSupervisor, LOCK_NAME } from './lock.mjs';

/** What the supervisor writes to exit.json for a job. */
export interface ExitRecord {
  /** The job's exit status; 128+n when killed by signal n, 127 when the command was not found. */
  exitCode: number;
  signal: string | null;
  finishedAt: string;
  /**
   * Why it ended, when not on its own: stopped by the control plane, expired (dead-man switch), never
   * started, failure of the supervisor to run it, or lost (its processes went while no supervisor
   * watched them, without an exit code: reported through onLost).
   */
  reason?: 'stopped' | 'expired' | 'not-started' | 'runner-error' | 'lost';
  error?: string;
}

/** A job's spec.json, read by the supervisor (plain JS): keep this flat and JSON. */
export interface RunnerSpec {
  jobId: string;
  argv: string[];
  /** The complete environment of the job's process; nothing is inherited. */
  env: Record<string, string>;
  cwd: string;
  outputPath: string;
  pidPath: string;
  exitPath: string;
  /** Where the shim writes the job's exit code. */
  statusPath: string;
  /** The supervisor stops the job then (SIGTERM, SIGKILL stopGraceMs later), with or without a control plane. */
  expiresAt: string;
  stopGraceMs: number;
  /** Run besides SIGTERM when stopping: the container is outside the job's process group. */
  stopArgv?: string[];
  /** A 0600 file of secret values (env name -> value) merged into `env` at spawn, then removed. */
  secretsPath?: string;
}

/** Who runs the jobs of a data directory: its pid, and a nonce that a reused pid cannot have. */
interface SupervisorId {
  pid: number;
  nonce: string;
}

/** How long one look at the supervisor's liveness is reused (each job check needs it). */
const LIVENESS_TTL_MS = 100;
/** How long a process group may take to go after SIGKILL. */
const KILL_WAIT_MS = 5000;

/** Whether the supervisor that claimed a job still runs, from the data directory's lock and the job's pid file. */
export class Supervision {
  private liveness: { at: number; id: Promise<SupervisorId | undefined> } | undefined;

  constructor(private readonly dataDir: string) {}

  /** True while the supervisor that started this job runs: it records the job's end before it lets go of it. */
  async supervised(dir: string): Promise<boolean> {
    const owner = await jobOwner(dir);
    if (!owner) return false;
    const runs = (live: SupervisorId | undefined) =>
      live !== undefined && live.pid === owner.pid && live.nonce === owner.nonce;
    const recent = this.liveness && Date.now() - this.liveness.at <= LIVENESS_TTL_MS ? this.liveness.id : undefined;
    if (recent && runs(await recent)) return true;
    // A "no" is never taken from the cache: a supervisor started a moment ago is not in it.
    const fresh = liveSupervisorOf(this.dataDir);
    this.liveness = { at: Date.now(), id: fresh };
    return runs(await fresh);
  }

  /** The supervisor may have died: look again next time. */
  forget(): void {
    this.liveness = undefined;
  }
}

export async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  const file = await open(tmp, 'w', 0o600);
  try {
    await file.writeFile(text);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(tmp, path);
}

export async function readExit(dir: string): Promise<ExitRecord | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, 'exit.json'), 'utf8')) as ExitRecord;
  } catch (error) {
    // A directory in its place is no record either (the supervisor cannot write one there).
    if (['ENOENT', 'EISDIR'].includes((error as NodeJS.ErrnoException).code ?? '')) return undefined;
    throw error;
  }
}

/**
 * The job's pid file, if written in this boot: `<job pid>\n<boot>\n<supervisor pid>\n<nonce>`.
 * The job pid is empty while the supervisor has claimed the file and not spawned yet.
 */
async function pidFile(dir: string): Promise<string[] | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, 'pid'), 'utf8');
  } catch {
    return undefined;
  }
  const lines = text.split('\n');
  const current = bootId();
  if (lines[1] && current && lines[1] !== current) return undefined;
  return lines;
}

/** The job's pid (and so its process group), if it was spawned in this boot. */
export async function recordedPid(dir: string): Promise<number | undefined> {
  const pid = Number((await pidFile(dir))?.[0] || NaN);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** The supervisor that claimed the job. */
async function jobOwner(dir: string): Promise<SupervisorId | undefined> {
  const lines = await pidFile(dir);
  const pid = Number(lines?.[2] || NaN);
  return Number.isInteger(pid) && pid > 0 && lines?.[3] ? { pid, nonce: lines[3] } : undefined;
}

/** The supervisor that holds the data directory, while it runs (its lock read as the supervisor reads it). */
async function liveSupervisorOf(dataDir: string): Promise<SupervisorId | undefined> {
  const text = await readFile(join(dataDir, LOCK_NAME), 'utf8').catch(() => undefined);
  return text === undefined ? undefined : liveSupervisor(text, dataDir);
}

/** True while a process of the group runs; zombies hold nothing and do not count. */
export async function groupAlive(pgid: number): Promise<boolean> {
  try {
    process.kill(-pgid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  // Orphans are reaped by pid 1, which some container inits do late: look past zombies.
  let pids: string[];
  try {
    pids = (await readdir('/proc')).filter((name) => /^[0-9]+$/.test(name));
  } catch {
    return true; // no procfs: the signal probe is all there is
  }
  for (const pid of pids) {
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so parse after the last ')'.
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(pgrp) === pgid && state !== 'Z') return true;
    } catch {
      // it ended while we looked
    }
  }
  return false;
}

async function waitGone(pgid: number, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (await groupAlive(pgid)) {
    if (Date.now() >= until) return false;
    await sleep(25);
  }
  return true;
}

function signal(target: number, name: NodeJS.Signals): void {
  try {
    process.kill(target, name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/** What stopping a job needs: the supervisor, and how long a job has between SIGTERM and SIGKILL. */
export interface StopWith {
  readonly link: SupervisorLink;
  readonly supervision: Supervision;
  readonly log: Logger;
  readonly graceMs: number;
}

/** SIGTERM to the job's process group (by its supervisor, when alive), SIGKILL after the grace. */
export async function stopProcesses(
  jobId: string,
  dir: string,
  { link, supervision, log, graceMs }: StopWith,
): Promise<void> {
  const exitPath = join(dir, 'exit.json');
  if (!existsSync(exitPath) && existsSync(join(dir, 'pid')) && !(await supervision.supervised(dir))) {
    // Its supervisor died: a new one adopts the job, so the stop below goes through it and its end is recorded.
    await link.request({ op: 'adopt', jobId }, true).catch((error: unknown) => {
      log.warn('no job supervisor could adopt the job; signalling it', { jobId, error: String(error) });
    });
  }
  let group = await recordedPid(dir); // the job's pid leads its group
  if (!existsSync(exitPath) && (await supervision.supervised(dir))) {
    // The supervisor sends SIGTERM to the group once (and runs `docker stop`), SIGKILL after
    // the grace, and answers once the job is over: signalling here too would give the job two.
    const reply = await link
      .request({ op: 'stop', jobId }, false, graceMs + 2 * KILL_WAIT_MS)
      .catch((error: unknown) => {
        log.warn('the job supervisor did not stop the job; signalling it', { jobId, error: String(error) });
        return undefined;
      });
    group ??= reply?.pid;
  }
  if (group === undefined) return;
  // No record: its supervisor crashed (or did not answer), the job may still be running.
  if (!existsSync(exitPath) && (await groupAlive(group))) signal(-group, 'SIGTERM');
  if (await waitGone(group, graceMs)) return;
  log.warn('job did not stop after SIGTERM; killing it', { jobId, graceMs });
  signal(-group, 'SIGKILL');
  if (!(await waitGone(group, KILL_WAIT_MS)))
    throw new LocalComputeError(`process group ${group} of job ${jobId} survived SIGKILL`);
}
