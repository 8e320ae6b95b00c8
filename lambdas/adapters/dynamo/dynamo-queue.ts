/**
 * The jobs table's queue reads: a pool's queue in order (the sparse `queue` index), the jobs holding a
 * pool's GPUs (its `<pool>#holding` partition), and every job not yet ended (the `active` index).
 */
import { QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Job } from '../../core/job.js';
import type { QueuedJobSummary } from '../../ports/job-store.js';
import { ACTIVE, fromItem, holdingPartition, queueKey, type Item } from './items.js';
import { pages, readAll } from './paging.js';
import type { TableNames } from './table-names.js';

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

export class DynamoQueue {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tables: Pick<TableNames, 'jobs'>,
  ) {}

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
