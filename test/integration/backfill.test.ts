/**
 * Latest starts and backfill against the real drain (core/queue.ts drainPool) on
 * DynamoDB Local, with a clock the test moves. A small event loop plays each
 * admitted job's life as the workflow would (launch, run, stop, release, drain),
 * each phase taking its whole bound (or, in the "early" runs, part of it), and
 * jobs arrive over time. Promises are read through the API's own core calls
 * (getJob, listJobs) at submit and after every event, and checked against when
 * each job was really admitted.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Deps, Logger } from '../../lambdas/core/deps.js';
import { forecastBounds } from '../../lambdas/core/forecast.js';
import { JobState, QUEUED_STATES, type Job } from '../../lambdas/core/job.js';
import { getJob, listJobs } from '../../lambdas/core/jobs.js';
import { updatePool } from '../../lambdas/core/pools.js';
import { drainPool, type DrainResult } from '../../lambdas/core/admission.js';
import type { Compute } from '../../lambdas/ports/compute.js';
import type { JobLogs } from '../../lambdas/ports/job-logs.js';
import { dynamoPerFile, freshStore, quietLog, RecordingEvents } from '../support/harness.js';
import { rng } from '../support/random.js';
import { root } from '../support/identities.js';

const T0 = Date.parse('2025-03-01T00:00:00.000Z');
const MIN = 60_000;
const bounds = forecastBounds({});
const POOL = 'p';

interface Plan {
  id: string;
  arriveAt: number;
  project: string;
  gpus: number;
  liveTimeoutMinutes: number;
  /** Parts of the launch, run and stop bounds this job really takes (1: the worst case). */
  launch: number;
  run: number;
  stop: number;
}

interface Scenario {
  cap: number;
  plans: Plan[];
  quotas?: Array<{ project: string; hardLimit: number }>;
}

