/**
 * JobStore on DynamoDB. Every job change is a conditional write; admission and
 * release are single transactions across the job, the project's quota and the
 * pool, so no interleaving of workers can overshoot a limit or release twice.
 *
 * Index attributes are kept here, derived from `state`, so callers never see them:
 * - `queuePool`/`queueKey` (sparse GSI `queue`): the pool's name while the job is PENDING or WAITING,
 *   `<pool>#holding` while it holds GPUs (LAUNCHING, RUNNING, STOPPING: what a forecast reads);
 * - `project`/`createdKey` (GSI `byProject`) always;
 * - `activePartition` (sparse GSI `active`) while the job is not terminal.
 */
import {
  GetCommand,
  QueryCommand,
  ScanCommand,
  UpdateCommand,
  type DynamoDBDocumentClient,
  type QueryCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { chargedGpuMs, GPU_MS_PER_HOUR, periodBounds, worstCaseGpuMs, type BudgetPeriod } from '../../core/budgets.js';
import { Conflict, IdempotencyConflict, QuotaExceeded, StaleJob } from '../../core/errors.js';
import { HOLDING_STATES, isTerminal, JobState, QUEUED_STATES, type Job, type Outcome } from '../../core/job.js';
import type { CountedQuotaResource, QuotaResource } from '../../core/schemas.js';
import type { AdmitResult, IdempotencyClaim, JobStore, Limits, OutcomeInstance, Page, QueuedJobSummary, PoolRecord, QuotaLimit, QuotaRecord, RequeueChange, TerminalChange } from '../../ports/job-store.js';
import type { TableNames } from './table-names.js';
import { templateUsableCheck } from './dynamo-catalog.js';
import { batchGetAll } from './batch-get.js';
import { listJobItems } from './job-listing.js';
import { cancellationCodes, conditionalWrite, transactWithRetry, type TransactItems } from './transactions.js';

/** Moved to its own module; re-exported for the modules that import it from here. */
export { DynamoCatalog } from './dynamo-catalog.js';

const INDEX_ATTRIBUTES = ['queuePool', 'queueKey', 'createdKey', 'activePartition'] as const;
const ACTIVE = 'active';
const IDEMPOTENCY_TTL_SECONDS = 24 * 3600;

type Item = Record<string, unknown>;
/** The attributes of a QueuedJobSummary. */
const SUMMARY_ATTRIBUTES = ['id', 'pool', 'project', 'state', 'createdAt', 'gpus', 'nodeCount', 'liveTimeoutMinutes', 'retryAt'] as const satisfies readonly (keyof QueuedJobSummary)[];
/** The admission transaction's items, in this order: the first whose condition failed says why. */
const ADMIT_ITEMS = ['job', 'quota', 'budget', 'pool'] as const;

export class DynamoJobStore implements JobStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tables: TableNames,
  ) {}

  async createJob(job: Job, claim?: IdempotencyClaim, admitAt?: string): Promise<{ job: Job; created: boolean }> {
    if (admitAt === undefined) return this.create(job, claim);
    const admitted = admittedJob(job, admitAt);
    const created = await this.create(admitted, claim, this.admissionItems(admitted, admitAt));
    // No room after all (another admission took it since the caller looked): stored queued, for its Admit step.
    return created ?? this.create(job, claim);
  }

  /**
   * The job, its `jobs` usage, its idempotency claim and the template check in one transaction,
   * with `admission` (the admission transaction's quota, budget and pool items) when it is stored
   * admitted. Undefined when one of those admission items said no: nothing was stored.
   */
  private async create(job: Job, claim: IdempotencyClaim | undefined): Promise<{ job: Job; created: boolean }>;
  private async create(job: Job, claim: IdempotencyClaim | undefined, admission: TransactItems): Promise<{ job: Job; created: boolean } | undefined>;
  private async create(job: Job, claim: IdempotencyClaim | undefined, admission: TransactItems = []): Promise<{ job: Job; created: boolean } | undefined> {
    const items: TransactItems = [
      { Put: { TableName: this.tables.jobs, Item: toItem(job), ConditionExpression: 'attribute_not_exists(id)' } },
      {
        Update: {
          TableName: this.tables.quotas,
          Key: { project: job.project, resource: 'jobs' },
          UpdateExpression: 'ADD used :one, available :minusOne',
          ConditionExpression: 'attribute_not_exists(hardLimit) OR available >= :one',
          ExpressionAttributeValues: { ':one': 1, ':minusOne': -1 },
        },
      },
    ];
    if (claim) {
      items.push({
        Put: {
          TableName: this.tables.idempotency,
          Item: { key: claim.key, bodyHash: claim.bodyHash, jobId: job.id, expiresAtEpoch: Math.floor(Date.now() / 1000) + IDEMPOTENCY_TTL_SECONDS },
          ConditionExpression: 'attribute_not_exists(#key)',
          ExpressionAttributeNames: { '#key': 'key' },
        },
      });
    }
    // No job is stored against a template that a delete is checking for jobs (core/templates.ts).
    const templateCheck = job.templateId ? items.length : undefined;
    // The job's createdAt is core's clock, the one the delete's mark was set by.
    if (job.templateId) items.push(templateUsableCheck(this.tables.catalog, job.templateId, job.createdAt));
    const firstAdmissionItem = items.length;
    items.push(...admission);
    try {
      await this.transact(items);
      return { job, created: true };
    } catch (error) {
      const reasons = cancellationCodes(error);
      if (!reasons) throw error;
      if (claim && reasons[2] === 'ConditionalCheckFailed') return this.replay(claim);
      if (templateCheck !== undefined && reasons[templateCheck] === 'ConditionalCheckFailed') {
        throw new Conflict(`template ${job.template} is being deleted or was deleted meanwhile; the job was not stored`);
      }
      if (reasons[1] === 'ConditionalCheckFailed') {
        const quota = await this.getQuota(job.project, 'jobs');
        throw new QuotaExceeded(job.project, 'jobs', `project ${job.project} has ${quota?.used ?? '?'} of ${quota?.hardLimit ?? '?'} active jobs; wait for one to end`);
      }
      if (reasons.slice(firstAdmissionItem).includes('ConditionalCheckFailed')) return undefined;
      throw error;
    }
  }

  private async replay(claim: IdempotencyClaim): Promise<{ job: Job; created: boolean }> {
    const { Item } = await this.doc.send(new GetCommand({ TableName: this.tables.idempotency, Key: { key: claim.key }, ConsistentRead: true }));
    if (!Item) throw new IdempotencyConflict('Idempotency-Key is being used by a request in flight; retry');
    if (Item.bodyHash !== claim.bodyHash) throw new IdempotencyConflict('Idempotency-Key was already used with a different request body');
    const job = await this.getJob(String(Item.jobId));
    if (!job) throw new IdempotencyConflict('Idempotency-Key names a job that was removed');
    return { job, created: false };
  }

  async getJob(id: string): Promise<Job | undefined> {
    const { Item } = await this.doc.send(new GetCommand({ TableName: this.tables.jobs, Key: { id }, ConsistentRead: true }));
    return Item ? fromItem(Item) : undefined;
  }

  async listJobs(filter: { projects?: string[]; state?: JobState }, page: { limit: number; nextToken?: string }): Promise<Page<Job>> {
    const { items, nextToken } = await listJobItems(this.doc, this.tables, filter, page);
    return { items: items.map(fromItem), nextToken };
  }

  async updateJob(id: string, from: readonly JobState[], set: Partial<Job>, remove: readonly (keyof Job)[] = []): Promise<Job> {
    const names: Record<string, string> = { '#state': 'state' };
    const values: Record<string, unknown> = {};
    const sets: string[] = [];
    const removes = new Set<string>(remove);
    for (const [key, value] of Object.entries(set)) {
      if (value === undefined) continue;
      names[`#${key}`] = key;
      values[`:${key}`] = value;
      sets.push(`#${key} = :${key}`);
    }
    if (set.state) {
      if (!QUEUED_STATES.includes(set.state)) removes.add('queuePosition');
      // A holding job stays in the index under its pool's holding partition (set by admit) until it ends.
      if (!QUEUED_STATES.includes(set.state) && !HOLDING_STATES.includes(set.state)) removes.add('queuePool').add('queueKey');
      if (isTerminal(set.state)) removes.add('activePartition').add('heldGpus').add('taskToken');
    }
    for (const key of removes) names[`#${key}`] = key;
    const condition = from.map((_, i) => `:from${i}`);
    from.forEach((state, i) => (values[`:from${i}`] = state));
    const updated = await conditionalWrite(
      this.doc,
      {
        Update: {
          TableName: this.tables.jobs,
          Key: { id },
          UpdateExpression: [sets.length ? `SET ${sets.join(', ')}` : '', removes.size ? `REMOVE ${[...removes].map((k) => `#${k}`).join(', ')}` : ''].join(' ').trim(),
          ConditionExpression: `#state IN (${condition.join(', ')})`,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_NEW',
        },
      },
      () => new StaleJob(id),
    );
    return fromItem(updated);
  }

  async recordOutcome(id: string, outcome: Outcome, on?: OutcomeInstance): Promise<Job | undefined> {
    const instance = on ? ` AND contains(instanceIds, :instance)${on.only ? ' AND size(instanceIds) = :one' : ''}` : '';
    const recorded = await conditionalWrite(this.doc, {
      Update: {
        TableName: this.tables.jobs,
        Key: { id },
        UpdateExpression: 'SET outcome = :o',
        ConditionExpression: `attribute_not_exists(outcome) AND #state IN (:launching, :running)${instance}`,
        ExpressionAttributeNames: { '#state': 'state' },
        ExpressionAttributeValues: {
          ':o': outcome,
          ':launching': JobState.LAUNCHING,
          ':running': JobState.RUNNING,
          ...(on ? { ':instance': on.instanceId, ...(on.only ? { ':one': 1 } : {}) } : {}),
        },
        ReturnValues: 'ALL_NEW',
      },
    });
    return recorded && fromItem(recorded);
  }

  /** A string set (`<instanceId>=<code>`): ADD creates it on the first exit, so no read is needed first. */
  async recordNodeExit(id: string, instanceId: string, exitCode: number): Promise<Job | undefined> {
    const recorded = await conditionalWrite(this.doc, {
      Update: {
        TableName: this.tables.jobs,
        Key: { id },
        UpdateExpression: 'ADD exitedNodes :e',
        ConditionExpression: 'attribute_not_exists(outcome) AND #state IN (:launching, :running)',
        ExpressionAttributeNames: { '#state': 'state' },
        ExpressionAttributeValues: { ':e': new Set([`${instanceId}=${exitCode}`]), ':launching': JobState.LAUNCHING, ':running': JobState.RUNNING },
        ReturnValues: 'ALL_NEW',
      },
    });
    return recorded && fromItem(recorded);
  }

  async setTaskToken(id: string, token: string): Promise<Job> {
    const { Attributes } = await this.doc.send(
      new UpdateCommand({
        TableName: this.tables.jobs,
        Key: { id },
        UpdateExpression: 'SET taskToken = :t',
        ConditionExpression: 'attribute_exists(id)',
        ExpressionAttributeValues: { ':t': token },
        ReturnValues: 'ALL_NEW',
      }),
    );
    return fromItem(Attributes!);
  }

  admit(job: Job, admittedAt: string): Promise<AdmitResult> {
    return this.tryAdmit(job, admittedAt, true);
  }

  private async tryAdmit(job: Job, admittedAt: string, mayRoll: boolean): Promise<AdmitResult> {
    const admitted = admittedJob(job, admittedAt);
    try {
      await this.transact([
        {
          Update: {
            TableName: this.tables.jobs,
            Key: { id: job.id },
            UpdateExpression: 'SET #state = :launching, admittedAt = :at, heldGpus = :g, reservedGpuMs = :r, queuePool = :holding REMOVE queuePosition, stateReason, promisedStartAt',
            // The state the caller read: a drain that read PENDING must not admit a job whose own
            // workflow has meanwhile parked it as WAITING and ended (nobody would drive it).
            ConditionExpression: '#state = :from AND #state IN (:pending, :waiting)',
            ExpressionAttributeNames: { '#state': 'state' },
            ExpressionAttributeValues: {
              ':launching': JobState.LAUNCHING,
              ':at': admittedAt,
              ':g': admitted.heldGpus,
              ':r': admitted.reservedGpuMs,
              ':holding': holdingPartition(job.pool),
              ':from': job.state,
              ':pending': JobState.PENDING,
              ':waiting': JobState.WAITING,
            },
          },
        },
        ...this.admissionItems(admitted, admittedAt),
      ]);
    } catch (error) {
      const reasons = cancellationCodes(error);
      if (!reasons) throw error;
      const blockedBy = ADMIT_ITEMS.find((_, i) => reasons[i] === 'ConditionalCheckFailed');
      // A budget whose period is over is rolled over first: then the admission is decided on the new period.
      if (blockedBy === 'budget' && mayRoll && (await this.rollBudgetIfOver(job.project, admittedAt))) return this.tryAdmit(job, admittedAt, false);
      if (blockedBy) return { admitted: false, blockedBy };
      throw error;
    }
    return { admitted: true, job: admitted };
  }

  /** What admitting `job` takes besides the job itself, each conditioned: project gpus, its worst case against the gpuHours budget, pool gpus (ADMIT_ITEMS' order). */
  private admissionItems(job: Job & { heldGpus: number; reservedGpuMs: number }, at: string): TransactItems {
    const gpus = job.heldGpus;
    return [
      {
        Update: {
          TableName: this.tables.quotas,
          Key: { project: job.project, resource: 'gpus' },
          UpdateExpression: 'ADD used :g, available :minus',
          ConditionExpression: 'attribute_not_exists(hardLimit) OR available >= :g',
          ExpressionAttributeValues: { ':g': gpus, ':minus': -gpus },
        },
      },
      this.reserve(job.project, job.reservedGpuMs, at),
      {
        Update: {
          TableName: this.tables.pools,
          Key: { name: job.pool },
          UpdateExpression: 'ADD used :g, available :minus',
          ConditionExpression: 'available >= :g',
          ExpressionAttributeValues: { ':g': gpus, ':minus': -gpus },
        },
      },
    ];
  }

  async finishJob(job: Job, change: TerminalChange): Promise<Job | undefined> {
    const held = job.heldGpus ?? 0;
    const values: Record<string, unknown> = { ':state': change.state, ':reason': change.stateReason, ':at': change.finishedAt, ':cur': job.state };
    let set = 'SET #state = :state, stateReason = :reason, finishedAt = :at';
    if (change.exitCode !== undefined) {
      set += ', exitCode = :exit';
      values[':exit'] = change.exitCode;
    }
    let condition = '#state = :cur';
    if (held > 0) {
      condition += ' AND heldGpus = :held';
      values[':held'] = held;
    }
    const reserved = job.reservedGpuMs;
    if (reserved !== undefined) {
      // The reservation as read: a live-timeout change since moved it, and this release must refund that one.
      condition += ' AND reservedGpuMs = :reserved';
      values[':reserved'] = reserved;
    }
    try {
      await this.transact([
        {
          Update: {
            TableName: this.tables.jobs,
            Key: { id: job.id },
            UpdateExpression: `${set} REMOVE heldGpus, reservedGpuMs, queuePool, queueKey, queuePosition, activePartition, taskToken`,
            ConditionExpression: condition,
            ExpressionAttributeNames: { '#state': 'state' },
            ExpressionAttributeValues: values,
          },
        },
        this.release(this.tables.quotas, { project: job.project, resource: 'jobs' }, 1),
        ...(held > 0 ? this.releaseGpus(job, held) : []),
        ...(reserved !== undefined ? [this.settleReservation(job.project, reserved, chargedGpuMs(job, change.finishedAt))] : []),
      ]);
    } catch (error) {
      if (cancellationCodes(error)?.[0] === 'ConditionalCheckFailed') return undefined;
      throw error;
    }
    const finished: Job = { ...job, state: change.state, stateReason: change.stateReason, finishedAt: change.finishedAt, ...(change.exitCode !== undefined ? { exitCode: change.exitCode } : {}) };
    delete finished.heldGpus;
    delete finished.reservedGpuMs;
    delete finished.taskToken;
    delete finished.queuePosition;
    return finished;
  }

  async requeueJob(job: Job, change: RequeueChange): Promise<Job | undefined> {
    const held = job.heldGpus ?? 0;
    const queued: Job = { ...job, state: JobState.WAITING, stateReason: change.stateReason, retryAt: change.retryAt, launchAttempt: change.launchAttempt };
    for (const key of ['heldGpus', 'reservedGpuMs', 'taskToken', 'instanceIds', 'devices', 'admittedAt', 'outcome', 'verdict', 'nodeExits'] as const) delete queued[key];
    const reserved = job.reservedGpuMs;
    try {
      await this.transact([
        {
          Update: {
            TableName: this.tables.jobs,
            Key: { id: job.id },
            // Back into the queue index under its original key: its place is decided by age, as before.
            UpdateExpression:
              'SET #state = :waiting, stateReason = :reason, retryAt = :retry, launchAttempt = :attempt, queuePool = :pool, queueKey = :qk ' +
              'REMOVE heldGpus, reservedGpuMs, taskToken, instanceIds, devices, admittedAt, outcome, verdict, exitedNodes',
            ConditionExpression: `#state = :launching AND heldGpus = :held AND attribute_not_exists(outcome)${reserved !== undefined ? ' AND reservedGpuMs = :reserved' : ''}`,
            ExpressionAttributeNames: { '#state': 'state' },
            ExpressionAttributeValues: {
              ':waiting': JobState.WAITING,
              ':reason': change.stateReason,
              ':retry': change.retryAt,
              ':attempt': change.launchAttempt,
              ':pool': job.pool,
              ':qk': queueKey(job),
              ':launching': JobState.LAUNCHING,
              ':held': held,
              ...(reserved !== undefined ? { ':reserved': reserved } : {}),
            },
          },
        },
        ...this.releaseGpus(job, held),
        // No capacity was found: the job had no GPU, so nothing is charged.
        ...(reserved !== undefined ? [this.settleReservation(job.project, reserved, 0)] : []),
      ]);
    } catch (error) {
      if (cancellationCodes(error)?.[0] === 'ConditionalCheckFailed') return undefined;
      throw error;
    }
    return queued;
  }

  async changeReservation(job: Job, set: Partial<Job>, reservedGpuMs: number, at: string, mayRoll = true): Promise<{ changed: true; job: Job } | { changed: false; blockedBy: 'job' | 'budget' }> {
    const names: Record<string, string> = { '#state': 'state' };
    const values: Record<string, unknown> = { ':cur': job.state, ':before': job.reservedGpuMs, ':reserved': reservedGpuMs };
    const sets = ['reservedGpuMs = :reserved'];
    for (const [key, value] of Object.entries(set)) {
      if (value === undefined || key === 'reservedGpuMs') continue;
      names[`#${key}`] = key;
      values[`:${key}`] = value;
      sets.push(`#${key} = :${key}`);
    }
    const more = reservedGpuMs - (job.reservedGpuMs ?? 0);
    const budget = { project: job.project, resource: 'gpuHours' };
    try {
      await this.transact([
        {
          Update: {
            TableName: this.tables.jobs,
            Key: { id: job.id },
            UpdateExpression: `SET ${sets.join(', ')}`,
            ConditionExpression: '#state = :cur AND reservedGpuMs = :before',
            ExpressionAttributeNames: names,
            ExpressionAttributeValues: values,
          },
        },
        // More is reserved only where there is room; less is given back whatever the budget's state.
        more > 0
          ? this.reserve(job.project, more, at)
          : { Update: { TableName: this.tables.quotas, Key: budget, UpdateExpression: 'ADD used :d, reserved :d, available :minus', ExpressionAttributeValues: { ':d': more, ':minus': -more } } },
      ]);
    } catch (error) {
      const reasons = cancellationCodes(error);
      if (reasons?.[0] === 'ConditionalCheckFailed') return { changed: false, blockedBy: 'job' };
      if (reasons?.[1] !== 'ConditionalCheckFailed') throw error;
      if (mayRoll && (await this.rollBudgetIfOver(job.project, at))) return this.changeReservation(job, set, reservedGpuMs, at, false);
      return { changed: false, blockedBy: 'budget' };
    }
    // Read back: the caller needs what it did not read (a task token stored since, for one).
    const changed = await this.getJob(job.id);
    if (!changed) return { changed: false, blockedBy: 'job' };
    return { changed: true, job: changed };
  }

  private releaseGpus(job: Job, held: number) {
    return [this.release(this.tables.quotas, { project: job.project, resource: 'gpus' }, held), this.release(this.tables.pools, { name: job.pool }, held)];
  }

  private release(table: string, key: Record<string, string>, amount: number) {
    return { Update: { TableName: table, Key: key, UpdateExpression: 'ADD used :minus, available :plus', ExpressionAttributeValues: { ':minus': -amount, ':plus': amount } } };
  }

  /**
   * Reserve GPU-ms against the project's gpuHours budget: with a limit, only while there is room and the
   * period is not over (the caller rolls it over and tries again); without one, only counted.
   */
  private reserve(project: string, amount: number, at: string) {
    return {
      Update: {
        TableName: this.tables.quotas,
        Key: { project, resource: 'gpuHours' },
        UpdateExpression: 'ADD used :r, reserved :r, available :minus',
        ConditionExpression: 'attribute_not_exists(hardLimit) OR (available >= :r AND periodEnd > :at)',
        ExpressionAttributeValues: { ':r': amount, ':minus': -amount, ':at': at },
      },
    };
  }

  /** A reservation ends: `charged` of it stays spent in `used`, the rest goes back to `available`. */
  private settleReservation(project: string, reserved: number, charged: number) {
    return {
      Update: {
        TableName: this.tables.quotas,
        Key: { project, resource: 'gpuHours' },
        UpdateExpression: 'ADD used :unused, reserved :minus, available :refund',
        ExpressionAttributeValues: { ':unused': charged - reserved, ':minus': -reserved, ':refund': reserved - charged },
      },
    };
  }

  /**
   * Roll a budget whose period is over (at `at`) into the current one: nothing spent yet, the reservations
   * of jobs still holding carried over. Conditioned on the limit and period read, so of concurrent
   * callers one rolls and the others find it done. True when the period was over: admit again.
   */
  private async rollBudgetIfOver(project: string, at: string): Promise<boolean> {
    const { Item } = await this.doc.send(new GetCommand({ TableName: this.tables.quotas, Key: { project, resource: 'gpuHours' }, ConsistentRead: true }));
    if (Item?.hardLimit === undefined || (Item.periodEnd !== undefined && String(Item.periodEnd) > at)) return false;
    const { periodStart, periodEnd } = periodBounds((Item.period as BudgetPeriod | undefined) ?? 'month', new Date(at));
    // A condition that fails means another caller rolled it first.
    await conditionalWrite(this.doc, {
      Update: {
        TableName: this.tables.quotas,
        Key: { project, resource: 'gpuHours' },
        UpdateExpression: 'SET periodStart = :ps, periodEnd = :pe, used = if_not_exists(reserved, :zero), available = :limit - if_not_exists(reserved, :zero)',
        ConditionExpression: `hardLimit = :seenLimit AND ${Item.periodEnd === undefined ? 'attribute_not_exists(periodEnd)' : 'periodEnd = :seenEnd'}`,
        ExpressionAttributeValues: {
          ':ps': periodStart,
          ':pe': periodEnd,
          ':zero': 0,
          ':limit': Number(Item.hardLimit) * GPU_MS_PER_HOUR,
          ':seenLimit': Item.hardLimit,
          ...(Item.periodEnd === undefined ? {} : { ':seenEnd': Item.periodEnd }),
        },
      },
    });
    return true;
  }

  private readonly defaultedProjects = new Set<string>();

  /**
   * A project row without `hardLimit` is unlimited; with a deployment default it
   * gets that limit the first time the project is seen. Rows that exist keep
   * their usage (`available` = limit - used); rows with a limit are left alone,
   * and so are rows whose limit an admin removed (`limitRemoved`).
   */
  async ensureDefaultQuotas(project: string, defaults: Partial<Record<CountedQuotaResource, number>>): Promise<void> {
    if (this.defaultedProjects.has(project)) return;
    for (const [resource, limit] of Object.entries(defaults) as [CountedQuotaResource, number | undefined][]) {
      if (limit === undefined) continue;
      await conditionalWrite(this.doc, {
        Update: {
          TableName: this.tables.quotas,
          Key: { project, resource },
          UpdateExpression: 'SET hardLimit = :limit, available = :limit - if_not_exists(used, :zero), used = if_not_exists(used, :zero)',
          ConditionExpression: 'attribute_not_exists(hardLimit) AND attribute_not_exists(limitRemoved)',
          ExpressionAttributeValues: { ':limit': limit, ':zero': 0 },
        },
      });
    }
    this.defaultedProjects.add(project);
  }

  async deleteJob(id: string): Promise<boolean> {
    const deleted = await conditionalWrite(this.doc, {
      Delete: { TableName: this.tables.jobs, Key: { id }, ConditionExpression: 'attribute_exists(id) AND attribute_not_exists(activePartition)' },
    });
    return deleted !== undefined;
  }

  async listQueue(pool: string, limit: number, startAfter?: string): Promise<{ items: Job[]; next?: string }> {
    const { items, next } = await this.queryQueue(pool, limit, startAfter);
    return { items: items.map(fromItem), next };
  }

  async listQueueSummaries(pool: string, limit: number, startAfter?: string): Promise<{ items: QueuedJobSummary[]; next?: string }> {
    const { items, next } = await this.queryQueue(pool, limit, startAfter, SUMMARY_ATTRIBUTES);
    return { items: items as QueuedJobSummary[], next };
  }

  private async queryQueue(pool: string, limit: number, startAfter?: string, attributes?: readonly string[]): Promise<{ items: Item[]; next?: string }> {
    const { Items = [], LastEvaluatedKey } = await this.doc.send(
      new QueryCommand({
        TableName: this.tables.jobs,
        IndexName: 'queue',
        KeyConditionExpression: startAfter ? 'queuePool = :p AND queueKey > :k' : 'queuePool = :p',
        ExpressionAttributeValues: { ':p': pool, ...(startAfter ? { ':k': startAfter } : {}) },
        ...(attributes
          ? { ProjectionExpression: attributes.map((_, i) => `#a${i}`).join(', '), ExpressionAttributeNames: Object.fromEntries(attributes.map((a, i) => [`#a${i}`, a])) }
          : {}),
        Limit: limit,
      }),
    );
    return { items: Items, next: LastEvaluatedKey ? String(LastEvaluatedKey.queueKey) : undefined };
  }

  async listHolding(pool: string): Promise<Job[]> {
    const jobs: Job[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const { Items = [], LastEvaluatedKey } = await this.doc.send(
        new QueryCommand({
          TableName: this.tables.jobs,
          IndexName: 'queue',
          KeyConditionExpression: 'queuePool = :p',
          ExpressionAttributeValues: { ':p': holdingPartition(pool) },
          ExclusiveStartKey: start,
        }),
      );
      jobs.push(...Items.map(fromItem));
      start = LastEvaluatedKey;
    } while (start);
    return jobs;
  }

  queuePosition(job: Job): Promise<number> {
    return this.countQueue(job.pool, queueKey(job));
  }

  queueLength(pool: string): Promise<number> {
    return this.countQueue(pool);
  }

  private async countQueue(pool: string, before?: string): Promise<number> {
    let count = 0;
    let start: Record<string, unknown> | undefined;
    do {
      const result = await this.doc.send(
        new QueryCommand({
          TableName: this.tables.jobs,
          IndexName: 'queue',
          KeyConditionExpression: before ? 'queuePool = :p AND queueKey < :k' : 'queuePool = :p',
          ExpressionAttributeValues: { ':p': pool, ...(before ? { ':k': before } : {}) },
          Select: 'COUNT',
          ExclusiveStartKey: start,
        }),
      );
      count += result.Count ?? 0;
      start = result.LastEvaluatedKey;
    } while (start);
    return count;
  }

  async listActiveJobs(): Promise<Job[]> {
    const jobs: Job[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const input: QueryCommandInput = {
        TableName: this.tables.jobs,
        IndexName: 'active',
        KeyConditionExpression: 'activePartition = :a',
        ExpressionAttributeValues: { ':a': ACTIVE },
        ExclusiveStartKey: start,
      };
      const { Items = [], LastEvaluatedKey } = await this.doc.send(new QueryCommand(input));
      jobs.push(...Items.map(fromItem));
      start = LastEvaluatedKey;
    } while (start);
    return jobs;
  }

  async getPool(name: string): Promise<PoolRecord | undefined> {
    const { Item } = await this.doc.send(new GetCommand({ TableName: this.tables.pools, Key: { name }, ConsistentRead: true }));
    return Item ? toPool(Item) : undefined;
  }

  async getLimits(pool: string | undefined, projects: readonly string[]): Promise<Limits> {
    const unique = [...new Set(projects)];
    const found = await batchGetAll(this.doc, {
      [this.tables.pools]: pool === undefined ? [] : [{ name: pool }],
      [this.tables.quotas]: unique.flatMap((project) => [{ project, resource: 'gpus' }, { project, resource: 'gpuHours' }]),
    });
    const quotas: Limits['quotas'] = new Map(unique.map((project) => [project, {}]));
    for (const item of found.get(this.tables.quotas) ?? []) {
      const quota = toQuota(item);
      quotas.get(quota.project)![quota.resource as 'gpus' | 'gpuHours'] = quota;
    }
    const poolItem = found.get(this.tables.pools)?.[0];
    return { ...(poolItem ? { pool: toPool(poolItem) } : {}), quotas };
  }

  async listPools(): Promise<PoolRecord[]> {
    const { Items = [] } = await this.doc.send(new ScanCommand({ TableName: this.tables.pools, ConsistentRead: true }));
    return Items.map(toPool).sort((a, b) => a.name.localeCompare(b.name));
  }

  async putPool(pool: { name: string; instanceType: string; gpusPerInstance: number; maxGpus: number; backfill?: boolean }): Promise<void> {
    await this.doc.send(
      new UpdateCommand({
        TableName: this.tables.pools,
        Key: { name: pool.name },
        UpdateExpression: `SET instanceType = :t, gpusPerInstance = :g, used = if_not_exists(used, :zero)${pool.backfill !== undefined ? ', backfill = :b' : ''}`,
        ExpressionAttributeValues: { ':t': pool.instanceType, ':g': pool.gpusPerInstance, ':zero': 0, ...(pool.backfill !== undefined ? { ':b': pool.backfill } : {}) },
      }),
    );
    // A second write so `available` is derived from the `used` stored at that instant.
    await this.doc.send(
      new UpdateCommand({
        TableName: this.tables.pools,
        Key: { name: pool.name },
        UpdateExpression: 'SET maxGpus = :m, available = :m - used',
        ExpressionAttributeValues: { ':m': pool.maxGpus },
      }),
    );
  }

  async setPoolBackfill(name: string, backfill: boolean): Promise<PoolRecord | undefined> {
    return this.updatePool(name, 'SET backfill = :b', { ':b': backfill });
  }

  async setPoolCap(name: string, maxGpus: number): Promise<PoolRecord | undefined> {
    // One write: `available` follows the `used` stored at that instant, so no admission slips between.
    return this.updatePool(name, 'SET maxGpus = :m, available = :m - if_not_exists(used, :zero), used = if_not_exists(used, :zero)', { ':m': maxGpus, ':zero': 0 });
  }

  /** An update of a pool that exists: the pool as it left it, undefined when there is no such pool. */
  private async updatePool(name: string, update: string, values: Record<string, unknown>): Promise<PoolRecord | undefined> {
    const updated = await conditionalWrite(this.doc, {
      Update: {
        TableName: this.tables.pools,
        Key: { name },
        UpdateExpression: update,
        ConditionExpression: 'attribute_exists(#name)',
        ExpressionAttributeNames: { '#name': 'name' },
        ExpressionAttributeValues: values,
        ReturnValues: 'ALL_NEW',
      },
    });
    return updated && toPool(updated);
  }

  async getQuota(project: string, resource: QuotaResource): Promise<QuotaRecord | undefined> {
    const { Item } = await this.doc.send(new GetCommand({ TableName: this.tables.quotas, Key: { project, resource }, ConsistentRead: true }));
    return Item ? toQuota(Item) : undefined;
  }

  async listQuotas(project?: string): Promise<QuotaRecord[]> {
    const items: Item[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const result = project
        ? await this.doc.send(new QueryCommand({ TableName: this.tables.quotas, KeyConditionExpression: '#project = :p', ExpressionAttributeNames: { '#project': 'project' }, ExpressionAttributeValues: { ':p': project }, ExclusiveStartKey: start }))
        : await this.doc.send(new ScanCommand({ TableName: this.tables.quotas, ExclusiveStartKey: start }));
      items.push(...(result.Items ?? []));
      start = result.LastEvaluatedKey;
    } while (start);
    return items.map(toQuota);
  }

  async putQuota(quota: QuotaLimit, only?: 'new' | 'existing', now = new Date()): Promise<QuotaRecord | undefined> {
    if (quota.resource === 'gpuHours') return this.putBudget(quota, only, now);
    const written = await conditionalWrite(this.doc, {
      Update: {
        TableName: this.tables.quotas,
        Key: { project: quota.project, resource: quota.resource },
        // One write: `available` follows the `used` stored at that instant, so no admission slips between.
        UpdateExpression: 'SET hardLimit = :l, available = :l - if_not_exists(used, :zero), used = if_not_exists(used, :zero) REMOVE limitRemoved',
        ...(only ? { ConditionExpression: only === 'new' ? 'attribute_not_exists(hardLimit)' : 'attribute_exists(hardLimit)' } : {}),
        ExpressionAttributeValues: { ':l': quota.hardLimit, ':zero': 0 },
        ReturnValues: 'ALL_NEW',
      },
    });
    return written && toQuota(written);
  }

  /**
   * A gpuHours budget, in GPU-ms. Without a period (a changed limit) the stored period stays. With one, when
   * the stored period is that period's current one, what was spent in it is kept (a restart re-seeding the
   * config, a budget removed and given again); otherwise the current period starts with nothing spent.
   * Reservations of holding jobs always count. Each write derives `available` from the counters at its instant.
   */
  private async putBudget(quota: QuotaLimit, only: 'new' | 'existing' | undefined, now: Date): Promise<QuotaRecord | undefined> {
    const key = { project: quota.project, resource: quota.resource };
    const onlyCondition = only === 'new' ? 'attribute_not_exists(hardLimit)' : only === 'existing' ? 'attribute_exists(hardLimit)' : undefined;
    const common = { ':l': quota.hardLimit, ':limit': quota.hardLimit * GPU_MS_PER_HOUR, ':zero': 0 };
    const write = async (update: string, condition: string | undefined, values: Record<string, unknown>, names?: Record<string, string>) => {
      const written = await conditionalWrite(this.doc, {
        Update: {
          TableName: this.tables.quotas,
          Key: key,
          UpdateExpression: update,
          ...(condition ? { ConditionExpression: condition } : {}),
          ...(names ? { ExpressionAttributeNames: names } : {}),
          ExpressionAttributeValues: { ...common, ...values },
          ReturnValues: 'ALL_NEW',
        },
      });
      return written && toQuota(written);
    };
    const keep = 'SET hardLimit = :l, available = :limit - if_not_exists(used, :zero), used = if_not_exists(used, :zero), reserved = if_not_exists(reserved, :zero) REMOVE limitRemoved';
    if (!quota.period) return write(keep, onlyCondition, {});
    const { periodStart, periodEnd } = periodBounds(quota.period, now);
    const current = '#period = :p AND periodStart = :ps';
    const names = { '#period': 'period' };
    const values = { ':p': quota.period, ':ps': periodStart };
    // Two conditional writes, one of which matches the row; a third writer in between makes both miss: try again.
    for (let attempt = 0; attempt < 3; attempt++) {
      const kept = await write(keep, [onlyCondition, current].filter(Boolean).join(' AND '), values, names);
      if (kept) return kept;
      const started = await write(
        'SET hardLimit = :l, #period = :p, periodStart = :ps, periodEnd = :pe, used = if_not_exists(reserved, :zero), ' +
          'available = :limit - if_not_exists(reserved, :zero), reserved = if_not_exists(reserved, :zero) REMOVE limitRemoved',
        [onlyCondition, `NOT (${current})`].filter(Boolean).join(' AND '),
        { ...values, ':pe': periodEnd },
        names,
      );
      if (started) return started;
      // Both missed: `only` does not hold (done), or another writer moved the period in between (again).
      const limited = (await this.getQuota(quota.project, quota.resource))?.hardLimit !== undefined;
      if (only && limited !== (only === 'existing')) return undefined;
    }
    return undefined;
  }

  /**
   * `available` goes too: without a limit admission ignores it, and a new limit derives it afresh.
   * `limitRemoved` keeps a deployment default from coming back in the next process.
   */
  async removeQuotaLimit(project: string, resource: QuotaResource): Promise<boolean> {
    const removed = await conditionalWrite(this.doc, {
      Update: {
        TableName: this.tables.quotas,
        Key: { project, resource },
        UpdateExpression: 'REMOVE hardLimit, available SET limitRemoved = :true',
        ConditionExpression: 'attribute_exists(hardLimit)',
        ExpressionAttributeValues: { ':true': true },
      },
    });
    return removed !== undefined;
  }

  private transact(items: TransactItems): Promise<void> {
    return transactWithRetry(this.doc, items);
  }
}

