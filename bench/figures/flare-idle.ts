/** Figure 3, first half, on Flare: one job at a time on an otherwise idle plane. */
import { setTimeout as sleep } from 'node:timers/promises';
import { JobState } from '../../lambdas/core/job.js';
import { TEMPLATE, type BenchPlane } from '../lib/plane.js';
import type { IdleRun } from '../lib/results.js';
import { summarize } from '../lib/stats.js';
import { executionsDone, ID, storedTime, submit } from './flare-jobs.js';

/**
 * The plane has just started (only figure 6's jobs ran before): its first jobs run
 * while node and DynamoDB Local's JVM still compile their hot paths, so the first
 * `warmup` jobs are measured apart and reported as such (Slurm's idle figure runs
 * after its submit figures, on daemons long warm).
 */
export async function idleFigure(
  bench: BenchPlane,
  n: number,
  warmup: number,
  say: (line: string) => void,
): Promise<IdleRun> {
  say(`flare fig 3: ${warmup} jobs to warm up, then ${n} jobs one at a time on an idle plane`);
  const cold = await idleJobs(bench, warmup);
  const warm = await idleJobs(bench, n);
  const run: IdleRun = {
    n,
    submitToAdmittedMs: summarize(warm.admitted),
    answeredWaiting: warm.answeredWaiting,
    admittedToEventMs: summarize(warm.admittedEvent),
    submitToRunningEventMs: summarize(warm.runningEvent),
    submitToStartMs: summarize(warm.starts),
    ...(warmup
      ? { warmup: { n: warmup, submitToAdmittedMs: summarize(cold.admitted), submitToStartMs: summarize(cold.starts) } }
      : {}),
  };
  say(
    `  submit -> admitted p50 ${run.submitToAdmittedMs!.p50.toFixed(1)} ms (${warm.answeredWaiting} answered WAITING), stored admittedAt -> LAUNCHING event p50 ${run.admittedToEventMs!.p50.toFixed(1)} ms, submit -> job starts p50 ${run.submitToStartMs.p50.toFixed(1)} ms`,
  );
  return run;
}

async function idleJobs(bench: BenchPlane, n: number) {
  const out = {
    admitted: [] as number[],
    answeredWaiting: 0,
    admittedEvent: [] as number[],
    runningEvent: [] as number[],
    starts: [] as number[],
  };
  for (let i = 0; i < n; i++) {
    await sleep(Math.random() * 300);
    const job = await submit(bench, { template: TEMPLATE, command: bench.stamps.startThen(ID, ['true']) });
    await bench.events.whenTerminal(job.id, 30_000);
    const startedAt = await bench.stamps.when(job.id, 'start', 10_000);
    const admittedAt = await storedTime(bench, job.id, 'admittedAt');
    // What the researcher waits for: the answer when it says the job is admitted; else until the stored admission.
    if (job.state === JobState.LAUNCHING) out.admitted.push(job.ms);
    else if (job.state === JobState.WAITING) {
      out.answeredWaiting += 1;
      out.admitted.push(admittedAt - job.sentAt);
    } else throw new Error(`job ${job.id}: the submit answered ${job.state}, neither LAUNCHING nor WAITING`);
    out.admittedEvent.push(bench.events.at(job.id, JobState.LAUNCHING)! - admittedAt);
    out.runningEvent.push(bench.events.at(job.id, JobState.RUNNING)! - job.sentAt);
    out.starts.push(startedAt - job.sentAt);
    await executionsDone(bench, [job.id], 30_000);
  }
  return out;
}
