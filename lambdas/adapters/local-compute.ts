/**
 * The local compute driver: what `flare local` runs a job on. One supervisor
 * process per data directory (local-supervisor/supervisor.mjs, in its own session)
 * runs each job's argv (process mode) or `docker run` (docker mode) in the
 * job's own session and process group. What a job's directory holds, and how
 * the plane reads it: local-supervisor/jobs.ts.
 *
 * The supervisor and its jobs are detached, so jobs survive a crash of the
 * control plane as EC2 instances would; a restarted control plane connects to
 * the live supervisor, and `reattach` picks the jobs up again. A supervisor that
 * dies is replaced at once, and the new one adopts its jobs (they keep running).
 * An end that cannot be recorded (the store is down) is reported again, with
 * backoff, until it is.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { LaunchFailed } from '../core/errors.js';
import { isTerminal, totalGpus, type Job, type JobOutputsRecord, type Outcome } from '../core/job.js';
import type { Logger } from '../core/deps.js';
import type { Compute, ContainerSpec, Launched, ManagedInstance } from '../ports/compute.js';
import type { SecretStore } from '../ports/secrets.js';
import { arrayEnv, JOB_ID_PATTERN, scratchPath, type DockerRunOptions } from '../core/container-command.js';
import { DEFAULT_MAX_OUTPUT_BYTES } from '../core/outputs.js';
import type { ExecLimits, ExecResult, SessionInput, SessionPlan } from '../core/exec.js';
import { discoverGpus, dockerEngineAvailable } from './gpu-discovery.js';
import { execInLocalJob, localSession } from './local-exec.js';
import { containerJobIds, dockerCommand, removeContainer } from './local-docker.js';
import { DEFAULT_STOP_GRACE_MS } from './local-supervisor/job-run.mjs';
import { JobEnds } from './local-supervisor/job-ends.js';
import {
  groupAlive,
  readExit,
  recordedPid,
  stopProcesses,
  Supervision,
  writeAtomically,
  type ExitRecord,
  type RunnerSpec,
} from './local-supervisor/jobs.js';
import { baseEnv, LocalComputeError, SupervisorLink } from './local-supervisor/link.js';
import { localOutputDir, settleOutputs } from './local-outputs.js';

export { LocalComputeError } from './local-supervisor/link.js';
export type { ExitRecord, RunnerSpec } from './local-supervisor/jobs.js';

export type LocalDriver = 'docker' | 'process';

export interface LocalPool {
  readonly name: string;
  readonly gpus: number;
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
  readonly docker?: Partial<Omit<DockerRunOptions, 'scratchDir' | 'outputDir' | 'detach'>>;
  /** Bytes a job may keep in its output directory; files over it are removed when it ends (core/outputs.ts withinCap). @default DEFAULT_MAX_OUTPUT_BYTES (10 GiB) */
  readonly maxOutputBytes?: number;
  /** @default warnings and errors to stderr */
  readonly log?: Logger;
  /** Where a job's secret values are read at its start (ContainerSpec.secrets); absent: a job naming secrets fails to start. */
  readonly secrets?: Pick<SecretStore, 'values'>;
}

interface Held {
  pool: string;
  devices: number[];
}

