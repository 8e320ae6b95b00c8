/**
 * The soak's verdict, computed from what it recorded (soak/lib/record.ts).
 * Pure: the same record always gives the same rows, so test/unit/soak-*.test.ts
 * can feed it hand-made records. The rules are in soak/README.md.
 */
import { summarize, type Summary } from '../../bench/lib/stats.js';
import { TERMINAL_STATES } from '../../lambdas/core/job.js';
import { fifoViolations, stalledWaits, STALL_MS } from './queue-rules.js';
import type { JobView, ProcSample, SoakRecord, SubmittedJob } from './record.js';

/** A job whose planned end is this close to its expiry may end either way (its own start and the plane's clock differ a little). */
export const OUTCOME_BAND_MS = 1000;
/** A process seen alive this long past its job's expiresAt breaks "Expiry wins". */
export const EXPIRY_GRACE_MS = 1000;
const TERMINAL: ReadonlySet<string> = new Set(TERMINAL_STATES);
const MAX_DETAIL = 5;

export interface Row {
  key: string;
  label: string;
  count: number;
  /** true: holds (count 0); false: broken; null: a measurement, not an invariant. */
  ok: boolean | null;
  /** For measurements: the value shown instead of a count. */
  value?: string;
  /** A few examples, for the reader who must find out why. */
  detail: string[];
}

export interface Verdict {
  rows: Row[];
  ok: boolean;
  expiryOvershootMs: Summary;
}

const ms = (iso: string | undefined) => (iso === undefined ? undefined : Date.parse(iso));
const secs = (n: number) => `${(n / 1000).toFixed(1)} s`;
/** Milliseconds below 10 s, seconds above. */
const duration = (n: number) => (Math.abs(n) < 10_000 ? `${Math.round(n)} ms` : secs(n));

function invariant(key: string, label: string, problems: string[], count = problems.length): Row {
  return { key, label, count, ok: count === 0, detail: problems.slice(0, MAX_DETAIL) };
}

function measurement(key: string, label: string, value: string, detail: string[] = [], count = 0): Row {
  return { key, label, count, ok: null, value, detail };
}

/** Per job: when its process was first and last seen alive, and the first sample after that without it. */
export interface Sighting {
  firstSeen: number;
  lastSeen: number;
  goneAt?: number;
}

export function sightings(samples: readonly ProcSample[]): Map<string, Sighting> {
  const seen = new Map<string, Sighting>();
  const sorted = [...samples].sort((a, b) => a.at - b.at);
  for (const sample of sorted) {
    const here = new Set(sample.jobIds);
    for (const [id, s] of seen) if (!here.has(id) && s.goneAt === undefined) s.goneAt = sample.at;
    for (const id of here) {
      const s = seen.get(id);
      if (!s) seen.set(id, { firstSeen: sample.at, lastSeen: sample.at });
      else {
        s.lastSeen = sample.at;
        s.goneAt = undefined;
      }
    }
  }
  return seen;
}

export type Outcome = 'SUCCEEDED' | 'FAILED' | 'EXPIRED';

/**
 * The states a job may end in, from when its process ended (its own `end`
 * line; without one, its start plus its planned sleep) and when it expired.
 */
export function allowedOutcomes(
  job: Pick<SubmittedJob, 'sleepS' | 'exitCode'>,
  startAt: number,
  expiresAt: number,
  endAt?: number,
): Outcome[] {
  const byExit: Outcome = job.exitCode === 0 ? 'SUCCEEDED' : 'FAILED';
  const end = endAt ?? startAt + job.sleepS * 1000;
  if (end < expiresAt - OUTCOME_BAND_MS) return [byExit];
  if (end > expiresAt + OUTCOME_BAND_MS) return ['EXPIRED'];
  return [byExit, 'EXPIRED'];
}

interface JobFacts {
  job: SubmittedJob;
  final: JobView;
  starts: number[];
  term?: number;
  end?: number;
  expiresAt?: number;
}

