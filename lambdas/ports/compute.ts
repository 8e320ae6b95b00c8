import type { ExecLimits, ExecResult, SessionInput, SessionPlan } from '../core/exec.js';
import type { Job, JobOutputsRecord, Outcome } from '../core/job.js';

/** What a job runs as, resolved from its template and the image catalog. */
export interface ContainerSpec {
  jobId: string;
  /** `reference@digest`: what docker pulls. */
  image: string;
  command: string[];
  env: Record<string, string>;
  gpus: number;
  /** The GPU indices the container is given (core/accounting.ts nodeDevices): its first `gpus` on an instance, the host slots locally. */
  devices?: number[];
  expiresAt: string;
  /** The template allows the image's own user (root); otherwise the container runs as an unprivileged uid. */
  allowRoot?: boolean;
  /**
   * Env names taken from `project`'s secrets (env name -> secret name). Only names travel here: the values
   * are read where the job starts (the local driver; on AWS the instance itself) and never put on a command line.
   */
  secrets?: Record<string, string>;
  /** The job's project: whose secrets `secrets` names. */
  project?: string;
  /** On AWS: where each instance fetches its copy of the values (`<secretIdPrefix><its instance id>`), set by the adapter. */
  secretSource?: { secretIdPrefix: string; region: string };
  /** A member of an array: FLARE_ARRAY_ID, FLARE_ARRAY_INDEX and FLARE_ARRAY_SIZE in its environment, set by Flare like FLARE_JOB_ID. */
  array?: { id: string; index: number; size: number };
}

/** An instance (or local runner) that carries Flare's `managed-by` mark. */
export interface ManagedInstance {
  instanceId: string;
  /** The `flare:job` tag; undefined when the tag is missing. */
  jobId?: string;
  /**
   * EC2 state name (`pending`, `running`, ...). A local runner is `running` while its process lives, `pending`
   * before its start and `stopped` once its process ended: the reconciler reads the latter as lost (core/completion.ts).
   */
  state: string;
  launchedAt?: string;
}

export interface Launched {
  instanceIds: string[];
  /** Local driver: GPU slots assigned on this host. */
  devices?: number[];
}

/**
 * Where a job runs: EC2 instances started by SSM on AWS, processes or docker
 * containers on this machine. Every method may be called twice with the same
 * result (the workflow retries; recovery re-drives).
 */
export interface Compute {
  launch(job: Job): Promise<Launched>;
  /** True once the job's instances can take a command. */
  isReady(job: Job): Promise<boolean>;
  start(job: Job, spec: ContainerSpec): Promise<void>;
  /**
   * Move the deadline the job's instances enforce on their own (the dead-man switch):
   * its live timeout was changed while it runs. Sending the same deadline twice is harmless.
   */
  updateExpiry(job: Job, expiresAt: string): Promise<void>;
  /** Stop the container and give the instances back. */
  stop(job: Job): Promise<void>;
  /** Every live instance Flare manages, whatever its job (the reconciler's view). */
  listManaged(): Promise<ManagedInstance[]>;
  /** Terminate instances by id (orphans); ids that are already gone are ignored. */
  terminate(instanceIds: readonly string[]): Promise<void>;
  /**
   * How the job ended, when its instances already know it and its report may still be on its way (the
   * local driver's exit record, found after a crash or while the store was down): Stop decides from it
   * rather than from the clock. Undefined while it runs, and where only the report tells (AWS).
   */
  endedOn?(job: Job): Promise<Outcome | undefined>;
  /** Run `argv` inside the running job (its container, env, devices), within `limits` (core/exec.ts). */
  exec?(job: Job, argv: readonly string[], limits: ExecLimits): Promise<ExecResult>;
  /** How the CLI opens a shell or a port forward into the running job (core/exec.ts SessionPlan). */
  session?(job: Job, request: SessionInput): Promise<SessionPlan>;
  /**
   * Before `stop`, on a job that started: begin keeping its output directory where it runs (on AWS the
   * instance uploads it), so that a cancel or an expiry keeps it too. `until` bounds the wait for it
   * (ISO 8601); undefined when there is nothing to wait for (kept as it runs locally, or the compute is gone).
   */
  collectOutputs?(job: Job): Promise<{ until: string } | undefined>;
  /** True once what `collectOutputs` began has ended, however it ended (`keptOutputs` says how). */
  outputsCollected?(job: Job): Promise<boolean>;
  /**
   * After `stop`: what the job kept of its output directory, the per-job cap applied (core/outputs.ts
   * withinCap). Undefined when this compute keeps no outputs for it.
   */
  keptOutputs?(job: Job): Promise<JobOutputsRecord | undefined>;
}
