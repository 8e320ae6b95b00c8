/**
 * Pools, quotas and gpuHours budgets on DynamoDB: the admin's reads and writes of the counter rows that
 * admission takes from. Each write derives `available` from the `used` stored at its instant, so no
 * admission slips between a read and a write.
 */
import { GetCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { GPU_MS_PER_HOUR, periodBounds, type BudgetPeriod } from '../../core/budgets.js';
import type { CountedQuotaResource, QuotaResource } from '../../core/schemas.js';
import type { Limits, PoolRecord, QuotaLimit, QuotaRecord } from '../../ports/limits.js';
import { batchGetAll } from './batch-get.js';
import { toPool, toQuota } from './items.js';
import { readAll } from './paging.js';
import type { TableNames } from './table-names.js';
import { conditionalWrite } from './transactions.js';

export class DynamoLimits {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tables: Pick<TableNames, 'pools' | 'quotas'>,
    /** Items per Scan page; unset, DynamoDB's 1 MB page. Tests set it small to make a table span pages. */
    private readonly pageLimit?: number,
  ) {}

  async getPool(name: string): Promise<PoolRecord | undefined> {
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.tables.pools, Key: { name }, ConsistentRead: true }),
    );
    return Item ? toPool(Item) : undefined;
  }

  async getLimits(pool: string | undefined, projects: readonly string[]): Promise<Limits> {
    const unique = [...new Set(projects)];
    const found = await batchGetAll(this.doc, {
      [this.tables.pools]: pool === undefined ? [] : [{ name: pool }],
      [this.tables.quotas]: unique.flatMap((project) => [
        { project, resource: 'gpus' },
        { project, resource: 'gpuHours' },
      ]),
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
    const items = await readAll(this.doc, {
      Scan: { TableName: this.tables.pools, ConsistentRead: true, Limit: this.pageLimit },
    });
    return items.map(toPool).sort((a, b) => a.name.localeCompare(b.name));
  }

  async putPool(pool: {
    name: string;
    instanceType: string;
    gpusPerInstance: number;
    maxGpus: number;
    backfill?: boolean;
  }): Promise<void> {
    await this.doc.send(
      new UpdateCommand({
        TableName: this.tables.pools,
        Key: { name: pool.name },
        UpdateExpression: `SET instanceType = :t, gpusPerInstance = :g, used = if_not_exists(used, :zero)${pool.backfill !== undefined ? ', backfill = :b' : ''}`,
        ExpressionAttributeValues: {
          ':t': pool.instanceType,
          ':g': pool.gpusPerInstance,
          ':zero': 0,
          ...(pool.backfill !== undefined ? { ':b': pool.backfill } : {}),
        },
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
    return this.updatePool(
      name,
      'SET maxGpus = :m, available = :m - if_not_exists(used, :zero), used = if_not_exists(used, :zero)',
      { ':m': maxGpus, ':zero': 0 },
    );
  }

  /** An update of a pool that exists: the pool as it left it, undefined when there is no such pool. */
  private async updatePool(
    name: string,
    update: string,
    values: Record<string, unknown>,
  ): Promise<PoolRecord | undefined> {
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
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.tables.quotas, Key: { project, resource }, ConsistentRead: true }),
    );
    return Item ? toQuota(Item) : undefined;
  }

  async listQuotas(project?: string): Promise<QuotaRecord[]> {
    const items = await readAll(
      this.doc,
      project
        ? {
            Query: {
              TableName: this.tables.quotas,
              KeyConditionExpression: '#project = :p',
              ExpressionAttributeNames: { '#project': 'project' },
              ExpressionAttributeValues: { ':p': project },
            },
          }
        : { Scan: { TableName: this.tables.quotas } },
    );
    return items.map(toQuota);
  }

  async putQuota(quota: QuotaLimit, only?: 'new' | 'existing', now = new Date()): Promise<QuotaRecord | undefined> {
    if (quota.resource === 'gpuHours') return this.putBudget(quota, only, now);
    const written = await conditionalWrite(this.doc, {
      Update: {
        TableName: this.tables.quotas,
        Key: { project: quota.project, resource: quota.resource },
        // One write: `available` follows the `used` stored at that instant, so no admission slips between.
        UpdateExpression:
          'SET hardLimit = :l, available = :l - if_not_exists(used, :zero), used = if_not_exists(used, :zero) REMOVE limitRemoved',
        ...(only
          ? { ConditionExpression: only === 'new' ? 'attribute_not_exists(hardLimit)' : 'attribute_exists(hardLimit)' }
          : {}),
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
  private async putBudget(
    quota: QuotaLimit,
    only: 'new' | 'existing' | undefined,
    now: Date,
  ): Promise<QuotaRecord | undefined> {
    const key = { project: quota.project, resource: quota.resource };
    const onlyCondition =
      only === 'new'
        ? 'attribute_not_exists(hardLimit)'
        : only === 'existing'
          ? 'attribute_exists(hardLimit)'
          : undefined;
    const common = { ':l': quota.hardLimit, ':limit': quota.hardLimit * GPU_MS_PER_HOUR, ':zero': 0 };
    const write = async (
      update: string,
      condition: string | undefined,
      values: Record<string, unknown>,
      names?: Record<string, string>,
    ) => {
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
    const keep =
      'SET hardLimit = :l, available = :limit - if_not_exists(used, :zero), used = if_not_exists(used, :zero), reserved = if_not_exists(reserved, :zero) REMOVE limitRemoved';
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

  /**
   * Roll a budget whose period is over (at `at`) into the current one: nothing spent yet, the reservations
   * of jobs still holding carried over. Conditioned on the limit and period read, so of concurrent
   * callers one rolls and the others find it done. True when the period was over: admit again.
   */
  async rollBudgetIfOver(project: string, at: string): Promise<boolean> {
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.tables.quotas, Key: { project, resource: 'gpuHours' }, ConsistentRead: true }),
    );
    if (Item?.hardLimit === undefined || (Item.periodEnd !== undefined && String(Item.periodEnd) > at)) return false;
    const { periodStart, periodEnd } = periodBounds((Item.period as BudgetPeriod | undefined) ?? 'month', new Date(at));
    // A condition that fails means another caller rolled it first.
    await conditionalWrite(this.doc, {
      Update: {
        TableName: this.tables.quotas,
        Key: { project, resource: 'gpuHours' },
        UpdateExpression:
          'SET periodStart = :ps, periodEnd = :pe, used = if_not_exists(reserved, :zero), available = :limit - if_not_exists(reserved, :zero)',
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
          UpdateExpression:
            'SET hardLimit = :limit, available = :limit - if_not_exists(used, :zero), used = if_not_exists(used, :zero)',
          ConditionExpression: 'attribute_not_exists(hardLimit) AND attribute_not_exists(limitRemoved)',
          ExpressionAttributeValues: { ':limit': limit, ':zero': 0 },
        },
      });
    }
    this.defaultedProjects.add(project);
  }
}