function facts(record: SoakRecord): JobFacts[] {
  const stamps = new Map<string, { starts: number[]; term?: number; end?: number }>();
  for (const s of record.stamps) {
    let entry = stamps.get(s.jobId);
    if (!entry) stamps.set(s.jobId, (entry = { starts: [] }));
    if (s.kind === 'start') entry.starts.push(s.at);
    else if (s.kind === 'term') entry.term ??= s.at;
    else entry.end ??= s.at;
  }
  return record.jobs.flatMap((job) => {
    if (!job.id || !job.final) return [];
    const own = stamps.get(job.id) ?? { starts: [] };
    const starts = [...own.starts].sort((a, b) => a - b);
    const expiresAt = ms(job.final.expiresAt) ?? (ms(job.final.startedAt) ?? starts[0]) + job.timeoutS * 1000;
    return [
      {
        job,
        final: job.final,
        starts,
        term: own.term,
        end: own.end,
        expiresAt: Number.isFinite(expiresAt) ? expiresAt : undefined,
      },
    ];
  });
}

function outcomeMismatches(all: JobFacts[]): string[] {
  const problems: string[] = [];
  for (const f of all) {
    const { job, final } = f;
    if (!TERMINAL.has(final.state)) continue; // counted as unfinished
    const planned = `${job.name} (${job.id}): sleep ${job.sleepS} s, exit ${job.exitCode}, timeout ${job.timeoutS} s`;
    const got = `${final.state}${final.exitCode !== undefined ? ` (exit ${final.exitCode})` : ''}${final.stateReason ? `: ${final.stateReason}` : ''}`;
    if (f.starts.length === 0 || f.expiresAt === undefined) {
      problems.push(`${planned}: never started, ended ${got}`);
      continue;
    }
    const allowed = allowedOutcomes(job, f.starts[0], f.expiresAt, f.end);
    const exitMatches = final.state === 'EXPIRED' || final.exitCode === job.exitCode;
    if (allowed.includes(final.state as Outcome) && exitMatches) continue;
    const when =
      f.end === undefined
        ? ''
        : `, its process exited ${duration(Math.abs(f.expiresAt - f.end))} ${f.end < f.expiresAt ? 'before' : 'after'} expiresAt`;
    problems.push(
      `${planned}: expected ${allowed.join(' or ')}${allowed.includes('EXPIRED') ? '' : ` (exit ${job.exitCode})`}, got ${got}${when}`,
    );
  }
  return problems;
}

/** The latest instant a job's process is known to have been alive. */
function lastAlive(f: JobFacts, seen: Sighting | undefined): number | undefined {
  const known = [seen?.lastSeen, f.term, f.end].filter((x): x is number => x !== undefined);
  return known.length ? Math.max(...known) : undefined;
}

/** When a job's process ended: its own last line, else the first sample without it. */
function processEnd(f: JobFacts, seen: Sighting | undefined): number | undefined {
  return f.term ?? f.end ?? seen?.goneAt ?? seen?.lastSeen;
}

function overshoot(record: SoakRecord, byId: Map<string, SubmittedJob>): string[] {
  const problems: string[] = [];
  const quota = new Map(record.quotas.map((q) => [q.project, q.gpus]));
  for (const s of record.poolSamples)
    if (s.usedGpus > s.maxGpus)
      problems.push(`API: pool ${s.name} used ${s.usedGpus} of ${s.maxGpus} at ${new Date(s.at).toISOString()}`);
  for (const s of record.quotaSamples) {
    if (s.resource === 'gpus' && s.hardLimit !== undefined && s.used > s.hardLimit)
      problems.push(
        `API: project ${s.project} held ${s.used} of ${s.hardLimit} GPUs at ${new Date(s.at).toISOString()}`,
      );
  }
  const cap = new Map(record.pools.map((p) => [p.name, p.gpus]));
  for (const sample of record.procSamples) {
    const byPool = new Map<string, number>();
    const byProject = new Map<string, number>();
    for (const id of sample.jobIds) {
      const job = byId.get(id);
      if (!job) continue;
      byPool.set(job.pool, (byPool.get(job.pool) ?? 0) + job.gpus);
      byProject.set(job.project, (byProject.get(job.project) ?? 0) + job.gpus);
    }
    const at = new Date(sample.at).toISOString();
    for (const [pool, used] of byPool)
      if (used > (cap.get(pool) ?? Infinity))
        problems.push(`processes: pool ${pool} ran jobs of ${used} GPUs (cap ${cap.get(pool)}) at ${at}`);
    for (const [project, used] of byProject)
      if (used > (quota.get(project) ?? Infinity))
        problems.push(`processes: project ${project} ran jobs of ${used} GPUs (quota ${quota.get(project)}) at ${at}`);
  }
  return problems;
}

