/**
 * The benchmark harness's reporting (bench/lib/verdicts.ts, bench/lib/render.ts,
 * bench/run.ts's arguments): targets decided honestly from the numbers, the
 * Flare/Slurm ratios, and docs/benchmarks.md carrying the run's provenance.
 * The numbers here are made up; no timing is measured or asserted.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { costPerJob, US_EAST_1_PRICES } from '../../bench/lib/cost.js';
import { markdownTable, renderMarkdown, renderSummary } from '../../bench/lib/render.js';
import type { BenchResults, FlareResults, SlurmResults, SubmitRun } from '../../bench/lib/results.js';
import { summarize, withRepeats } from '../../bench/lib/stats.js';
import { checkTargets, compareWithSlurm } from '../../bench/lib/verdicts.js';
import { flareSettings, parseArgs, slurmSettings } from '../../bench/run.js';

const s = (...xs: number[]) => summarize(xs);

function submitRun(clients: number, acceptedPerS: number, completedPerS: number): SubmitRun {
  return {
    clients,
    n: 100,
    accepted: 100,
    errors: 0,
    acceptedPerS,
    latencyMs: s(2, 4, 8),
    completed: 100,
    completedPerS,
    firstSubmitToAllDoneS: 100 / completedPerS,
  };
}

function flare(overrides: Partial<FlareResults> = {}): FlareResults {
  const usage = {
    transitions: 13,
    lambdas: [],
    dynamoWriteUnits: 100,
    dynamoReadUnits: 20,
    eventBridgeEvents: 5,
    apiRequests: 1,
  };
  return {
    setup: ['process driver, 4 slots'],
    submit1: submitRun(1, 300, 40),
    submit4: submitRun(4, 600, 50),
    idle: { n: 3, submitToAdmittedMs: s(10, 20, 30), submitToStartMs: s(100, 120, 140) },
    drain: [
      {
        depth: 100,
        n: 3,
        releasedToAdmittedMs: s(5, 6, 7),
        releasedToStartMs: s(50, 60, 70),
        cancelToStartMs: s(80, 90, 100),
      },
      {
        depth: 10_000,
        n: 3,
        releasedToAdmittedMs: s(5, 6, 7),
        releasedToStartMs: s(55, 65, 75),
        cancelToStartMs: s(80, 90, 100),
      },
    ],
    expiry: { n: 3, limitSeconds: 3, termLateMs: s(100, 200, 300), releasedLateMs: s(150, 250, 350) },
    transitions: {
      jobs: [
        { runSeconds: 1, jobId: 'a', state: 'SUCCEEDED', transitions: 13, executions: 1, states: ['Init'] },
        { runSeconds: 60, jobId: 'b', state: 'SUCCEEDED', transitions: 13, executions: 1, states: ['Init'] },
      ],
      equal: true,
    },
    cost: [
      { scenario: 'idle', jobs: 1, usage, breakdown: costPerJob(usage, US_EAST_1_PRICES), dynamoCalls: [], tasks: [] },
    ],
    prices: US_EAST_1_PRICES,
    ...overrides,
  };
}

function slurm(overrides: Partial<SlurmResults> = {}): SlurmResults {
  return {
    status: 'ok',
    version: 'slurm 22.05.8',
    setup: ['single node'],
    submit1: submitRun(1, 250, 60),
    submit4: submitRun(4, 400, 70),
    idle: { n: 3, submitToStartMs: s(400, 500, 600) },
    drain: [{ depth: 100, n: 3, cancelToStartMs: s(50, 60, 70) }],
    expiry: { n: 2, limitSeconds: 60, termLateMs: s(20_000, 26_000), goneLateMs: s(21_000, 27_000) },
    ...overrides,
  };
}

function results(f: FlareResults, sl?: SlurmResults): BenchResults {
  const r: BenchResults = {
    schema: 1,
    mode: 'quick',
    startedAt: '2030-01-01T00:00:00.000Z',
    finishedAt: '2030-01-01T00:02:00.000Z',
    durationS: 120,
    command: 'npm run bench -- --quick',
    git: { commit: 'abcdef123456', dirty: true },
    machine: {
      cpu: 'Test CPU',
      cores: 2,
      memoryGb: 8,
      os: 'Test OS',
      kernel: '1.0',
      node: 'v20.0.0',
      loadStart: 0.1,
      loadEnd: 0.5,
    },
    flare: f,
    ...(sl ? { slurm: sl } : {}),
    comparisons: compareWithSlurm(f, sl),
    targets: [],
    notes: ['a note'],
  };
  r.targets = checkTargets(r);
  return r;
}

const verdict = (r: BenchResults, start: string) => r.targets.find((t) => t.target.startsWith(start))!.met;

describe('targets', () => {
  it('are met or not met from the numbers themselves', () => {
    const r = results(flare(), slurm());
    assert.equal(verdict(r, '>= 500 submits/s'), true, 'best of 1 and 4 clients: 600/s');
    assert.equal(verdict(r, 'submit -> admitted p99'), true);
    assert.equal(verdict(r, 'drain (GPU released'), true);
    assert.equal(verdict(r, 'drain flat'), true);
    assert.equal(verdict(r, "end-to-end throughput above Slurm's"), false, '50/s against 70/s');
    assert.equal(verdict(r, 'expiry within 1 s'), true);
    assert.equal(verdict(r, '<= 25 transitions'), true);
    assert.equal(verdict(r, '<= $0.0005 per job'), true);

    const worse = results(
      flare({
        submit1: submitRun(1, 100, 40),
        submit4: submitRun(4, 499, 80),
        idle: { n: 2, submitToAdmittedMs: s(40, 51), submitToStartMs: s(1, 2) },
        drain: [
          { depth: 100, n: 2, releasedToStartMs: s(40, 60), cancelToStartMs: s(1, 2) },
          { depth: 10_000, n: 2, releasedToStartMs: s(200, 300), cancelToStartMs: s(1, 2) },
        ],
        expiry: { n: 2, limitSeconds: 3, termLateMs: s(100, 1001) },
        transitions: {
          jobs: [
            { runSeconds: 1, jobId: 'a', state: 'SUCCEEDED', transitions: 13, executions: 1, states: [] },
            { runSeconds: 60, jobId: 'b', state: 'SUCCEEDED', transitions: 15, executions: 1, states: [] },
          ],
          equal: false,
        },
      }),
      slurm(),
    );
    assert.equal(verdict(worse, '>= 500 submits/s'), false);
    assert.equal(verdict(worse, 'submit -> admitted p99'), false);
    assert.equal(verdict(worse, 'drain flat'), false, '250 ms against 50 ms is not flat');
    assert.equal(verdict(worse, "end-to-end throughput above Slurm's"), true, '80/s against 70/s');
    assert.equal(verdict(worse, 'expiry within 1 s'), false, 'one job 1,001 ms late');
    assert.equal(verdict(worse, '<= 25 transitions'), false, 'not equal for both run times');
  });

  it('are undecided, not passed, when a figure or the peer is missing', () => {
    const r = results(
      flare({ submit1: undefined, submit4: undefined, drain: undefined }),
      slurm({ status: 'skipped', reason: 'no Slurm here' }),
    );
    assert.equal(verdict(r, '>= 500 submits/s'), null);
    assert.equal(verdict(r, 'drain flat'), null);
    assert.equal(verdict(r, "end-to-end throughput above Slurm's"), null);
    assert.deepEqual(r.comparisons, [], 'no ratios against a skipped peer');
  });
});

describe('Flare/Slurm comparisons', () => {
  it('divide Flare by Slurm and say which way is better', () => {
    const rows = compareWithSlurm(flare(), slurm());
    const e2e = rows.find((c) => c.figure === '2')!;
    assert.equal(e2e.flare, 50);
    assert.equal(e2e.slurm, 70);
    assert.ok(Math.abs(e2e.ratio - 50 / 70) < 1e-12);
    assert.equal(e2e.better, 'higher');
    const idle = rows.find((c) => c.metric.startsWith('idle submit -> job starts, p50'))!;
    assert.equal(idle.ratio, 120 / 500);
    assert.equal(idle.better, 'lower');
    assert.deepEqual([...new Set(rows.map((c) => c.figure))].sort(), ['1', '2', '3', '5']);
  });
});

describe('docs/benchmarks.md', () => {
  it('names the machine, the date, the commit, each figure and every target with its verdict', () => {
    const md = renderMarkdown(results(flare(), slurm()));
    for (const text of [
      'Test CPU, 2 cores',
      'Test OS',
      'v20.0.0',
      '2030-01-01T00:00:00.000Z',
      'abcdef123456 (with uncommitted changes)',
      'quick',
    ])
      assert.ok(md.includes(text), `missing ${text}`);
    for (const n of [1, 2, 3, 4, 5, 6, 7]) assert.match(md, new RegExp(`^## ${n}\\. `, 'm'));
    assert.match(md, /\| 2 \| end-to-end throughput above Slurm's \| 50\.0\/s vs Slurm 70\.0\/s \| NOT met \|/);
    assert.match(md, /\| 1 \| >= 500 submits\/s \| .* \| met \|/);
    assert.match(md, /\| Slurm \| 4 \| 100 \| 400\.0 \|/, 'Slurm beside Flare in figure 1');
    assert.match(md, /us-east-1 list prices as of 2025/);
  });

  it('decides end-to-end on the median of repeated runs, and shows each run', () => {
    const f = flare({ submit4: withRepeats(submitRun(4, 600, 50), [50, 90, 60]) });
    const sl = slurm({ submit4: withRepeats(submitRun(4, 400, 70), [70, 65, 40]) });
    assert.equal(f.submit4?.completedPerS, 60);
    assert.equal(sl.submit4?.completedPerS, 65);
    const md = renderMarkdown(results(f, sl));
    assert.match(md, /\| 2 \| end-to-end throughput above Slurm's \| 60\.0\/s vs Slurm 65\.0\/s \| NOT met \|/);
    assert.match(md, /\| Flare \| 4 \| 100 \| 100 \| 60\.0 \(median of 50\.0, 90\.0, 60\.0\) \|/);
  });

  it("bounds Flare's end-to-end by DynamoDB Local's own write rate over a job's write calls, when both were measured", () => {
    const measured = flare({
      storeCeiling: { writesPerS: 540, readsPerS: 1600, clients: 4, calls: 2000 },
      submit4: { ...submitRun(4, 600, 50), dynamoCallsPerJob: { writes: 12, reads: 9.5 } },
    });
    const md = renderMarkdown(results(measured, slurm()));
    assert.match(md, /540 single-item writes\/s and 1,600 reads\/s from 4 clients/);
    assert.match(md, /made 12\.0 write calls \(a transaction counted once\) and 9\.5 reads/);
    assert.match(md, /bound Flare at 45\.0 jobs\/s here/);
    assert.doesNotMatch(
      renderMarkdown(results(flare(), slurm())),
      /single-item writes/,
      'nothing is said when it was not measured',
    );
  });

  it('says why Slurm is missing when it was skipped, and the summary says it too', () => {
    const r = results(flare(), slurm({ status: 'skipped', reason: 'Slurm is not installed' }));
    assert.match(renderMarkdown(r), /No Slurm figures in this run: Slurm is not installed\./);
    assert.match(renderSummary(r), /Slurm skipped: Slurm is not installed/);
  });

  it('says where each figure-3 time comes from, and how many idle submits were answered WAITING', () => {
    const idle = { n: 3, answeredWaiting: 2, submitToAdmittedMs: s(10, 20, 30), submitToStartMs: s(100, 120, 140) };
    const r = results(flare({ idle }), slurm());
    const md = renderMarkdown(r);
    assert.match(
      md,
      /\| Flare \| idle: submit -> admitted \(POST sent -> answer LAUNCHING, or -> stored admittedAt when answered WAITING; 2 answered WAITING\) \| 3 \| 20\.0 \|/,
    );
    assert.match(
      md,
      /\| Flare \| drain \(100 waiting\): GPU released -> next job starts \(stored finishedAt -> its start stamp\) \| 3 \| 60\.0 \|/,
    );
    assert.match(md, /\| 3 \| submit -> admitted p99 <= 50 ms \| p99 29\.8 ms \(2 of 3 answered WAITING\) \| met \|/);
  });

  it('escapes pipes inside table cells', () => {
    assert.equal(markdownTable(['a'], [['x | y']]).split('\n')[2], '| x \\| y |');
  });
});

describe('bench arguments', () => {
  it('take --quick, a figure list and --no-slurm, and refuse what they do not know', () => {
    const parsed = parseArgs(['--quick', '--figures=1,2,8', '--no-slurm']);
    assert.ok('figures' in parsed);
    assert.equal(parsed.quick, true);
    assert.deepEqual([...parsed.figures].sort(), [1, 2]);
    assert.deepEqual(parseArgs(['--figures=9']), { error: "--figures takes numbers from 1 to 8, got '9'" });
    assert.deepEqual(parseArgs(['--fast']), { error: "unknown argument '--fast'" });
    const sized = parseArgs(['--jobs=200']);
    assert.ok('figures' in sized);
    assert.equal(sized.jobs, 200);
    assert.deepEqual(parseArgs(['--jobs=0']), { error: "--jobs takes a whole number from 1 to 100000, got '0'" });
    const repeated = parseArgs(['--e2e-runs=5']);
    assert.ok('figures' in repeated);
    assert.equal(repeated.e2eRuns, 5);
    assert.deepEqual(parseArgs(['--e2e-runs=0']), { error: "--e2e-runs takes a whole number from 1 to 20, got '0'" });
  });

  it('run fewer jobs in quick mode, and the figures the issue names in a full run', () => {
    const full = flareSettings(false);
    const quick = flareSettings(true);
    assert.equal(full.submitN, 1000);
    assert.deepEqual(full.depths, [100, 1000, 10_000]);
    assert.equal(full.slots, 4);
    assert.ok(quick.submitN < full.submitN && quick.depths.at(-1)! < full.depths.at(-1)!);
    assert.equal(slurmSettings(false).submitN, full.submitN, 'Slurm gets the same workload');
    assert.deepEqual(
      [full.e2eRuns, slurmSettings(false).e2eRuns, quick.e2eRuns],
      [3, 3, 1],
      'figure 2 is repeated alike on both sides, once in quick mode',
    );
  });
});