export function queueKey(job: Pick<Job, 'createdAt' | 'id'>): string {
  return `${job.createdAt}#${job.id}`;
}

/** The `queue` index partition of a pool's holding jobs; pool names have no '#'. */
export function holdingPartition(pool: string): string {
  return `${pool}#holding`;
}

/** The job as the admission transaction leaves it: LAUNCHING, holding its GPUs, its worst case reserved. */
function admittedJob(job: Job, admittedAt: string): Job & { heldGpus: number; reservedGpuMs: number } {
  const { stateReason: _reason, queuePosition: _position, promisedStartAt: _promised, ...rest } = job;
  return { ...rest, state: JobState.LAUNCHING, admittedAt, heldGpus: job.gpus * job.nodeCount, reservedGpuMs: worstCaseGpuMs(job) };
}

function toItem(job: Job): Item {
  const item: Item = { ...job, createdKey: queueKey(job) };
  if (QUEUED_STATES.includes(job.state)) Object.assign(item, { queuePool: job.pool, queueKey: queueKey(job) });
  if (HOLDING_STATES.includes(job.state)) Object.assign(item, { queuePool: holdingPartition(job.pool), queueKey: queueKey(job) });
  if (!isTerminal(job.state)) item.activePartition = ACTIVE;
  return item;
}

