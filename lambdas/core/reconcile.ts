/**
 * The reconciler (invariants 4 and 5 of docs/concepts.md): one run finds what the event
 * paths left behind and puts it right.
 *
 * 1. Orphan instances — managed instances whose job is terminal, unknown, or
 *    that carry no job tag — are terminated; and lost instances — a running
 *    job's instances that the same listing no longer has live — are reported
 *    lost, so the job ends now rather than at its live timeout (reconcile-lost.ts).
 * 2. Stuck jobs — not terminal, not WAITING, with no workflow execution — get a
 *    fresh execution; every step is idempotent, so it picks up where the last stopped.
 * 3. Usage counters (project `gpus` and `jobs`, pool GPUs) that differ from what
 *    the live jobs hold are set right with a write conditioned on the values read.
 * 4. Every pool is drained, so no queue stays stuck behind a lost event.
 *
 * Its sources are eventually consistent (the active-jobs index, ListExecutions,
 * DescribeInstances), so 1–3 never act on one observation: a run marks what it
 * sees, and a later run acts only if it sees the same thing again. Each mark
 * and each repair is an operator event with its reason.
 */
import type { Deps } from './deps.js';
import { FlareError } from './errors.js';
import { publishOperatorEvent } from './events.js';
import { HOLDING_STATES, isTerminal, JobState, type Job } from './job.js';
import { drainPool, redriveJob } from './admission.js';
import { LostEvent, reconcileLostInstances } from './reconcile-lost.js';
import type { ManagedInstance } from '../ports/compute.js';
import type { CounterRef, CounterRow, Mark, MarkKind, ReconcileStore } from '../ports/reconcile-store.js';

export const DEFAULT_MARK_TTL_SECONDS = 3600;

/** Operator event kinds the reconciler publishes. */
export const ReconcileEvent = {
  OrphanMarked: 'orphan-marked',
  OrphanTerminated: 'orphan-terminated',
  JobStuck: 'job-stuck',
  JobRedriven: 'job-redriven',
  UsageDrift: 'usage-drift',
  UsageRepaired: 'usage-repaired',
  ...LostEvent,
} as const;
export type ReconcileEvent = (typeof ReconcileEvent)[keyof typeof ReconcileEvent];

export interface ReconcileOptions {
  /**
   * How long a mark stays valid. Must be longer than the period between runs,
   * or no mark ever lives to be confirmed. @default 3600
   */
  readonly markTtlSeconds?: number;
  /**
   * A mark confirms only once it is this old, so two runs close together (a
   * retried invocation, a manual run) do not count as two observations. @default 0
   */
  readonly minMarkAgeSeconds?: number;
}

export interface UsageRepair {
  /** `quota/<project>/<resource>` or `pool/<name>`. */
  counter: string;
  from: number;
  to: number;
}

export interface ReconcileReport {
  startedAt: string;
  /** Instance ids. */
  orphans: { marked: string[]; terminated: string[] };
  /** Job ids: instances missing (marked), reported lost (reported). */
  lost: { marked: string[]; reported: string[] };
  /** Job ids. */
  stuck: { marked: string[]; redriven: string[] };
  usage: { marked: string[]; repaired: UsageRepair[] };
  drained: { pool: string; admitted: string[] }[];
  /** What failed; each part runs whatever another part did. */
  errors: string[];
}

/** Some part of a run failed; the others ran. `report` says what was done. */
export class ReconcileFailed extends FlareError {
  constructor(
    readonly report: ReconcileReport,
    errors: unknown[],
  ) {
    super(`reconcile failed: ${report.errors.join('; ')}`, {
      cause: errors.length === 1 ? errors[0] : new AggregateError(errors),
    });
  }
}

export function counterSubject(ref: CounterRef): string {
  return ref.kind === 'pool' ? `pool/${ref.pool}` : `quota/${ref.project}/${ref.resource}`;
}

