/**
 * Figures 1-6 on Flare's local control plane, in the order they run. Each
 * figure (flare-*.ts) drives the plane over HTTP as a user would; it learns
 * from the plane's event bus which job changed state, and times what the jobs
 * store (createdAt, admittedAt, finishedAt, expiresAt) and write themselves
 * (when they start and when they get SIGTERM).
 */
import { US_EAST_1_PRICES } from '../lib/cost.js';
import { subtract } from '../lib/instrument.js';
import { startBenchPlane, TEMPLATE } from '../lib/plane.js';
import type { CostFigure, FlareResults } from '../lib/results.js';
import { summarize, withRepeats } from '../lib/stats.js';
import { measureStoreCeiling } from '../lib/store-ceiling.js';
import { costFigure, transitionsOf } from './flare-cost.js';
import { drainFigure } from './flare-drain.js';
import { expiryFigure } from './flare-expiry.js';
import { idleFigure } from './flare-idle.js';
import { executionsDone, submit } from './flare-jobs.js';
import { submitFigure } from './flare-submit.js';

export interface FlareSettings {
  slots: number;
  inMemory: boolean;
  /** Figures 1 and 2: submits per run. */
  submitN: number;
  /** Figure 2 with 4 clients: runs, reported as their median and each. */
  e2eRuns: number;
  /** Figure 2: calls of each kind made against DynamoDB Local alone (bench/lib/store-ceiling.ts). */
  ceilingCalls: number;
  idleN: number;
  /** Figure 3: jobs run first on the fresh plane, reported apart. */
  idleWarmup: number;
  drainSamples: number;
  depths: number[];
  submitsAtDepth: number;
  expiryRounds: number;
  expiryMinutes: number;
  longJobSeconds: number;
}

export async function runFlare(
  settings: FlareSettings,
  dir: string,
  figures: ReadonlySet<number>,
  say: (line: string) => void,
): Promise<FlareResults> {
  const results: FlareResults = {
    setup: [
      `\`flare local\`'s control plane (lambdas/local/control-plane.ts) started in the harness's process from a config it writes: process driver, one pool of ${settings.slots} slots, reconciler every hour (not per-job work)`,
      `DynamoDB Local ${settings.inMemory ? 'in memory (--in-memory)' : 'on disk, in the data directory (as `flare local` runs it)'}`,
      "submits over HTTP from a worker thread (its own event loop); which job changed state from the plane's event bus (fed by the jobs-table stream, polled every ~100 ms); instants from the jobs' stored timestamps, read over the API, and the start and SIGTERM instants the jobs write themselves (`date +%s%N`)",
    ],
  };
  if (figures.has(2) && !settings.inMemory) {
    say('flare: DynamoDB Local alone, on disk: single-item writes and reads per second');
    results.storeCeiling = await measureStoreCeiling(dir, settings.ceilingCalls);
    say(
      `  ${results.storeCeiling.writesPerS.toFixed(0)} writes/s, ${results.storeCeiling.readsPerS.toFixed(0)} reads/s`,
    );
  }
  say(
    `flare: starting the control plane (${settings.slots} slots, DynamoDB Local ${settings.inMemory ? 'in memory' : 'on disk'})`,
  );
  const started = performance.now();
  const bench = await startBenchPlane({ dir, slots: settings.slots, inMemory: settings.inMemory });
  results.setup.push(
    `plane start-up (DynamoDB Local, tables, seeding): ${(performance.now() - started).toFixed(0)} ms`,
  );
  // A figure that fails is reported and the others still run: one broken figure should not cost the whole run.
  const attempt = async (figure: string, body: () => Promise<void>) => {
    try {
      await body();
    } catch (error) {
      const message = `figure ${figure} failed: ${error instanceof Error ? error.message : String(error)}`;
      say(`flare: ${message}`);
      (results.failures ??= []).push(message);
    }
  };
  try {
    const cost: CostFigure[] = [];
    let shortJob: string | undefined;
    let longJob: string | undefined;
    if (figures.has(6)) {
      await attempt('6 (one job alone)', async () => {
        say('flare fig 6: one 1 s job alone, metered');
        const before = bench.meter.snapshot();
        const answer = await submit(bench, { template: TEMPLATE, command: ['sleep', '1'] });
        shortJob = answer.id;
        await bench.events.whenTerminal(answer.id, 30_000);
        await executionsDone(bench, [answer.id], 30_000);
        cost.push(
          costFigure('one job on an idle plane (1 s)', [answer.id], subtract(bench.meter.snapshot(), before), bench, [
            answer.ms,
          ]),
        );
        longJob = (await submit(bench, { template: TEMPLATE, command: ['sleep', String(settings.longJobSeconds)] })).id;
        say(`flare fig 6: a ${settings.longJobSeconds} s job runs while figures 3 (idle) and 5 are measured`);
      });
    }
    if (figures.has(3))
      await attempt(
        '3 (idle)',
        async () => void (results.idle = await idleFigure(bench, settings.idleN, settings.idleWarmup, say)),
      );
    if (figures.has(5))
      await attempt(
        '5',
        async () =>
          void (results.expiry = await expiryFigure(
            bench,
            settings,
            longJob ? settings.slots - 1 : settings.slots,
            say,
          )),
      );
    if (shortJob && longJob) {
      const [short, long] = [shortJob, longJob];
      await attempt('6 (transitions)', async () => {
        await bench.events.whenTerminal(long, (settings.longJobSeconds + 60) * 1000);
        await executionsDone(bench, [long], 30_000);
        const jobs = [transitionsOf(bench, short, 1), transitionsOf(bench, long, settings.longJobSeconds)];
        results.transitions = { jobs, equal: jobs.every((j) => j.transitions === jobs[0].transitions) };
      });
    }
    if (figures.has(1) || figures.has(2)) {
      await attempt(
        '1 (1 client)',
        async () => void (results.submit1 = (await submitFigure(bench, settings.submitN, 1, say)).run),
      );
      await attempt('1+2 (4 clients)', async () => {
        const batch = await submitFigure(bench, settings.submitN, 4, say);
        results.submit4 = batch.run;
        if (figures.has(6)) {
          cost.push(
            costFigure(
              `a batch of ${batch.run.n} submitted at once (figure 2; most jobs wait)`,
              batch.jobIds,
              batch.usage,
              bench,
              batch.latencies,
            ),
          );
          if (results.transitions)
            results.transitions.batch = summarize(batch.jobIds.map((id) => transitionsOf(bench, id, 0).transitions));
        }
        // End-to-end moves by ~10% from run to run: the verdict takes the median of several.
        const rates = [batch.run.completedPerS];
        for (let i = 1; i < settings.e2eRuns; i++)
          rates.push((await submitFigure(bench, settings.submitN, 4, say)).run.completedPerS);
        if (rates.length > 1) results.submit4 = withRepeats(batch.run, rates);
      });
    }
    if (figures.has(3) || figures.has(4)) {
      const depths = figures.has(4) ? settings.depths : settings.depths.slice(0, 1);
      await attempt('3/4 (drain)', async () => void (results.drain = await drainFigure(bench, settings, depths, say)));
    }
    if (cost.length) {
      results.cost = cost;
      results.prices = US_EAST_1_PRICES;
    }
    if (bench.problems.length)
      results.setup.push(
        `the plane logged ${bench.problems.length} warnings/errors, first: ${bench.problems[0].slice(0, 300)}`,
      );
    return results;
  } finally {
    await bench.stop();
  }
}
