/** `npm run soak` arguments and the two run profiles. Pure: no I/O. */

export const USAGE = `usage: npm run soak [-- options]

  --quick         a reduced run (40 jobs, one 30 s outage) that ends in under three minutes
  --jobs=N        jobs to submit (default 300; 40 with --quick)
  --seed=N        seed of the random plan (job lengths, exit codes, timeouts, kill moments); default: random, printed
  --write-docs    regenerate docs/reliability.md from this run (a full run only)
  --keep          keep the scratch directory (config, data directory, plane log, marker file)`;

export interface SoakProfile {
  mode: 'quick' | 'full';
  jobs: number;
  /** Live timeouts are drawn from this range, in seconds (sent as fractional minutes). */
  timeoutS: [number, number];
  /** Share of jobs planned to sleep past their live timeout: they must end EXPIRED. */
  overrunShare: number;
  /** How far past its timeout an overrunning job plans to sleep, in seconds. */
  overrunS: [number, number];
  /** Share of the jobs that end in time with a non-zero exit code. */
  failShare: number;
  /** Share of jobs that ask for 2 GPUs (the others ask for 1). */
  twoGpuShare: number;
  /** Submitted jobs not yet terminal: the submitter waits while this many are active. */
  maxActive: number;
  /** Submits and kills are spread over this many seconds of the plane being up (outages stretch it). */
  windowS: number;
  /** Jobs arrive in bursts of this many, submitted back to back, so that queues form. */
  burst: [number, number];
  kills: { plane: number; dynamodb: number; supervisor: number };
  /** Downtime after a plane SIGKILL, in seconds; one outage instead lasts `longOutageS`. */
  shortOutageS: [number, number];
  /** Longer than any job's live timeout: running jobs must be stopped while the plane is down. */
  longOutageS: number;
  /** How long the plane gets to restart DynamoDB Local itself before the soak restarts the plane. */
  storeRecoveryS: number;
  /** The whole run stops waiting for jobs after this long. */
  deadlineS: number;
}

export interface SoakOptions {
  profile: SoakProfile;
  seed: number;
  writeDocs: boolean;
  keep: boolean;
}

/** The full run, whose table docs/reliability.md carries. */
const FULL: SoakProfile = {
  mode: 'full',
  jobs: 300,
  timeoutS: [1, 20],
  overrunShare: 0.25,
  overrunS: [1.5, 15],
  failShare: 0.25,
  twoGpuShare: 0.25,
  maxActive: 24,
  windowS: 420,
  burst: [1, 8],
  kills: { plane: 4, dynamodb: 2, supervisor: 2 },
  shortOutageS: [1, 8],
  longOutageS: 75,
  storeRecoveryS: 30,
  deadlineS: 1500,
};

/** `--quick`: the same shares of overruns, failures and 2-GPU jobs, fewer jobs and kills, shorter times. */
const QUICK: SoakProfile = {
  ...FULL,
  mode: 'quick',
  jobs: 40,
  timeoutS: [1, 8],
  overrunS: [1.5, 6],
  maxActive: 14,
  windowS: 55,
  burst: [1, 6],
  kills: { plane: 2, dynamodb: 1, supervisor: 1 },
  shortOutageS: [1, 4],
  longOutageS: 30,
  storeRecoveryS: 10,
  deadlineS: 140,
};

export function profileFor(mode: 'quick' | 'full', jobs?: number): SoakProfile {
  // A copy: a caller may change its profile without changing the next one.
  const profile = structuredClone(mode === 'quick' ? QUICK : FULL);
  return { ...profile, jobs: jobs ?? profile.jobs };
}

export function parseArgs(
  argv: readonly string[],
  randomSeed: () => number = () => Math.floor(Math.random() * 2 ** 31),
): SoakOptions | { help: true } | { error: string } {
  let quick = false;
  let jobs: number | undefined;
  let seed: number | undefined;
  let writeDocs = false;
  let keep = false;
  for (const arg of argv) {
    const eq = arg.indexOf('=');
    const [flag, value] = eq === -1 ? [arg, undefined] : [arg.slice(0, eq), arg.slice(eq + 1)];
    if (flag === '--help' || flag === '-h') return { help: true };
    if (value === undefined && flag === '--quick') quick = true;
    else if (value === undefined && flag === '--write-docs') writeDocs = true;
    else if (value === undefined && flag === '--keep') keep = true;
    else if (flag === '--jobs') {
      const n = Number(value);
      if (value === undefined || value === '' || !Number.isInteger(n) || n < 1 || n > 5000)
        return { error: `--jobs takes a whole number from 1 to 5000, got '${value ?? ''}'` };
      jobs = n;
    } else if (flag === '--seed') {
      const n = Number(value);
      if (value === undefined || value === '' || !Number.isInteger(n) || n < 0 || n >= 2 ** 31)
        return { error: `--seed takes a whole number from 0 to ${2 ** 31 - 1}, got '${value ?? ''}'` };
      seed = n;
    } else return { error: `unknown argument '${arg}'` };
  }
  if (writeDocs && quick)
    return { error: "--write-docs takes a full run: docs/reliability.md carries the full run's table (drop --quick)" };
  return { profile: profileFor(quick ? 'quick' : 'full', jobs), seed: seed ?? randomSeed(), writeDocs, keep };
}
