/**
 * The local compute driver: what `flare local` runs a job on. Each job is a
 * runner process (local-job-runner.mjs) in its own session and process group,
 * which runs the job's argv as a child (process mode) or `docker run` (docker
 * mode). Everything about a job lives in `<dataDir>/jobs/<id>/`:
 *
 *   spec.json   what to run (RunnerSpec), written before the runner starts
 *   pid         the runner's pid and the boot it ran in
 *   output.log  the job's stdout and stderr
 *   exit.json   ExitRecord, written once, atomically, when the job is over
 *
 * and its working directory is `<dataDir>/scratch/<id>/` (mounted at /scratch
 * in docker mode).
 *
 * Runners are detached, so jobs survive a crash of the control plane as an
 * EC2 instance would; `reattach` picks them up again after a restart.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, watch, type FSWatcher } from 'node:fs';
import { chmod, mkdir, open, readdir, readFile, rename, stat } from 'node:fs/promises';
import { totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { FlareError, LaunchFailed } from '../core/errors.js';
import { isTerminal, totalGpus, type Job } from '../core/job.js';
import type { Logger } from '../core/deps.js';
import type { Compute, ContainerSpec, Launched, ManagedInstance } from '../ports/compute.js';
import { containerName, dockerRunArgs, JOB_ID_PATTERN, scratchPath, type DockerRunOptions } from '../core/container-command.js';
import { discoverGpus, dockerEngineAvailable } from './gpu-discovery.js';

export type LocalDriver = 'docker' | 'process';

export interface LocalPool {
  readonly name: string;
  readonly gpus: number;
}

/** What the runner writes to exit.json. */
export interface ExitRecord {
  /** The job's exit status; 128+n when killed by signal n, 127 when the command was not found. */
  exitCode: number;
  signal: string | null;
  finishedAt: string;
  /** Why it ended, when not on its own: stopped by the control plane, expired (dead-man switch), never started, runner failure. */
  reason?: 'stopped' | 'expired' | 'not-started' | 'runner-error';
  error?: string;
}

export interface LocalComputeOptions {
  /** Root of the data directory; jobs live in `<dataDir>/jobs/<id>/`. */
  readonly dataDir: string;
  /** Pools in config order; each has `gpus` slots. */
  readonly pools: readonly LocalPool[];
  /** `auto`: docker when an engine answers `docker info`, else process. */
  readonly driver: 'auto' | LocalDriver;
  /**
   * A job's process ended on its own (or by the dead-man switch). Called at most once
   * per job and LocalCompute instance; never for a job ended by `stop()`.
   */
  readonly onExit: (jobId: string, exitCode: number, record: ExitRecord) => void | Promise<void>;
  /** A runner died without recording an exit (killed, machine rebooted): the local "instance lost". */
  readonly onLost?: (jobId: string, reason: string) => void | Promise<void>;
  /**
   * GPUs found on this machine; pools are mapped onto device indices 0..n-1 in config order.
   * 0: no GPUs, each pool's slots are plain numbers 0..gpus-1.
   * @default 0 (`create` runs `nvidia-smi -L`)
   */
  readonly hostGpus?: number;
  /** SIGTERM to SIGKILL. @default 10000 */
  readonly stopGraceMs?: number;
  /** The runner stops a job at expiresAt + this, even with no control plane left. @default 60000 */
  readonly deadManGraceMs?: number;
  /** Fallback check of exit files and runner liveness, beside fs.watch. @default 2000 */
  readonly pollMs?: number;
  /** Docker mode: limits and user of the container. @default memory 80% of this machine's, the control plane's own uid:gid */
  readonly docker?: Partial<Omit<DockerRunOptions, 'scratchDir' | 'detach'>>;
  /** @default warnings and errors to stderr */
  readonly log?: Logger;
}

