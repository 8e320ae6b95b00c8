/**
 * The API's objects as the CLI reads them: only the fields it shows, all
 * optional beyond the identity, since the CLI talks to whatever version of the
 * API is deployed. (Types, and the job states from contract/; the API's own
 * schemas live in lambdas/core.)
 */
import { JOB_STATES as STATES, QUEUED_STATES as QUEUED, TERMINAL_STATES as TERMINAL } from '../contract/vocabulary.js';

// As plain strings: a job's state is whatever the deployed API sends.
export const JOB_STATES: readonly string[] = STATES;
export const TERMINAL_STATES: readonly string[] = TERMINAL;
export const QUEUED_STATES: readonly string[] = QUEUED;

export interface JobView {
  id: string;
  name?: string;
  project?: string;
  owner?: string;
  template?: string;
  pool?: string;
  image?: string;
  command?: string[];
  env?: Record<string, string>;
  /** Env name -> the project secret it is taken from; never a value. */
  secrets?: Record<string, string>;
  gpus?: number;
  nodeCount?: number;
  liveTimeoutMinutes?: number;
  state: string;
  stateReason?: string;
  queuePosition?: number;
  /** While queued: the latest admission time Flare promises, or null (latestStartReason says why). */
  latestStartAt?: string | null;
  latestStartReason?: string;
  createdAt?: string;
  admittedAt?: string;
  startedAt?: string;
  expiresAt?: string;
  finishedAt?: string;
  instanceIds?: string[];
  exitCode?: number;
  /** A member of an array: the array and its 0-based index. */
  arrayId?: string;
  arrayIndex?: number;
  /** What it kept of $FLARE_OUTPUT_DIR, once it stopped. */
  outputs?: { count: number; bytes: number; truncated?: boolean; error?: string };
}

export interface LogsView {
  jobId: string;
  lines: Array<{ at?: string; message: string }>;
  nextToken?: string;
}

export interface TemplateView {
  id?: string;
  name: string;
  project?: string;
  public?: boolean;
  pool?: string;
  gpus?: number;
  nodeCount?: number;
  image?: string;
  imageVersion?: number;
  command?: string[];
  env?: Record<string, string>;
  volumeSizeGb?: number;
  maxLiveTimeoutMinutes?: number;
  defaultLiveTimeoutMinutes?: number;
  allowRoot?: boolean;
  createdAt?: string;
  updatedAt?: string;
  createdBy?: string;
  revision?: number;
}

export interface ImageVersionView {
  version?: number;
  reference: string;
  digest: string;
  addedAt?: string;
  addedBy?: string;
}

export interface ImageView {
  name: string;
  versions?: ImageVersionView[];
  createdAt?: string;
}

export interface QuotaView {
  project: string;
  resource: string;
  hardLimit: number | null;
  used?: number;
}

export interface PoolView {
  name: string;
  instanceType?: string;
  gpusPerInstance?: number;
  maxGpus?: number;
  usedGpus?: number;
  availableGpus?: number;
  waitingJobs?: number;
  backfill?: boolean;
}

export interface StatsFigures {
  totalJobs?: number;
  jobsByState?: Record<string, number>;
  gpuHours?: number;
  waitingSeconds?: { count?: number; p50?: number | null; p95?: number | null };
}

export interface StatsView extends StatsFigures {
  projects?: string[] | null;
  truncated?: boolean;
  byPool?: Record<string, StatsFigures>;
  byProject?: Record<string, StatsFigures>;
}

export function isTerminal(state: string): boolean {
  return TERMINAL_STATES.includes(state);
}
