/**
 * ReconcileStore on DynamoDB.
 *
 * Marks live in the idempotency table (it has a TTL attribute, `expiresAtEpoch`)
 * under `#reconcile#<kind>#<subject>`. Idempotency claims there are keyed
 * `<project>#<key>` and a project name starts with a letter or digit, so the
 * leading `#` keeps the two apart. TTL deletes lazily (typically within days),
 * so a read treats a mark past its expiry as absent.
 *
 * Counter repairs are single UpdateItems on the quotas and pools tables,
 * conditioned on `used`, `available` and the limit still being what was read:
 * admissions and releases ADD to those attributes, so any of them in between
 * makes the repair fail instead of overwriting it.
 */
import {
  BatchWriteCommand,
  PutCommand,
  type BatchWriteCommandOutput,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import type { QuotaResource } from '../../core/schemas.js';
import type { CounterRow, Mark, MarkKind, ReconcileStore } from '../../ports/reconcile-store.js';
import { batchGetAll } from './batch-get.js';
import type { TableNames } from './table-names.js';
import { conditionalWrite } from './transactions.js';
import { readAll } from './paging.js';

const BATCH_WRITE_MAX = 25;
const UNPROCESSED_ATTEMPTS = 8;

type Item = Record<string, unknown>;

export function markKey(kind: MarkKind, subject: string): string {
  return `#reconcile#${kind}#${subject}`;
}

export class DynamoReconcileStore implements ReconcileStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tables: Pick<TableNames, 'quotas' | 'pools' | 'idempotency'>,
  ) {}

  async getMarks(kind: MarkKind, subjects: readonly string[], now: Date): Promise<Map<string, Mark>> {
    const marks = new Map<string, Mark>();
    const nowEpoch = Math.floor(now.getTime() / 1000);
    const keys = [...new Set(subjects)].map((subject) => ({ key: markKey(kind, subject) }));
    const found = await batchGetAll(this.doc, { [this.tables.idempotency]: keys });
    for (const item of found.get(this.tables.idempotency) ?? []) {
      const expired = typeof item.expiresAtEpoch === 'number' && item.expiresAtEpoch <= nowEpoch;
      if (
        expired ||
        item.kind !== kind ||
        typeof item.subject !== 'string' ||
        typeof item.observed !== 'string' ||
        typeof item.markedAt !== 'string'
      )
        continue;
      marks.set(item.subject, { observed: item.observed, markedAt: item.markedAt });
    }
    return marks;
  }

  async putMark(kind: MarkKind, subject: string, mark: Mark, expiresAt: Date): Promise<void> {
    await this.doc.send(
      new PutCommand({
        TableName: this.tables.idempotency,
        Item: {
          key: markKey(kind, subject),
          kind,
          subject,
          observed: mark.observed,
          markedAt: mark.markedAt,
          expiresAtEpoch: Math.ceil(expiresAt.getTime() / 1000),
        },
      }),
    );
  }

  async clearMarks(kind: MarkKind, subjects: readonly string[]): Promise<void> {
    const unique = [...new Set(subjects)];
    for (let i = 0; i < unique.length; i += BATCH_WRITE_MAX) {
      type Requests = NonNullable<ConstructorParameters<typeof BatchWriteCommand>[0]['RequestItems']>[string];
      let requests: Requests | undefined = unique
        .slice(i, i + BATCH_WRITE_MAX)
        .map((subject) => ({ DeleteRequest: { Key: { key: markKey(kind, subject) } } }));
      for (let attempt = 1; requests?.length; attempt++) {
        if (attempt > UNPROCESSED_ATTEMPTS)
          throw new Error(`BatchWriteItem on ${this.tables.idempotency} left ${requests.length} deletes unprocessed`);
        if (attempt > 1) await backoff(attempt);
        const { UnprocessedItems }: BatchWriteCommandOutput = await this.doc.send(
          new BatchWriteCommand({ RequestItems: { [this.tables.idempotency]: requests } }),
        );
        requests = UnprocessedItems?.[this.tables.idempotency];
      }
    }
  }

  async listCounters(): Promise<CounterRow[]> {
    const quotas = await this.scan(this.tables.quotas);
    const pools = await this.scan(this.tables.pools);
    return [
      ...quotas.map(
        (item): CounterRow => ({
          ref: { kind: 'quota', project: String(item.project), resource: item.resource as QuotaResource },
          ...numbers(item, 'hardLimit'),
        }),
      ),
      ...pools.map(
        (item): CounterRow => ({ ref: { kind: 'pool', pool: String(item.name) }, ...numbers(item, 'maxGpus') }),
      ),
    ];
  }

  async repairCounter(read: CounterRow, used: number): Promise<boolean> {
    const [table, key, limitAttribute] =
      read.ref.kind === 'pool'
        ? [this.tables.pools, { name: read.ref.pool }, 'maxGpus']
        : [this.tables.quotas, { project: read.ref.project, resource: read.ref.resource }, 'hardLimit'];
    const names: Record<string, string> = { '#used': 'used', '#available': 'available', '#limit': limitAttribute };
    const values: Record<string, unknown> = { ':used': used };
    const conditions: string[] = [];
    const expect = (name: string, value: number | undefined) => {
      if (value === undefined) {
        conditions.push(`attribute_not_exists(${name})`);
      } else {
        values[`:was${name.slice(1)}`] = value;
        conditions.push(`${name} = :was${name.slice(1)}`);
      }
    };
    expect('#used', read.used);
    expect('#available', read.available);
    expect('#limit', read.limit);
    let update = 'SET #used = :used';
    // Without a limit, `available` means nothing (admission ignores it): leave it.
    if (read.limit !== undefined) {
      update += ', #available = :available';
      values[':available'] = read.limit - used;
    }
    const repaired = await conditionalWrite(this.doc, {
      Update: {
        TableName: table,
        Key: key,
        UpdateExpression: update,
        ConditionExpression: conditions.join(' AND '),
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
      },
    });
    return repaired !== undefined;
  }

  private scan(table: string): Promise<Item[]> {
    return readAll(this.doc, { Scan: { TableName: table, ConsistentRead: true } });
  }
}

function numbers(item: Item, limitAttribute: string): Pick<CounterRow, 'used' | 'available' | 'limit'> {
  const number = (value: unknown) => (typeof value === 'number' ? value : undefined);
  const used = number(item.used);
  const available = number(item.available);
  const limit = number(item[limitAttribute]);
  return {
    ...(used !== undefined ? { used } : {}),
    ...(available !== undefined ? { available } : {}),
    ...(limit !== undefined ? { limit } : {}),
  };
}

function backoff(attempt: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * 2 ** Math.min(attempt, 6)));
}