/** The runner's input, spec.json. The runner is plain JS: keep this flat and JSON. */
export interface RunnerSpec {
  jobId: string;
  argv: string[];
  /** The complete environment of the job's process; nothing is inherited. */
  env: Record<string, string>;
  cwd: string;
  outputPath: string;
  pidPath: string;
  exitPath: string;
  expiresAt: string;
  deadManGraceMs: number;
  stopGraceMs: number;
  /** Run besides SIGTERM when stopping: the container is outside the runner's process group. */
  stopArgv?: string[];
}

/** The local machine could not do what was asked: stuck process, bad job id or config. */
export class LocalComputeError extends FlareError {}

const RUNNER = fileURLToPath(new URL('./local-job-runner.mjs', import.meta.url));
const KILL_WAIT_MS = 5000;
const DOCKER_ENV = ['DOCKER_HOST', 'DOCKER_CONTEXT', 'DOCKER_CONFIG', 'DOCKER_CERT_PATH', 'DOCKER_TLS_VERIFY'];

interface Held {
  pool: string;
  devices: number[];
}

interface Watched {
  jobId: string;
  /** The runner, when this instance spawned it. */
  runner?: ChildProcess;
  watcher?: FSWatcher;
  checking: boolean;
}

export class LocalCompute implements Compute {
  private readonly dataDir: string;
  private readonly hostGpus: number;
  private readonly poolDevices = new Map<string, number[]>();
  private readonly held = new Map<string, Held>();
  private readonly watched = new Map<string, Watched>();
  private readonly reported = new Set<string>();
  private readonly stopping = new Set<string>();
  private readonly starting = new Map<string, Promise<void>>();
  /** Jobs whose runner this instance spawned: started, whatever became of the runner. */
  private readonly started = new Set<string>();
  /** Those runners while they run (a new one may not have written its pid file yet). */
  private readonly runners = new Map<string, ChildProcess>();
  private readonly stopGraceMs: number;
  private readonly deadManGraceMs: number;
  private readonly pollMs: number;
  private readonly log: Logger;
  private readonly driver: Promise<LocalDriver>;
  private poller: NodeJS.Timeout | undefined;
  private closed = false;

  /** Probe the machine (`nvidia-smi -L`, `docker info`) and build the driver. */
  static async create(options: LocalComputeOptions): Promise<LocalCompute> {
    const [hostGpus, driver] = await Promise.all([
      options.hostGpus ?? discoverGpus(),
      options.driver === 'auto' ? dockerEngineAvailable().then((docker): LocalDriver => (docker ? 'docker' : 'process')) : options.driver,
    ]);
    return new LocalCompute({ ...options, hostGpus, driver });
  }

  constructor(private readonly options: LocalComputeOptions) {
    this.dataDir = resolve(options.dataDir);
    this.hostGpus = options.hostGpus ?? 0;
    this.stopGraceMs = options.stopGraceMs ?? 10_000;
    this.deadManGraceMs = options.deadManGraceMs ?? 60_000;
    this.pollMs = options.pollMs ?? 2000;
    this.log = options.log ?? stderrLogger;
    this.driver =
      options.driver === 'auto'
        ? dockerEngineAvailable().then((docker) => (docker ? 'docker' : 'process'))
        : Promise.resolve(options.driver);
    this.mapPools(options.pools, this.hostGpus);
  }

  /** `docker` or `process`, once `auto` has been resolved. */
  driverInUse(): Promise<LocalDriver> {
    return this.driver;
  }

  /** Slots of `pool` that no job holds, lowest first. */
  freeDevices(pool: string): number[] {
    const all = this.poolDevices.get(pool) ?? [];
    const taken = new Set([...this.held.values()].filter((h) => h.pool === pool).flatMap((h) => h.devices));
    return all.filter((d) => !taken.has(d));
  }

  logPath(jobId: string): string {
    return join(this.jobDir(jobId), 'output.log');
  }

