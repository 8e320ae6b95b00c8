/**
 * What each control-plane function may do to Flare's tables: exactly the DynamoDB actions its code can
 * send, per table, and Query on the indexes it names. Derived from the store-port methods each handler
 * can reach and the commands each adapter method sends; test/infra/dynamodb-least-privilege.test.ts
 * recomputes both and fails when this falls behind the code. A missing action is an outage on AWS.
 */
import type { TableKey } from './tables.js';

/** The item actions a Flare adapter sends (a transaction authorizes each of its items' own action). */
export type TableAction =
  | 'GetItem'
  | 'BatchGetItem'
  | 'Query'
  | 'Scan'
  | 'ConditionCheckItem'
  | 'PutItem'
  | 'UpdateItem'
  | 'DeleteItem'
  | 'BatchWriteItem';

/** Per table: the actions on the table itself, and the indexes it Queries (no other index action is sent). */
export type TableAccess = Partial<Record<TableKey, { actions: readonly TableAction[]; queries?: readonly string[] }>>;

/**
 * The API: submit (jobs, the idempotency claim and its replay, the template check, admission's counters),
 * read, change, cancel and remove jobs, list them by project, array and queue, quotas, pools, images
 * and templates (with their name claims and the templates quota).
 */
export const API_TABLE_ACCESS: TableAccess = {
  jobs: {
    actions: ['GetItem', 'PutItem', 'UpdateItem', 'DeleteItem'],
    queries: ['queue', 'byProject', 'active', 'byArray'],
  },
  quotas: { actions: ['GetItem', 'BatchGetItem', 'Query', 'Scan', 'UpdateItem'] },
  pools: { actions: ['GetItem', 'BatchGetItem', 'Scan', 'UpdateItem'] },
  idempotency: { actions: ['GetItem', 'PutItem'] },
  catalog: {
    actions: ['GetItem', 'BatchGetItem', 'Query', 'ConditionCheckItem', 'PutItem', 'UpdateItem', 'DeleteItem'],
  },
};

/**
 * The workflow's tasks: read and move a job (admit, launch, requeue, finish), drain its pool's queue
 * after a release (the admission transaction and the budget roll-over), read limits. No catalog, no
 * idempotency table, nothing created or deleted.
 */
export const TASKS_TABLE_ACCESS: TableAccess = {
  jobs: { actions: ['GetItem', 'UpdateItem'], queries: ['queue'] },
  quotas: { actions: ['GetItem', 'BatchGetItem', 'UpdateItem'] },
  pools: { actions: ['GetItem', 'BatchGetItem', 'Scan', 'UpdateItem'] },
};

/**
 * The reconciler: active jobs and the queue (it drains and redrives), lost instances' outcomes, the
 * counters it scans and repairs, and its marks in the idempotency table (batch read, put, batch delete).
 */
export const RECONCILER_TABLE_ACCESS: TableAccess = {
  jobs: { actions: ['GetItem', 'UpdateItem'], queries: ['queue', 'active'] },
  quotas: { actions: ['GetItem', 'BatchGetItem', 'Scan', 'UpdateItem'] },
  pools: { actions: ['GetItem', 'BatchGetItem', 'Scan', 'UpdateItem'] },
  idempotency: { actions: ['BatchGetItem', 'PutItem', 'BatchWriteItem'] },
};

/** compute-events reads a job by id and records its outcome or a node's exit on it (lambdas/core/completion.ts). */
export const COMPUTE_EVENTS_TABLE_ACCESS: TableAccess = { jobs: { actions: ['GetItem', 'UpdateItem'] } };
