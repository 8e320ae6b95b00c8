/**
 * JobRecords on DynamoDB. Every job change is a conditional write; a job stored admitted and its
 * release are single transactions across the job, the project's quota and the pool, so no
 * interleaving of workers can overshoot a limit or release twice. How a job is stored (its index
 * attributes) is items.ts'; the queue and the admission are DynamoQueue's, the pools', quotas' and
 * budgets' DynamoLimits'.
 */
import { GetCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { chargedGpuMs } from '../../core/budgets.js';
import { Conflict, IdempotencyConflict, QuotaExceeded, StaleJob } from '../../core/errors.js';
import { HOLDING_STATES, isTerminal, JobState, QUEUED_STATES, type Job, type Outcome } from '../../core/job.js';
import type {
  IdempotencyClaim,
  JobRecords,
  OutcomeInstance,
  Page,
  RequeueChange,
  TerminalChange,
} from '../../ports/jobs.js';
import { release, reserve, settleReservation, takeQuota } from './counter-items.js';
import { templateUsableCheck } from './dynamo-catalog.js';
import { admissionItems, admittedJob } from './admission-items.js';
import type { DynamoLimits } from './dynamo-limits.js';
import { fromItem, queueKey, toItem } from './items.js';
import { listJobItems } from './job-listing.js';
import { readAll } from './paging.js';
import type { TableNames } from './table-names.js';
import { cancellationCodes, conditionalWrite, transactWithRetry, type TransactItems } from './transactions.js';

const IDEMPOTENCY_TTL_SECONDS = 24 * 3600;

export class DynamoJobs implements JobRecords {
  /** `limits` names the jobs quota a refused create hit, and rolls a GPU-hour budget whose period is over. */
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tables: TableNames,
    private readonly limits: Pick<DynamoLimits, 'getQuota' | 'rollBudgetIfOver'>,
  ) {}

  async createJob(job: Job, claim?: IdempotencyClaim): Promise<{ job: Job; created: boolean }> {
    const { jobs, created } = await this.create([job], claim);
    return { job: jobs[0], created };
  }

  async createAdmitted(
    job: Job,
    admittedAt: string,
    claim?: IdempotencyClaim,
  ): Promise<{ job: Job; created: boolean } | undefined> {
    const admitted = admittedJob(job, admittedAt);
    const stored = await this.create([admitted], claim, admissionItems(this.tables, admitted, admittedAt));
    return stored && { job: stored.jobs[0], created: stored.created };
  }

  async createArray(
    jobs: Job[],
    claim?: IdempotencyClaim,
    admit?: { count: number; at: string },
  ): Promise<{ jobs: Job[]; created: boolean } | undefined> {
    if (!admit?.count) return this.create(jobs, claim);
    const members = jobs.map((job, i) => (i < admit.count ? admittedJob(job, admit.at) : job));
    const [first] = members as [ReturnType<typeof admittedJob>];
    // The admitted members' GPUs and worst cases, taken together, each counter with its condition.
    const held = { ...first, heldGpus: first.heldGpus * admit.count, reservedGpuMs: first.reservedGpuMs * admit.count };
    return this.create(members, claim, admissionItems(this.tables, held, admit.at));
  }

  /**
   * The jobs (one, or an array's members: same project and template), their `jobs` usage, the idempotency
   * claim and the template check in one transaction, with `admission` (the admission transaction's quota,
   * budget and pool items) when some are stored admitted. Undefined when one of those admission items said
   * no: nothing was stored.
   */
  private async create(jobs: Job[], claim: IdempotencyClaim | undefined): Promise<{ jobs: Job[]; created: boolean }>;
  private async create(
    jobs: Job[],
    claim: IdempotencyClaim | undefined,
    admission: TransactItems,
  ): Promise<{ jobs: Job[]; created: boolean } | undefined>;
  private async create(
    jobs: Job[],
    claim: IdempotencyClaim | undefined,
    admission: TransactItems = [],
  ): Promise<{ jobs: Job[]; created: boolean } | undefined> {
    const [job] = jobs as [Job];
    const items: TransactItems = jobs.map((j) => ({
      Put: { TableName: this.tables.jobs, Item: toItem(j), ConditionExpression: 'attribute_not_exists(id)' },
    }));
    const jobsQuota = items.push(takeQuota(this.tables.quotas, job.project, 'jobs', jobs.length)) - 1;
    if (claim) {
      items.push({
        Put: {
          TableName: this.tables.idempotency,
          Item: {
            key: claim.key,
            bodyHash: claim.bodyHash,
            jobId: job.id,
            ...(job.arrayId ? { arrayId: job.arrayId } : {}),
            expiresAtEpoch: Math.floor(Date.now() / 1000) + IDEMPOTENCY_TTL_SECONDS,
          },
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
      return { jobs, created: true };
    } catch (error) {
      const reasons = cancellationCodes(error);
      if (!reasons) throw error;
      if (claim && reasons[jobsQuota + 1] === 'ConditionalCheckFailed') return this.replay(claim);
      if (templateCheck !== undefined && reasons[templateCheck] === 'ConditionalCheckFailed') {
        throw new Conflict(
          `template ${job.template} is being deleted or was deleted meanwhile; the job was not stored`,
        );
      }
      if (reasons[jobsQuota] === 'ConditionalCheckFailed') {
        const quota = await this.limits.getQuota(job.project, 'jobs');
        const what = jobs.length > 1 ? `an array of ${jobs.length} jobs needs as many` : 'wait for one to end';
        throw new QuotaExceeded(
          job.project,
          'jobs',
          `project ${job.project} has ${quota?.used ?? '?'} of ${quota?.hardLimit ?? '?'} active jobs; ${what}`,
        );
      }
      if (reasons.slice(firstAdmissionItem).includes('ConditionalCheckFailed')) return undefined;
      throw error;
    }
  }

  private async replay(claim: IdempotencyClaim): Promise<{ jobs: Job[]; created: boolean }> {
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.tables.idempotency, Key: { key: claim.key }, ConsistentRead: true }),
    );
    if (!Item) throw new IdempotencyConflict('Idempotency-Key is being used by a request in flight; retry');
    if (Item.bodyHash !== claim.bodyHash)
      throw new IdempotencyConflict('Idempotency-Key was already used with a different request body');
    const jobs = Item.arrayId ? await this.listArray(String(Item.arrayId)) : [await this.getJob(String(Item.jobId))];
    if (!jobs.length || jobs.some((j) => !j))
      throw new IdempotencyConflict('Idempotency-Key names a job that was removed');
    return { jobs: jobs as Job[], created: false };
  }

  /** An array's members, by index, from the `byArray` index (eventually consistent). */
  async listArray(arrayId: string): Promise<Job[]> {
    const items = await readAll(this.doc, {
      Query: {
        TableName: this.tables.jobs,
        IndexName: 'byArray',
        KeyConditionExpression: 'arrayId = :a',
        ExpressionAttributeValues: { ':a': arrayId },
      },
    });
    return items.map(fromItem).sort((a, b) => (a.arrayIndex ?? 0) - (b.arrayIndex ?? 0));
  }

  async getJob(id: string): Promise<Job | undefined> {
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.tables.jobs, Key: { id }, ConsistentRead: true }),
    );
    return Item ? fromItem(Item) : undefined;
  }

  async listJobs(
    filter: { projects?: string[]; state?: JobState },
    page: { limit: number; nextToken?: string },
  ): Promise<Page<Job>> {
    const { items, nextToken } = await listJobItems(this.doc, this.tables, filter, page);
    return { items: items.map(fromItem), nextToken };
  }

  async updateJob(
    id: string,
    from: readonly JobState[],
    set: Partial<Job>,
    remove: readonly (keyof Job)[] = [],
  ): Promise<Job> {
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
      if (!QUEUED_STATES.includes(set.state) && !HOLDING_STATES.includes(set.state))
        removes.add('queuePool').add('queueKey');
      if (isTerminal(set.state)) removes.add('activePartition').add('heldGpus').add('taskToken');
    }
    for (const key of removes) names[`#${key}`] = key;
    const condition = from.map((_, i) => `:from${i}`);
    for (const [i, state] of from.entries()) values[`:from${i}`] = state;
    const updated = await conditionalWrite(
      this.doc,
      {
        Update: {
          TableName: this.tables.jobs,
          Key: { id },
          UpdateExpression: [
            sets.length ? `SET ${sets.join(', ')}` : '',
            removes.size ? `REMOVE ${[...removes].map((k) => `#${k}`).join(', ')}` : '',
          ]
            .join(' ')
            .trim(),
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
        ExpressionAttributeValues: {
          ':e': new Set([`${instanceId}=${exitCode}`]),
          ':launching': JobState.LAUNCHING,
          ':running': JobState.RUNNING,
        },
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

  async finishJob(job: Job, change: TerminalChange): Promise<Job | undefined> {
    const held = job.heldGpus ?? 0;
    const values: Record<string, unknown> = {
      ':state': change.state,
      ':reason': change.stateReason,
      ':at': change.finishedAt,
      ':cur': job.state,
    };
    let set = 'SET #state = :state, stateReason = :reason, finishedAt = :at';
    if (change.exitCode !== undefined) {
      set += ', exitCode = :exit';
      values[':exit'] = change.exitCode;
    }
    if (change.outputs !== undefined) {
      set += ', outputs = :outputs';
      values[':outputs'] = change.outputs;
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
        release(this.tables.quotas, { project: job.project, resource: 'jobs' }, 1),
        ...(held > 0 ? this.releaseGpus(job, held) : []),
        ...(reserved !== undefined
          ? [settleReservation(this.tables.quotas, job.project, reserved, chargedGpuMs(job, change.finishedAt))]
          : []),
      ]);
    } catch (error) {
      if (cancellationCodes(error)?.[0] === 'ConditionalCheckFailed') return undefined;
      throw error;
    }
    const finished: Job = {
      ...job,
      state: change.state,
      stateReason: change.stateReason,
      finishedAt: change.finishedAt,
      ...(change.exitCode !== undefined ? { exitCode: change.exitCode } : {}),
      ...(change.outputs !== undefined ? { outputs: change.outputs } : {}),
    };
    delete finished.heldGpus;
    delete finished.reservedGpuMs;
    delete finished.taskToken;
    delete finished.queuePosition;
    return finished;
  }

  async requeueJob(job: Job, change: RequeueChange): Promise<Job | undefined> {
    const held = job.heldGpus ?? 0;
    const queued: Job = {
      ...job,
      state: JobState.WAITING,
      stateReason: change.stateReason,
      retryAt: change.retryAt,
      launchAttempt: change.launchAttempt,
    };
    for (const key of [
      'heldGpus',
      'reservedGpuMs',
      'taskToken',
      'instanceIds',
      'devices',
      'admittedAt',
      'outcome',
      'verdict',
      'nodeExits',
    ] as const)
      delete queued[key];
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
        ...(reserved !== undefined ? [settleReservation(this.tables.quotas, job.project, reserved, 0)] : []),
      ]);
    } catch (error) {
      if (cancellationCodes(error)?.[0] === 'ConditionalCheckFailed') return undefined;
      throw error;
    }
    return queued;
  }

  async changeReservation(
    job: Job,
    set: Partial<Job>,
    reservedGpuMs: number,
    at: string,
    mayRoll = true,
  ): Promise<{ changed: true; job: Job } | { changed: false; blockedBy: 'job' | 'budget' }> {
    const names: Record<string, string> = { '#state': 'state' };
    const values: Record<string, unknown> = {
      ':cur': job.state,
      ':before': job.reservedGpuMs,
      ':reserved': reservedGpuMs,
    };
    const sets = ['reservedGpuMs = :reserved'];
    for (const [key, value] of Object.entries(set)) {
      if (value === undefined || key === 'reservedGpuMs') continue;
      names[`#${key}`] = key;
      values[`:${key}`] = value;
      sets.push(`#${key} = :${key}`);
    }
    const more = reservedGpuMs - (job.reservedGpuMs ?? 0);
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
        // More is reserved only where there is room; less is given back whatever the budget's state
        // (settled as a reservation of the difference with nothing charged).
        more > 0
          ? reserve(this.tables.quotas, job.project, more, at)
          : settleReservation(this.tables.quotas, job.project, -more, 0),
      ]);
    } catch (error) {
      const reasons = cancellationCodes(error);
      if (reasons?.[0] === 'ConditionalCheckFailed') return { changed: false, blockedBy: 'job' };
      if (reasons?.[1] !== 'ConditionalCheckFailed') throw error;
      if (mayRoll && (await this.limits.rollBudgetIfOver(job.project, at)))
        return this.changeReservation(job, set, reservedGpuMs, at, false);
      return { changed: false, blockedBy: 'budget' };
    }
    // Read back: the caller needs what it did not read (a task token stored since, for one).
    const changed = await this.getJob(job.id);
    if (!changed) return { changed: false, blockedBy: 'job' };
    return { changed: true, job: changed };
  }

  async deleteJob(id: string): Promise<boolean> {
    const deleted = await conditionalWrite(this.doc, {
      Delete: {
        TableName: this.tables.jobs,
        Key: { id },
        ConditionExpression: 'attribute_exists(id) AND attribute_not_exists(activePartition)',
      },
    });
    return deleted !== undefined;
  }

  private releaseGpus(job: Job, held: number): TransactItems {
    return [
      release(this.tables.quotas, { project: job.project, resource: 'gpus' }, held),
      release(this.tables.pools, { name: job.pool }, held),
    ];
  }

  private transact(items: TransactItems): Promise<void> {
    return transactWithRetry(this.doc, items);
  }
}