  async launch(job: Job): Promise<Launched> {
    this.jobDir(job.id); // validates the id
    const instanceIds = [instanceId(job.id)];
    const held = this.held.get(job.id);
    if (held) return { instanceIds, devices: [...held.devices] };
    if (job.devices) {
      this.claim(job.id, job.pool, job.devices);
      return { instanceIds, devices: [...job.devices] };
    }
    const all = this.poolDevices.get(job.pool);
    if (!all) throw new LaunchFailed(`pool ${job.pool} is not configured on this machine`);
    // Every node of a job runs here: one machine holds all of its GPUs.
    const need = totalGpus(job);
    const free = this.freeDevices(job.pool);
    if (free.length < need) {
      throw new LaunchFailed(`pool ${job.pool} has ${free.length} of ${all.length} GPU slots free on this machine, job ${job.id} needs ${need}`);
    }
    const devices = free.slice(0, need);
    this.held.set(job.id, { pool: job.pool, devices });
    return { instanceIds, devices: [...devices] };
  }

  async isReady(_job: Job): Promise<boolean> {
    return true;
  }

  /** Run the job once: a second call, or a call after it ended, does nothing. */
  start(job: Job, spec: ContainerSpec): Promise<void> {
    const pending = this.starting.get(job.id);
    if (pending) return pending;
    const started = this.startOnce(job, spec).finally(() => this.starting.delete(job.id));
    this.starting.set(job.id, started);
    return started;
  }

  /** Stop the job's process group (SIGTERM, SIGKILL after stopGraceMs) and free its slots. */
  async stop(job: Job): Promise<void> {
    await this.stopJob(job.id);
  }

  /**
   * The jobs of this data directory that occupy this machine: a live runner (or,
   * its runner gone, a live process group or container of the job), or GPU slots
   * it holds with nothing running (`pending` before the start, `stopped` after
   * the end). Another control plane's data directory is never looked at.
   */
  async listManaged(): Promise<ManagedInstance[]> {
    const found = new Map<string, ManagedInstance>();
    const add = async (jobId: string, state: string) => {
      if (found.has(jobId)) return;
      const launchedAt = await stat(join(this.jobDir(jobId), 'spec.json')).then(
        (s) => s.mtime.toISOString(),
        () => undefined,
      );
      found.set(jobId, { instanceId: instanceId(jobId), jobId, state, ...(launchedAt ? { launchedAt } : {}) });
    };
    for (const jobId of await this.jobDirectories()) {
      if (await this.occupies(jobId)) await add(jobId, 'running');
    }
    for (const [jobId, runner] of this.runners) if (isRunning(runner)) await add(jobId, 'running');
    if ((await this.driverInUse()) === 'docker') {
      for (const jobId of await this.containerJobIds()) if (existsSync(join(this.jobDir(jobId), 'spec.json'))) await add(jobId, 'running');
    }
    // Slots held with nothing running: launched and not started yet, or ended and not stopped yet.
    for (const jobId of this.held.keys()) {
      const dir = this.jobDir(jobId);
      await add(jobId, existsSync(join(dir, 'pid')) || existsSync(join(dir, 'exit.json')) ? 'stopped' : 'pending');
    }
    return [...found.values()];
  }

  /** Stop the runners of these instances and free their slots, as `stop` does; ids already gone are ignored. */
  async terminate(instanceIds: readonly string[]): Promise<void> {
    const jobIds = instanceIds.map((id) => {
      const jobId = id.startsWith(INSTANCE_PREFIX) ? id.slice(INSTANCE_PREFIX.length) : '';
      if (!JOB_ID_PATTERN.test(jobId)) throw new LocalComputeError(`${JSON.stringify(id)} is not a local instance id (${INSTANCE_PREFIX}<job id>)`);
      return jobId;
    });
    for (const jobId of jobIds) {
      this.log.warn('terminating the runner of job', { jobId });
      await this.stopJob(jobId);
    }
  }

  private async stopJob(jobId: string): Promise<void> {
    const dir = this.jobDir(jobId);
    this.stopping.add(jobId);
    try {
      await this.starting.get(jobId)?.catch(() => undefined); // a start in flight is stopped too, not raced
      this.unwatch(jobId);
      await this.killRunner(jobId, dir);
      if ((await this.driverInUse()) === 'docker' && existsSync(join(dir, 'spec.json'))) await this.removeContainer(jobId);
      this.held.delete(jobId);
    } finally {
      this.stopping.delete(jobId);
    }
  }

