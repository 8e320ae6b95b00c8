/** docs/benchmarks.md and the table on stdout, from one run's results (pure: strings in, strings out). */
import type { CostFigure, DrainRun, ExpiryRun, IdleRun, BenchResults, SubmitRun } from './results.js';
import type { Summary } from './stats.js';

/** A number for people: thousands separated, a sensible number of decimals. */
export function num(x: number | undefined, digits?: number): string {
  if (x === undefined || Number.isNaN(x)) return 'n/a';
  if (!Number.isFinite(x)) return x > 0 ? '∞' : '-∞';
  const d = digits ?? (Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2);
  return x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

export function usd(x: number): string {
  if (x === 0) return '$0';
  return x >= 0.01 ? `$${x.toFixed(4)}` : `$${x.toPrecision(3)}`;
}

export function bytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / 1024 / 1024).toFixed(2)} MiB`;
  return `${(n / 1024).toFixed(1)} KiB`;
}

/** "p50 / p99 (min–max)" of a summary in ms. */
export function spread(s: Summary | undefined): string {
  if (!s || s.n === 0) return 'n/a';
  return `${num(s.p50)} / ${num(s.p99)} (${num(s.min)}–${num(s.max)})`;
}

export function markdownTable(header: string[], rows: string[][]): string {
  const escapeCell = (cell: string) => cell.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const lines = [`| ${header.map(escapeCell).join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`];
  for (const row of rows) lines.push(`| ${row.map(escapeCell).join(' | ')} |`);
  return lines.join('\n');
}

/** A plain-text table with aligned columns, for the terminal. */
export function textTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (c ?? '').padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

const metLabel = (met: boolean | null) => (met === null ? 'n/a' : met ? 'met' : 'NOT met');

type Sides = { name: string; side: BenchResults['flare'] | NonNullable<BenchResults['slurm']> }[];

function sides(r: BenchResults): Sides {
  const list: Sides = [{ name: 'Flare', side: r.flare }];
  if (r.slurm?.status === 'ok') list.push({ name: 'Slurm', side: r.slurm });
  return list;
}

function submitRows(r: BenchResults): string[][] {
  const rows: string[][] = [];
  for (const { name, side } of sides(r)) {
    for (const run of [side.submit1, side.submit4].filter((x): x is SubmitRun => !!x)) {
      rows.push([
        name,
        String(run.clients),
        num(run.n, 0),
        num(run.acceptedPerS, 1),
        num(run.latencyMs.p50, 1),
        num(run.latencyMs.p99, 1),
        `${num(run.latencyMs.min, 1)}–${num(run.latencyMs.max, 1)}`,
        String(run.errors),
      ]);
    }
  }
  return rows;
}

function endToEndRows(r: BenchResults): string[][] {
  const rows: string[][] = [];
  for (const { name, side } of sides(r)) {
    for (const run of [side.submit1, side.submit4].filter((x): x is SubmitRun => !!x)) {
      const outcomes = run.outcomes
        ? Object.entries(run.outcomes)
            .map(([k, v]) => `${k} ${v}`)
            .join(', ')
        : '';
      const cpu = run.cpuMsPerJob
        ? `${num(run.cpuMsPerJob.plane, 1)} / ${num(run.cpuMsPerJob.dynamodb, 1)} / ${num(run.cpuMsPerJob.jobs, 1)}`
        : 'n/a';
      const rate = run.completedPerSRuns
        ? `${num(run.completedPerS, 1)} (median of ${run.completedPerSRuns.map((x) => num(x, 1)).join(', ')})`
        : num(run.completedPerS, 1);
      rows.push([
        name,
        String(run.clients),
        num(run.n, 0),
        num(run.completed, 0),
        rate,
        `${num(run.firstSubmitToAllDoneS, 1)} s`,
        cpu,
        outcomes,
      ]);
    }
  }
  return rows;
}

/** DynamoDB Local's own write rate over the write calls of a figure-2 job: a bound on Flare's completed/s here. */
function storeCeilingNote(r: BenchResults): string | undefined {
  const ceiling = r.flare?.storeCeiling;
  const calls = r.flare?.submit4?.dynamoCallsPerJob;
  if (!ceiling || !calls) return undefined;
  return (
    `DynamoDB Local alone, on disk, on this machine (bench/lib/store-ceiling.ts): ${num(ceiling.writesPerS, 0)} single-item writes/s and ` +
    `${num(ceiling.readsPerS, 0)} reads/s from ${ceiling.clients} clients; it applies writes one at a time. ` +
    `A figure-2 job (4 clients) made ${num(calls.writes, 1)} write calls (a transaction counted once) and ${num(calls.reads, 1)} reads, ` +
    `so DynamoDB Local's writes alone bound Flare at ${num(ceiling.writesPerS / calls.writes, 1)} jobs/s here (transactions cost more than one write), before its reads and the plane's own CPU, which share the two cores.`
  );
}

function idleRows(r: BenchResults): string[][] {
  const rows: string[][] = [];
  for (const { name, side } of sides(r)) {
    const measured: [string, Summary | undefined][] = [];
    const idle: IdleRun | undefined = side.idle;
    if (idle) {
      const early = `idle, the first ${idle.warmup?.n} jobs after start (warm-up)`;
      const waited = idle.answeredWaiting ? `; ${idle.answeredWaiting} answered WAITING` : '';
      measured.push(
        [
          `idle: submit -> admitted (POST sent -> answer LAUNCHING, or -> stored admittedAt when answered WAITING${waited})`,
          idle.submitToAdmittedMs,
        ],
        ['idle: stored admittedAt -> LAUNCHING event (stream delay: the write, then the poll)', idle.admittedToEventMs],
        ['idle: submit -> RUNNING event (through the jobs-table stream)', idle.submitToRunningEventMs],
        ['idle: submit -> job starts', idle.submitToStartMs],
        [`${early}: submit -> admitted`, idle.warmup?.submitToAdmittedMs],
        [`${early}: submit -> job starts`, idle.warmup?.submitToStartMs],
      );
    }
    const drain: DrainRun | undefined = side.drain?.[0];
    if (drain) {
      const at = `drain (${drain.depth} waiting)`;
      measured.push(
        [`${at}: GPU released -> next admitted (stored finishedAt -> admittedAt)`, drain.releasedToAdmittedMs],
        [`${at}: GPU released -> next job starts (stored finishedAt -> its start stamp)`, drain.releasedToStartMs],
        [`${at}: cancel -> next job starts`, drain.cancelToStartMs],
      );
    }
    for (const [metric, summary] of measured) if (summary) rows.push([name, metric, ...summaryCells(summary)]);
  }
  return rows;
}

function summaryCells(s: Summary): string[] {
  return [String(s.n), num(s.p50, 1), num(s.p99, 1), num(s.min, 1), num(s.max, 1)];
}

function depthRows(r: BenchResults): string[][] {
  const rows: string[][] = [];
  for (const { name, side } of sides(r)) {
    for (const d of side.drain ?? []) {
      rows.push([
        name,
        num(d.depth, 0),
        String(d.n),
        spread(d.releasedToAdmittedMs),
        spread(d.releasedToStartMs),
        spread(d.cancelToStartMs),
        d.submitAtDepth
          ? `${num(d.submitAtDepth.submitMs.p50, 1)} / ${num(d.submitAtDepth.submitToWaitingEventMs.p50, 1)}`
          : 'n/a',
        d.fill ? `${d.fill.how}, ${num(d.fill.perS, 0)}/s` : '',
      ]);
    }
  }
  return rows;
}

function expiryRows(r: BenchResults): string[][] {
  const rows: string[][] = [];
  for (const { name, side } of sides(r)) {
    const e: ExpiryRun | undefined = side.expiry;
    if (!e) continue;
    const after = e.releasedLateMs
      ? `GPUs released: ${spread(e.releasedLateMs)}`
      : e.goneLateMs
        ? `left the queue: ${spread(e.goneLateMs)}`
        : '';
    rows.push([name, `${num(e.limitSeconds, 1)} s`, String(e.n), spread(e.termLateMs), after]);
  }
  return rows;
}

function costSection(c: CostFigure): string {
  const u = c.usage;
  const lambdas = u.lambdas
    .map((l) => `${l.name} ${num(l.invocations, 2)} × ${num(l.meanDurationMs, 1)} ms${l.measured ? '' : ' (assumed)'}`)
    .join('; ');
  const lines = [
    `**${c.scenario}** (${c.jobs} job${c.jobs === 1 ? '' : 's'}): ${usd(c.breakdown.totalUsd)} per job.`,
    '',
    markdownTable(
      ['item', 'per job', 'unit price', 'cost per job'],
      c.breakdown.lines.map((l) => [l.item, `${num(l.quantity, 2)} ${l.unit}`, usd(l.unitPriceUsd), usd(l.usd)]),
    ),
    '',
    `Lambda invocations per job: ${lambdas}.`,
  ];
  const notes = u.lambdas.filter((l) => l.note).map((l) => `${l.name}: ${l.note}`);
  if (notes.length) lines.push('', ...notes.map((n) => `- ${n}`));
  if (c.tasks.length) {
    lines.push(
      '',
      markdownTable(
        ['workflow task', 'per job', 'mean ms'],
        c.tasks.map((t) => [t.task, num(t.perJob, 2), num(t.meanMs, 1)]),
      ),
    );
  }
  if (c.dynamoCalls.length) {
    lines.push(
      '',
      markdownTable(
        ['DynamoDB call', 'per job', 'of which failed', 'mean ms'],
        c.dynamoCalls.map((d) => [d.operation, num(d.perJob, 2), num(d.failedPerJob, 2), num(d.meanMs, 1)]),
      ),
    );
  }
  return lines.join('\n');
}

export function renderMarkdown(r: BenchResults): string {
  const m = r.machine;
  const out: string[] = [];
  out.push('# Benchmarks', '');
  out.push(
    '<!-- Generated by `npm run bench` (bench/run.ts) from one run; change bench/lib/render.ts, not this file. -->',
    '',
  );
  out.push(
    "Flare's local control plane and, as the peer, a single-node Slurm with 4 fake GPUs, measured in one run on one machine. " +
      'How each figure is measured, and what it leaves out: [bench/README.md](../bench/README.md). ' +
      'Latencies are in milliseconds, given as p50 / p99 (min–max) unless a column says otherwise.',
    '',
  );
  out.push(
    markdownTable(
      ['run', ''],
      [
        ['date', r.startedAt],
        [
          'mode',
          r.mode === 'quick' ? 'quick (`npm run bench -- --quick`: fewer jobs and samples)' : 'full (`npm run bench`)',
        ],
        ['command', `\`${r.command}\``],
        ['commit', `${r.git.commit}${r.git.dirty ? ' (with uncommitted changes)' : ''}`],
        ['duration', `${num(r.durationS, 0)} s`],
        ['machine', `${m.cpu}, ${m.cores} cores, ${num(m.memoryGb, 0)} GB memory`],
        ['OS', `${m.os} (kernel ${m.kernel})`],
        ['Node', m.node],
        ['load average (1 min)', `${num(m.loadStart, 2)} before, ${num(m.loadEnd, 2)} after`],
      ],
    ),
    '',
  );

  out.push('## Targets', '');
  out.push(
    markdownTable(
      ['figure', 'target', 'measured', 'verdict'],
      r.targets.map((t) => [t.figure, t.target, t.measured, metLabel(t.met)]),
    ),
    '',
  );

  out.push('## Flare / Slurm', '');
  if (r.comparisons.length) {
    out.push(
      markdownTable(
        ['figure', 'metric', 'Flare', 'Slurm', 'Flare / Slurm', 'better is'],
        r.comparisons.map((c) => [
          c.figure,
          c.metric,
          `${num(c.flare, 1)} ${c.unit}`,
          `${num(c.slurm, 1)} ${c.unit}`,
          num(c.ratio, 2),
          c.better,
        ]),
      ),
      '',
    );
  } else {
    out.push(`No Slurm figures in this run: ${r.slurm?.reason ?? 'Slurm was not run'}.`, '');
  }

  out.push('## 1. Submit throughput and latency', '');
  out.push(
    markdownTable(
      ['side', 'clients', 'submits', 'accepted/s', 'p50 ms', 'p99 ms', 'min–max ms', 'errors'],
      submitRows(r),
    ),
    '',
  );

  out.push('## 2. End-to-end throughput', '');
  out.push(
    'Every job of figure 1 runs `true` through its whole lifecycle on 4 slots; first submit to the last job done.',
    '',
  );
  out.push(
    markdownTable(
      [
        'side',
        'clients',
        'jobs',
        'completed',
        'completed/s',
        'first submit -> all done',
        'CPU ms per job: plane / DynamoDB Local / job processes',
        'outcomes',
      ],
      endToEndRows(r),
    ),
    '',
  );
  const ceiling = storeCeilingNote(r);
  if (ceiling) out.push(ceiling, '');

  out.push('## 3. Idle latency and drain latency', '');
  out.push(
    "Times are the jobs' stored timestamps (read over the API), the instants the jobs write when they start, and the client's own send and answer times; " +
      'a row timed by an event says so: events reach the bus through the jobs-table stream, polled every ~100 ms.',
    '',
  );
  out.push(markdownTable(['side', 'metric', 'n', 'p50 ms', 'p99 ms', 'min ms', 'max ms'], idleRows(r)), '');

  out.push('## 4. Drain latency against queue depth', '');
  out.push(
    markdownTable(
      [
        'side',
        'waiting',
        'n',
        'released -> admitted',
        'released -> job starts',
        'cancel -> job starts',
        'submit at depth: answer / WAITING event p50',
        'queue filled by',
      ],
      depthRows(r),
    ),
    '',
  );

  out.push('## 5. Expiry precision', '');
  out.push(
    'How late after its deadline a job receives SIGTERM (it records the instant itself), and when its resources are free again.',
    '',
  );
  out.push(
    markdownTable(['side', 'limit', 'n', 'deadline -> SIGTERM', 'deadline -> resources free'], expiryRows(r)),
    '',
  );

  out.push('## 6. State transitions and cost per job', '');
  const t = r.flare.transitions;
  if (t) {
    out.push(
      markdownTable(
        ['job', 'final state', 'executions', 'transitions', 'states entered'],
        t.jobs.map((j) => [
          `${j.runSeconds} s`,
          j.state,
          String(j.executions),
          String(j.transitions),
          j.states.join(' → '),
        ]),
      ),
      '',
    );
    out.push(
      `Equal for both run times: ${t.equal ? 'yes' : 'NO'}.${t.batch ? ` Over the figure-2 batch: ${num(t.batch.min, 0)}–${num(t.batch.max, 0)} per job, mean ${num(t.batch.mean, 1)} (a job that waits has no execution until it is admitted, then one, as a job admitted at once).` : ''}`,
      '',
    );
  }
  for (const c of r.flare.cost ?? []) out.push(costSection(c), '');
  if (r.flare.prices) {
    const p = r.flare.prices;
    out.push(
      `Prices: ${p.region} list prices as of ${p.asOf}: Step Functions Standard ${usd(p.stepFunctionsPerTransition * 1000)} per 1,000 transitions; ` +
        `Lambda ${usd(p.lambdaPerRequest * 1e6)} per million requests and ${usd(p.lambdaPerGbSecond)} per GB-s (arm64); ` +
        `DynamoDB on-demand ${usd(p.dynamoPerWriteUnit * 1e6)} per million write and ${usd(p.dynamoPerReadUnit * 1e6)} per million read request units; ` +
        `EventBridge ${usd(p.eventBridgePerEvent * 1e6)} per million custom events; API Gateway HTTP API ${usd(p.apiGatewayPerRequest * 1e6)} per million requests. Free tiers are not counted.`,
      '',
    );
  }

  out.push('## 7. Lambda bundles', '');
  if (r.bundles?.length) {
    out.push(
      'Each entry of `HANDLER_ENTRIES` (lib/flare-stack.ts) bundled as the stack bundles it (esbuild, ESM, minified, AWS SDK included); init is a fresh `node` importing the bundle.',
      '',
    );
    out.push(
      markdownTable(
        ['function', 'entry', 'bundle', 'gzip', 'import ms p50', 'min–max', 'whole process ms p50'],
        r.bundles.map((b) => [
          b.name,
          `\`${b.entry}\``,
          bytes(b.bytes),
          bytes(b.gzipBytes),
          num(b.initMs.p50, 1),
          `${num(b.initMs.min, 1)}–${num(b.initMs.max, 1)}`,
          num(b.processMs.p50, 1),
        ]),
      ),
      '',
    );
  } else {
    out.push('Not run.', '');
  }

  out.push('## Setup', '');
  out.push(...r.flare.setup.map((s) => `- Flare: ${s}`));
  if (r.slurm) out.push(...r.slurm.setup.map((s) => `- Slurm: ${s}`));
  out.push('');
  if (r.notes.length) {
    out.push('## Notes', '');
    out.push(...r.notes.map((n) => `- ${n}`), '');
  }
  return `${out.join('\n').trimEnd()}\n`;
}

