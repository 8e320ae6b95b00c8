/**
 * JobQueue on DynamoDB: the admission transaction, and the jobs table's queue reads: a pool's queue in
 * order (the sparse `queue` index), the jobs holding a pool's GPUs (its `<pool>#holding` partition), and
 * every job not yet ended (the `active` index).
 */
import { QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { JobState, type Job } from '../../core/job.js';
import type { AdmitResult, JobQueue, QueuedJobSummary } from '../../ports/queue.js';
import { ADMIT_ITEMS, admissionItems, admittedJob } from './admission-items.js';
import type { DynamoLimits } from './dynamo-limits.js';
import { ACTIVE, fromItem, holdingPartition, queueKey, type Item } from './items.js';
import { pages, readAll } from './paging.js';
import type { TableNames } from './table-names.js';
import { cancellationCodes, transactWithRetry } from './transactions.js';

/** The attributes of a QueuedJobSummary. */
const SUMMARY_ATTRIBUTES = [
  'id',
  'pool',
  'project',
  'state',
  'createdAt',
  'gpus',
  'nodeCount',
  'liveTimeoutMinutes',
  'retryAt',
] as const satisfies readonly (keyof QueuedJobSummary)[];

export class DynamoQueue implements JobQueue {
  /** `limits` rolls a GPU-hour budget whose period is over before an admission is refused for it. */
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tables: Pick<TableNames, 'jobs' | 'quotas' | 'pools'>,
    private readonly limits: Pick<DynamoLimits, 'rollBudgetIfOver'>,
  ) {}

  admit(job: Job, admittedAt: string): Promise<AdmitResult> {
    return this.tryAdmit(job, admittedAt, true);
  }

  private async tryAdmit(job: Job, admittedAt: string, mayRoll: boolean): Promise<AdmitResult> {
    const admitted = admittedJob(job, admittedAt);
    try {
      await transactWithRetry(this.doc, [
        {
          Update: {
            TableName: this.tables.jobs,
            Key: { id: job.id },
            UpdateExpression:
              'SET #state = :launching, admittedAt = :at, heldGpus = :g, reservedGpuMs = :r, queuePool = :holding, workflowRun = :run REMOVE queuePosition, stateReason, promisedStartAt',
            // The state the caller read: a job cancelled, admitted or changed since is left alone.
            ConditionExpression: '#state = :from AND #state IN (:pending, :waiting)',
            ExpressionAttributeNames: { '#state': 'state' },
            ExpressionAttributeValues: {
              ':launching': JobState.LAUNCHING,
              ':at': admittedAt,
              ':g': admitted.heldGpus,
              ':r': admitted.reservedGpuMs,
              ':holding': holdingPartition(job.pool),
              ':run': admitted.workflowRun,
              ':from': job.state,
              ':pending': JobState.PENDING,
              ':waiting': JobState.WAITING,
            },
          },
        },
        ...admissionItems(this.tables, admitted, admittedAt),
      ]);
    } catch (error) {
      const reasons = cancellationCodes(error);
      if (!reasons) throw error;
      const blockedBy = ADMIT_ITEMS.find((_, i) => reasons[i] === 'ConditionalCheckFailed');
      // A budget whose period is over is rolled over first: then the admission is decided on the new period.
      if (blockedBy === 'budget' && mayRoll && (await this.limits.rollBudgetIfOver(job.project, admittedAt)))
        return this.tryAdmit(job, admittedAt, false);
      if (blockedBy) return { admitted: false, blockedBy };
      throw error;
    }
    return { admitted: true, job: admitted };
  }

  async listQueue(pool: string, limit: number, startAfter?: string): Promise<{ items: Job[]; next?: string }> {
    const { items, next } = await this.queryQueue(pool, limit, startAfter);
    return { items: items.map(fromItem), next };
  }

  async listQueueSummaries(
    pool: string,
    limit: number,
    startAfter?: string,
  ): Promise<{ items: QueuedJobSummary[]; next?: string }> {
    const { items, next } = await this.queryQueue(pool, limit, startAfter, SUMMARY_ATTRIBUTES);
    return { items: items as QueuedJobSummary[], next };
  }

  private async queryQueue(
    pool: string,
    limit: number,
    startAfter?: string,
    attributes?: readonly string[],
  ): Promise<{ items: Item[]; next?: string }> {
    const { Items = [], LastEvaluatedKey } = await this.doc.send(
      new QueryCommand({
        TableName: this.tables.jobs,
        IndexName: 'queue',
        KeyConditionExpression: startAfter ? 'queuePool = :p AND queueKey > :k' : 'queuePool = :p',
        ExpressionAttributeValues: { ':p': pool, ...(startAfter ? { ':k': startAfter } : {}) },
        ...(attributes
          ? {
              ProjectionExpression: attributes.map((_, i) => `#a${i}`).join(', '),
              ExpressionAttributeNames: Object.fromEntries(attributes.map((a, i) => [`#a${i}`, a])),
            }
          : {}),
        Limit: limit,
      }),
    );
    return { items: Items, next: LastEvaluatedKey ? String(LastEvaluatedKey.queueKey) : undefined };
  }

  async listHolding(pool: string): Promise<Job[]> {
    const items = await readAll(this.doc, {
      Query: {
        TableName: this.tables.jobs,
        IndexName: 'queue',
        KeyConditionExpression: 'queuePool = :p',
        ExpressionAttributeValues: { ':p': holdingPartition(pool) },
      },
    });
    return items.map(fromItem);
  }

  queuePosition(job: Job): Promise<number> {
    return this.countQueue(job.pool, queueKey(job));
  }

  queueLength(pool: string): Promise<number> {
    return this.countQueue(pool);
  }

  private async countQueue(pool: string, before?: string): Promise<number> {
    let count = 0;
    const counted = pages(this.doc, {
      Query: {
        TableName: this.tables.jobs,
        IndexName: 'queue',
        KeyConditionExpression: before ? 'queuePool = :p AND queueKey < :k' : 'queuePool = :p',
        ExpressionAttributeValues: { ':p': pool, ...(before ? { ':k': before } : {}) },
        Select: 'COUNT',
      },
    });
    for await (const page of counted) count += page.Count ?? 0;
    return count;
  }

  async listActiveJobs(): Promise<Job[]> {
    const items = await readAll(this.doc, {
      Query: {
        TableName: this.tables.jobs,
        IndexName: 'active',
        KeyConditionExpression: 'activePartition = :a',
        ExpressionAttributeValues: { ':a': ACTIVE },
      },
    });
    return items.map(fromItem);
  }
}