function scenario(seed: number, opts: { early: boolean; quotas?: boolean }): Scenario {
  const rnd = rng(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
  const count = 9 + Math.floor(rnd() * 6);
  let at = T0;
  const plans = Array.from({ length: count }, (_, i): Plan => {
    at += Math.floor(rnd() * 25 * MIN);
    const part = () => (opts.early ? 0.05 + rnd() * 0.95 : 1);
    const project = pick(['vision', 'nlp', 'speech']);
    const gpus = pick([1, 1, 1, 2, 2, 3, 4]);
    return {
      id: `j-${String(seed).padStart(4, '0')}-${String(i).padStart(2, '0')}`,
      arriveAt: at,
      project,
      // With the quota, vision's jobs fit it (a larger one is refused at submit).
      gpus: opts.quotas && project === 'vision' ? Math.min(gpus, 2) : gpus,
      liveTimeoutMinutes: pick([1, 5, 10, 20, 45, 90, 180]),
      launch: part(),
      run: part(),
      stop: part(),
    };
  });
  return { cap: 4, plans, ...(opts.quotas ? { quotas: [{ project: 'vision', hardLimit: 2 }] } : {}) };
}

interface Run {
  admittedAt: Map<string, number>;
  /** Every promise read for a job while it was queued, with when it was read. */
  promises: Map<string, Array<{ at: number; latestStartAt: string | null }>>;
  /** Each backfill: the job and the head it passed. */
  backfills: Array<{ jobId: string; head: string }>;
}

type Event = { at: number; seq: number; kind: 'arrive' | 'started' | 'stopping' | 'released'; id: string };

describe('latest start and backfill against the real drain', { timeout: 600_000 }, () => {
  const dynamo = dynamoPerFile();

  async function world(opts: { cap: number; backfill?: boolean; quotas?: Scenario['quotas'] }) {
    const ports = await freshStore(dynamo());
    await ports.store.putPool({
      name: POOL,
      instanceType: 'local',
      gpusPerInstance: 1,
      maxGpus: opts.cap,
      ...(opts.backfill !== undefined ? { backfill: opts.backfill } : {}),
    });
    for (const q of opts.quotas ?? [])
      await ports.store.putQuota({ project: q.project, resource: 'gpus', hardLimit: q.hardLimit });
    const clock = { now: T0 };
    const backfills: Run['backfills'] = [];
    const log: Logger = {
      ...quietLog,
      info(message, data) {
        if (message === 'backfilled') backfills.push({ jobId: String(data?.jobId), head: String(data?.head) });
      },
    };
    const deps: Deps = {
      ...ports,
      compute: {} as Compute,
      logs: {} as JobLogs,
      workflows: { start: async () => {}, sendTaskSuccess: async () => {}, runningJobIds: async () => new Set() },
      events: new RecordingEvents(),
      log,
      now: () => new Date(clock.now),
      newId: () => assert.fail('jobs are made by the test'),
    };
    return { deps, clock, backfills };
  }

  function jobOf(plan: Plan): Job {
    return {
      id: plan.id,
      name: plan.id,
      project: plan.project,
      owner: 'alice',
      template: 'train',
      pool: POOL,
      image: 'tools',
      command: ['true'],
      env: {},
      gpus: plan.gpus,
      nodeCount: 1,
      liveTimeoutMinutes: plan.liveTimeoutMinutes,
      state: JobState.WAITING,
      createdAt: new Date(plan.arriveAt).toISOString(),
    };
  }

  /** Plays the scenario to the end: every job admitted, run and released. */
  async function play(s: Scenario, backfill: boolean): Promise<Run> {
    const { deps, clock, backfills } = await world({ cap: s.cap, backfill, quotas: s.quotas });
    const run: Run = { admittedAt: new Map(), promises: new Map(), backfills };
    const plans = new Map(s.plans.map((p) => [p.id, p]));
    const agenda: Event[] = [];
    let seq = 0;
    const schedule = (at: number, kind: Event['kind'], id: string) => agenda.push({ at, seq: seq++, kind, id });
    for (const p of s.plans) schedule(p.arriveAt, 'arrive', p.id);

    const afterDrain = (drained: DrainResult) => {
      for (const job of drained.admitted) {
        run.admittedAt.set(job.id, clock.now);
        schedule(clock.now + bounds.launchMs * plans.get(job.id)!.launch, 'started', job.id);
      }
    };
    const readPromises = async () => {
      const page = await listJobs(deps, root, { limit: 1000 });
      for (const job of page.items) {
        if (!QUEUED_STATES.includes(job.state)) continue;
        assert.notEqual(job.latestStartAt, undefined, `queued job ${job.id} is listed with a latest start (or null)`);
        run.promises.get(job.id)!.push({ at: clock.now, latestStartAt: job.latestStartAt ?? null });
      }
    };

    while (agenda.length > 0) {
      agenda.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const event = agenda.shift()!;
      clock.now = event.at;
      const plan = plans.get(event.id)!;
      if (event.kind === 'arrive') {
        run.promises.set(plan.id, []);
        await deps.jobs.createJob(jobOf(plan));
        // What a user reads right after submitting, before its Admit step drains.
        const read = await getJob(deps, root, plan.id);
        run.promises.get(plan.id)!.push({ at: clock.now, latestStartAt: read.latestStartAt ?? null });
        afterDrain(await drainPool(deps, POOL));
      } else if (event.kind === 'started') {
        const expiresAt = clock.now + plan.liveTimeoutMinutes * MIN;
        await deps.jobs.updateJob(plan.id, [JobState.LAUNCHING], {
          state: JobState.RUNNING,
          startedAt: new Date(clock.now).toISOString(),
          expiresAt: new Date(expiresAt).toISOString(),
        });
        schedule(clock.now + plan.liveTimeoutMinutes * MIN * plan.run, 'stopping', plan.id);
      } else if (event.kind === 'stopping') {
        await deps.jobs.updateJob(plan.id, [JobState.RUNNING], {
          state: JobState.STOPPING,
          stateReason: 'live timeout reached',
        });
        schedule(clock.now + bounds.stopMs * plan.stop, 'released', plan.id);
      } else {
        const job = (await deps.jobs.getJob(plan.id))!;
        const finished = await deps.jobs.finishJob(job, {
          state: JobState.EXPIRED,
          stateReason: 'live timeout reached',
          finishedAt: new Date(clock.now).toISOString(),
        });
        assert.ok(finished, `${plan.id} released once`);
        afterDrain(await drainPool(deps, POOL));
      }
      await readPromises();
    }
    assert.equal(run.admittedAt.size, s.plans.length, 'every job was admitted in the end');
    return run;
  }

  function assertPromisesHeld(run: Run, label: string): { given: number; none: number } {
    let given = 0;
    let none = 0;
    for (const [id, promises] of run.promises) {
      const admitted = run.admittedAt.get(id)!;
      for (const p of promises) {
        if (p.latestStartAt === null) {
          none += 1;
          continue;
        }
        given += 1;
        assert.ok(
          admitted <= Date.parse(p.latestStartAt),
          `${label}: ${id} was admitted at ${new Date(admitted).toISOString()}, after the latest start ${p.latestStartAt} promised at ${new Date(p.at).toISOString()}`,
        );
      }
    }
    return { given, none };
  }

  it('strict FIFO, every phase taking its whole bound: every job is admitted no later than any latest start promised for it', async () => {
    let given = 0;
    for (let seed = 1; seed <= 6; seed++)
      given += assertPromisesHeld(await play(scenario(seed, { early: false }), false), `seed ${seed}`).given;
    assert.ok(given > 100, `promises were given (${given})`);
  });

  it('strict FIFO with jobs ending early: the promises still hold (they only bring starts forward)', async () => {
    for (let seed = 11; seed <= 15; seed++)
      assertPromisesHeld(await play(scenario(seed, { early: true }), false), `seed ${seed}`);
  });

  it('with a gpus quota that binds: the promises given hold, and jobs a quota may hold back get none', async () => {
    let none = 0;
    let given = 0;
    for (let seed = 21; seed <= 25; seed++) {
      const counts = assertPromisesHeld(
        await play(scenario(seed, { early: seed % 2 === 0, quotas: true }), false),
        `seed ${seed}`,
      );
      none += counts.none;
      given += counts.given;
    }
    assert.ok(none > 0, 'the quota made some promises impossible');
    assert.ok(given > 0, 'and others were still given');
  });

  it('backfill never delays the head it passes, and every promise holds with backfill on', async () => {
    let backfilled = 0;
    for (let seed = 31; seed <= 40; seed++) {
      const s = scenario(seed, { early: false });
      const strict = await play(s, false);
      assert.equal(strict.backfills.length, 0, 'strict FIFO never backfills');
      const withBackfill = await play(s, true);
      assertPromisesHeld(withBackfill, `seed ${seed} with backfill`);
      for (const { jobId, head } of withBackfill.backfills) {
        backfilled += 1;
        assert.ok(
          withBackfill.admittedAt.get(head)! <= strict.admittedAt.get(head)!,
          `seed ${seed}: ${jobId} passed ${head}, which was then admitted at ${new Date(withBackfill.admittedAt.get(head)!).toISOString()} instead of ${new Date(strict.admittedAt.get(head)!).toISOString()}`,
        );
        assert.ok(
          withBackfill.admittedAt.get(jobId)! < strict.admittedAt.get(jobId)!,
          `seed ${seed}: backfilled ${jobId} started sooner than under strict FIFO`,
        );
      }
    }
    assert.ok(backfilled >= 3, `the scenarios exercised backfill (${backfilled} backfills)`);
  });

  it('backfill with jobs ending early: every promise holds', async () => {
    for (let seed = 41; seed <= 45; seed++)
      assertPromisesHeld(await play(scenario(seed, { early: true }), true), `seed ${seed}`);
  });

  describe('one blocked head', () => {
    /** Cap 4: a 2-GPU job runs for 2 more hours; the head needs 4; behind it wait 1-GPU jobs: short, long, and one of the head's project. */
    async function blockedHead(backfill?: boolean) {
      const w = await world({ cap: 4, ...(backfill !== undefined ? { backfill } : {}) });
      const mk = (id: string, over: Partial<Job>): Job => ({
        ...jobOf({ id, arriveAt: T0, project: 'vision', gpus: 1, liveTimeoutMinutes: 10, launch: 1, run: 1, stop: 1 }),
        ...over,
      });
      const runningJob = mk('a-running', { gpus: 2, project: 'nlp' });
      await w.deps.jobs.createJob(runningJob);
      assert.equal((await drainPool(w.deps, POOL)).admitted.length, 1);
      await w.deps.jobs.updateJob(runningJob.id, [JobState.LAUNCHING], {
        state: JobState.RUNNING,
        startedAt: new Date(T0).toISOString(),
        expiresAt: new Date(T0 + 120 * MIN).toISOString(),
      });
      const head = mk('b-head', { gpus: 4, createdAt: new Date(T0 + 1).toISOString() });
      const short = mk('c-short', {
        project: 'speech',
        liveTimeoutMinutes: 30,
        createdAt: new Date(T0 + 2).toISOString(),
      });
      const long = mk('d-long', {
        project: 'speech',
        liveTimeoutMinutes: 180,
        createdAt: new Date(T0 + 3).toISOString(),
      });
      const sameProject = mk('e-same-project', {
        project: 'vision',
        liveTimeoutMinutes: 5,
        createdAt: new Date(T0 + 4).toISOString(),
      });
      for (const j of [head, short, long, sameProject]) await w.deps.jobs.createJob(j);
      return { ...w, head, short, long, sameProject };
    }

    it('strict FIFO is the default: nothing starts behind the head, though a 1-GPU job fits', async () => {
      const w = await blockedHead();
      const drained = await drainPool(w.deps, POOL);
      assert.deepEqual(drained.admitted, []);
      assert.equal((await w.deps.limits.getPool(POOL))?.backfill, false);
      assert.equal((await w.deps.jobs.getJob(w.short.id))?.state, JobState.WAITING);
    });

    it("backfill admits the job that ends before the head's latest start, and not one that would not or whose project waits in the head", async () => {
      const w = await blockedHead();
      const promised = (await getJob(w.deps, root, w.head.id)).latestStartAt;
      assert.equal(
        promised,
        new Date(T0 + 120 * MIN + bounds.stopMs).toISOString(),
        "the head's latest start: the running job's expiry + the stop bound",
      );
      // Turning backfill on drains the pool at once.
      const pool = await updatePool(w.deps, root, POOL, { backfill: true });
      assert.equal(pool.backfill, true);
      const states = async (...jobs: Job[]) =>
        Promise.all(jobs.map(async (j) => (await w.deps.jobs.getJob(j.id))?.state));
      // 30 min job: 20 min launch + 30 + 8 min stop = 58 min <= 128 min; 180 min job: not; vision waits in the head.
      assert.deepEqual(await states(w.head, w.short, w.long, w.sameProject), [
        JobState.WAITING,
        JobState.LAUNCHING,
        JobState.WAITING,
        JobState.WAITING,
      ]);
      assert.deepEqual(w.backfills, [{ jobId: w.short.id, head: w.head.id }]);
      assert.equal((await getJob(w.deps, root, w.head.id)).latestStartAt, promised, "the head's promise did not move");
      // The long job is behind the head: its promise is after the head's worst case.
      const longPromise = (await getJob(w.deps, root, w.long.id)).latestStartAt!;
      assert.ok(Date.parse(longPromise) >= Date.parse(promised!));
    });

    it('backfill off again: strict FIFO', async () => {
      const w = await blockedHead(true);
      await updatePool(w.deps, root, POOL, { backfill: false });
      assert.deepEqual((await drainPool(w.deps, POOL)).admitted, []);
    });
  });
});