/** Run once: orphans and lost instances, stuck jobs, usage counters, drains. Throws ReconcileFailed (after running every part) if a part failed. */
export async function reconcile(
  deps: Deps,
  store: ReconcileStore,
  options: ReconcileOptions = {},
): Promise<ReconcileReport> {
  const now = deps.now();
  const report: ReconcileReport = {
    startedAt: now.toISOString(),
    orphans: { marked: [], terminated: [] },
    lost: { marked: [], reported: [] },
    stuck: { marked: [], redriven: [] },
    usage: { marked: [], repaired: [] },
    drained: [],
    errors: [],
  };
  const errors: unknown[] = [];
  const run: Run = {
    deps,
    store,
    now,
    ttlMs: (options.markTtlSeconds ?? DEFAULT_MARK_TTL_SECONDS) * 1000,
    minAgeMs: (options.minMarkAgeSeconds ?? 0) * 1000,
    report,
    // One failure (a part, or one item of it) is recorded and the rest still runs.
    async attempt(what, work) {
      try {
        await work();
      } catch (error) {
        errors.push(error);
        report.errors.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
        deps.log.error('reconcile step failed', { step: what, error: String(error) });
      }
    },
    decide: (mark, observed) => decide(run, mark, observed),
    mark: (kind, subject, observed, event, reason) => markSighting(run, kind, subject, observed, event, reason),
  };

  // Counters first, jobs after: an admission the counters include has then had
  // the longest time to reach the index the jobs are read from.
  let counters: CounterRow[] | undefined;
  let active: Job[] | undefined;
  await run.attempt('read usage counters', async () => {
    counters = await store.listCounters();
  });
  await run.attempt('list active jobs', async () => {
    active = await deps.queue.listActiveJobs();
  });
  if (active) {
    const jobs = active;
    // One listing for both parts; when it fails the orphan part reports it, and the lost part has nothing to go on.
    let instances: ManagedInstance[] | undefined;
    await run.attempt('orphan instances', async () => {
      instances = await deps.compute.listManaged();
      await reconcileOrphans(run, jobs, instances);
    });
    if (instances) {
      const listed = instances;
      await run.attempt('lost instances', () => reconcileLostInstances(run, jobs, listed));
    }
    await run.attempt('stuck jobs', () => reconcileStuckJobs(run, jobs));
    if (counters) {
      const rows = counters;
      await run.attempt('usage counters', () => reconcileUsage(run, rows, jobs));
    }
  }
  await run.attempt('drain', () => drainAll(run));

  const { orphans, lost, stuck, usage } = report;
  const acted = [
    orphans.marked,
    orphans.terminated,
    lost.marked,
    lost.reported,
    stuck.marked,
    stuck.redriven,
    usage.marked,
    usage.repaired,
  ].some((list) => list.length > 0);
  const admitted = report.drained.reduce((n, d) => n + d.admitted.length, 0);
  if (acted || admitted || errors.length)
    deps.log.info('reconciled', { orphans, lost, stuck, usage, admitted, errors: report.errors });
  if (errors.length) throw new ReconcileFailed(report, errors);
  return report;
}

interface Run {
  deps: Deps;
  store: ReconcileStore;
  now: Date;
  ttlMs: number;
  minAgeMs: number;
  report: ReconcileReport;
  attempt(what: string, work: () => Promise<void>): Promise<void>;
  decide(mark: Mark | undefined, observed: string): Decision;
  /** A first sighting: marked for the next run to confirm, listed in the report, told to the operators. */
  mark(kind: MarkKind, subject: string, observed: string, event: ReconcileEvent, reason: string): Promise<void>;
}

type Decision = 'act' | 'wait' | 'mark';

/** Act on a mark made earlier for the same observation; a young mark waits; anything else is a first sighting. */
function decide(run: Run, mark: Mark | undefined, observed: string): Decision {
  if (!mark || mark.observed !== observed) return 'mark';
  return run.now.getTime() - Date.parse(mark.markedAt) >= run.minAgeMs ? 'act' : 'wait';
}

/** Where the report lists each kind of mark. */
const MARKED_IN: Record<MarkKind, 'orphans' | 'lost' | 'stuck' | 'usage'> = {
  orphan: 'orphans',
  lost: 'lost',
  stuck: 'stuck',
  usage: 'usage',
};

async function markSighting(
  run: Run,
  kind: MarkKind,
  subject: string,
  observed: string,
  event: ReconcileEvent,
  reason: string,
): Promise<void> {
  await run.store.putMark(
    kind,
    subject,
    { observed, markedAt: run.now.toISOString() },
    new Date(run.now.getTime() + run.ttlMs),
  );
  run.report[MARKED_IN[kind]].marked.push(subject);
  await publishOperatorEvent(run.deps, event, subject, reason);
}

