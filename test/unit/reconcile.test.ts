/**
 * core/reconcile.ts with in-memory ports: the decisions that are hard to
 * arrange on real engines (index lag, young marks, a part failing).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Deps } from '../../lambdas/core/deps.js';
import { StaleJob } from '../../lambdas/core/errors.js';
import { JobState, terminalFor, type Job, type Outcome } from '../../lambdas/core/job.js';
import { counterSubject, reconcile, ReconcileFailed, type ReconcileOptions } from '../../lambdas/core/reconcile.js';
import { executionJobId, executionName } from '../../lambdas/core/admission.js';
import type { ManagedInstance } from '../../lambdas/ports/compute.js';
import type { OperatorEvent } from '../../lambdas/ports/events.js';
import type { CounterRow, Mark, MarkKind, ReconcileStore } from '../../lambdas/ports/reconcile-store.js';
import { jobRecord } from '../support/jobs.js';

const J1 = 'j-1111111111111111';
const J2 = 'j-2222222222222222';
const J3 = 'j-3333333333333333';

class MemoryReconcileStore implements ReconcileStore {
  readonly marks = new Map<string, Mark & { expiresAt: number }>();
  counters: CounterRow[] = [];
  readonly repairs: { read: CounterRow; used: number }[] = [];
  async getMarks(kind: MarkKind, subjects: readonly string[], now: Date): Promise<Map<string, Mark>> {
    const found = new Map<string, Mark>();
    for (const s of subjects) {
      const m = this.marks.get(`${kind}#${s}`);
      if (m && m.expiresAt > now.getTime()) found.set(s, { observed: m.observed, markedAt: m.markedAt });
    }
    return found;
  }
  async putMark(kind: MarkKind, subject: string, mark: Mark, expiresAt: Date): Promise<void> {
    this.marks.set(`${kind}#${subject}`, { ...mark, expiresAt: expiresAt.getTime() });
  }
  async clearMarks(kind: MarkKind, subjects: readonly string[]): Promise<void> {
    for (const s of subjects) this.marks.delete(`${kind}#${s}`);
  }
  async listCounters(): Promise<CounterRow[]> {
    return this.counters.map((c) => ({ ...c }));
  }
  async repairCounter(read: CounterRow, used: number): Promise<boolean> {
    this.repairs.push({ read, used });
    return true;
  }
}

function job(id: string, state: Job['state'], overrides: Partial<Job> = {}): Job {
  return jobRecord({
    id,
    name: id,
    template: 't',
    image: 'i',
    state,
    createdAt: '2030-01-01T00:00:00.000Z',
    ...(['LAUNCHING', 'RUNNING', 'STOPPING'].includes(state)
      ? { heldGpus: 1, admittedAt: '2030-01-01T00:00:01.000Z' }
      : {}),
    ...overrides,
  });
}

interface Fakes {
  /** What the active index returns (may lag). */
  indexed: Job[];
  /** What a consistent read returns. */
  stored: Map<string, Job>;
  instances: ManagedInstance[];
  running: Set<string>;
  started: string[];
  terminated: string[];
  events: OperatorEvent[];
  clock: { now: number };
  failCompute?: boolean;
  /** Outcomes recorded through core/completion.ts, and the task tokens answered. */
  outcomes: { jobId: string; outcome: Outcome }[];
  taskSuccesses: { token: string; output: unknown }[];
  /** What Compute.endedOn answers (the local driver's exit record); absent: the method is absent, as on AWS. */
  endedOn?: Map<string, Outcome>;
}

function fakes(jobs: Job[] = []): Fakes {
  return {
    indexed: jobs,
    stored: new Map(jobs.map((j) => [j.id, j])),
    instances: [],
    running: new Set(),
    started: [],
    terminated: [],
    events: [],
    clock: { now: f0() },
    outcomes: [],
    taskSuccesses: [],
  };
}