function notificationProblems(record: SoakRecord, all: JobFacts[]): { missing: string[]; duplicate: string[] } {
  const byJob = new Map<string, string[]>();
  for (const n of record.notices) {
    if (!TERMINAL.has(n.state)) continue;
    byJob.set(n.jobId, [...(byJob.get(n.jobId) ?? []), n.state]);
  }
  const missing: string[] = [];
  const duplicate: string[] = [];
  for (const f of all) {
    if (!TERMINAL.has(f.final.state)) continue;
    const states = byJob.get(f.final.id) ?? [];
    if (!states.includes(f.final.state))
      missing.push(`${f.job.name} (${f.final.id}) ended ${f.final.state}, notified: ${states.join(', ') || 'nothing'}`);
    if (states.length > 1)
      duplicate.push(`${f.job.name} (${f.final.id}) notified ${states.length} times: ${states.join(', ')}`);
  }
  const known = new Set(all.map((f) => f.final.id));
  for (const [id, states] of byJob)
    if (!known.has(id)) duplicate.push(`a notification for ${id}, not a job of this run: ${states.join(', ')}`);
  return { missing, duplicate };
}

export function computeVerdict(record: SoakRecord): Verdict {
  const all = facts(record);
  const byId = new Map(record.jobs.filter((j) => j.id).map((j) => [j.id!, j]));
  const seen = sightings(record.procSamples);

  const twice = all
    .filter((f) => f.starts.length > 1)
    .map((f) => `${f.job.name} (${f.final.id}) started ${f.starts.length} times`);

  const pastExpiry: string[] = [];
  const overshootMs: number[] = [];
  for (const f of all) {
    if (f.expiresAt === undefined) continue;
    const alive = lastAlive(f, seen.get(f.final.id));
    if (alive !== undefined && alive > f.expiresAt + EXPIRY_GRACE_MS)
      pastExpiry.push(
        `${f.job.name} (${f.final.id}, ${f.final.state}) alive ${duration(alive - f.expiresAt)} past expiresAt`,
      );
    const end = processEnd(f, seen.get(f.final.id));
    const plannedEnd = f.starts[0] === undefined ? undefined : f.starts[0] + f.job.sleepS * 1000;
    if (end !== undefined && plannedEnd !== undefined && plannedEnd > f.expiresAt) overshootMs.push(end - f.expiresAt);
  }

  const leaked: string[] = [];
  let leakedCount = 0;
  for (const p of record.finalPools)
    if (p.usedGpus !== 0) (leakedCount += p.usedGpus), leaked.push(`pool ${p.name} usedGpus ${p.usedGpus}`);
  for (const q of record.finalQuotas) {
    if (q.resource === 'gpuHours' || q.used === 0) continue;
    leakedCount += q.used;
    leaked.push(`project ${q.project} ${q.resource} used ${q.used}`);
  }

  const quotas = new Map(record.quotas.map((q) => [q.project, q.gpus]));
  const notices = notificationProblems(record, all);

  const fiveHundreds: string[] = [];
  let fiveHundredCount = 0;
  let unavailable = 0;
  let noAnswer = 0;
  let answers = 0;
  for (const [route, statuses] of Object.entries(record.http)) {
    for (const [status, n] of Object.entries(statuses)) {
      if (status === 'network') noAnswer += n;
      else answers += n;
      if (status === '503') unavailable += n;
      else if (Number(status) >= 500) (fiveHundredCount += n), fiveHundreds.push(`${route} → ${status}: ${n}`);
    }
  }

  const leftover = [
    ...record.leftover.jobPids.map((p) => `job process ${p}`),
    ...record.leftover.jvmPids.map((p) => `DynamoDB Local JVM ${p}`),
  ];

  const unfinished = record.jobs.flatMap((job) => {
    if (!job.id)
      return [`${job.name}: never accepted (${job.attempts} attempts${job.submitError ? `, ${job.submitError}` : ''})`];
    if (!job.final) return [`${job.name} (${job.id}): accepted, then not found`];
    return TERMINAL.has(job.final.state) ? [] : [`${job.name} (${job.id}): still ${job.final.state}`];
  });

  const rewritten = all.flatMap(({ job, final }) => {
    const first = job.firstTerminal;
    if (
      !first ||
      (first.state === final.state && first.finishedAt === final.finishedAt && first.exitCode === final.exitCode)
    )
      return [];
    return [
      `${job.name} (${final.id}) read ${first.state} (finished ${first.finishedAt}) at ${new Date(first.readAt).toISOString()}, at the end ${final.state} (finished ${final.finishedAt})`,
    ];
  });

  const states = new Map<string, number>();
  for (const f of all) states.set(f.final.state, (states.get(f.final.state) ?? 0) + 1);
  const completed = all.filter((f) => TERMINAL.has(f.final.state)).length;
  const expiry = summarize(overshootMs);
  const kills = (kind: string) => record.kills.filter((k) => k.kind === kind);
  const longest = Math.max(0, ...kills('plane').map((k) => k.outageMs ?? 0));
  const recovered = kills('dynamodb').map((k) => (k.recoveredMs === undefined ? 'not by itself' : secs(k.recoveredMs)));

  const rows: Row[] = [
    invariant('outcomes', 'outcome mismatches', outcomeMismatches(all)),
    invariant('runTwice', 'jobs run twice', twice),
    invariant('pastExpiry', `processes alive past expiresAt + ${EXPIRY_GRACE_MS / 1000} s`, pastExpiry),
    invariant('overshoot', 'GPU overshoot (samples over a cap or quota)', overshoot(record, byId)),
    invariant('leaked', 'leaked GPUs and quota units at the end', leaked, leakedCount),
    invariant('fifo', 'FIFO violations', fifoViolations(record.jobs, quotas)),
    invariant(
      'stalled',
      `stalled waits (due for over ${STALL_MS / 1000} s, plane up)`,
      stalledWaits(record.jobs, record.pools, quotas, record.outages),
    ),
    invariant('missingNotifications', 'missing notifications', notices.missing),
    invariant('duplicateNotifications', 'duplicate notifications', notices.duplicate),
    invariant('http5xx', '5xx answers other than 503', fiveHundreds, fiveHundredCount),
    invariant('leftover', 'leftover processes after the stop', leftover),
    invariant('unfinished', 'jobs lost or not ended', unfinished),
    invariant('rewritten', 'terminal records changed after they were read', rewritten),
    measurement(
      'expiryOvershoot',
      'expiry overshoot (process end - expiresAt)',
      expiry.n
        ? `p50 ${duration(expiry.p50)}, p99 ${duration(expiry.p99)}, max ${duration(expiry.max)} (${expiry.n} jobs)`
        : 'no job ran into its expiry',
    ),
    measurement('completed', 'jobs completed', `${completed} of ${record.jobs.length}`, [
      [...states].map(([s, n]) => `${s} ${n}`).join(', '),
    ]),
    measurement('wall', 'wall time', secs(record.endedAt - record.startedAt)),
    measurement(
      'kills',
      'kills (SIGKILL)',
      `plane ${kills('plane').length} (longest outage ${secs(longest)}), DynamoDB Local ${kills('dynamodb').length}, supervisor ${kills('supervisor').length}`,
      recovered.length ? [`store back after a DynamoDB Local kill: ${recovered.join(', ')}`] : [],
    ),
    measurement('http', 'HTTP answers', `${answers} (503: ${unavailable}; no answer: ${noAnswer})`),
    measurement(
      'findings',
      'findings (the soak had to step in)',
      String(record.findings.length),
      record.findings.slice(0, MAX_DETAIL),
      record.findings.length,
    ),
  ];
  return { rows, ok: rows.every((r) => r.ok !== false), expiryOvershootMs: expiry };
}