/** `work` over `items`, at most `limit` at a time, results in order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

// --- 1. orphan instances ---

async function reconcileOrphans(
  run: Run,
  active: readonly Job[],
  instances: readonly ManagedInstance[],
): Promise<void> {
  const { deps, store, report } = run;
  if (!instances.length) return;
  const live = new Map(active.filter((j) => !isTerminal(j.state)).map((j) => [j.id, j]));
  const looked = new Map<string, Promise<Job | undefined>>();
  const orphans: { instance: ManagedInstance; reason: string }[] = [];
  for (const instance of instances) {
    const reason = await orphanReason(run, instance, live, looked);
    if (reason) orphans.push({ instance, reason });
  }

  const marks = await store.getMarks(
    'orphan',
    instances.map((i) => i.instanceId),
    run.now,
  );
  const orphanIds = new Set(orphans.map((o) => o.instance.instanceId));
  // An instance of a live job is never touched; a mark it carries from a misreading goes.
  const cleared = [...marks.keys()].filter((id) => !orphanIds.has(id));
  if (cleared.length) await store.clearMarks('orphan', cleared);

  const confirmed: typeof orphans = [];
  for (const orphan of orphans) {
    const id = orphan.instance.instanceId;
    const observed = orphan.instance.jobId ?? '-';
    const decision = decide(run, marks.get(id), observed);
    if (decision === 'act') confirmed.push(orphan);
    if (decision !== 'mark') continue;
    await run.attempt(`mark orphan ${id}`, () =>
      run.mark(
        'orphan',
        id,
        observed,
        ReconcileEvent.OrphanMarked,
        `${orphan.reason}; it is terminated if the next run finds it orphaned still`,
      ),
    );
  }
  if (!confirmed.length) return;
  const ids = confirmed.map((o) => o.instance.instanceId);
  await deps.compute.terminate(ids);
  for (const orphan of confirmed) {
    report.orphans.terminated.push(orphan.instance.instanceId);
    await publishOperatorEvent(
      deps,
      ReconcileEvent.OrphanTerminated,
      orphan.instance.instanceId,
      `${orphan.reason}; seen on two runs, terminated`,
    );
  }
  await store.clearMarks('orphan', ids);
}

/**
 * Why an instance is an orphan, or undefined when its job lives. A job the
 * active index lists as live is trusted (that errs towards keeping); one it
 * does not list is read consistently before the instance is called an orphan.
 * Any non-terminal job keeps its instances: a LAUNCHING job has them before
 * it records their ids.
 */
async function orphanReason(
  run: Run,
  instance: ManagedInstance,
  live: Map<string, Job>,
  looked: Map<string, Promise<Job | undefined>>,
): Promise<string | undefined> {
  const { jobId, instanceId } = instance;
  if (!jobId) return `instance ${instanceId} is managed by Flare but has no flare:job tag`;
  if (live.has(jobId)) return undefined;
  if (!looked.has(jobId)) looked.set(jobId, run.deps.jobs.getJob(jobId));
  const job = await looked.get(jobId)!;
  if (!job) return `instance ${instanceId} belongs to job ${jobId}, which does not exist`;
  if (isTerminal(job.state))
    return `instance ${instanceId} belongs to job ${jobId}, which is ${job.state}${job.finishedAt ? ` since ${job.finishedAt}` : ''}`;
  return undefined;
}

// --- 2. stuck jobs ---

async function reconcileStuckJobs(run: Run, active: readonly Job[]): Promise<void> {
  const { deps, store } = run;
  const running = await deps.workflows.runningJobIds();
  const candidates = active.filter((j) => !isTerminal(j.state) && j.state !== JobState.WAITING && !running.has(j.id));
  if (!candidates.length) return;
  const marks = await store.getMarks(
    'stuck',
    candidates.map((j) => j.id),
    run.now,
  );
  for (const listed of candidates) {
    await run.attempt(`stuck job ${listed.id}`, () => reconcileStuckJob(run, listed, marks.get(listed.id)));
  }
}

async function reconcileStuckJob(run: Run, listed: Job, mark: Mark | undefined): Promise<void> {
  const { deps, store, report } = run;
  // The index may be behind: decide on the job as stored now.
  const job = await deps.jobs.getJob(listed.id);
  if (!job || isTerminal(job.state) || job.state === JobState.WAITING) {
    if (mark) await store.clearMarks('stuck', [listed.id]);
    return;
  }
  const observed = `${job.state}|${job.admittedAt ?? '-'}|${job.launchAttempt ?? 0}`;
  // Past its live timeout with nothing to stop it: a second execution beside a
  // lagging first one is harmless (every step is idempotent), a late stop is not.
  const overdue = job.state === JobState.RUNNING && !!job.expiresAt && Date.parse(job.expiresAt) <= run.now.getTime();
  const decision = overdue ? 'act' : decide(run, mark, observed);
  if (decision === 'wait') return;
  if (decision === 'mark') {
    await run.mark(
      'stuck',
      job.id,
      observed,
      ReconcileEvent.JobStuck,
      `job ${job.id} is ${job.state} and no workflow execution runs for it; it is re-driven if the next run finds it so still`,
    );
    return;
  }
  const execution = await redriveJob(deps, job);
  if (mark) await store.clearMarks('stuck', [job.id]);
  if (!execution) return; // it moved on since it was read
  report.stuck.redriven.push(job.id);
  const why = overdue ? `its live timeout passed at ${job.expiresAt}` : 'seen on two runs';
  await publishOperatorEvent(
    deps,
    ReconcileEvent.JobRedriven,
    job.id,
    `job ${job.id} was ${job.state} with no workflow execution (${why}): started execution ${execution}`,
  );
}

// --- 3. usage counters ---

