/**
 * `npm run bench [-- options]`: Flare's figures 1-7 and the Slurm peer's
 * figures 1, 2, 3 and 5 in one run on this machine; a table on stdout, JSON in
 * bench/results/, docs/benchmarks.md regenerated. See bench/README.md.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runBundles } from './figures/bundles.js';
import { runFlare, type FlareSettings } from './figures/flare.js';
import { SlurmPeer, type SlurmSettings } from './figures/slurm.js';
import { describeMachine, gitState } from './lib/machine.js';
import { renderMarkdown, renderSummary } from './lib/render.js';
import type { BenchResults, BundleFigure, FlareResults, SlurmResults } from './lib/results.js';
import { checkTargets, compareWithSlurm } from './lib/verdicts.js';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

export const USAGE = `usage: npm run bench [-- options]

  --quick            a reduced run (fewer jobs and samples) that ends in under two minutes
  --figures=LIST     only these figures, e.g. --figures=1,2,8 (default: 1-8; 8 is Slurm)
  --no-slurm         skip the Slurm peer (figure 8)
  --no-flare         skip Flare's figures 1-6 (with 8: the peer's figures alone)
  --no-install       do not apt-get install Slurm when it is missing
  --slurm-peer=DIR   the peer's directory (default: ../shared/peers/slurm)
  --in-memory        DynamoDB Local in memory instead of on disk
  --no-docs          do not rewrite docs/benchmarks.md
  --keep             keep the scratch directory (data, logs, bundles) for inspection
  --jobs=N           submits in figures 1 and 2, on each side (default 1000; 30 with --quick)
  --e2e-runs=N       runs of figure 2 with 4 clients, on each side; the median decides (default 3; 1 with --quick)`;

export interface Options {
  quick: boolean;
  figures: Set<number>;
  flare: boolean;
  install: boolean;
  slurmPeer: string;
  inMemory: boolean;
  docs: boolean;
  keep: boolean;
  jobs?: number;
  e2eRuns?: number;
}

export function parseArgs(argv: readonly string[]): Options | { help: true } | { error: string } {
  const options: Options = {
    quick: false,
    figures: new Set([1, 2, 3, 4, 5, 6, 7, 8]),
    flare: true,
    install: true,
    slurmPeer: resolve(REPO_ROOT, '../shared/peers/slurm'),
    inMemory: false,
    docs: true,
    keep: false,
  };
  for (const arg of argv) {
    const [flag, value] = arg.includes('=')
      ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)]
      : [arg, undefined];
    if (flag === '--help' || flag === '-h') return { help: true };
    else if (flag === '--quick') options.quick = true;
    else if (flag === '--no-slurm') options.figures.delete(8);
    else if (flag === '--no-install') options.install = false;
    else if (flag === '--no-flare') options.flare = false;
    else if (flag === '--in-memory') options.inMemory = true;
    else if (flag === '--no-docs') options.docs = false;
    else if (flag === '--keep') options.keep = true;
    else if (flag === '--jobs' && value !== undefined) {
      const jobs = Number(value);
      if (!Number.isInteger(jobs) || jobs < 1 || jobs > 100_000)
        return { error: `--jobs takes a whole number from 1 to 100000, got '${value}'` };
      options.jobs = jobs;
    } else if (flag === '--e2e-runs' && value !== undefined) {
      const runs = Number(value);
      if (!Number.isInteger(runs) || runs < 1 || runs > 20)
        return { error: `--e2e-runs takes a whole number from 1 to 20, got '${value}'` };
      options.e2eRuns = runs;
    } else if (flag === '--slurm-peer' && value) options.slurmPeer = resolve(value);
    else if (flag === '--figures' && value) {
      const list = value.split(',').map((x) => Number(x.trim()));
      if (list.some((x) => !Number.isInteger(x) || x < 1 || x > 8))
        return { error: `--figures takes numbers from 1 to 8, got '${value}'` };
      options.figures = new Set(list);
    } else return { error: `unknown argument '${arg}'` };
  }
  return options;
}

export function flareSettings(quick: boolean): FlareSettings {
  return quick
    ? {
        slots: 4,
        inMemory: false,
        submitN: 30,
        e2eRuns: 1,
        ceilingCalls: 500,
        idleN: 5,
        idleWarmup: 5,
        drainSamples: 4,
        depths: [50, 250],
        submitsAtDepth: 2,
        expiryRounds: 1,
        expiryMinutes: 0.05,
        longJobSeconds: 10,
      }
    : {
        slots: 4,
        inMemory: false,
        submitN: 1000,
        e2eRuns: 3,
        ceilingCalls: 2000,
        idleN: 100,
        idleWarmup: 20,
        drainSamples: 60,
        depths: [100, 1000, 10_000],
        submitsAtDepth: 5,
        expiryRounds: 3,
        expiryMinutes: 0.05,
        longJobSeconds: 60,
      };
}

export function slurmSettings(quick: boolean): SlurmSettings {
  return quick
    ? { submitN: 30, e2eRuns: 1, idleN: 5, drainSamples: 4, drainDepth: 50, expiryJobs: 2, expiryMinutes: 1 }
    : { submitN: 1000, e2eRuns: 3, idleN: 30, drainSamples: 60, drainDepth: 100, expiryJobs: 4, expiryMinutes: 1 };
}

async function main(argv: string[]): Promise<number> {
  const parsed = parseArgs(argv);
  if ('help' in parsed) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if ('error' in parsed) {
    process.stderr.write(`bench: ${parsed.error}\n${USAGE}\n`);
    return 2;
  }
  const options = parsed;
  const say = (line: string) =>
    process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);
  const t0 = performance.now();
  const startedAt = new Date();
  const loadStart = loadavg()[0];
  const scratch = await mkdtemp(join(tmpdir(), 'flare-bench-'));
  const notes: string[] = [];
  const overrides = {
    ...(options.jobs ? { submitN: options.jobs } : {}),
    ...(options.e2eRuns ? { e2eRuns: options.e2eRuns } : {}),
  };
  const flareConfig = { ...flareSettings(options.quick), inMemory: options.inMemory, ...overrides };
  const slurmConfig = { ...slurmSettings(options.quick), ...overrides };
  say(`${options.quick ? 'quick' : 'full'} run, figures ${[...options.figures].sort().join(',')}, scratch ${scratch}`);

  let slurm: SlurmResults | undefined;
  let peer: SlurmPeer | undefined;
  let flare: FlareResults = { setup: [] };
  let bundles: BundleFigure[] | undefined;
  try {
    if (options.figures.has(8)) {
      // The README's state directory: munged (user munge) must reach its files, which a 0700 scratch directory forbids.
      const stateDir = process.env.SLURM_PEER_DIR ?? '/tmp/flare-slurm-peer';
      const started = await SlurmPeer.start({
        peerDir: options.slurmPeer,
        stateDir,
        workDir: join(scratch, 'slurm'),
        install: options.install,
        say,
      });
      if (typeof started === 'string') {
        say(`slurm: SKIPPED: ${started}`);
        slurm = { status: 'skipped', reason: started, setup: [] };
      } else {
        peer = started;
        slurm = { status: 'ok', version: peer.version, setup: peer.setup() };
        try {
          if (options.figures.has(5)) await peer.startExpiry(slurmConfig);
          Object.assign(slurm, await peer.measure(slurmConfig, options.figures));
        } catch (error) {
          say(`slurm: FAILED: ${String(error)}`);
          slurm = { ...slurm, status: 'failed', reason: String(error) };
        }
      }
    }
    if (options.figures.has(7)) {
      say('fig 7: bundling the Lambda entries');
      bundles = await runBundles(REPO_ROOT, join(scratch, 'bundles'), options.quick ? 2 : 10, say);
    }
    if (options.flare && [1, 2, 3, 4, 5, 6].some((f) => options.figures.has(f))) {
      const dir = join(scratch, 'flare');
      await mkdir(dir, { recursive: true });
      flare = await runFlare(flareConfig, dir, options.figures, say);
    }
    if (peer && slurm?.status === 'ok' && options.figures.has(5)) slurm.expiry = await peer.finishExpiry(slurmConfig);
  } finally {
    if (peer) await peer.stop();
    if (!options.keep) await rm(scratch, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    else say(`scratch kept in ${scratch}`);
  }

  const machine = describeMachine(loadStart);
  if (machine.loadStart > machine.cores / 2) {
    notes.push(
      `The machine was busy when the run started (1-minute load ${machine.loadStart.toFixed(2)} on ${machine.cores} cores): other work shared the CPUs, so latencies are pessimistic.`,
    );
  }
  if (slurm && slurm.status !== 'ok') notes.push(`Slurm ${slurm.status}: ${slurm.reason}`);
  for (const failure of flare.failures ?? []) notes.push(`Flare ${failure}`);
  notes.push(
    "Flare's local plane stands in for AWS: DynamoDB Local on this machine rather than DynamoDB over the network, aws-local-stepfunctions rather than Step Functions, one process rather than Lambda. Throughput and latency here are those of the local plane; the cost is AWS's price of what the local run did.",
  );
  const results: BenchResults = {
    schema: 1,
    mode: options.quick ? 'quick' : 'full',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    durationS: (performance.now() - t0) / 1000,
    command: `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}`,
    git: gitState(REPO_ROOT),
    machine,
    flare,
    ...(bundles ? { bundles } : {}),
    ...(slurm ? { slurm } : {}),
    comparisons: compareWithSlurm(flare, slurm),
    targets: [],
    notes,
  };
  results.targets = checkTargets(results);

  const stamp = results.startedAt.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z');
  const jsonPath = join(REPO_ROOT, 'bench', 'results', `${stamp}.json`);
  await mkdir(join(REPO_ROOT, 'bench', 'results'), { recursive: true });
  await writeFile(jsonPath, `${JSON.stringify(results, null, 2)}\n`);
  if (options.docs) await writeFile(join(REPO_ROOT, 'docs', 'benchmarks.md'), renderMarkdown(results));
  process.stdout.write(
    `${renderSummary(results)}\n\nresults: ${jsonPath}${options.docs ? '\ndocs:    docs/benchmarks.md' : ''}\n`,
  );
  return flare.failures?.length ? 1 : 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(
        `bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
      process.exit(1);
    },
  );
}
