/** Flare/Slurm ratios and the issue's targets, decided from the results alone (pure). */
import type { BenchResults, Comparison, FlareResults, SlurmResults, TargetCheck } from './results.js';
import { ratio } from './stats.js';

type Metric = (side: FlareResults | SlurmResults) => number | undefined;

/** Rates (`/s`) are better higher, times (`ms`) lower. */
const COMPARED: { figure: string; metric: string; unit: '/s' | 'ms'; pick: Metric }[] = [
  { figure: '1', metric: 'submits accepted, 1 client', unit: '/s', pick: (s) => s.submit1?.acceptedPerS },
  { figure: '1', metric: 'submits accepted, 4 clients', unit: '/s', pick: (s) => s.submit4?.acceptedPerS },
  { figure: '1', metric: 'submit latency p50, 1 client', unit: 'ms', pick: (s) => s.submit1?.latencyMs.p50 },
  { figure: '1', metric: 'submit latency p99, 4 clients', unit: 'ms', pick: (s) => s.submit4?.latencyMs.p99 },
  { figure: '2', metric: 'tiny jobs completed, submit to all done', unit: '/s', pick: (s) => s.submit4?.completedPerS },
  { figure: '3', metric: 'idle submit -> job starts, p50', unit: 'ms', pick: (s) => s.idle?.submitToStartMs.p50 },
  { figure: '3', metric: 'idle submit -> job starts, p99', unit: 'ms', pick: (s) => s.idle?.submitToStartMs.p99 },
  { figure: '3', metric: 'cancel -> next job starts, p50', unit: 'ms', pick: (s) => s.drain?.[0]?.cancelToStartMs.p50 },
  { figure: '3', metric: 'cancel -> next job starts, p99', unit: 'ms', pick: (s) => s.drain?.[0]?.cancelToStartMs.p99 },
  { figure: '5', metric: 'deadline -> SIGTERM, p50', unit: 'ms', pick: (s) => s.expiry?.termLateMs.p50 },
  { figure: '5', metric: 'deadline -> SIGTERM, max', unit: 'ms', pick: (s) => s.expiry?.termLateMs.max },
];

export function compareWithSlurm(flare: FlareResults, slurm: SlurmResults | undefined): Comparison[] {
  if (slurm?.status !== 'ok') return [];
  const rows: Comparison[] = [];
  for (const c of COMPARED) {
    const f = c.pick(flare);
    const s = c.pick(slurm);
    if (f === undefined || s === undefined || !Number.isFinite(f) || !Number.isFinite(s)) continue;
    rows.push({
      figure: c.figure,
      metric: c.metric,
      unit: c.unit,
      flare: f,
      slurm: s,
      ratio: ratio(f, s),
      better: c.unit === '/s' ? 'higher' : 'lower',
    });
  }
  return rows;
}

/** p50 at the deepest queue may be this many times the p50 at the shallowest and still count as flat. */
export const FLAT_FACTOR = 1.5;
export const TARGETS = {
  submitsPerS: 500,
  admitP99Ms: 50,
  drainP99Ms: 100,
  expiryMaxMs: 1000,
  transitionsPerJob: 25,
  usdPerJob: 0.0005,
} as const;

const fmt = (x: number | undefined, unit = '', digits = 0) =>
  x === undefined || !Number.isFinite(x) ? 'n/a' : `${x.toFixed(digits)}${unit}`;

