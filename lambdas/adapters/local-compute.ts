/**
 * The local compute driver: what `flare local` runs a job on. One supervisor
 * process per data directory (local-supervisor/supervisor.mjs, in its own session)
 * runs each job's argv (process mode) or `docker run` (docker mode) in the
 * job's own session and process group. Everything about a job lives in
 * `<dataDir>/jobs/<id>/`:
 *
 *   spec.json   what to run (RunnerSpec), written before the job is started
 *   pid         the job's pid (its process group, led by the runner's shim), the
 *               boot it ran in, and the supervisor (pid, nonce) that runs it
 *   exit-code   the job's exit code, written by the shim as the job ends, so a
 *               supervisor that adopts the job after a crash still learns it
 *   output.log  the job's stdout and stderr
 *   exit.json   ExitRecord, written once, atomically, when the job is over
 *
 * and its working directory is `<dataDir>/scratch/<id>/` (mounted at /scratch
 * in docker mode). The supervisor's lock is `<dataDir>/supervisor.pid`, its
 * socket `<dataDir>/supervisor.sock`.
 *
 * The supervisor and its jobs are detached, so jobs survive a crash of the
 * control plane as EC2 instances would; a restarted control plane connects to
 * the live supervisor, and `reattach` picks the jobs up again. A supervisor that
 * dies is replaced at once, and the new one adopts its jobs (they keep running).
 * An end that cannot be recorded (the store is down) is reported again, with
 * backoff, until it is.
 */
import { spawn } from 'node:child_process';
import { existsSync, watch, type FSWatcher } from 'node:fs';
import { chmod, mkdir, open, readdir, readFile, rename, stat } from 'node:fs/promises';
import { totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LaunchFailed } from '../core/errors.js';
import { isTerminal, totalGpus, type Job, type Outcome } from '../core/job.js';
import type { Logger } from '../core/deps.js';
import type { Compute, ContainerSpec, Launched, ManagedInstance } from '../ports/compute.js';
import {
  containerName,
  dockerRunArgs,
  JOB_ID_PATTERN,
  scratchPath,
  type DockerRunOptions,
} from '../core/container-command.js';
import { discoverGpus, dockerEngineAvailable } from './gpu-discovery.js';
import { bootId, liveSupervisor, LOCK_NAME } from './local-supervisor/lock.mjs';
import { DEFAULT_STOP_GRACE_MS } from './local-supervisor/job-run.mjs';
import { baseEnv, LocalComputeError, pick, SupervisorLink } from './local-supervisor/link.js';

export { LocalComputeError } from './local-supervisor/link.js';

export type LocalDriver = 'docker' | 'process';

export interface LocalPool {
  readonly name: string;
  readonly gpus: number;
}

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

export interface LocalComputeOptions {
  /** Root of the data directory; jobs live in `<dataDir>/jobs/<id>/`. */
  readonly dataDir: string;
  /** Pools in config order; each has `gpus` slots. */
  readonly pools: readonly LocalPool[];
  /** `auto`: docker when an engine answers `docker info`, else process. */
  readonly driver: 'auto' | LocalDriver;
  /**
   * A job's process ended on its own (or by the dead-man switch). Called until it resolves, with
   * backoff (the store may be down), then never again for that job and LocalCompute instance;
   * never for a job ended by `stop()`.
   */
  readonly onExit: (jobId: string, exitCode: number, record: ExitRecord) => void | Promise<void>;
  /** A job's processes went without an exit code while no supervisor watched them (killed, machine rebooted): the local "instance lost". Retried as onExit is. */
  readonly onLost?: (jobId: string, reason: string, at?: string) => void | Promise<void>;
  /**
   * GPUs found on this machine; pools are mapped onto device indices 0..n-1 in config order.
   * 0: no GPUs, each pool's slots are plain numbers 0..gpus-1.
   * @default 0 (`create` runs `nvidia-smi -L`)
   */
  readonly hostGpus?: number;
  /** SIGTERM to SIGKILL, for a stop and for the supervisor's own stop at expiresAt. @default 5000 */
  readonly stopGraceMs?: number;
  /** Fallback check of exit files and supervisor liveness, beside fs.watch. @default 2000 */
  readonly pollMs?: number;
  /** A supervisor this instance starts exits after this long with no job and no control plane connected. @default 60000 */
  readonly supervisorIdleMs?: number;
  /** Docker mode: limits and user of the container. @default memory 80% of this machine's, the control plane's own uid:gid */
  readonly docker?: Partial<Omit<DockerRunOptions, 'scratchDir' | 'detach'>>;
  /** @default warnings and errors to stderr */
  readonly log?: Logger;
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
}