function deps(f: Fakes): Deps {
  return {
    queue: { listActiveJobs: async () => f.indexed.map((j) => ({ ...j })) },
    limits: { listPools: async () => [] },
    jobs: {
      getJob: async (id: string) => f.stored.get(id),
      updateJob: async (id: string, from: readonly JobState[], set: Partial<Job>) => {
        const stored = f.stored.get(id);
        if (!stored || !from.includes(stored.state)) throw new StaleJob(id);
        const updated = { ...stored, ...set };
        f.stored.set(id, updated);
        return updated;
      },
      recordOutcome: async (id: string, outcome: Outcome) => {
        const stored = f.stored.get(id);
        if (!stored || stored.outcome) return undefined;
        const updated = { ...stored, outcome };
        f.stored.set(id, updated);
        f.outcomes.push({ jobId: id, outcome });
        return updated;
      },
    },
    compute: {
      listManaged: async () => {
        if (f.failCompute) throw new Error('DescribeInstances: throttled');
        return f.instances;
      },
      terminate: async (ids: readonly string[]) => void f.terminated.push(...ids),
      ...(f.endedOn ? { endedOn: async (j: Job) => f.endedOn!.get(j.id) } : {}),
    },
    workflows: {
      runningJobIds: async () => new Set(f.running),
      start: async (name: string) => void f.started.push(name),
      sendTaskSuccess: async (token: string, output: unknown) => void f.taskSuccesses.push({ token, output }),
    },
    events: { publish: async () => {}, publishOperatorEvent: async (e: OperatorEvent) => void f.events.push(e) },
    log: { info() {}, warn() {}, error() {} },
    now: () => new Date(f.clock.now),
  } as unknown as Deps;
}

const OPTIONS: ReconcileOptions = { markTtlSeconds: 600, minMarkAgeSeconds: 60 };
/** The fakes' clock at the start. */
const f0 = () => Date.parse('2030-01-01T01:00:00Z');
const later = (f: Fakes, seconds = 300) => void (f.clock.now += seconds * 1000);

describe('executionJobId', () => {
  test('reads the job id of every execution name Flare gives, and of names earlier versions gave, and nothing else', () => {
    for (const workflowRun of [undefined, 1, 2, 17])
      assert.equal(executionJobId(executionName({ id: J1, workflowRun })), J1);
    assert.equal(executionName({ id: J1, workflowRun: 3 }), `${J1}-3`);
    assert.equal(executionJobId(J1), J1);
    for (const suffix of ['admitted', 'admitted-3', 'recover-lx3k2', 'reconcile-m1n2'])
      assert.equal(executionJobId(`${J1}-${suffix}`), J1);
    for (const other of [
      'j-111111111111111',
      'j-1111111111111111x',
      'j-111111111111111i',
      'job-7',
      'manual',
      '',
      undefined,
    ])
      assert.equal(executionJobId(other), undefined, String(other));
  });
});

