/**
 * The local compute driver: what `flare local` runs a job on. One supervisor
 * process per data directory (local-supervisor/supervisor.mjs, in its own session)
 * runs each job's argv (process mode) or `docker run` (docker mode) in the
 * job's own session and process group. What a job's directory holds, and how
 * the plane reads it: local-supervisor/jobs.ts; what it is given to run:
 * local-runner-spec.ts; which GPU slots a job holds: local-slots.ts.
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
import { isTerminal, totalGpus, type Job, type JobOutputsRecord, type Outcome } from '../core/job.js';
import type { Logger } from '../core/deps.js';
import type { Compute, ContainerSpec, Launched, ManagedInstance } from '../ports/compute.js';
import type { SecretStore } from '../ports/secrets.js';
import { JOB_ID_PATTERN, type DockerRunOptions } from '../core/container-command.js';
import { DEFAULT_MAX_OUTPUT_BYTES } from '../core/outputs.js';
import type { ExecLimits, ExecResult, SessionInput, SessionPlan } from '../core/exec.js';
import { discoverGpus, dockerEngineAvailable } from './gpu-discovery.js';
import { execInLocalJob, localSession } from './local-exec.js';
import { containerJobIds, removeContainer } from './local-docker.js';
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
import { LocalComputeError, SupervisorLink } from './local-supervisor/link.js';
import { localOutputDir, settleOutputs } from './local-outputs.js';
import { runnerSpec, secretEnv } from './local-runner-spec.js';
import { LocalSlots, type LocalPool } from './local-slots.js';

export { LocalComputeError } from './local-supervisor/link.js';
export type { ExitRecord, RunnerSpec } from './local-supervisor/jobs.js';

export type LocalDriver = 'docker' | 'process';

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

export class LocalCompute implements Compute {
  private readonly dataDir: string;
  private readonly hostGpus: number;
  private readonly slots: LocalSlots;
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
    this.slots = new LocalSlots(options.pools, this.hostGpus, this.log);
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

  /** GPUs `nvidia-smi -L` found on this machine (0: pools' gpus are plain slots). */
  get machineGpus(): number {
    return this.hostGpus;
  }

  /** Slots of `pool` that no job holds, lowest first. */
  freeDevices(pool: string): number[] {
    return this.slots.free(pool);
  }

  logPath(jobId: string): string {
    return join(this.jobDir(jobId), 'output.log');
  }

  async launch(job: Job): Promise<Launched> {
    this.jobDir(job.id); // validates the id
    const instanceIds = [instanceId(job.id)];
    const held = this.slots.devicesOf(job.id);
    if (held) return { instanceIds, devices: [...held] };
    if (job.devices) {
      this.slots.claim(job.id, job.pool, job.devices);
      return { instanceIds, devices: [...job.devices] };
    }
    // Every node of a job runs here: one machine holds all of its GPUs.
    const devices = this.slots.take(job.id, job.pool, totalGpus(job));
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
    for (const jobId of this.slots.holders()) {
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
      this.slots.release(jobId);
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
      if (job.devices && !this.slots.devicesOf(job.id)) this.slots.claim(job.id, job.pool, job.devices);
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
      secretEnv(this.options.secrets, job.id, job.project, job.secrets ?? {}),
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

  // --- starting ---

  private async startOnce(job: Job, spec: ContainerSpec): Promise<void> {
    const dir = this.jobDir(job.id);
    if (Number.isNaN(Date.parse(spec.expiresAt)))
      throw new LocalComputeError(`job ${job.id}: expiresAt ${spec.expiresAt} is not a date`);
    const devices = spec.devices ?? this.slots.devicesOf(job.id) ?? job.devices;
    if (!devices) throw new LocalComputeError(`job ${job.id} holds no GPU slots on this machine: launch it first`);
    if (!this.slots.devicesOf(job.id)) this.slots.claim(job.id, job.pool, devices);

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

    const driver = await this.driverInUse();
    const runner = await runnerSpec(job, dir, spec, devices, {
      ...this.options,
      dataDir: this.dataDir,
      driver,
      hostGpus: this.hostGpus,
      stopGraceMs: this.stopGraceMs,
    });
    const specPath = join(dir, 'spec.json');
    await writeAtomically(specPath, JSON.stringify(runner));
    // The supervisor claims the pid file before it spawns: a job is never run twice.
    const reply = await this.supervisor.request({ op: 'start', specPath }, true);
    this.started.add(job.id);
    this.log.info('job started', {
      jobId: job.id,
      pid: reply?.pid,
      state: reply?.state,
      devices,
      driver,
    });
    this.ends.watch(job.id);
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
