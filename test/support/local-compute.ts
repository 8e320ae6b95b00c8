/**
 * LocalCompute with real processes in a temporary data directory, for the
 * tests of the local compute driver and of its job supervisor: a harness that
 * records exits, and looks at processes through /proc.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JobState, type Job } from '../../lambdas/core/job.js';
import type { ContainerSpec } from '../../lambdas/ports/compute.js';
import { isSupervisorCommand } from '../../lambdas/adapters/local-supervisor/lock.mjs';
import { LocalCompute, type ExitRecord, type LocalComputeOptions } from '../../lambdas/adapters/local-compute.js';
import { jobRecord } from './jobs.js';

/** Set DEBUG_LOCAL=1 to see the driver's log. */
export const quiet = process.env.DEBUG_LOCAL
  ? { info: console.log, warn: console.log, error: console.log }
  : { info() {}, warn() {}, error() {} };
/** Run after each test (`afterEach(runCleanups)`), last first. */
export const cleanups: (() => Promise<void> | void)[] = [];

export async function runCleanups(): Promise<void> {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
}

export interface Harness {
  dataDir: string;
  compute: LocalCompute;
  exits: Map<string, ExitRecord[]>;
  lost: string[];
  exited(jobId: string, ms?: number): Promise<ExitRecord>;
  make(options?: Partial<LocalComputeOptions>): LocalCompute;
}

export async function harness(options: Partial<LocalComputeOptions> = {}): Promise<Harness> {
  const dataDir = await mkdtemp(join(tmpdir(), 'flare-local-compute-'));
  const exits = new Map<string, ExitRecord[]>();
  const lost: string[] = [];
  const waiters = new Map<string, (record: ExitRecord) => void>();
  const computes: LocalCompute[] = [];
  const make = (more: Partial<LocalComputeOptions> = {}) => {
    const compute = new LocalCompute({
      dataDir,
      pools: [{ name: 'local', gpus: 2 }],
      driver: 'process',
      pollMs: 200,
      stopGraceMs: 2000,
      log: quiet,
      onExit: (jobId, _exitCode, record) => {
        exits.set(jobId, [...(exits.get(jobId) ?? []), record]);
        waiters.get(jobId)?.(record);
      },
      onLost: (jobId) => void lost.push(jobId),
      ...options,
      ...more,
    });
    computes.push(compute);
    return compute;
  };
  cleanups.push(async () => {
    // Jobs a test left running must not outlive it.
    const jobs = existsSync(join(dataDir, 'jobs')) ? readdirSync(join(dataDir, 'jobs')) : [];
    for (const compute of computes) compute.close();
    const reaper = make({ driver: 'process' }); // signals only: no docker engine needed to clean up
    for (const id of jobs) await reaper.stop(job(id));
    reaper.close();
    // Its supervisor may still write there as it goes.
    await rm(dataDir, { recursive: true, force: true, maxRetries: 5 });
  });
  const exited = (jobId: string, ms = 5000) =>
    within(
      new Promise<ExitRecord>((resolve) => {
        const seen = exits.get(jobId)?.[0];
        if (seen) resolve(seen);
        else waiters.set(jobId, resolve);
      }),
      ms,
      `exit of ${jobId}`,
    );
  return { dataDir, compute: make(), exits, lost, exited, make };
}

export function job(id: string, overrides: Partial<Job> = {}): Job {
  return jobRecord({
    id,
    name: id,
    pool: 'local',
    image: `nvidia/cuda@sha256:${'a'.repeat(64)}`,
    liveTimeoutMinutes: 1,
    state: JobState.LAUNCHING,
    createdAt: new Date().toISOString(),
    ...overrides,
  });
}

/** Launch and start `command` as job `id`; returns the job as the store would hold it. */
export async function run(
  compute: LocalCompute,
  id: string,
  command: string[],
  overrides: Partial<Job> & { expiresAt?: string } = {},
): Promise<Job> {
  const launched = await compute.launch(job(id, overrides));
  const held = job(id, { ...overrides, command, instanceIds: launched.instanceIds, devices: launched.devices });
  await compute.start(held, spec(held, overrides.expiresAt));
  return held;
}

export function spec(j: Job, expiresAt = new Date(Date.now() + 60_000).toISOString()): ContainerSpec {
  return { jobId: j.id, image: j.image, command: j.command, env: j.env, gpus: j.gpus, devices: j.devices, expiresAt };
}

export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export async function until(condition: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export const output = (h: Harness, id: string) => readFile(h.compute.logPath(id), 'utf8');
/** The job's pid, which is also its process group's id. */
export const pidOf = async (h: Harness, id: string) =>
  Number((await readFile(join(h.dataDir, 'jobs', id, 'pid'), 'utf8')).split('\n')[0]);
/** The pid of the data directory's supervisor, from its lock. */
export const supervisorOf = (dataDir: string) =>
  Number(readFileSync(join(dataDir, 'supervisor.pid'), 'utf8').split('\n')[0]);
/** Supervisor processes of this data directory. */
export function supervisors(dataDir: string): number[] {
  return readdirSync('/proc')
    .filter((name) => /^[0-9]+$/.test(name))
    .flatMap((pid) => {
      try {
        const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        return isSupervisorCommand(args, dataDir) ? [Number(pid)] : [];
      } catch {
        return [];
      }
    });
}
/** The session, process group and parent of a process. */
export function ids(pid: number): { ppid: number; pgrp: number; session: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const [, ppid, pgrp, session] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { ppid: Number(ppid), pgrp: Number(pgrp), session: Number(session) };
}
/** Processes of a group that still run (zombies, which pid 1 may reap late here, hold nothing). */
export function running(pgid: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^[0-9]+$/.test(name))
    .flatMap((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        return Number(pgrp) === pgid && state !== 'Z' ? [Number(pid)] : [];
      } catch {
        return [];
      }
    });
}
