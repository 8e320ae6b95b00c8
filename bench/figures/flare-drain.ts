/** Figure 3, second half, and figure 4 on Flare: a slot freed while jobs wait, at several queue depths. */
import { setTimeout as sleep } from 'node:timers/promises';
import { JobState } from '../../lambdas/core/job.js';
import { submitJob } from '../../lambdas/core/jobs.js';
import { POOL, PROJECT, TEMPLATE, type BenchPlane } from '../lib/plane.js';
import type { DrainRun } from '../lib/results.js';
import { ratePerSecond, summarize } from '../lib/stats.js';
import type { FlareSettings } from './flare.js';
import { executionsDone, ID, storedTime, submit } from './flare-jobs.js';

const LONG_LIVE_TIMEOUT_MINUTES = 120;

/**
 * All slots held by long jobs, `depth` jobs waiting; one running job is
 * cancelled at a time and the next is timed from the release of the GPUs
 * (the cancelled job's stored finishedAt, written in the release transaction)
 * to its stored admission and to its own first instruction.
 */
export async function drainFigure(
  bench: BenchPlane,
  settings: FlareSettings,
  depths: number[],
  say: (line: string) => void,
): Promise<DrainRun[]> {
  const longJob = {
    template: TEMPLATE,
    command: bench.stamps.startThen(ID, ['sleep', '3600']),
    liveTimeoutMinutes: LONG_LIVE_TIMEOUT_MINUTES,
  };
  say(`flare fig 3/4: ${settings.slots} long jobs hold every slot`);
  const holders: string[] = [];
  for (let i = 0; i < settings.slots; i++) holders.push((await submit(bench, longJob)).id);
  for (const id of holders) await bench.stamps.when(id, 'start', 30_000);
  const seen = new Set(holders);
  let waiting = 0;
  const runs: DrainRun[] = [];
  try {
    for (const depth of depths) {
      const fill = await fillQueue(bench, longJob, depth - waiting, say);
      waiting = depth;
      // A few submits through the API into a queue this deep: what a user waits for.
      const submitMs: number[] = [];
      const toWaitingEvent: number[] = [];
      for (let i = 0; i < settings.submitsAtDepth; i++) {
        const job = await submit(bench, longJob);
        if (job.state !== JobState.WAITING)
          throw new Error(`job ${job.id} was answered ${job.state}, not WAITING: the pool was not full`);
        const at = await bench.events.whenState(job.id, JobState.WAITING, 120_000);
        submitMs.push(job.ms);
        toWaitingEvent.push(at - job.sentAt);
        waiting += 1;
      }
      say(`flare fig ${depths.length > 1 ? 4 : 3}: ${settings.drainSamples} drains with ${waiting} jobs waiting`);
      const firstDepth = waiting;
      const releasedToAdmitted: number[] = [];
      const releasedToStart: number[] = [];
      const cancelToStart: number[] = [];
      for (let i = 0; i < settings.drainSamples; i++) {
        const victim = holders.shift()!;
        const cancelAt = Date.now();
        const answer = await bench.user.call('DELETE', `/v1/jobs/${victim}`);
        if (answer.status !== 202)
          throw new Error(`cancel of ${victim} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
        // Events only say which job and when it is done; the instants are the ones the jobs store and write.
        await bench.events.whenTerminal(victim, 60_000);
        const next = await bench.events.next(JobState.LAUNCHING, cancelAt, seen, 60_000);
        seen.add(next.jobId);
        holders.push(next.jobId);
        waiting -= 1;
        const releasedAt = await storedTime(bench, victim, 'finishedAt');
        const admittedAt = await storedTime(bench, next.jobId, 'admittedAt');
        const startedAt = await bench.stamps.when(next.jobId, 'start', 60_000);
        releasedToAdmitted.push(admittedAt - releasedAt);
        releasedToStart.push(startedAt - releasedAt);
        cancelToStart.push(startedAt - cancelAt);
        await executionsDone(bench, [victim], 30_000);
        await sleep(50);
      }
      const run: DrainRun = {
        depth: firstDepth,
        n: releasedToStart.length,
        releasedToAdmittedMs: summarize(releasedToAdmitted),
        releasedToStartMs: summarize(releasedToStart),
        cancelToStartMs: summarize(cancelToStart),
        fill,
        ...(submitMs.length
          ? { submitAtDepth: { submitMs: summarize(submitMs), submitToWaitingEventMs: summarize(toWaitingEvent) } }
          : {}),
      };
      say(
        `  released -> next admitted p50 ${run.releasedToAdmittedMs!.p50.toFixed(1)} ms, -> next job starts p50 ${run.releasedToStartMs!.p50.toFixed(1)} ms, p99 ${run.releasedToStartMs!.p99.toFixed(1)} ms`,
      );
      runs.push(run);
    }
  } finally {
    // Nothing more may start: close the pool, then cancel what runs.
    await bench.admin.call('PATCH', `/v1/pools/${POOL}`, { maxGpus: 0 });
    await Promise.all(holders.map((id) => bench.user.call('DELETE', `/v1/jobs/${id}`)));
    await Promise.all(holders.map((id) => bench.events.whenTerminal(id, 60_000).catch(() => undefined)));
  }
  return runs;
}

/**
 * Put `count` jobs in the queue as the API would: stored by core's own
 * submitJob (WAITING, for the pool is full), without the HTTP round trip;
 * figure 4 times a few submits through the API separately (`submitAtDepth`).
 */
async function fillQueue(
  bench: BenchPlane,
  body: { template: string; command: string[]; liveTimeoutMinutes: number },
  count: number,
  say: (line: string) => void,
): Promise<DrainRun['fill']> {
  if (count <= 0) return { how: 'already queued', jobs: 0, perS: Number.NaN };
  say(`  queueing ${count} jobs`);
  const identity = { name: 'bench', projects: [PROJECT], admin: false };
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < count) {
        next++;
        const { job } = await submitJob(bench.plane.deps, identity, body);
        if (job.state !== JobState.WAITING)
          throw new Error(`job ${job.id} was stored ${job.state}, not WAITING: the pool was not full`);
      }
    }),
  );
  return { how: "core's submitJob", jobs: count, perS: ratePerSecond(count, performance.now() - started) };
}