const KILL_WAIT_MS = 5000;
/** Reporting a job's end again after a failure: from this, doubling, up to the max. */
const REPORT_RETRY_MS = 250;
const REPORT_RETRY_MAX_MS = 30_000;
/** How long one look at the supervisor's liveness is reused (each job check needs it). */
const LIVENESS_TTL_MS = 100;
const DOCKER_ENV = ['DOCKER_HOST', 'DOCKER_CONTEXT', 'DOCKER_CONFIG', 'DOCKER_CERT_PATH', 'DOCKER_TLS_VERIFY'];

interface Held {
  pool: string;
  devices: number[];
}

interface Watched {
  jobId: string;
  watcher?: FSWatcher;
  checking: boolean;
  /** A change came while a check ran: that check may have read before it, so check again after. */
  again?: boolean;
  /** Its end as the supervisor told it, when its exit record could not be written. */
  told?: ExitRecord;
  /** Reports of its end that failed so far; the next try waits until retryAt. */
  failures: number;
  retryAt?: number;
  retryTimer?: NodeJS.Timeout;
}

/** Who runs the jobs of a data directory: its pid, and a nonce that a reused pid cannot have. */
interface SupervisorId {
  pid: number;
  nonce: string;
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
  /** Jobs this instance had the supervisor start: started, whatever became of the supervisor. */
  private readonly started = new Set<string>();
  private readonly supervisor: SupervisorLink;
  private liveness: { at: number; id: Promise<SupervisorId | undefined> } | undefined;
  private readonly stopGraceMs: number;
  private readonly pollMs: number;
  private readonly log: Logger;
  private readonly driver: Promise<LocalDriver>;
  private poller: NodeJS.Timeout | undefined;
  private closed = false;

  /** Probe the machine (`nvidia-smi -L`, `docker info`) and build the driver. */
  static async create(options: LocalComputeOptions): Promise<LocalCompute> {
    const [hostGpus, driver] = await Promise.all([
      options.hostGpus ?? discoverGpus(),
      options.driver === 'auto'
        ? dockerEngineAvailable().then((docker): LocalDriver => (docker ? 'docker' : 'process'))
        : options.driver,
    ]);
    return new LocalCompute({ ...options, hostGpus, driver });
  }

  constructor(private readonly options: LocalComputeOptions) {
    this.dataDir = resolve(options.dataDir);
    this.hostGpus = options.hostGpus ?? 0;
    this.stopGraceMs = options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS;
    this.pollMs = options.pollMs ?? 2000;
    this.log = options.log ?? stderrLogger;
    this.driver =
      options.driver === 'auto'
        ? dockerEngineAvailable().then((docker) => (docker ? 'docker' : 'process'))
        : Promise.resolve(options.driver);
    this.mapPools(options.pools, this.hostGpus);
    this.supervisor = new SupervisorLink(this.dataDir, options.supervisorIdleMs ?? 60_000, this.log, {
      onDisconnect: () => {
        // It may have died: look at every job now rather than at the next poll.
        this.liveness = undefined;
        this.pollAll();
      },
      onEnded: (jobId, record) => this.told(jobId, record as ExitRecord),
    });
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
      throw new LaunchFailed(
        `pool ${job.pool} has ${free.length} of ${all.length} GPU slots free on this machine, job ${job.id} needs ${need}`,
      );
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
   * The jobs of this data directory that occupy this machine: a job of the live
   * supervisor (or, the supervisor gone, a live process group or container of the job), or GPU slots
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
    if ((await this.driverInUse()) === 'docker') {
      for (const jobId of await this.containerJobIds())
        if (existsSync(join(this.jobDir(jobId), 'spec.json'))) await add(jobId, 'running');
    }
    // Slots held with nothing running: launched and not started yet, or ended and not stopped yet.
    for (const jobId of this.held.keys()) {
      const dir = this.jobDir(jobId);
      await add(jobId, existsSync(join(dir, 'pid')) || existsSync(join(dir, 'exit.json')) ? 'stopped' : 'pending');
    }
    return [...found.values()];
  }

