/** The shape of one run's results: what bench/results/<timestamp>.json holds and docs/benchmarks.md is rendered from. */
import type { CostBreakdown, PriceTable, UsagePerJob } from './cost.js';
import type { Summary } from './stats.js';
import type { StoreCeiling } from './store-ceiling.js';

/** Figure 1 (and, with 4 clients, figure 2): N submits, then every job through its lifecycle. */
export interface SubmitRun {
  clients: number;
  n: number;
  accepted: number;
  errors: number;
  firstError?: string;
  /** Accepted submits per second, first request sent to last answer received. */
  acceptedPerS: number;
  /** Client-side time of one submit (Flare: HTTP POST; Slurm: the sbatch process). */
  latencyMs: Summary;
  /** Jobs that reached a terminal state (Slurm: left squeue). */
  completed: number;
  /** Completed jobs per second, first submit to last completion: the median of `completedPerSRuns` when the run was repeated. */
  completedPerS: number;
  /** Figure 2 with 4 clients is run more than once (full mode: 3 times per side): each run's completed/s, in order. */
  completedPerSRuns?: number[];
  firstSubmitToAllDoneS: number;
  /** Terminal states and how many jobs ended in each (Flare only). */
  outcomes?: Record<string, number>;
  /** CPU time per job, submit to the end (Flare only): the plane's main thread, DynamoDB Local, the job processes. */
  cpuMsPerJob?: { plane: number; dynamodb: number; jobs: number };
  /** DynamoDB calls per job, submit to the end (Flare only): writes (a transaction counts once) and reads. */
  dynamoCallsPerJob?: { writes: number; reads: number };
}

/** Figure 3, first half: one job at a time on an idle plane. */
export interface IdleRun {
  n: number;
  /**
   * What a researcher waits for the admission (Flare): POST sent -> its answer, when the answer says
   * LAUNCHING (admitted in the submit's own write); POST sent -> the stored admittedAt, read over the
   * API, for a job answered WAITING.
   */
  submitToAdmittedMs?: Summary;
  /** Of the `n` jobs, how many the submit answered WAITING (Flare). */
  answeredWaiting?: number;
  /** Stored admittedAt -> the LAUNCHING event reaches the bus (Flare): the write, then the jobs-table stream's poll. */
  admittedToEventMs?: Summary;
  /** Submit sent -> the job's own first instruction (a timestamp it writes). */
  submitToStartMs: Summary;
  /** Submit sent -> the RUNNING event reaches the bus (Flare; through the jobs-table stream). */
  submitToRunningEventMs?: Summary;
  /** The jobs run first on a freshly started plane, measured apart (Flare). */
  warmup?: { n: number; submitToAdmittedMs?: Summary; submitToStartMs: Summary };
}

/** Figure 3, second half, and figure 4: a slot is freed while `depth` jobs wait. */
export interface DrainRun {
  /** Waiting jobs when the first slot was freed. */
  depth: number;
  n: number;
  /** GPUs released (the cancelled job's stored finishedAt, set in the release transaction) -> the next job's stored admittedAt (Flare). */
  releasedToAdmittedMs?: Summary;
  /** The cancelled job's stored finishedAt -> the next job's own first instruction (Flare; the "drain latency"). */
  releasedToStartMs?: Summary;
  /** Cancel requested -> the next job's own first instruction (both: Slurm shows no release instant). */
  cancelToStartMs: Summary;
  /** How the queue was filled, and how fast (jobs per second). */
  fill?: { how: string; jobs: number; perS: number };
  /** Flare: one submit into a queue this deep (answered WAITING), sent -> answer and sent -> the WAITING event reaches the bus. */
  submitAtDepth?: { submitMs: Summary; submitToWaitingEventMs: Summary };
}

/** Figure 5: how late after its deadline a job is stopped. */
export interface ExpiryRun {
  n: number;
  /** The limit asked for, in seconds (Flare: fractional live timeout; Slurm: --time, whole minutes). */
  limitSeconds: number;
  /** Deadline -> the job receives SIGTERM (it records the instant itself). */
  termLateMs: Summary;
  /** Deadline -> GPUs released and the job EXPIRED: stored expiresAt -> stored finishedAt (Flare). */
  releasedLateMs?: Summary;
  /** Deadline -> the job is gone from the queue (Slurm, polled every 100 ms). */
  goneLateMs?: Summary;
}

export interface TransitionsJob {
  runSeconds: number;
  jobId: string;
  state: string;
  transitions: number;
  executions: number;
  states: string[];
}

/** Figure 6, first half. */
export interface TransitionsFigure {
  jobs: TransitionsJob[];
  equal: boolean;
  /** Per job over the figure-2 batch (most of those jobs waited; a job has one execution, waited or not). */
  batch?: Summary;
}

/** Figure 6, second half: one scenario's per-job usage and what it costs on AWS. */
export interface CostFigure {
  scenario: string;
  jobs: number;
  usage: UsagePerJob;
  breakdown: CostBreakdown;
  /** DynamoDB round trips per job, by operation and table (where the control plane's time goes). */
  dynamoCalls: { operation: string; perJob: number; failedPerJob: number; meanMs: number }[];
  /** Workflow task (tasks Lambda) invocations per job, by task, with their mean duration. */
  tasks: { task: string; perJob: number; meanMs: number }[];
}

/** Figure 7. */
export interface BundleFigure {
  name: string;
  entry: string;
  bytes: number;
  gzipBytes: number;
  /** A fresh `node` importing the bundle: import time inside the process. */
  initMs: Summary;
  /** The same, whole process (node start-up included). */
  processMs: Summary;
}

export interface SideResults {
  submit1?: SubmitRun;
  submit4?: SubmitRun;
  idle?: IdleRun;
  drain?: DrainRun[];
  expiry?: ExpiryRun;
}

export interface FlareResults extends SideResults {
  /** DynamoDB Local's own write and read rates on this machine (bench/lib/store-ceiling.ts). */
  storeCeiling?: StoreCeiling;
  transitions?: TransitionsFigure;
  cost?: CostFigure[];
  prices?: PriceTable;
  /** How the plane was run (driver, slots, storage), for the record. */
  setup: string[];
  /** Figures that could not be measured, and why. */
  failures?: string[];
}

export interface SlurmResults extends SideResults {
  status: 'ok' | 'skipped' | 'failed';
  /** Why it was skipped or failed. */
  reason?: string;
  version?: string;
  setup: string[];
}

export interface Comparison {
  figure: string;
  metric: string;
  unit: string;
  flare: number;
  slurm: number;
  /** flare / slurm. */
  ratio: number;
  better: 'higher' | 'lower';
}

export interface TargetCheck {
  figure: string;
  target: string;
  measured: string;
  /** null: could not be decided in this run (figure not run, or no peer). */
  met: boolean | null;
}

export interface Machine {
  cpu: string;
  cores: number;
  memoryGb: number;
  os: string;
  kernel: string;
  node: string;
  /** 1-minute load average before and after the run: other work on the machine shows here. */
  loadStart: number;
  loadEnd: number;
}

export interface BenchResults {
  schema: 1;
  mode: 'full' | 'quick';
  startedAt: string;
  finishedAt: string;
  durationS: number;
  command: string;
  git: { commit: string; dirty: boolean };
  machine: Machine;
  flare: FlareResults;
  bundles?: BundleFigure[];
  slurm?: SlurmResults;
  comparisons: Comparison[];
  targets: TargetCheck[];
  notes: string[];
}