describe('reconcile: orphan instances', () => {
  test('an instance without a job tag is marked, then terminated; its job-tagged siblings of live jobs never are', async () => {
    const f = fakes([job(J1, JobState.LAUNCHING), job(J2, JobState.WAITING)]);
    f.running = new Set([J1]);
    f.instances = [
      { instanceId: 'i-untagged', state: 'running' },
      { instanceId: 'i-launching', jobId: J1, state: 'pending' }, // not yet on the job's instanceIds
      { instanceId: 'i-requeued', jobId: J2, state: 'running' },
    ];
    const store = new MemoryReconcileStore();

    const first = await reconcile(deps(f), store, OPTIONS);
    later(f);
    const second = await reconcile(deps(f), store, OPTIONS);

    assert.deepEqual(first.orphans, { marked: ['i-untagged'], terminated: [] });
    assert.deepEqual(second.orphans, { marked: [], terminated: ['i-untagged'] });
    assert.deepEqual(f.terminated, ['i-untagged']);
    assert.match(f.events.find((e) => e.kind === 'orphan-terminated')!.reason, /has no flare:job tag/);
    assert.equal(store.marks.size, 0, 'the mark goes with the instance');
  });

  test('a job the lagging index does not list yet is read consistently: a live one keeps its instance, and a mark it had is cleared', async () => {
    const f = fakes([]);
    f.stored.set(J1, job(J1, JobState.RUNNING));
    f.instances = [{ instanceId: 'i-1', jobId: J1, state: 'running' }];
    const store = new MemoryReconcileStore();
    await store.putMark(
      'orphan',
      'i-1',
      { observed: J1, markedAt: new Date(f.clock.now - 600_000).toISOString() },
      new Date(f.clock.now + 60_000),
    );

    const report = await reconcile(deps(f), store, OPTIONS);

    assert.deepEqual(report.orphans, { marked: [], terminated: [] });
    assert.equal(store.marks.size, 0);
  });

  test('a mark younger than minMarkAgeSeconds waits (a retried run is not a second observation); an expired one starts over', async () => {
    const f = fakes([]);
    f.stored.set(J1, job(J1, JobState.SUCCEEDED));
    f.instances = [{ instanceId: 'i-1', jobId: J1, state: 'running' }];
    const store = new MemoryReconcileStore();

    await reconcile(deps(f), store, OPTIONS);
    later(f, 10);
    const retried = await reconcile(deps(f), store, OPTIONS);
    later(f, 3600);
    const afterExpiry = await reconcile(deps(f), store, OPTIONS);
    later(f, 300);
    const confirmed = await reconcile(deps(f), store, OPTIONS);

    assert.deepEqual(retried.orphans, { marked: [], terminated: [] });
    assert.deepEqual(afterExpiry.orphans, { marked: ['i-1'], terminated: [] });
    assert.deepEqual(confirmed.orphans, { marked: [], terminated: ['i-1'] });
  });
});