  /** Stop the jobs of these instances and free their slots, as `stop` does; ids already gone are ignored. */
  async terminate(instanceIds: readonly string[]): Promise<void> {
    const jobIds = instanceIds.map((id) => {
      const jobId = id.startsWith(INSTANCE_PREFIX) ? id.slice(INSTANCE_PREFIX.length) : '';
      if (!JOB_ID_PATTERN.test(jobId))
        throw new LocalComputeError(`${JSON.stringify(id)} is not a local instance id (${INSTANCE_PREFIX}<job id>)`);
      return jobId;
    });
    for (const jobId of jobIds) {
      this.log.warn('terminating the processes of job', { jobId });
      await this.stopJob(jobId);
    }
  }

  private async stopJob(jobId: string): Promise<void> {
    const dir = this.jobDir(jobId);
    this.stopping.add(jobId);
    try {
      await this.starting.get(jobId)?.catch(() => undefined); // a start in flight is stopped too, not raced
      this.unwatch(jobId);
      await this.stopProcesses(jobId, dir);
      if ((await this.driverInUse()) === 'docker' && existsSync(join(dir, 'spec.json')))
        await this.removeContainer(jobId);
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
   * No exit record, and its supervisor alive or, the supervisor crashed, its
   * process group still alive. The exit record is checked first: directories of
   * every job ever run stay, and a job with a record has had its group ended.
   */
  private async occupies(jobId: string): Promise<boolean> {
    const dir = this.jobDir(jobId);
    if (existsSync(join(dir, 'exit.json'))) return false;
    if (await this.supervised(dir)) return true;
    const recorded = await recordedPid(dir);
    return recorded !== undefined && (await groupAlive(recorded));
  }

  /** Job ids of Flare's containers (their supervisor may be gone: the container outlives it). */
  private async containerJobIds(): Promise<string[]> {
    const result = await runQuiet('docker', [
      'ps',
      '--filter',
      'label=flare.job',
      '--format',
      '{{.Label "flare.job"}}',
    ]);
    if (result.code !== 0) throw new LocalComputeError(`docker ps failed: ${result.stderr.trim()}`);
    return result.stdout
      .split('\n')
      .map((line) => line.trim())
      .filter((jobId) => JOB_ID_PATTERN.test(jobId));
  }

  /**
   * Start-up recovery: take the slots of jobs that hold devices and watch the ones
   * that were started. An exit that happened while the control plane was down is
   * reported through onExit; a job whose supervisor died without a record through onLost.
   * Call before the first launch.
   */
  async reattach(jobs: readonly Job[]): Promise<void> {
    for (const job of jobs) {
      if (isTerminal(job.state)) continue;
      if (job.devices && !this.held.has(job.id)) this.claim(job.id, job.pool, job.devices);
      const dir = this.jobDir(job.id);
      // spec.json: start() got as far as asking the supervisor, which may not have claimed the pid file yet.
      if (['spec.json', 'pid', 'exit.json'].some((file) => existsSync(join(dir, file)))) this.watch(job.id);
    }
  }

  /**
   * Move the dead-man deadline of a running job (its live timeout was changed): the
   * supervisor re-reads expiresAt from the spec file, told so at once (an earlier
   * deadline) or when the old one comes (a later one). Takes the job or its id.
   */
  async updateExpiry(job: Job | string, expiresAt: string): Promise<void> {
    const jobId = typeof job === 'string' ? job : job.id;
    if (Number.isNaN(Date.parse(expiresAt))) throw new LocalComputeError(`expiresAt ${expiresAt} is not a date`);
    const dir = this.jobDir(jobId);
    const specPath = join(dir, 'spec.json');
    const spec = JSON.parse(await readFile(specPath, 'utf8')) as RunnerSpec;
    await writeAtomically(specPath, JSON.stringify({ ...spec, expiresAt }));
    if (!(await this.supervised(dir))) return;
    await this.supervisor.request({ op: 'expiry', jobId }, false).catch((error: unknown) => {
      // The file is moved; a later deadline is still seen when the old one comes.
      this.log.warn('cannot tell the job supervisor about a moved expiry', { jobId, error: String(error) });
    });
  }

  /** The job's end as its exit record says, before its report is recorded; our own stops are not the job's end. */
  async endedOn(job: Job): Promise<Outcome | undefined> {
    const record = this.watched.get(job.id)?.told ?? (await readExit(this.jobDir(job.id)));
    if (!record || record.reason === 'stopped') return undefined;
    if (record.reason === 'lost')
      return {
        kind: 'lost',
        reason: record.error ?? 'its processes ended without an exit code',
        at: record.finishedAt,
      };
    return {
      kind: 'exited',
      exitCode: record.exitCode,
      at: record.finishedAt,
      ...(record.reason === 'expired' ? { expired: true } : {}),
    };
  }

  /** Stop watching and let go of the supervisor; running jobs keep running. */
  close(): void {
    this.closed = true;
    for (const id of [...this.watched.keys()]) this.unwatch(id);
    this.supervisor.close();
  }

  // --- slots ---

  /**
   * Pools split the machine's devices: each pool gets its own indices, in config order, so two pools
   * never hand out the same GPU (nor, without GPUs, the same CUDA_VISIBLE_DEVICES slot number).
   */
  private mapPools(pools: readonly LocalPool[], hostGpus: number): void {
    const wanted = pools.reduce((sum, p) => sum + p.gpus, 0);
    if (hostGpus > 0 && wanted > hostGpus) {
      const asked = pools.map((p) => `${p.name} (${p.gpus})`).join(', ');
      throw new LocalComputeError(
        `pools ${asked} ask for ${wanted} GPUs but this machine has ${hostGpus}: lower pools[].gpus so that they add up to at most ${hostGpus}`,
      );
    }
    let next = 0;
    for (const pool of pools) {
      if (!Number.isInteger(pool.gpus) || pool.gpus < 0)
        throw new LocalComputeError(`pool ${pool.name}: gpus must be a whole number`);
      if (this.poolDevices.has(pool.name)) throw new LocalComputeError(`pool ${pool.name} is configured twice`);
      this.poolDevices.set(
        pool.name,
        Array.from({ length: pool.gpus }, (_, i) => next + i),
      );
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
    if (Number.isNaN(Date.parse(spec.expiresAt)))
      throw new LocalComputeError(`job ${job.id}: expiresAt ${spec.expiresAt} is not a date`);
    const devices = spec.devices ?? this.held.get(job.id)?.devices ?? job.devices;
    if (!devices) throw new LocalComputeError(`job ${job.id} holds no GPU slots on this machine: launch it first`);
    if (!this.held.has(job.id)) this.claim(job.id, job.pool, devices);

    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (this.started.has(job.id) || existsSync(join(dir, 'exit.json')) || (await this.supervised(dir))) {
      this.watch(job.id);
      return;
    }
    if (existsSync(join(dir, 'pid'))) {
      // It ran, and its supervisor died: never run it again; a new supervisor adopts it or records how it ended.
      await this.supervisor.request({ op: 'adopt', jobId: job.id }, true);
      this.watch(job.id);
      return;
    }

    const runnerSpec = await this.runnerSpec(job.id, dir, spec, devices);
    const specPath = join(dir, 'spec.json');
    await writeAtomically(specPath, JSON.stringify(runnerSpec));
    // The supervisor claims the pid file before it spawns: a job is never run twice.
    const reply = await this.supervisor.request({ op: 'start', specPath }, true);
    this.started.add(job.id);
    this.log.info('job started', {
      jobId: job.id,
      pid: reply?.pid,
      state: reply?.state,
      devices,
      driver: await this.driverInUse(),
    });
    this.watch(job.id);
  }

  private async runnerSpec(jobId: string, dir: string, spec: ContainerSpec, devices: number[]): Promise<RunnerSpec> {
    const common = {
      jobId,
      cwd: scratchPath(join(this.dataDir, 'scratch'), jobId),
      outputPath: join(dir, 'output.log'),
      pidPath: join(dir, 'pid'),
      exitPath: join(dir, 'exit.json'),
      statusPath: join(dir, 'exit-code'),
      expiresAt: spec.expiresAt,
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

  /** SIGTERM to the job's process group (by its supervisor, when alive), SIGKILL after stopGraceMs. */
  private async stopProcesses(jobId: string, dir: string): Promise<void> {
    const exitPath = join(dir, 'exit.json');
    if (!existsSync(exitPath) && existsSync(join(dir, 'pid')) && !(await this.supervised(dir))) {
      // Its supervisor died: a new one adopts the job, so the stop below goes through it and its end is recorded.
      await this.supervisor.request({ op: 'adopt', jobId }, true).catch((error: unknown) => {
        this.log.warn('no job supervisor could adopt the job; signalling it', { jobId, error: String(error) });
      });
    }
    let group = await recordedPid(dir); // the job's pid leads its group
    if (!existsSync(exitPath) && (await this.supervised(dir))) {
      // The supervisor sends SIGTERM to the group once (and runs `docker stop`), SIGKILL after
      // the grace, and answers once the end is on record: signalling here too would give the job two.
      const reply = await this.supervisor
        .request({ op: 'stop', jobId }, false, this.stopGraceMs + 2 * KILL_WAIT_MS)
        .catch((error: unknown) => {
          this.log.warn('the job supervisor did not stop the job; signalling it', { jobId, error: String(error) });
          return undefined;
        });
      group ??= reply?.pid;
    }
    if (group === undefined) return;
    // No record: its supervisor crashed (or did not answer), the job may still be running.
    if (!existsSync(exitPath) && (await groupAlive(group))) signal(-group, 'SIGTERM');
    if (await waitGone(group, this.stopGraceMs)) return;
    this.log.warn('job did not stop after SIGTERM; killing it', { jobId, graceMs: this.stopGraceMs });
    signal(-group, 'SIGKILL');
    if (!(await waitGone(group, KILL_WAIT_MS)))
      throw new LocalComputeError(`process group ${group} of job ${jobId} survived SIGKILL`);
  }

  private async removeContainer(jobId: string): Promise<void> {
    const result = await runQuiet('docker', ['rm', '--force', containerName(jobId)]);
    if (result.code !== 0 && !/no such container/i.test(result.stderr)) {
      throw new LocalComputeError(`docker rm of job ${jobId} failed: ${result.stderr.trim()}`);
    }
  }

  // --- exit detection ---

  private watch(jobId: string): void {
    if (this.closed || this.reported.has(jobId)) return;
    if (!this.watched.has(jobId)) {
      const entry: Watched = { jobId, checking: false, failures: 0 };
      try {
        entry.watcher = watch(this.jobDir(jobId), { persistent: false }, (_event, file) => {
          if (file === null || file === 'exit.json') void this.check(entry);
        });
        entry.watcher.on('error', (error) =>
          this.log.warn('watching a job directory failed; polling it', { jobId, error: String(error) }),
        );
      } catch (error) {
        this.log.warn('cannot watch a job directory; polling it', { jobId, error: String(error) });
      }
      this.watched.set(jobId, entry);
    }
    this.poller ??= setInterval(() => this.pollAll(), this.pollMs).unref();
    void this.check(this.watched.get(jobId)!);
  }

  private unwatch(jobId: string): void {
    const entry = this.watched.get(jobId);
    if (!entry) return;
    entry.watcher?.close();
    clearTimeout(entry.retryTimer);
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
    if (this.watched.get(entry.jobId) !== entry) return;
    if (entry.checking) {
      entry.again = true;
      return;
    }
    if (entry.retryAt !== undefined && Date.now() < entry.retryAt) return; // backing off: its timer checks again
    entry.checking = true;
    entry.again = false;
    try {
      const dir = this.jobDir(entry.jobId);
      let record = entry.told ?? (await readExit(dir));
      if (!record) {
        if (await this.supervised(dir)) {
          if (!this.closed) await this.supervisor.listen(); // a plane restarted since the job began hears of its end
          return;
        }
        if (!existsSync(join(dir, 'pid'))) return; // never started: nothing to wait for
        if (this.closed) return; // a check in flight when the plane let go: it starts no supervisor
        // Its supervisor is gone: a new one adopts the job (it runs on), or records how it ended.
        await this.supervisor.request({ op: 'adopt', jobId: entry.jobId }, true);
        record = await readExit(dir);
        if (!record) return; // adopted: its end comes as a record
      }
      if (this.watched.get(entry.jobId) !== entry || this.stopping.has(entry.jobId)) return;
      await this.report(entry.jobId, record);
      // Recorded: from here on its end is the workflow's.
      if (entry.failures > 0)
        this.log.warn('recorded the end of a job after retrying', { jobId: entry.jobId, attempts: entry.failures + 1 });
      this.unwatch(entry.jobId);
      this.reported.add(entry.jobId);
    } catch (error) {
      this.retryLater(entry, error);
    } finally {
      entry.checking = false;
      // In finally: the early returns above must not skip it.
      if (entry.again) void this.check(entry);
    }
  }

  /** The supervisor could not write the job's exit record and told us its end instead: report it now. */
  private told(jobId: string, record: ExitRecord): void {
    const entry = this.watched.get(jobId);
    if (!entry || entry.told) return;
    this.log.warn('the job supervisor could not record the end of a job; reporting what it told', { jobId });
    entry.told = record;
    entry.retryAt = undefined;
    clearTimeout(entry.retryTimer);
    void this.check(entry);
  }

  private async report(jobId: string, record: ExitRecord): Promise<void> {
    if (record.reason === 'lost') {
      this.log.warn('job lost', { jobId, reason: record.error });
      await this.options.onLost?.(jobId, record.error ?? 'its processes ended without an exit code', record.finishedAt);
      return;
    }
    this.log.info('job exited', { jobId, exitCode: record.exitCode, signal: record.signal, reason: record.reason });
    await this.options.onExit(jobId, record.exitCode, record);
  }

  /** The end could not be recorded (the store is down, say): again after a backoff; logged on the 1st, 2nd, 4th, 8th... failure. */
  private retryLater(entry: Watched, error: unknown): void {
    entry.failures += 1;
    const delay = Math.min(REPORT_RETRY_MAX_MS, REPORT_RETRY_MS * 2 ** (entry.failures - 1));
    if ((entry.failures & (entry.failures - 1)) === 0) {
      this.log.error('recording the end of a job failed; retrying', {
        jobId: entry.jobId,
        attempt: entry.failures,
        retryInMs: delay,
        error: String(error),
      });
    }
    if (this.watched.get(entry.jobId) !== entry) return;
    entry.retryAt = Date.now() + delay;
    clearTimeout(entry.retryTimer);
    entry.retryTimer = setTimeout(() => {
      entry.retryAt = undefined;
      void this.check(entry);
    }, delay).unref();
  }

  /** True while the supervisor that started this job runs: it records the job's end before it lets go of it. */
  private async supervised(dir: string): Promise<boolean> {
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

  private jobDir(jobId: string): string {
    if (!JOB_ID_PATTERN.test(jobId))
      throw new LocalComputeError(`job id ${JSON.stringify(jobId)} cannot name a directory`);
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
async function recordedPid(dir: string): Promise<number | undefined> {
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
    const child = spawn(command, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...baseEnv(), ...pick(process.env, DOCKER_ENV) },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', (error) => resolve({ code: -1, stdout, stderr: error.message }));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
