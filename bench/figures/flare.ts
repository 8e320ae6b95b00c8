/**
 * Figures 1-6 on Flare's local control plane. Each figure drives the plane
 * over HTTP as a user would and reads the instants it needs from the plane's
 * event bus (state changes) and from the jobs themselves (the timestamps they
 * write when they start and when they get SIGTERM).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { JobState } from '../../lambdas/core/job.js';
import { submitJob } from '../../lambdas/core/jobs.js';
import { US_EAST_1_PRICES, costPerJob, type LambdaUsage } from '../lib/cost.js';
import { isRead, subtract, type MeterSnapshot } from '../lib/instrument.js';
import { runSubmitLoad } from '../lib/load.js';
import { startBenchPlane, POOL, PROJECT, TEMPLATE, type BenchPlane } from '../lib/plane.js';
import type {
  CostFigure,
  DrainRun,
  ExpiryRun,
  FlareResults,
  IdleRun,
  SubmitRun,
  TransitionsJob,
} from '../lib/results.js';
import { ratePerSecond, summarize, withRepeats } from '../lib/stats.js';
import { measureStoreCeiling } from '../lib/store-ceiling.js';

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

/** Memory of every Flare function (FlareFunction's default, lib/lambda-defaults.ts). */
const LAMBDA_MEMORY_MB = 512;
const LONG_LIVE_TIMEOUT_MINUTES = 120;
const ID = 'FLARE_JOB_ID';

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
      "submits over HTTP from a worker thread (its own event loop); instants of state changes from the plane's event bus; job start and SIGTERM instants written by the jobs themselves (`date +%s%N`)",
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