describe('reconcile: lost instances', () => {
  /** A job that started long ago on `instanceIds`, its Run wait armed with a task token. */
  const runningOn = (id: string, instanceIds: string[], overrides: Partial<Job> = {}) =>
    job(id, JobState.RUNNING, {
      instanceIds,
      startedAt: '2030-01-01T00:00:30.000Z',
      expiresAt: '2030-01-03T00:00:00.000Z',
      taskToken: `token-${id}`,
      ...overrides,
    });

  test('a running job whose instance is no longer listed is marked on one run and reported lost on the next, its wait ended; a job whose instance is listed is untouched', async () => {
    const f = fakes([runningOn(J1, ['i-gone']), runningOn(J2, ['i-live']), runningOn(J3, ['i-down'])]);
    f.running = new Set([J1, J2, J3]);
    f.instances = [
      { instanceId: 'i-live', jobId: J2, state: 'running' },
      { instanceId: 'i-down', jobId: J3, state: 'terminated' },
    ];
    const store = new MemoryReconcileStore();
    const firstSeen = new Date(f.clock.now).toISOString();

    const first = await reconcile(deps(f), store, OPTIONS);

    assert.deepEqual(first.lost, { marked: [J1, J3], reported: [] });
    assert.deepEqual(f.outcomes, [], 'nothing is reported on one observation');
    assert.equal(f.taskSuccesses.length, 0);
    assert.match(
      f.events.find((e) => e.kind === 'instance-missing' && e.subject === J1)!.reason,
      /job j-1+ is RUNNING but instance i-gone no longer exists; it is reported lost if the next run finds it so still/,
    );

    later(f);
    const second = await reconcile(deps(f), store, OPTIONS);

    assert.deepEqual(second.lost, { marked: [], reported: [J1, J3] });
    // The loss is dated at its first sighting: that is what expiry is weighed against.
    assert.deepEqual(f.outcomes, [
      { jobId: J1, outcome: { kind: 'lost', reason: 'instance i-gone no longer exists', at: firstSeen } },
      { jobId: J3, outcome: { kind: 'lost', reason: 'instance i-down is terminated', at: firstSeen } },
    ]);
    assert.deepEqual(
      f.taskSuccesses.map((t) => t.token),
      [`token-${J1}`, `token-${J3}`],
    );
    assert.equal(
      terminalFor(f.stored.get(J1)!, new Date(f.clock.now)).reason,
      'instance lost: instance i-gone no longer exists',
    );
    assert.match(
      f.events.find((e) => e.kind === 'job-lost' && e.subject === J1)!.reason,
      /seen on two runs, first at 2030-01-01T01:00:00.000Z/,
    );
    assert.equal(f.stored.get(J2)!.outcome, undefined, 'the job whose instance is listed runs on');
    assert.ok(!f.events.some((e) => e.subject === J2));
    assert.deepEqual(f.terminated, [], "the job's own Stop terminates its instances, not the reconciler");
    assert.equal(store.marks.size, 0);

    later(f);
    const third = await reconcile(deps(f), store, OPTIONS);
    assert.deepEqual(third.lost, { marked: [], reported: [] }, 'a job with an outcome is not looked at again');
  });

  test('a loss first seen at or after expiresAt ends the job EXPIRED; one seen before it, FAILED even when confirmed after it', async () => {
    const expiresSoon = '2030-01-01T01:02:00.000Z';
    const f = fakes([
      runningOn(J1, ['i-gone'], { expiresAt: expiresSoon }),
      runningOn(J2, ['i-gone-2'], { expiresAt: '2030-01-01T01:00:00.000Z' }),
    ]);
    f.running = new Set([J1, J2]);
    const store = new MemoryReconcileStore();

    await reconcile(deps(f), store, OPTIONS);
    later(f);
    await reconcile(deps(f), store, OPTIONS);

    assert.equal(
      terminalFor(f.stored.get(J1)!, new Date(f.clock.now)).state,
      JobState.FAILED,
      'missing before its expiry',
    );
    assert.equal(
      terminalFor(f.stored.get(J2)!, new Date(f.clock.now)).state,
      JobState.EXPIRED,
      'missing from its expiry on',
    );
  });

  test("a job launched less than a mark's age ago, or LAUNCHING while its workflow still waits for the agent, is not marked", async () => {
    const f = fakes([
      runningOn(J1, ['i-young'], { startedAt: new Date(f0() - 10_000).toISOString() }),
      job(J2, JobState.LAUNCHING, { instanceIds: ['i-booting'], admittedAt: new Date(f0() - 300_000).toISOString() }),
      job(J3, JobState.LAUNCHING, {
        instanceIds: ['i-never-booted'],
        admittedAt: new Date(f0() - 900_000).toISOString(),
      }),
    ]);
    f.running = new Set([J1, J2, J3]);
    const store = new MemoryReconcileStore();

    const report = await reconcile(deps(f), store, OPTIONS);

    // J3: LAUNCHING past the agent bound (120 checks, 5 s apart) with its instance gone.
    assert.deepEqual(report.lost, { marked: [J3], reported: [] });
    assert.ok(!f.events.some((e) => e.subject === J1 || e.subject === J2));
  });

  test('an instance listed again on the second run (the listing lagged) clears the mark: nothing is reported', async () => {
    const f = fakes([runningOn(J1, ['i-late'])]);
    f.running = new Set([J1]);
    const store = new MemoryReconcileStore();

    const first = await reconcile(deps(f), store, OPTIONS);
    f.instances = [{ instanceId: 'i-late', jobId: J1, state: 'running' }];
    later(f);
    const second = await reconcile(deps(f), store, OPTIONS);

    assert.deepEqual(first.lost.marked, [J1]);
    assert.deepEqual(second.lost, { marked: [], reported: [] });
    assert.deepEqual(f.outcomes, []);
    assert.equal(store.marks.size, 0);
  });

  test('a mark younger than minMarkAgeSeconds waits; a job whose end the compute already knows (its report on the way) is left to that report', async () => {
    const f = fakes([runningOn(J1, ['i-gone']), runningOn(J2, ['local-j2'])]);
    f.running = new Set([J1, J2]);
    f.endedOn = new Map([[J2, { kind: 'exited', exitCode: 0, at: '2030-01-01T00:59:00.000Z' }]]);
    const store = new MemoryReconcileStore();

    const first = await reconcile(deps(f), store, OPTIONS);
    later(f, 10);
    const retried = await reconcile(deps(f), store, OPTIONS);

    assert.deepEqual(first.lost, { marked: [J1], reported: [] });
    assert.deepEqual(retried.lost, { marked: [], reported: [] });
    assert.deepEqual(f.outcomes, []);
  });
});