/** The headline numbers and the targets, for the terminal. */
export function renderSummary(r: BenchResults): string {
  const rows: string[][] = [];
  const slurm = r.slurm?.status === 'ok' ? r.slurm : undefined;
  const byMetric = new Map(r.comparisons.map((c) => [`${c.figure}|${c.metric}`, c]));
  const add = (figure: string, metric: string, flare: string, slurmValue = '', ratioValue = '') =>
    rows.push([figure, metric, flare, slurmValue, ratioValue]);
  const cmp = (figure: string, metric: string, flare: number | undefined, unit: string) => {
    if (flare === undefined) return;
    const c = byMetric.get(`${figure}|${metric}`);
    add(
      figure,
      metric,
      `${num(flare, 1)} ${unit}`,
      c ? `${num(c.slurm, 1)} ${unit}` : slurm ? 'n/a' : '',
      c ? num(c.ratio, 2) : '',
    );
  };
  const f = r.flare;
  cmp('1', 'submits accepted, 1 client', f.submit1?.acceptedPerS, '/s');
  cmp('1', 'submits accepted, 4 clients', f.submit4?.acceptedPerS, '/s');
  cmp('1', 'submit latency p50, 1 client', f.submit1?.latencyMs.p50, 'ms');
  cmp('1', 'submit latency p99, 4 clients', f.submit4?.latencyMs.p99, 'ms');
  cmp('2', 'tiny jobs completed, submit to all done', f.submit4?.completedPerS, '/s');
  if (f.idle?.submitToAdmittedMs)
    add(
      '3',
      'idle submit -> admitted p50/p99',
      `${num(f.idle.submitToAdmittedMs.p50, 1)} / ${num(f.idle.submitToAdmittedMs.p99, 1)} ms`,
    );
  cmp('3', 'idle submit -> job starts, p50', f.idle?.submitToStartMs.p50, 'ms');
  cmp('3', 'idle submit -> job starts, p99', f.idle?.submitToStartMs.p99, 'ms');
  const drain = f.drain?.[0]?.releasedToStartMs;
  if (drain) add('3', 'GPU released -> next job starts p50/p99', `${num(drain.p50, 1)} / ${num(drain.p99, 1)} ms`);
  cmp('3', 'cancel -> next job starts, p50', f.drain?.[0]?.cancelToStartMs.p50, 'ms');
  cmp('3', 'cancel -> next job starts, p99', f.drain?.[0]?.cancelToStartMs.p99, 'ms');
  for (const d of f.drain ?? [])
    add(
      '4',
      `drain p50/p99 with ${num(d.depth, 0)} waiting`,
      `${num(d.releasedToStartMs?.p50, 1)} / ${num(d.releasedToStartMs?.p99, 1)} ms`,
    );
  cmp('5', 'deadline -> SIGTERM, p50', f.expiry?.termLateMs.p50, 'ms');
  cmp('5', 'deadline -> SIGTERM, max', f.expiry?.termLateMs.max, 'ms');
  for (const j of f.transitions?.jobs ?? []) add('6', `transitions, ${j.runSeconds} s job`, String(j.transitions));
  for (const c of f.cost ?? []) add('6', `cost per job: ${c.scenario}`, usd(c.breakdown.totalUsd));
  for (const b of r.bundles ?? []) add('7', `bundle ${b.name}`, `${bytes(b.bytes)}, init ${num(b.initMs.p50, 1)} ms`);

  const parts = [
    textTable(['fig', 'metric', 'Flare', 'Slurm', 'Flare/Slurm'], rows),
    '',
    textTable(
      ['fig', 'target', 'measured', 'verdict'],
      r.targets.map((t) => [t.figure, t.target, t.measured, metLabel(t.met)]),
    ),
  ];
  if (r.slurm && r.slurm.status !== 'ok') parts.push('', `Slurm ${r.slurm.status}: ${r.slurm.reason}`);
  return parts.join('\n');
}
