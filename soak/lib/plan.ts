/**
 * What the soak will do, drawn from one seeded generator so that `--seed`
 * replays the same plan: the plane's pools, projects and quotas, every job's
 * length, exit code and live timeout, and the order and length of the kills.
 * Pure: no I/O, no clock.
 */
import type { SoakProfile } from './options.js';
import type { Stamp } from './record.js';

export const POOLS = [
  { name: 'alpha', gpus: 4 },
  { name: 'beta', gpus: 3 },
] as const;

/** Every project has a `gpus` quota: their sum (7) equals the pools' GPUs, so both limits bind at times. */
export const PROJECTS = [
  { name: 'vision', gpus: 3 },
  { name: 'audio', gpus: 2 },
  { name: 'nlp', gpus: 2 },
] as const;

/** One template per project and pool: `<project>-<pool>`. */
export function templateName(project: string, pool: string): string {
  return `${project}-${pool}`;
}

export interface PlannedJob {
  index: number;
  name: string;
  project: string;
  pool: string;
  gpus: number;
  /** The live timeout, in seconds. */
  timeoutS: number;
  /** How long the job's command sleeps before it exits. */
  sleepS: number;
  exitCode: number;
  /** When to submit it, in seconds of the plane being up since the run began. */
  submitAtS: number;
}

export type KillKind = 'plane' | 'dynamodb' | 'supervisor';

export interface PlannedKill {
  kind: KillKind;
  /** When, in seconds of the plane being up since the run began. */
  atS: number;
  /** Plane kills only: how long the plane stays down. */
  outageS?: number;
}

export { rng } from '../../test/support/random.js';

const between = (random: () => number, [lo, hi]: [number, number]) => lo + (hi - lo) * random();
const tenths = (x: number) => Math.round(x * 10) / 10;
const pick = <T>(random: () => number, items: readonly T[]): T => items[Math.floor(random() * items.length)];

/** Non-zero exit codes that cannot be mistaken for a signal (128+n) or a runner failure (125-127). */
const FAIL_CODES = [1, 2, 3, 7, 42, 99];

export function planJobs(profile: SoakProfile, random: () => number): PlannedJob[] {
  const jobs: PlannedJob[] = [];
  // Bursts evenly spread over the window: each one's jobs are submitted back to back.
  const meanBurst = (profile.burst[0] + profile.burst[1]) / 2;
  const bursts = Math.max(1, Math.round(profile.jobs / meanBurst));
  let at = 0;
  while (jobs.length < profile.jobs) {
    const size = Math.round(between(random, profile.burst));
    for (let k = 0; k < size && jobs.length < profile.jobs; k++) {
      const index = jobs.length;
      const project = pick(random, PROJECTS).name;
      const pool = pick(random, POOLS).name;
      const gpus = random() < profile.twoGpuShare ? 2 : 1;
      const timeoutS = tenths(between(random, profile.timeoutS));
      const overrun = random() < profile.overrunShare;
      const sleepS = overrun
        ? tenths(timeoutS + between(random, profile.overrunS))
        : tenths(between(random, [0.2, Math.max(0.3, timeoutS - 1.5)]));
      const exitCode = !overrun && random() < profile.failShare ? pick(random, FAIL_CODES) : 0;
      jobs.push({
        index,
        name: `soak-${index}`,
        project,
        pool,
        gpus,
        timeoutS,
        sleepS,
        exitCode,
        submitAtS: tenths(Math.min(at, profile.windowS)),
      });
    }
    at += between(random, [0.5, 1.5]) * (profile.windowS / bursts);
  }
  return jobs;
}

/**
 * The kills in a random order, each at a random moment of its own slice of
 * the window (from 10% to 90% of it), so that they fall while jobs run;
 * exactly one plane kill has the long outage.
 */
export function planKills(profile: SoakProfile, random: () => number): PlannedKill[] {
  const kinds: KillKind[] = [
    ...Array<KillKind>(profile.kills.plane).fill('plane'),
    ...Array<KillKind>(profile.kills.dynamodb).fill('dynamodb'),
    ...Array<KillKind>(profile.kills.supervisor).fill('supervisor'),
  ];
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [kinds[i], kinds[j]] = [kinds[j], kinds[i]];
  }
  const planeKills = kinds.filter((k) => k === 'plane').length;
  const longOne = Math.floor(random() * planeKills);
  let plane = 0;
  return kinds.map((kind, i) => {
    const atS = tenths(profile.windowS * (0.1 + (0.8 * (i + between(random, [0.15, 0.85]))) / kinds.length));
    if (kind !== 'plane') return { kind, atS };
    const outageS = plane++ === longOne ? profile.longOutageS : tenths(between(random, profile.shortOutageS));
    return { kind, atS, outageS };
  });
}

/**
 * The job's argv: no value is interpolated into the script, they are its
 * positional parameters ($0 sleep seconds, $1 exit code, $2 marker file). It
 * appends `<id> start|term|end <ns>` lines to the marker file: start first,
 * term when SIGTERM reaches it, end right before a normal exit.
 */
export const JOB_SCRIPT =
  'm="$2"; echo "$FLARE_JOB_ID start $(date +%s%N)" >> "$m"; ' +
  'trap \'echo "$FLARE_JOB_ID term $(date +%s%N)" >> "$m"; exit 143\' TERM; ' +
  'sleep "$0" & wait $!; echo "$FLARE_JOB_ID end $(date +%s%N)" >> "$m"; exit "$1"';

export function jobArgv(job: Pick<PlannedJob, 'sleepS' | 'exitCode'>, markerPath: string): string[] {
  return ['/bin/sh', '-c', JOB_SCRIPT, String(job.sleepS), String(job.exitCode), markerPath];
}

/** The marker file's `<jobId> start|term|end <ns since epoch>` lines, in ms; anything else is skipped. */
export function parseStamps(text: string): Stamp[] {
  return text.split('\n').flatMap((line) => {
    const [jobId, kind, ns] = line.trim().split(/\s+/);
    if (!jobId || !/^\d+$/.test(ns ?? '') || (kind !== 'start' && kind !== 'term' && kind !== 'end')) return [];
    return [{ jobId, kind, at: Number(BigInt(ns) / 1000n) / 1000 }];
  });
}