describe('reconcile: stuck jobs', () => {
  test('WAITING jobs and jobs with an execution are left alone; a stuck one is re-driven on the second run, as its next run', async () => {
    const f = fakes([
      job(J1, JobState.WAITING),
      job(J2, JobState.RUNNING, { expiresAt: '2030-01-02T00:00:00Z' }),
      job(J3, JobState.STOPPING),
    ]);
    f.running = new Set([J2]);
    const store = new MemoryReconcileStore();

    const first = await reconcile(deps(f), store, OPTIONS);
    later(f);
    const second = await reconcile(deps(f), store, OPTIONS);

    assert.deepEqual(first.stuck, { marked: [J3], redriven: [] });
    assert.deepEqual(second.stuck, { marked: [], redriven: [J3] });
    assert.deepEqual(f.started, [`${J3}-1`], 'run 1: the fake job has no run recorded');
    assert.equal(f.stored.get(J3)?.workflowRun, 1);
  });

  test('a job the index still lists as stuck but that has ended since is not marked', async () => {
    const f = fakes([job(J1, JobState.LAUNCHING)]);
    f.stored.set(J1, job(J1, JobState.FAILED));

    const report = await reconcile(deps(f), new MemoryReconcileStore(), OPTIONS);

    assert.deepEqual(report.stuck, { marked: [], redriven: [] });
    assert.deepEqual(
      f.events.filter((e) => e.kind.startsWith('job-')),
      [],
    );
  });

  test('a RUNNING job past its live timeout with no execution is re-driven at once, so no instance outlives it by more than a period', async () => {
    const f = fakes([job(J1, JobState.RUNNING, { expiresAt: '2030-01-01T00:30:00Z' })]);

    const report = await reconcile(deps(f), new MemoryReconcileStore(), OPTIONS);

    assert.deepEqual(report.stuck, { marked: [], redriven: [J1] });
    assert.match(f.events[0].reason, /its live timeout passed at 2030-01-01T00:30:00Z/);
    assert.deepEqual(f.started, [`${J1}-1`]);
  });
});

