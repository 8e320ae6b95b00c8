/**
 * What the limits API tests (test/integration/quotas-api, quota-changes and pools-stats-api) share: alice,
 * bob and root as claims, a world per test with two pools, the API Lambda over its deps, and the store's
 * counters read beside it.
 */
import assert from 'node:assert/strict';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoReconcileStore } from '../../lambdas/adapters/dynamo/dynamo-reconcile-store.js';
import type { TableNames } from '../../lambdas/adapters/dynamo/table-names.js';
import { HOLDING_STATES, type Job } from '../../lambdas/core/job.js';
import { createApiHandler } from '../../lambdas/handlers/http/api.js';
import { template, worldPerTest, type World, type WorldSetup } from './harness.js';
import { apiEvent, invokeApi, type ApiRequest, type ApiResponse, type Claims } from './api-calls.js';

export const ROOT: Claims = { sub: 'root', 'cognito:groups': ['admin'] };
export const ALICE: Claims = { sub: 'alice', 'cognito:groups': ['vision'] };
export const BOB: Claims = { sub: 'bob', 'cognito:groups': ['audio'] };

export const TEMPLATES = [
  template({ name: 'sleep', command: ['sleep', '30'] }),
  template({ name: 'audio-sleep', project: 'audio', pool: 'spare', command: ['sleep', '30'] }),
];

/** A world per test (DynamoDB Local for the file): pools local (4 GPUs) and spare (2), and TEMPLATES. */
export function limitsWorld(): (overrides?: Partial<WorldSetup>) => Promise<World> {
  return worldPerTest({
    pools: [
      { name: 'local', gpus: 4 },
      { name: 'spare', gpus: 2 },
    ],
    templates: TEMPLATES,
  });
}
/** The API Lambda over the world's deps, as `options.as` (default alice, her groups as a list). */
export const api = (world: World, method: string, path: string, options: ApiRequest = {}): Promise<ApiResponse> =>
  invokeApi(
    createApiHandler(() => world.deps),
    apiEvent(method, path, { ...options, as: options.as ?? ALICE }),
  );

export function expectStatus(response: ApiResponse, status: number, code?: string): void {
  assert.equal(response.status, status, JSON.stringify(response.body));
  if (code) assert.equal(response.body.error.code, code);
}

export async function submit(world: World, as: Claims = ALICE, templateName = 'sleep'): Promise<Job> {
  const response = await api(world, 'POST', '/v1/jobs', { as, body: { template: templateName } });
  expectStatus(response, 202);
  return response.body;
}

export async function limit(
  world: World,
  project: string,
  resource: 'gpus' | 'jobs' | 'templates',
  hardLimit: number,
): Promise<void> {
  expectStatus(await api(world, 'POST', '/v1/quotas', { as: ROOT, body: { project, resource, hardLimit } }), 201);
}

/** A counter as stored, `available` included (the API shows only `used`), read the way the reconciler reads it. */
export async function counter(
  world: World,
  project?: string,
): Promise<{ used: number; available: number; limit: number }> {
  const { doc, tables } = storeInternals(world);
  const rows = await new DynamoReconcileStore(doc, tables).listCounters();
  const row = rows.find((r) =>
    project
      ? r.ref.kind === 'quota' && r.ref.project === project && r.ref.resource === 'gpus'
      : r.ref.kind === 'pool' && r.ref.pool === 'local',
  );
  assert.ok(row, `counter ${project ?? 'pool local'}`);
  return { used: row.used ?? 0, available: row.available ?? 0, limit: row.limit ?? Number.NaN };
}

/** The store keeps its client and table names to itself; these tests read beside it. */
export function storeInternals(world: World): { doc: DynamoDBDocumentClient; tables: TableNames } {
  return world.store as unknown as { doc: DynamoDBDocumentClient; tables: TableNames };
}

export const isHolding = (job: Job | undefined) => job !== undefined && HOLDING_STATES.includes(job.state);

/** Every page of a list, following nextToken. */
export async function allPages(
  world: World,
  path: string,
  as: Claims,
  pageSize: number,
): Promise<{ items: any[]; pages: number }> {
  const items: any[] = [];
  let pages = 0;
  let nextToken: string | undefined;
  do {
    const response = await api(world, 'GET', path, {
      as,
      query: { limit: String(pageSize), ...(nextToken ? { nextToken } : {}) },
    });
    expectStatus(response, 200);
    assert.ok(response.body.items.length <= pageSize);
    items.push(...response.body.items);
    nextToken = response.body.nextToken;
    pages += 1;
  } while (nextToken);
  return { items, pages };
}