async function submit(
  bench: BenchPlane,
  body: Record<string, unknown>,
): Promise<{ id: string; ms: number; sentAt: number }> {
  const sentAt = Date.now();
  const answer = await bench.user.call('POST', '/v1/jobs', body);
  if (answer.status !== 202) throw new Error(`submit answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  return { id: String(answer.body.id), ms: answer.ms, sentAt };
}

/** Until no workflow execution of these jobs is running (the Drain step after the terminal state included). */
async function executionsDone(bench: BenchPlane, jobIds: readonly string[], timeoutMs: number): Promise<void> {
  const ids = new Set(jobIds);
  const deadline = Date.now() + timeoutMs;
  while (bench.plane.workflows.list().some((e) => ids.has(e.jobId) && e.status === 'RUNNING')) {
    if (Date.now() > deadline) throw new Error(`workflows of ${ids.size} jobs still running after ${timeoutMs} ms`);
    await sleep(10);
  }
}

/** Figures 1 and 2: `n` submits from `clients` closed loops, then every job through its lifecycle. */
async function submitFigure(bench: BenchPlane, n: number, clients: number, say: (line: string) => void) {
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

/**
 * Figure 3, first half: one job at a time, random gaps, on an otherwise idle plane.
 * The plane has just started (only figure 6's jobs ran before): its first jobs run
 * while node and DynamoDB Local's JVM still compile their hot paths, so the first
 * `warmup` jobs are measured apart and reported as such (Slurm's idle figure runs
 * after its submit figures, on daemons long warm).
 */
async function idleFigure(bench: BenchPlane, n: number, warmup: number, say: (line: string) => void): Promise<IdleRun> {
  say(`flare fig 3: ${warmup} jobs to warm up, then ${n} jobs one at a time on an idle plane`);
  const cold = await idleJobs(bench, warmup);
  const warm = await idleJobs(bench, n);
  const run: IdleRun = {
    n,
    submitToAdmittedMs: summarize(warm.admitted),
    admittedToEventMs: summarize(warm.admittedEvent),
    submitToRunningEventMs: summarize(warm.runningEvent),
    submitToStartMs: summarize(warm.starts),
    ...(warmup
      ? { warmup: { n: warmup, submitToAdmittedMs: summarize(cold.admitted), submitToStartMs: summarize(cold.starts) } }
      : {}),
  };
  say(
    `  submit -> admitted (stored) p50 ${run.submitToAdmittedMs!.p50.toFixed(1)} ms, -> LAUNCHING event p50 ${run.admittedToEventMs!.p50.toFixed(1)} ms later, -> job starts p50 ${run.submitToStartMs.p50.toFixed(1)} ms`,
  );
  return run;
}

async function idleJobs(
  bench: BenchPlane,
  n: number,
): Promise<{ admitted: number[]; admittedEvent: number[]; runningEvent: number[]; starts: number[] }> {
  const out = {
    admitted: [] as number[],
    admittedEvent: [] as number[],
    runningEvent: [] as number[],
    starts: [] as number[],
  };
  for (let i = 0; i < n; i++) {
    await sleep(Math.random() * 300);
    const job = await submit(bench, { template: TEMPLATE, command: bench.stamps.startThen(ID, ['true']) });
    await bench.events.whenTerminal(job.id, 30_000);
    const startedAt = await bench.stamps.when(job.id, 'start', 10_000);
    // Admission as stored, not as the event reports it: the event comes later, through the jobs-table stream.
    const stored = await bench.user.call('GET', `/v1/jobs/${job.id}`);
    if (stored.status !== 200 || !stored.body.admittedAt)
      throw new Error(
        `job ${job.id}: GET answered ${stored.status} without admittedAt: ${JSON.stringify(stored.body)}`,
      );
    const admittedAt = Date.parse(stored.body.admittedAt);
    out.admitted.push(admittedAt - Date.parse(stored.body.createdAt));
    out.admittedEvent.push(bench.events.at(job.id, JobState.LAUNCHING)! - admittedAt);
    out.runningEvent.push(bench.events.at(job.id, JobState.RUNNING)! - job.sentAt);
    out.starts.push(startedAt - job.sentAt);
    await executionsDone(bench, [job.id], 30_000);
  }
  return out;
}

/** Figure 5: jobs that never end on their own, with a fractional live timeout. */
async function expiryFigure(
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
      const stored = await bench.plane.deps.store.getJob(job.id);
      if (end.state !== JobState.EXPIRED || !stored?.expiresAt)
        throw new Error(`job ${job.id} ended ${end.state}, not EXPIRED`);
      const deadline = Date.parse(stored.expiresAt);
      termLate.push((await bench.stamps.when(job.id, 'term', 10_000)) - deadline);
      releasedLate.push(end.at - deadline);
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

function transitionsOf(bench: BenchPlane, jobId: string, runSeconds: number): TransitionsJob {
  const executions = bench.plane.workflows.list().filter((e) => e.jobId === jobId);
  const states: string[] = [];
  executions.forEach((e, i) => {
    if (i > 0) states.push('(new execution)');
    states.push(...e.states);
  });
  return {
    runSeconds,
    jobId,
    state: bench.events.terminal(jobId)?.state ?? 'not ended',
    transitions: executions.reduce((sum, e) => sum + e.transitions, 0),
    executions: executions.length,
    states,
  };
}

/**
 * Figure 3 (second half) and figure 4: all slots held by long jobs, `depth`
 * jobs waiting; one running job is cancelled at a time and the next is timed
 * from the release of the GPUs to its own first instruction.
 */
async function drainFigure(
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
      const toWaiting: number[] = [];
      for (let i = 0; i < settings.submitsAtDepth; i++) {
        const job = await submit(bench, longJob);
        const at = await bench.events.whenState(job.id, JobState.WAITING, 120_000);
        submitMs.push(job.ms);
        toWaiting.push(at - job.sentAt);
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
        const released = await bench.events.whenTerminal(victim, 60_000);
        const next = await bench.events.next(JobState.LAUNCHING, released.at, seen, 60_000);
        seen.add(next.jobId);
        holders.push(next.jobId);
        waiting -= 1;
        const startedAt = await bench.stamps.when(next.jobId, 'start', 60_000);
        releasedToAdmitted.push(next.at - released.at);
        releasedToStart.push(startedAt - released.at);
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
          ? { submitAtDepth: { submitMs: summarize(submitMs), submitToWaitingMs: summarize(toWaiting) } }
          : {}),
      };
      say(
        `  released -> next job starts p50 ${run.releasedToStartMs!.p50.toFixed(1)} ms, p99 ${run.releasedToStartMs!.p99.toFixed(1)} ms`,
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

/** One scenario's usage per job, priced. */
function costFigure(
  scenario: string,
  jobIds: readonly string[],
  usage: MeterSnapshot,
  bench: BenchPlane,
  apiLatencies: number[],
): CostFigure {
  const jobs = jobIds.length;
  const per = (x: number) => x / jobs;
  const ids = new Set(jobIds);
  const transitions = bench.plane.workflows
    .list()
    .filter((e) => ids.has(e.jobId))
    .reduce((sum, e) => sum + e.transitions, 0);
  const taskCalls = Object.values(usage.tasks).reduce((sum, t) => sum + t.calls, 0);
  const taskMs = Object.values(usage.tasks).reduce((sum, t) => sum + t.ms, 0);
  const taskMean = taskCalls ? taskMs / taskCalls : 0;
  const apiMean = apiLatencies.length ? apiLatencies.reduce((a, b) => a + b, 0) / apiLatencies.length : 0;
  // Every container started is one Run Command whose final status is an event; every instance stopped, two EC2 state changes.
  const started = usage.compute.start ?? 0;
  const stops = usage.compute.stop ?? 0;
  const lambdas: LambdaUsage[] = [
    {
      name: 'api',
      invocations: per(apiLatencies.length),
      meanDurationMs: apiMean,
      memoryMb: LAMBDA_MEMORY_MB,
      measured: true,
      note: 'POST /v1/jobs only (no polling); duration is the HTTP round trip on loopback, an upper bound of the handler time',
    },
    {
      name: 'tasks',
      invocations: per(taskCalls),
      meanDurationMs: taskMean,
      memoryMb: LAMBDA_MEMORY_MB,
      measured: true,
    },
    {
      name: 'computeEvents',
      invocations: per(started + 2 * stops),
      meanDurationMs: taskMean,
      memoryMb: LAMBDA_MEMORY_MB,
      measured: false,
      note: "one Run Command completion per container started plus two EC2 state changes (shutting-down, terminated) per instance stopped, counted from the local run's starts and stops; duration assumed equal to a tasks invocation",
    },
    {
      name: 'streamPublisher',
      invocations: per(usage.jobsTableWrites),
      meanDurationMs: taskMean,
      memoryMb: LAMBDA_MEMORY_MB,
      measured: false,
      note: 'one invocation per jobs-table INSERT/MODIFY (its stream record): the upper bound, a busy stream batches up to 100 records; duration assumed equal to a tasks invocation',
    },
  ];
  const dynamo = Object.entries(usage.dynamo);
  const sum = (pick: (s: (typeof dynamo)[number][1]) => number) => dynamo.reduce((total, [, s]) => total + pick(s), 0);
  const perJob = {
    transitions: per(transitions),
    lambdas,
    dynamoWriteUnits: per(sum((s) => s.writeUnits)),
    dynamoReadUnits: per(sum((s) => s.readUnits)),
    eventBridgeEvents: per(bench.events.eventCount(ids)),
    apiRequests: per(apiLatencies.length),
  };
  return {
    scenario,
    jobs,
    usage: perJob,
    breakdown: costPerJob(perJob, US_EAST_1_PRICES),
    dynamoCalls: dynamo
      .map(([operation, s]) => ({
        operation,
        perJob: per(s.calls),
        failedPerJob: per(s.failed),
        meanMs: s.ms / s.calls,
      }))
      .sort((a, b) => b.perJob - a.perJob),
    tasks: Object.entries(usage.tasks)
      .map(([task, s]) => ({ task, perJob: per(s.calls), meanMs: s.ms / s.calls }))
      .sort((a, b) => b.perJob - a.perJob),
  };
}