export class LocalCompute implements Compute {
  private readonly dataDir: string;
  private readonly hostGpus: number;
  private readonly poolDevices = new Map<string, number[]>();
  private readonly held = new Map<string, Held>();
  private readonly stopping = new Set<string>();
  private readonly starting = new Map<string, Promise<void>>();
  /** Jobs this instance had the supervisor start: started, whatever became of the supervisor. */
  private readonly started = new Set<string>();
  private readonly supervisor: SupervisorLink;
  private readonly supervision: Supervision;
  private readonly ends: JobEnds;
  private readonly stopGraceMs: number;
  private readonly log: Logger;
  private readonly driver: Promise<LocalDriver>;

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
    this.log = options.log ?? stderrLogger;
    this.driver =
      options.driver === 'auto'
        ? dockerEngineAvailable().then((docker) => (docker ? 'docker' : 'process'))
        : Promise.resolve(options.driver);
    this.mapPools(options.pools, this.hostGpus);
    this.supervision = new Supervision(this.dataDir);
    this.supervisor = new SupervisorLink(this.dataDir, options.supervisorIdleMs ?? 60_000, this.log, {
      onDisconnect: () => {
        // It may have died: look at every job now rather than at the next poll.
        this.supervision.forget();
        this.ends.pollAll();
      },
      onEnded: (jobId, record) => this.ends.told(jobId, record as ExitRecord),
    });
    this.ends = new JobEnds({
      link: this.supervisor,
      supervision: this.supervision,
      log: this.log,
      pollMs: options.pollMs ?? 2000,
      jobDir: (jobId) => this.jobDir(jobId),
      stopping: (jobId) => this.stopping.has(jobId),
      onExit: options.onExit,
      ...(options.onLost ? { onLost: options.onLost } : {}),
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
      for (const jobId of await containerJobIds())
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
      this.ends.unwatch(jobId);
      await stopProcesses(jobId, dir, {
        link: this.supervisor,
        supervision: this.supervision,
        log: this.log,
        graceMs: this.stopGraceMs,
      });
      if ((await this.driverInUse()) === 'docker' && existsSync(join(dir, 'spec.json'))) await removeContainer(jobId);
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
    if (await this.supervision.supervised(dir)) return true;
    const recorded = await recordedPid(dir);
    return recorded !== undefined && (await groupAlive(recorded));
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
      if (['spec.json', 'pid', 'exit.json'].some((file) => existsSync(join(dir, file)))) this.ends.watch(job.id);
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
    if (!(await this.supervision.supervised(dir))) return;
    await this.supervisor.request({ op: 'expiry', jobId }, false).catch((error: unknown) => {
      // The file is moved; a later deadline is still seen when the old one comes.
      this.log.warn('cannot tell the job supervisor about a moved expiry', { jobId, error: String(error) });
    });
  }

  /** The job's end as its exit record says, before its report is recorded; our own stops are not the job's end. */
  async endedOn(job: Job): Promise<Outcome | undefined> {
    const record = this.ends.toldOf(job.id) ?? (await readExit(this.jobDir(job.id)));
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

  /** What the job kept of `<dataDir>/outputs/<project>/<id>/`, over-cap files removed; called after `stop`. */
  async keptOutputs(job: Job): Promise<JobOutputsRecord> {
    return settleOutputs(localOutputDir(this.dataDir, job), this.options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES);
  }

  /** Run a command in the running job's container or environment (local-exec.ts). */
  exec(job: Job, argv: readonly string[], limits: ExecLimits): Promise<ExecResult> {
    // A process job got its secrets at spawn only: its command gets them too (a container has them already).
    return execInLocalJob(this.jobDir(job.id), job.id, argv, limits, () =>
      this.secretEnv(job.id, job.project, job.secrets ?? {}),
    );
  }

  /** A shell or port forward into the running job, for the CLI on this machine (local-exec.ts). */
  session(job: Job, request: SessionInput): Promise<SessionPlan> {
    return localSession(this.jobDir(job.id), job.id, request);
  }

  /** Stop watching and let go of the supervisor; running jobs keep running. */
  close(): void {
    this.ends.close();
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
    if (this.started.has(job.id) || existsSync(join(dir, 'exit.json')) || (await this.supervision.supervised(dir))) {
      this.ends.watch(job.id);
      return;
    }
    if (existsSync(join(dir, 'pid'))) {
      // It ran, and its supervisor died: never run it again; a new supervisor adopts it or records how it ended.
      await this.supervisor.request({ op: 'adopt', jobId: job.id }, true);
      this.ends.watch(job.id);
      return;
    }

    const runnerSpec = await this.runnerSpec(job, dir, spec, devices);
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
    this.ends.watch(job.id);
  }

  private async runnerSpec(job: Job, dir: string, spec: ContainerSpec, devices: number[]): Promise<RunnerSpec> {
    const jobId = job.id;
    const outputDir = localOutputDir(this.dataDir, job);
    await mkdir(outputDir, { recursive: true, mode: 0o700 });
    const secretsPath = await this.writeSecrets(dir, spec);
    const common = {
      jobId,
      cwd: scratchPath(join(this.dataDir, 'scratch'), jobId),
      outputPath: join(dir, 'output.log'),
      pidPath: join(dir, 'pid'),
      exitPath: join(dir, 'exit.json'),
      statusPath: join(dir, 'exit-code'),
      expiresAt: spec.expiresAt,
      stopGraceMs: this.stopGraceMs,
      ...(secretsPath ? { secretsPath } : {}),
    };
    await mkdir(common.cwd, { recursive: true, mode: 0o700 });
    if ((await this.driverInUse()) === 'docker') {
      const docker = await dockerCommand(jobId, spec, {
        cwd: common.cwd,
        devices: this.hostGpus > 0 ? devices : undefined,
        scratchDir: join(this.dataDir, 'scratch'),
        outputDir,
        stopGraceMs: this.stopGraceMs,
        ...(this.options.docker ? { options: this.options.docker } : {}),
      });
      return { ...common, ...docker };
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
        FLARE_OUTPUT_DIR: outputDir,
        ...arrayEnv(spec),
      },
    };
  }

  /**
   * The job's secret values in a 0600 file of its 0700 directory, which the job runner reads into the job's
   * environment (docker's, which passes them on by name) and removes once the job is spawned.
   */
  private async writeSecrets(dir: string, spec: ContainerSpec): Promise<string | undefined> {
    const mapping = spec.secrets ?? {};
    if (Object.keys(mapping).length === 0) return undefined;
    const path = join(dir, 'secrets.json');
    await writeAtomically(path, JSON.stringify(await this.secretEnv(spec.jobId, spec.project, mapping)));
    return path;
  }

  /** env name -> value of the secrets a job names, read from its project's store now. */
  private async secretEnv(
    jobId: string,
    project: string | undefined,
    mapping: Record<string, string>,
  ): Promise<Record<string, string>> {
    if (Object.keys(mapping).length === 0) return {};
    if (!this.options.secrets || !project)
      throw new LocalComputeError(`job ${jobId} names secrets, but no secret store is wired to the local driver`);
    const values = await this.options.secrets.values(project, Object.values(mapping));
    const gone = Object.values(mapping).filter((name) => !values.has(name));
    if (gone.length > 0)
      throw new LocalComputeError(`project ${project} has no secret named ${gone.map((n) => `'${n}'`).join(', ')}`);
    return Object.fromEntries(Object.entries(mapping).map(([env, name]) => [env, values.get(name)!]));
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
