/** What a soak run records: the input of the invariants (soak/lib/invariants.ts) and most of the result file. */
import type { KillKind, PlannedJob } from './plan.js';

/** A job as the API showed it at the end (times as ISO strings, as the API gives them). */
export interface JobView {
  id: string;
  state: string;
  stateReason?: string;
  exitCode?: number;
  createdAt: string;
  admittedAt?: string;
  startedAt?: string;
  expiresAt?: string;
  finishedAt?: string;
}

export interface SubmittedJob extends PlannedJob {
  /** Absent: no submit was ever accepted. */
  id?: string;
  /** Why the submit was given up, when it was. */
  submitError?: string;
  /** Requests made until one was accepted (the same Idempotency-Key each time). */
  attempts: number;
  /** The job at the end; absent: it could not be read (404 or no answer). */
  final?: JobView;
  /** The job the first time the soak read it terminal, and when. */
  firstTerminal?: JobView & { readAt: number };
}

/** A line a job wrote to the marker file (wall-clock ms). */
export interface Stamp {
  jobId: string;
  kind: 'start' | 'term' | 'end';
  at: number;
}

/** The jobs that had a live process at one instant. */
export interface ProcSample {
  at: number;
  jobIds: string[];
}

export interface PoolSample {
  at: number;
  name: string;
  usedGpus: number;
  maxGpus: number;
}

export interface QuotaSample {
  at: number;
  project: string;
  resource: string;
  used: number;
  hardLimit?: number;
}

/** One chat message the loopback webhook received. */
export interface Notice {
  at: number;
  jobId: string;
  state: string;
  previousState?: string;
}

/** Answers by route (`POST /v1/jobs`) and status (`202`, or `network` when no answer came). */
export type HttpTally = Record<string, Record<string, number>>;

export interface KillRecord {
  kind: KillKind;
  at: number;
  /** Plane kills: how long it was down, kill to listening again. */
  outageMs?: number;
  /** DynamoDB Local kills: kill to a store route answering 200 again (absent: it never did by itself). */
  recoveredMs?: number;
  detail?: string;
}

export interface SoakRecord {
  runId: string;
  startedAt: number;
  endedAt: number;
  pools: { name: string; gpus: number }[];
  quotas: { project: string; gpus: number }[];
  jobs: SubmittedJob[];
  stamps: Stamp[];
  procSamples: ProcSample[];
  poolSamples: PoolSample[];
  quotaSamples: QuotaSample[];
  /** Pools and quotas read once every job was terminal. */
  finalPools: PoolSample[];
  finalQuotas: QuotaSample[];
  notices: Notice[];
  http: HttpTally;
  kills: KillRecord[];
  /** When the plane could not admit anything: down (kill to listening again) or without its store (DynamoDB Local kill to a store route answering). */
  outages: { from: number; to: number; why: string }[];
  /** What the soak had to do itself, or saw the plane not do. */
  findings: string[];
  /** After the plane's stop: processes of this run's jobs and DynamoDB Local JVMs of its data directory still alive. */
  leftover: { jobPids: number[]; jvmPids: number[] };
}