describe('reconcile: usage counters', () => {
  const poolRow = (used: number, available: number): CounterRow => ({
    ref: { kind: 'pool', pool: 'p' },
    used,
    available,
    limit: 4,
  });
  /** vision's rows, right for `gpus` held and `jobs` active. */
  const visionRows = (gpus: number, jobs: number): CounterRow[] => [
    { ref: { kind: 'quota', project: 'vision', resource: 'gpus' }, used: gpus },
    { ref: { kind: 'quota', project: 'vision', resource: 'jobs' }, used: jobs },
  ];

  test('recounts project gpus and jobs and pool GPUs from live jobs: queued jobs hold no GPUs but count as jobs', async () => {
    const f = fakes([
      job(J1, JobState.RUNNING, { heldGpus: 2 }),
      job(J2, JobState.WAITING),
      job(J3, JobState.STOPPING),
    ]);
    f.running = new Set([J1, J3]);
    const store = new MemoryReconcileStore();
    store.counters = [
      poolRow(3, 1),
      { ref: { kind: 'quota', project: 'vision', resource: 'gpus' }, used: 3, available: 5, limit: 8 },
      { ref: { kind: 'quota', project: 'vision', resource: 'jobs' }, used: 3 },
      { ref: { kind: 'quota', project: 'vision', resource: 'templates' }, used: 99, available: 0, limit: 5 },
    ];

    const report = await reconcile(deps(f), store, OPTIONS);

    assert.deepEqual(report.usage, { marked: [], repaired: [] });
  });

  test('a drift is repaired on the second run, conditioned on the row as read on that run', async () => {
    const f = fakes([job(J1, JobState.RUNNING)]);
    f.running = new Set([J1]);
    const store = new MemoryReconcileStore();
    store.counters = [poolRow(3, 1), ...visionRows(1, 1)];

    await reconcile(deps(f), store, OPTIONS);
    later(f);
    const second = await reconcile(deps(f), store, OPTIONS);

    assert.deepEqual(second.usage.repaired, [{ counter: 'pool/p', from: 3, to: 1 }]);
    assert.deepEqual(store.repairs, [{ read: poolRow(3, 1), used: 1 }]);
  });

  test('an inconsistent available beside a right used is a drift too', async () => {
    const f = fakes([job(J1, JobState.RUNNING)]);
    f.running = new Set([J1]);
    const store = new MemoryReconcileStore();
    store.counters = [poolRow(1, 1), ...visionRows(1, 1)];

    await reconcile(deps(f), store, OPTIONS);
    later(f);
    await reconcile(deps(f), store, OPTIONS);

    assert.deepEqual(store.repairs, [{ read: poolRow(1, 1), used: 1 }]);
  });

  test('no repair when consistent reads disagree with the index (a job admitted that the index still shows WAITING)', async () => {
    const waiting = job(J2, JobState.WAITING);
    const f = fakes([job(J1, JobState.RUNNING), waiting]);
    f.running = new Set([J1]);
    f.stored.set(J2, job(J2, JobState.LAUNCHING));
    const store = new MemoryReconcileStore();
    store.counters = [poolRow(2, 2), ...visionRows(2, 2)];

    await reconcile(deps(f), store, OPTIONS);
    later(f);
    const second = await reconcile(deps(f), store, OPTIONS);

    assert.deepEqual(second.usage.repaired, []);
    assert.deepEqual(store.repairs, []);
  });

  test('a project whose quota row is gone while its jobs hold GPUs gets rows counted from nothing', async () => {
    const f = fakes([job(J1, JobState.RUNNING, { project: 'audio' })]);
    f.running = new Set([J1]);
    const store = new MemoryReconcileStore();
    store.counters = [poolRow(1, 3)];

    await reconcile(deps(f), store, OPTIONS);
    later(f);
    const second = await reconcile(deps(f), store, OPTIONS);

    assert.deepEqual(second.usage.repaired.map((r) => r.counter).sort(), ['quota/audio/gpus', 'quota/audio/jobs']);
    assert.deepEqual(
      store.repairs.map((r) => r.read.ref).sort((a, b) => counterSubject(a).localeCompare(counterSubject(b))),
      [
        { kind: 'quota', project: 'audio', resource: 'gpus' },
        { kind: 'quota', project: 'audio', resource: 'jobs' },
      ],
    );
  });
});

describe('reconcile: failures', () => {
  test('a failing part is reported after the others ran', async () => {
    const f = fakes([job(J1, JobState.LAUNCHING)]);
    f.failCompute = true;
    const store = new MemoryReconcileStore();

    const error = await reconcile(deps(f), store, OPTIONS).then(
      () => assert.fail('expected ReconcileFailed'),
      (e: unknown) => e,
    );

    assert.ok(error instanceof ReconcileFailed);
    assert.deepEqual(error.report.errors, ['orphan instances: DescribeInstances: throttled']);
    assert.deepEqual(error.report.stuck.marked, [J1], 'stuck jobs were still looked at');
    assert.match(String((error.cause as Error).message), /throttled/);
  });
});