export function checkTargets(results: Pick<BenchResults, 'flare' | 'slurm'>): TargetCheck[] {
  const { flare, slurm } = results;
  const checks: TargetCheck[] = [];
  const decide = (value: number | undefined, ok: (v: number) => boolean): boolean | null =>
    value === undefined || !Number.isFinite(value) ? null : ok(value);

  const rates = [flare.submit1?.acceptedPerS, flare.submit4?.acceptedPerS].filter(
    (x): x is number => x !== undefined && Number.isFinite(x),
  );
  checks.push({
    figure: '1',
    target: `>= ${TARGETS.submitsPerS} submits/s`,
    measured: `${fmt(flare.submit1?.acceptedPerS, '/s', 1)} (1 client), ${fmt(flare.submit4?.acceptedPerS, '/s', 1)} (4 clients)`,
    met: rates.length ? Math.max(...rates) >= TARGETS.submitsPerS : null,
  });

  const admit = flare.idle?.submitToAdmittedMs?.p99;
  checks.push({
    figure: '3',
    target: `submit -> admitted p99 <= ${TARGETS.admitP99Ms} ms`,
    measured: flare.idle?.submitToAdmittedMs
      ? `p99 ${fmt(admit, ' ms', 1)} (${flare.idle.answeredWaiting ?? 0} of ${flare.idle.n} answered WAITING)`
      : 'n/a',
    met: decide(admit, (v) => v <= TARGETS.admitP99Ms),
  });

  const drain = flare.drain?.[0];
  checks.push({
    figure: '3',
    target: `drain (GPU released -> next job starts) p99 <= ${TARGETS.drainP99Ms} ms`,
    measured: drain ? `p99 ${fmt(drain.releasedToStartMs?.p99, ' ms', 1)} with ${drain.depth} waiting` : 'n/a',
    met: decide(drain?.releasedToStartMs?.p99, (v) => v <= TARGETS.drainP99Ms),
  });

  const depths = flare.drain ?? [];
  const shallow = depths[0];
  const deep = depths.length > 1 ? depths[depths.length - 1] : undefined;
  checks.push({
    figure: '4',
    target: `drain flat with queue depth (p50 at the deepest <= ${FLAT_FACTOR} x p50 at the shallowest)`,
    measured:
      deep && shallow ? depths.map((d) => `${d.depth}: ${fmt(d.releasedToStartMs?.p50, ' ms', 1)}`).join(', ') : 'n/a',
    met:
      deep && shallow
        ? decide(ratio(deep.releasedToStartMs?.p50, shallow.releasedToStartMs?.p50), (v) => v <= FLAT_FACTOR)
        : null,
  });

  const flareE2e = flare.submit4?.completedPerS;
  const slurmE2e = slurm?.status === 'ok' ? slurm.submit4?.completedPerS : undefined;
  checks.push({
    figure: '2',
    target: "end-to-end throughput above Slurm's",
    measured: `${fmt(flareE2e, '/s', 1)} vs Slurm ${slurm?.status === 'ok' ? fmt(slurmE2e, '/s', 1) : `(${slurm?.status ?? 'not run'})`}`,
    met:
      flareE2e !== undefined && slurmE2e !== undefined && Number.isFinite(flareE2e) && Number.isFinite(slurmE2e)
        ? flareE2e > slurmE2e
        : null,
  });

  const late = flare.expiry?.termLateMs.max;
  checks.push({
    figure: '5',
    target: `expiry within ${TARGETS.expiryMaxMs / 1000} s (every job)`,
    measured: flare.expiry
      ? `SIGTERM max ${fmt(late, ' ms')} late, GPUs released max ${fmt(flare.expiry.releasedLateMs?.max, ' ms')} late`
      : 'n/a',
    met: decide(late, (v) => v <= TARGETS.expiryMaxMs),
  });

  const t = flare.transitions;
  const counts = t ? [...t.jobs.map((j) => j.transitions), ...(t.batch ? [t.batch.max] : [])] : [];
  checks.push({
    figure: '6',
    target: `<= ${TARGETS.transitionsPerJob} transitions per job, independent of run time`,
    measured: t
      ? `${t.jobs.map((j) => `${j.runSeconds} s job: ${j.transitions}`).join(', ')}${t.batch ? `; batch max ${t.batch.max}` : ''}`
      : 'n/a',
    met: t ? t.equal && Math.max(...counts) <= TARGETS.transitionsPerJob : null,
  });

  const costs = flare.cost ?? [];
  const worst = costs.length ? Math.max(...costs.map((c) => c.breakdown.totalUsd)) : undefined;
  checks.push({
    figure: '6',
    target: `<= $${TARGETS.usdPerJob} per job`,
    measured: costs.length ? costs.map((c) => `${c.scenario}: $${c.breakdown.totalUsd.toFixed(6)}`).join('; ') : 'n/a',
    met: decide(worst, (v) => v <= TARGETS.usdPerJob),
  });
  return checks;
}
