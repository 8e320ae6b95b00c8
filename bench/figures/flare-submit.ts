/** Figures 1 and 2 on Flare: N submits over HTTP from closed-loop clients, then every job through its lifecycle. */
import { isRead, subtract, type MeterSnapshot } from '../lib/instrument.js';
import { runSubmitLoad } from '../lib/load.js';
import { TEMPLATE, type BenchPlane } from '../lib/plane.js';
import type { SubmitRun } from '../lib/results.js';
import { ratePerSecond, summarize } from '../lib/stats.js';
import { executionsDone } from './flare-jobs.js';

/** Figures 1 and 2: `n` submits from `clients` closed loops, then every job through its lifecycle. */
export async function submitFigure(bench: BenchPlane, n: number, clients: number, say: (line: string) => void) {
  say(
    `flare fig 1${clients === 4 ? '+2' : ''}: ${n} submits from ${clients} client${clients === 1 ? '' : 's'}, then all ${n} jobs to the end`,
  );
  const before = bench.meter.snapshot();
  const cpuBefore = bench.cpu();
  const load = await runSubmitLoad({
    url: bench.url,
    token: bench.userToken,
    body: { template: TEMPLATE },
    n,
    clients,
  });
  const ok = load.samples.filter((s) => s.jobId);
  const jobIds = ok.map((s) => s.jobId!);
  const lastEnd = await bench.events.whenAllTerminal(jobIds, 120_000 + n * 2_000);
  await executionsDone(bench, jobIds, 60_000);
  const usage = subtract(bench.meter.snapshot(), before);
  const cpu = bench.cpu();
  const errors = load.samples.filter((s) => !s.jobId);
  const run: SubmitRun = {
    clients,
    n,
    accepted: ok.length,
    errors: errors.length,
    ...(errors.length ? { firstError: `${errors[0].status} ${errors[0].error}` } : {}),
    acceptedPerS: ratePerSecond(ok.length, load.windowMs),
    latencyMs: summarize(ok.map((s) => s.ms)),
    completed: jobIds.length,
    completedPerS: ratePerSecond(jobIds.length, lastEnd - load.firstSentAt),
    firstSubmitToAllDoneS: (lastEnd - load.firstSentAt) / 1000,
    outcomes: bench.events.outcomes(jobIds),
    cpuMsPerJob: {
      plane: (cpu.planeMs - cpuBefore.planeMs) / n,
      dynamodb: (cpu.dynamoMs - cpuBefore.dynamoMs) / n,
      jobs: (cpu.endedChildrenMs - cpuBefore.endedChildrenMs) / n,
    },
    dynamoCallsPerJob: dynamoCallsPerJob(usage, jobIds.length),
  };
  say(
    `  ${run.acceptedPerS.toFixed(1)} submits/s, p50 ${run.latencyMs.p50.toFixed(1)} ms, p99 ${run.latencyMs.p99.toFixed(1)} ms; ${run.completedPerS.toFixed(1)} completed/s`,
  );
  return { run, jobIds, usage, latencies: ok.map((s) => s.ms) };
}

/** DynamoDB calls per job in `usage`: writes (a transaction counts once) and reads. */
function dynamoCallsPerJob(usage: MeterSnapshot, jobs: number): { writes: number; reads: number } {
  let writes = 0;
  let reads = 0;
  for (const [key, stats] of Object.entries(usage.dynamo)) {
    if (isRead(key)) reads += stats.calls;
    else writes += stats.calls;
  }
  return { writes: writes / jobs, reads: reads / jobs };
}
