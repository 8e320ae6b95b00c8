/**
 * The pools custom resource (lib/pool-seed.ts, through CDK's Provider
 * framework): on Create and Update, upsert every configured pool into the
 * pools table, keeping each pool's usage counters; on Delete, leave the
 * table alone (the pools may still hold GPUs, and the table goes with the
 * stack anyway). The physical id never changes, so CloudFormation never
 * "replaces" the resource.
 *
 * CloudFormation passes custom resource properties as strings, so the pools
 * arrive as JSON in `Pools`; the table is named in `PoolsTable`, which makes
 * a replaced table an Update that seeds the new one.
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import middy from '@middy/core';
import { z } from 'zod';
import { DynamoLimits } from '../../adapters/dynamo/dynamo-limits.js';
import type { Logger } from '../../core/deps.js';
import { NAME_PATTERN, parse } from '../../core/schemas.js';
import { awsDocumentClient } from '../aws-deps.js';
import { awsLogger, SEED_POOLS_SERVICE } from '../aws-observability.js';

export const POOLS_PHYSICAL_ID = 'flare-pools';

const Pool = z
  .strictObject({
    name: z.string().regex(NAME_PATTERN, 'must be a pool name'),
    instanceType: z.string().min(1).max(64),
    gpusPerInstance: z.number().int().positive(),
    maxGpus: z.number().int().positive(),
  })
  .refine((p) => p.maxGpus >= p.gpusPerInstance, {
    message: 'maxGpus must be at least gpusPerInstance',
    path: ['maxGpus'],
  });

const PoolsJson = z.string().transform((text, ctx) => {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: `must be JSON: ${(error as Error).message}` });
    return z.NEVER;
  }
});

/** What the resource declares; extra keys (ServiceToken, ServiceTimeout) are CloudFormation's. */
export const SeedPoolsProperties = z.object({
  PoolsTable: z.string().min(3).max(255),
  Pools: PoolsJson.pipe(
    z
      .array(Pool)
      .min(1)
      .refine((pools) => new Set(pools.map((p) => p.name)).size === pools.length, 'names a pool twice'),
  ),
});
export type SeedPoolsProperties = z.infer<typeof SeedPoolsProperties>;

/** The Provider framework's onEvent request: CloudFormation's, minus the response URL it handles itself. */
export const SeedPoolsEvent = z.discriminatedUnion('RequestType', [
  z.object({ RequestType: z.literal('Create'), ResourceProperties: z.unknown() }),
  z.object({
    RequestType: z.literal('Update'),
    PhysicalResourceId: z.string().min(1),
    ResourceProperties: z.unknown(),
  }),
  z.object({ RequestType: z.literal('Delete'), PhysicalResourceId: z.string().min(1) }),
]);

export interface SeedPoolsResult {
  PhysicalResourceId: string;
  Data?: { Pools: string };
}

/**
 * Create/Update: upsert each pool (DynamoLimits.putPool keeps `used` and
 * derives `available` from it). Delete: nothing. A bad request throws, which
 * the framework reports to CloudFormation as FAILED with the message.
 */
export async function seedPools(doc: DynamoDBDocumentClient, raw: unknown, log: Logger): Promise<SeedPoolsResult> {
  const event = parse(SeedPoolsEvent, raw, 'event');
  if (event.RequestType === 'Delete') {
    log.info('pools left in place on delete', { physicalResourceId: event.PhysicalResourceId });
    return { PhysicalResourceId: event.PhysicalResourceId };
  }
  const { PoolsTable, Pools } = parse(SeedPoolsProperties, event.ResourceProperties, 'ResourceProperties');
  // Only the pools table is named: this function's role may update nothing else.
  const limits = new DynamoLimits(doc, { quotas: '', pools: PoolsTable });
  for (const pool of Pools) await limits.putPool(pool);
  const names = Pools.map((p) => p.name).join(',');
  log.info('pools seeded', { requestType: event.RequestType, table: PoolsTable, pools: names });
  return {
    PhysicalResourceId: event.RequestType === 'Update' ? event.PhysicalResourceId : POOLS_PHYSICAL_ID,
    Data: { Pools: names },
  };
}

export function createSeedPoolsHandler(doc: () => DynamoDBDocumentClient, log: () => Logger) {
  return middy<unknown, SeedPoolsResult>().handler((event) => seedPools(doc(), event, log()));
}

export const handler = createSeedPoolsHandler(awsDocumentClient, () => awsLogger(SEED_POOLS_SERVICE));
