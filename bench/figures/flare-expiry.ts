/** Figure 5 on Flare: how late after its stored deadline a job is stopped, and its GPUs released. */
import { JobState } from '../../lambdas/core/job.js';
import { TEMPLATE, type BenchPlane } from '../lib/plane.js';
import type { ExpiryRun } from '../lib/results.js';
import { summarize } from '../lib/stats.js';
import type { FlareSettings } from './flare.js';
import { executionsDone, ID, submit } from './flare-jobs.js';

/** Jobs that never end on their own, with a fractional live timeout, `perRound` at a time. */
export async function expiryFigure(
  bench: BenchPlane,
  settings: FlareSettings,
  perRound: number,
  say: (line: string) => void,
): Promise<ExpiryRun> {
  say(`flare fig 5: ${settings.expiryRounds} x ${perRound} jobs with a ${settings.expiryMinutes * 60} s live timeout`);
  const termLate: number[] = [];
  const releasedLate: number[] = [];
  for (let round = 0; round < settings.expiryRounds; round++) {
    const jobs = await Promise.all(
      Array.from({ length: perRound }, () =>
        submit(bench, {
          template: TEMPLATE,
          command: bench.stamps.sleepRecordingTerm(ID, 3600),
          liveTimeoutMinutes: settings.expiryMinutes,
        }),
      ),
    );
    for (const job of jobs) {
      const end = await bench.events.whenTerminal(job.id, 60_000 + settings.expiryMinutes * 60_000);
      const stored = await bench.plane.deps.jobs.getJob(job.id);
      if (end.state !== JobState.EXPIRED || !stored?.expiresAt || !stored.finishedAt)
        throw new Error(`job ${job.id} ended ${end.state}, not EXPIRED with expiresAt and finishedAt`);
      const deadline = Date.parse(stored.expiresAt);
      termLate.push((await bench.stamps.when(job.id, 'term', 10_000)) - deadline);
      // The release as stored (finishedAt, in the release transaction), not the terminal event's arrival.
      releasedLate.push(Date.parse(stored.finishedAt) - deadline);
    }
    await executionsDone(
      bench,
      jobs.map((j) => j.id),
      30_000,
    );
  }
  const run: ExpiryRun = {
    n: termLate.length,
    limitSeconds: settings.expiryMinutes * 60,
    termLateMs: summarize(termLate),
    releasedLateMs: summarize(releasedLate),
  };
  say(`  SIGTERM p50 ${run.termLateMs.p50.toFixed(0)} ms, max ${run.termLateMs.max.toFixed(0)} ms after expiresAt`);
  return run;
}