  /** Job ids with a directory under `<dataDir>/jobs`. */
  private async jobDirectories(): Promise<string[]> {
    try {
      return (await readdir(join(this.dataDir, 'jobs'))).filter((name) => JOB_ID_PATTERN.test(name));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }

  /**
   * No exit record, and a live runner or, the runner crashed, its process group
   * still alive. The exit record is checked first: directories of every job ever
   * run stay, and a runner with a record is ending its group on its own.
   */
  private async occupies(jobId: string): Promise<boolean> {
    const dir = this.jobDir(jobId);
    if (existsSync(join(dir, 'exit.json'))) return false;
    if ((await runnerPid(dir)) !== undefined) return true;
    const recorded = await recordedPid(dir);
    return recorded !== undefined && (await groupAlive(recorded));
  }

  /** Job ids of Flare's containers (their runner may be gone: the container outlives it). */
  private async containerJobIds(): Promise<string[]> {
    const result = await runQuiet('docker', ['ps', '--filter', 'label=flare.job', '--format', '{{.Label "flare.job"}}']);
    if (result.code !== 0) throw new LocalComputeError(`docker ps failed: ${result.stderr.trim()}`);
    return result.stdout.split('\n').map((line) => line.trim()).filter((jobId) => JOB_ID_PATTERN.test(jobId));
  }

  /**
   * Start-up recovery: take the slots of jobs that hold devices and watch the ones
   * that were started. An exit that happened while the control plane was down is
   * reported through onExit; a runner that died without a record through onLost.
   * Call before the first launch.
   */
  async reattach(jobs: readonly Job[]): Promise<void> {
    for (const job of jobs) {
      if (isTerminal(job.state)) continue;
      if (job.devices && !this.held.has(job.id)) this.claim(job.id, job.pool, job.devices);
      const dir = this.jobDir(job.id);
      // spec.json: start() got as far as launching the runner, which may not have written its pid yet.
      if (['spec.json', 'pid', 'exit.json'].some((file) => existsSync(join(dir, file)))) this.watch(job.id);
    }
  }

  /**
   * Move the dead-man deadline of a running job (its live timeout was changed): the
   * runner re-reads expiresAt from its spec file. Takes the job or its id.
   */
  async updateExpiry(job: Job | string, expiresAt: string): Promise<void> {
    const jobId = typeof job === 'string' ? job : job.id;
    if (Number.isNaN(Date.parse(expiresAt))) throw new LocalComputeError(`expiresAt ${expiresAt} is not a date`);
    const specPath = join(this.jobDir(jobId), 'spec.json');
    const spec = JSON.parse(await readFile(specPath, 'utf8')) as RunnerSpec;
    await writeAtomically(specPath, JSON.stringify({ ...spec, expiresAt }));
  }

  /** Stop watching; running jobs keep running. */
  close(): void {
    this.closed = true;
    for (const id of [...this.watched.keys()]) this.unwatch(id);
  }

  // --- slots ---

  private mapPools(pools: readonly LocalPool[], hostGpus: number): void {
    const wanted = pools.reduce((sum, p) => sum + p.gpus, 0);
    if (hostGpus > 0 && wanted > hostGpus) {
      throw new LocalComputeError(`pools ask for ${wanted} GPUs but this machine has ${hostGpus}: lower pools[].gpus`);
    }
    let next = 0;
    for (const pool of pools) {
      if (!Number.isInteger(pool.gpus) || pool.gpus < 0) throw new LocalComputeError(`pool ${pool.name}: gpus must be a whole number`);
      if (this.poolDevices.has(pool.name)) throw new LocalComputeError(`pool ${pool.name} is configured twice`);
      // Real GPUs are handed out once across pools; plain slots are numbered per pool.
      const first = hostGpus > 0 ? next : 0;
      this.poolDevices.set(pool.name, Array.from({ length: pool.gpus }, (_, i) => first + i));
      next += pool.gpus;
    }
  }

  private claim(jobId: string, pool: string, devices: readonly number[]): void {
    const taken = devices.filter((d) => !this.freeDevices(pool).includes(d));
    if (taken.length > 0) {
      this.log.error('job holds GPU slots that are not free', { jobId, pool, devices: [...devices], taken });
    }
    this.held.set(jobId, { pool, devices: [...devices] });
  }

  // --- starting ---

  private async startOnce(job: Job, spec: ContainerSpec): Promise<void> {
    const dir = this.jobDir(job.id);
    if (Number.isNaN(Date.parse(spec.expiresAt))) throw new LocalComputeError(`job ${job.id}: expiresAt ${spec.expiresAt} is not a date`);
    const devices = spec.devices ?? this.held.get(job.id)?.devices ?? job.devices;
    if (!devices) throw new LocalComputeError(`job ${job.id} holds no GPU slots on this machine: launch it first`);
    if (!this.held.has(job.id)) this.claim(job.id, job.pool, devices);

    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (this.started.has(job.id) || existsSync(join(dir, 'exit.json')) || (await runnerPid(dir)) !== undefined) {
      this.watch(job.id);
      return;
    }
    if (existsSync(join(dir, 'pid'))) {
      // It ran, and its runner died without a record: running it again could repeat its effects.
      throw new LaunchFailed(`job ${job.id} was started before and its runner died without recording an exit`);
    }

    const runnerSpec = await this.runnerSpec(job.id, dir, spec, devices);
    const specPath = join(dir, 'spec.json');
    await writeAtomically(specPath, JSON.stringify(runnerSpec));
    const runner = spawn(process.execPath, [RUNNER, specPath], {
      cwd: dir,
      detached: true, // own session and process group: survives us, and stop() can signal the group
      stdio: 'ignore',
      env: baseEnv(),
    });
    await new Promise<void>((resolve, reject) => {
      runner.once('spawn', resolve);
      runner.once('error', (error) => reject(new LaunchFailed(`cannot start the runner of job ${job.id}: ${error.message}`, { cause: error })));
    });
    runner.unref();
    this.started.add(job.id);
    this.runners.set(job.id, runner);
    runner.once('exit', () => this.runners.delete(job.id));
    this.log.info('job started', { jobId: job.id, runnerPid: runner.pid, devices, driver: await this.driverInUse() });
    this.watch(job.id, runner);
  }

  private async runnerSpec(jobId: string, dir: string, spec: ContainerSpec, devices: number[]): Promise<RunnerSpec> {
    const common = {
      jobId,
      cwd: scratchPath(join(this.dataDir, 'scratch'), jobId),
      outputPath: join(dir, 'output.log'),
      pidPath: join(dir, 'pid'),
      exitPath: join(dir, 'exit.json'),
      expiresAt: spec.expiresAt,
      deadManGraceMs: this.deadManGraceMs,
      stopGraceMs: this.stopGraceMs,
    };
    await mkdir(common.cwd, { recursive: true, mode: 0o700 });
    if ((await this.driverInUse()) === 'docker') {
      const name = containerName(jobId);
      const uid = process.getuid?.() ?? 0;
      // Slots without real GPUs are only bookkeeping: asking docker for them would fail.
      const gpus = this.hostGpus > 0 ? { gpus: devices.length, devices } : { gpus: 0, devices: undefined };
      const options: DockerRunOptions = {
        memory: `${Math.floor((totalmem() * 0.8) / 2 ** 20)}m`,
        // Files in the scratch directory then belong to whoever runs Flare; root keeps docker's nobody default.
        ...(uid !== 0 ? { user: `${uid}:${process.getgid?.() ?? uid}` } : {}),
        ...this.options.docker,
        ...(spec.allowRoot ? { allowRoot: true } : {}),
        scratchDir: join(this.dataDir, 'scratch'),
      };
      if (uid === 0) await chmod(common.cwd, 0o777);
      return {
        ...common,
        argv: ['docker', ...dockerRunArgs({ ...spec, ...gpus }, options)],
        env: { ...baseEnv(), ...pick(process.env, DOCKER_ENV) },
        stopArgv: ['docker', 'stop', '--time', String(Math.ceil(this.stopGraceMs / 1000)), name],
      };
    }
    return {
      ...common,
      argv: [...spec.command],
      env: {
        ...baseEnv(),
        ...spec.env,
        // Set last, so a job cannot widen its own GPUs; PCI order makes the
        // indices the ones nvidia-smi shows.
        CUDA_DEVICE_ORDER: 'PCI_BUS_ID',
        CUDA_VISIBLE_DEVICES: devices.join(','),
        FLARE_JOB_ID: jobId,
      },
    };
  }

  // --- stopping ---

  private async killRunner(jobId: string, dir: string): Promise<void> {
    const exited = existsSync(join(dir, 'exit.json'));
    const spawned = this.runners.get(jobId);
    // A runner spawned here may not have written its pid file yet.
    const runner = (await runnerPid(dir)) ?? (spawned && isRunning(spawned) ? spawned.pid : undefined);
    let group: number | undefined;
    if (runner !== undefined) {
      group = runner;
      // The runner passes SIGTERM on to its group once; signalling the group here
      // as well would give the job two.
      if (!exited) signal(runner, 'SIGTERM');
    } else if (!exited) {
      // No live runner and no record: it crashed, its job may still be running.
      const recorded = await recordedPid(dir);
      if (recorded !== undefined && (await groupAlive(recorded))) {
        group = recorded;
        signal(-recorded, 'SIGTERM');
      }
    }
    if (group === undefined || (await waitGone(group, this.stopGraceMs))) return;
    this.log.warn('job did not stop after SIGTERM; killing it', { jobId, graceMs: this.stopGraceMs });
    signal(-group, 'SIGKILL');
    if (!(await waitGone(group, KILL_WAIT_MS))) throw new LocalComputeError(`process group ${group} of job ${jobId} survived SIGKILL`);
  }

  private async removeContainer(jobId: string): Promise<void> {
    const result = await runQuiet('docker', ['rm', '--force', containerName(jobId)]);
    if (result.code !== 0 && !/no such container/i.test(result.stderr)) {
      throw new LocalComputeError(`docker rm of job ${jobId} failed: ${result.stderr.trim()}`);
    }
  }

  // --- exit detection ---

  private watch(jobId: string, runner?: ChildProcess): void {
    if (this.closed || this.reported.has(jobId)) return;
    const existing = this.watched.get(jobId);
    if (existing) {
      existing.runner ??= runner;
    } else {
      const entry: Watched = { jobId, runner, checking: false };
      try {
        entry.watcher = watch(this.jobDir(jobId), { persistent: false }, (_event, file) => {
          if (file === null || file === 'exit.json') void this.check(entry);
        });
        entry.watcher.on('error', (error) => this.log.warn('watching a job directory failed; polling it', { jobId, error: String(error) }));
      } catch (error) {
        this.log.warn('cannot watch a job directory; polling it', { jobId, error: String(error) });
      }
      this.watched.set(jobId, entry);
    }
    runner?.once('exit', () => {
      const entry = this.watched.get(jobId);
      if (entry) void this.check(entry);
    });
    this.poller ??= setInterval(() => this.pollAll(), this.pollMs).unref();
    void this.check(this.watched.get(jobId)!);
  }

  private unwatch(jobId: string): void {
    const entry = this.watched.get(jobId);
    if (!entry) return;
    entry.watcher?.close();
    this.watched.delete(jobId);
    if (this.watched.size === 0 && this.poller) {
      clearInterval(this.poller);
      this.poller = undefined;
    }
  }

  private pollAll(): void {
    for (const entry of this.watched.values()) void this.check(entry);
  }

  private async check(entry: Watched): Promise<void> {
    if (entry.checking || this.watched.get(entry.jobId) !== entry) return;
    entry.checking = true;
    try {
      const dir = this.jobDir(entry.jobId);
      let record = await readExit(dir);
      if (!record) {
        if (entry.runner && isRunning(entry.runner)) return;
        if ((await runnerPid(dir)) !== undefined) return;
        if (!entry.runner && !existsSync(join(dir, 'pid'))) return; // never started: nothing to wait for
        record = await readExit(dir); // it may have written its record just before it went
      }
      if (this.watched.get(entry.jobId) !== entry || this.stopping.has(entry.jobId)) return;
      this.unwatch(entry.jobId);
      this.reported.add(entry.jobId);
      if (record) {
        this.log.info('job exited', { jobId: entry.jobId, exitCode: record.exitCode, signal: record.signal, reason: record.reason });
        await this.options.onExit(entry.jobId, record.exitCode, record);
      } else {
        const reason = 'its runner process ended without recording an exit';
        this.log.warn('job lost', { jobId: entry.jobId, reason });
        await this.options.onLost?.(entry.jobId, reason);
      }
    } catch (error) {
      this.log.error('handling the end of a job failed', { jobId: entry.jobId, error: String(error) });
    } finally {
      entry.checking = false;
    }
  }

  private jobDir(jobId: string): string {
    if (!JOB_ID_PATTERN.test(jobId)) throw new LocalComputeError(`job id ${JSON.stringify(jobId)} cannot name a directory`);
    return join(this.dataDir, 'jobs', jobId);
  }
}

const INSTANCE_PREFIX = 'local-';

export function instanceId(jobId: string): string {
  return `${INSTANCE_PREFIX}${jobId}`;
}

const stderrLogger: Logger = {
  info: () => {},
  warn: (message, data) => console.error(`[local-compute] ${message}`, data ?? ''),
  error: (message, data) => console.error(`[local-compute] ${message}`, data ?? ''),
};

/** What a job may see of ours: enough to find programs and a home, nothing else (no credentials). */
function baseEnv(): Record<string, string> {
  return { PATH: '/usr/local/bin:/usr/bin:/bin', ...pick(process.env, ['PATH', 'HOME', 'LANG']) };
}

function pick(env: NodeJS.ProcessEnv, names: readonly string[]): Record<string, string> {
  return Object.fromEntries(names.flatMap((n) => (env[n] !== undefined ? [[n, env[n]!]] : [])));
}

async function writeAtomically(path: string, text: string): Promise<void> {
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

async function readExit(dir: string): Promise<ExitRecord | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, 'exit.json'), 'utf8')) as ExitRecord;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** The pid in the pid file, if it was written in this boot. */
async function recordedPid(dir: string): Promise<number | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, 'pid'), 'utf8');
  } catch {
    return undefined;
  }
  const [pidText, boot] = text.split('\n');
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const current = await bootId();
  if (boot && current && boot !== current) return undefined;
  return pid;
}

/** The runner's pid while it runs; a reused pid (another program, another boot) does not count. */
async function runnerPid(dir: string): Promise<number | undefined> {
  const pid = await recordedPid(dir);
  if (pid === undefined) return undefined;
  try {
    process.kill(pid, 0);
  } catch {
    return undefined;
  }
  try {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes(join(dir, 'spec.json')) ? pid : undefined; // a zombie's is empty
  } catch {
    return existsSync('/proc/self') ? undefined : pid; // no procfs (macOS): trust the probe
  }
}

let boot: Promise<string> | undefined;
function bootId(): Promise<string> {
  boot ??= readFile('/proc/sys/kernel/random/boot_id', 'utf8').then(
    (text) => text.trim(),
    () => '',
  );
  return boot;
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** True while a process of the group runs; zombies hold nothing and do not count. */
async function groupAlive(pgid: number): Promise<boolean> {
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

function runQuiet(command: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...baseEnv(), ...pick(process.env, DOCKER_ENV) } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', (error) => resolve({ code: -1, stdout, stderr: error.message }));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