/** What the live jobs hold, per counter subject: project `jobs` (not terminal), project `gpus` and pool GPUs (held). */
function recount(jobs: Iterable<Job>): Map<string, number> {
  const held = new Map<string, number>();
  const add = (subject: string, n: number) => held.set(subject, (held.get(subject) ?? 0) + n);
  for (const job of jobs) {
    if (isTerminal(job.state)) continue;
    add(counterSubject({ kind: 'quota', project: job.project, resource: 'jobs' }), 1);
    if (!HOLDING_STATES.includes(job.state)) continue;
    add(counterSubject({ kind: 'quota', project: job.project, resource: 'gpus' }), job.heldGpus ?? 0);
    add(counterSubject({ kind: 'pool', pool: job.pool }), job.heldGpus ?? 0);
  }
  return held;
}

function inScope(ref: CounterRef, job: Job): boolean {
  return ref.kind === 'pool' ? job.pool === ref.pool : job.project === ref.project;
}

function describeCounter(ref: CounterRef): string {
  return ref.kind === 'pool' ? `pool ${ref.pool} GPUs` : `project ${ref.project} ${ref.resource}`;
}

const CONSISTENT_READS_AT_ONCE = 8;

async function reconcileUsage(run: Run, stored: readonly CounterRow[], active: readonly Job[]): Promise<void> {
  const held = recount(active);
  const rows = new Map<string, CounterRow>();
  for (const row of stored) {
    if (row.ref.kind === 'pool' || row.ref.resource === 'gpus' || row.ref.resource === 'jobs')
      rows.set(counterSubject(row.ref), row);
  }
  // A project whose row is gone (removed by hand) while it has live jobs: counted again from nothing.
  for (const job of active) {
    for (const resource of ['jobs', 'gpus'] as const) {
      const subject = counterSubject({ kind: 'quota', project: job.project, resource });
      if (!rows.has(subject) && held.get(subject))
        rows.set(subject, { ref: { kind: 'quota', project: job.project, resource } });
    }
  }
  const marks = await run.store.getMarks('usage', [...rows.keys()], run.now);
  for (const [subject, row] of rows) {
    await run.attempt(`usage ${subject}`, () =>
      reconcileCounter(run, subject, row, held.get(subject) ?? 0, marks.get(subject), active),
    );
  }
}

async function reconcileCounter(
  run: Run,
  subject: string,
  row: CounterRow,
  should: number,
  mark: Mark | undefined,
  active: readonly Job[],
): Promise<void> {
  const { deps, store, report } = run;
  const used = row.used ?? 0;
  const drifted = used !== should || (row.limit !== undefined && row.available !== row.limit - should);
  if (!drifted) {
    if (mark) await store.clearMarks('usage', [subject]);
    return;
  }
  const observed = `used=${row.used}|available=${row.available}|limit=${row.limit}|held=${should}`;
  const seen = `${describeCounter(row.ref)}: used ${used}${row.limit !== undefined ? `, available ${row.available} of ${row.limit}` : ''}, while live jobs hold ${should}`;
  const decision = decide(run, mark, observed);
  if (decision === 'wait') return;
  if (decision === 'mark') {
    await run.mark(
      'usage',
      subject,
      observed,
      ReconcileEvent.UsageDrift,
      `${seen}; repaired if the next run sees the same`,
    );
    return;
  }
  await store.clearMarks('usage', [subject]);
  // Count this counter's jobs again from consistent reads before writing: the
  // index may still miss a change that the counter already has.
  const fresh = await mapLimit(
    active.filter((j) => inScope(row.ref, j)),
    CONSISTENT_READS_AT_ONCE,
    (j) => deps.jobs.getJob(j.id),
  );
  const recounted = recount(fresh.filter((j): j is Job => !!j)).get(subject) ?? 0;
  if (recounted !== should) {
    deps.log.info('usage drift not confirmed by consistent reads', {
      counter: subject,
      indexed: should,
      consistent: recounted,
    });
    return;
  }
  // Conditioned on the values read: an admission or release since then makes it a no-op.
  if (!(await store.repairCounter(row, should))) {
    deps.log.info('usage counter changed since it was read; left for the next run', { counter: subject });
    return;
  }
  report.usage.repaired.push({ counter: subject, from: used, to: should });
  const set = row.limit !== undefined ? `used ${should}, available ${row.limit - should}` : `used ${should}`;
  await publishOperatorEvent(deps, ReconcileEvent.UsageRepaired, subject, `${seen}; seen on two runs, set ${set}`);
}

// --- 4. drains ---

async function drainAll(run: Run): Promise<void> {
  for (const pool of await run.deps.limits.listPools()) {
    await run.attempt(`drain pool ${pool.name}`, async () => {
      const result = await drainPool(run.deps, pool.name);
      run.report.drained.push({ pool: pool.name, admitted: result.admitted.map((j) => j.id) });
    });
  }
}