export function fromItem(item: Item): Job {
  const job = { ...item };
  for (const key of INDEX_ATTRIBUTES) delete job[key];
  if (job.exitedNodes instanceof Set) {
    job.nodeExits = Object.fromEntries([...(job.exitedNodes as Set<string>)].map((e) => [e.slice(0, e.lastIndexOf('=')), Number(e.slice(e.lastIndexOf('=') + 1))]));
  }
  delete job.exitedNodes;
  return job as unknown as Job;
}

function toPool(item: Item): PoolRecord {
  return {
    name: String(item.name),
    instanceType: String(item.instanceType ?? 'local'),
    gpusPerInstance: Number(item.gpusPerInstance ?? 1),
    maxGpus: Number(item.maxGpus ?? 0),
    usedGpus: Number(item.used ?? 0),
    availableGpus: Number(item.available ?? 0),
    backfill: item.backfill === true,
  };
}

function toQuota(item: Item): QuotaRecord {
  return {
    project: String(item.project),
    resource: item.resource as QuotaResource,
    ...(item.hardLimit !== undefined ? { hardLimit: Number(item.hardLimit) } : {}),
    used: Number(item.used ?? 0),
    ...(item.resource === 'gpuHours'
      ? {
          budget: {
            ...(item.period !== undefined ? { period: item.period as BudgetPeriod } : {}),
            ...(item.periodStart !== undefined ? { periodStart: String(item.periodStart) } : {}),
            ...(item.periodEnd !== undefined ? { periodEnd: String(item.periodEnd) } : {}),
            reservedGpuMs: Number(item.reserved ?? 0),
          },
        }
      : {}),
  };
}

