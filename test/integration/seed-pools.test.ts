/**
 * The pools custom resource against DynamoDB Local: Create seeds the pools,
 * Update changes caps and types but keeps the GPUs jobs hold, Delete leaves
 * the table alone, the physical id never changes, bad properties fail with
 * the field named and write nothing, and the deployed entry (`handler`)
 * reaches DynamoDB through its own client.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Job } from '../../lambdas/core/job.js';
import { ValidationError } from '../../lambdas/core/errors.js';
import { handler, POOLS_PHYSICAL_ID, seedPools } from '../../lambdas/handlers/custom-resources/seed-pools.js';
import { dynamoPerFile, freshStore, quietLog } from '../support/harness.js';
import { jobRecord } from '../support/jobs.js';

type Store = Awaited<ReturnType<typeof freshStore>>['store'];

/** The table a fresh store writes pools to (the stores keep their names private). */
const poolsTable = (store: Store) => (store as unknown as { tables: { pools: string } }).tables.pools;

/** A request as the CDK Provider framework hands it to the onEvent handler. */
function request(
  type: 'Create' | 'Update' | 'Delete',
  properties: Record<string, unknown>,
  physicalId?: string,
): Record<string, unknown> {
  return {
    RequestType: type,
    ServiceToken: 'arn:aws:lambda:eu-west-1:123456789012:function:provider',
    ResponseURL: 'https://cloudformation-custom-resource-response-euwest1.s3.amazonaws.com/x',
    StackId: 'arn:aws:cloudformation:eu-west-1:123456789012:stack/FlareStack/1',
    RequestId: 'req-1',
    LogicalResourceId: 'PoolSeedPools',
    ResourceType: 'Custom::FlarePools',
    ResourceProperties: { ServiceToken: 'arn:aws:lambda:eu-west-1:123456789012:function:provider', ...properties },
    ...(physicalId ? { PhysicalResourceId: physicalId } : {}),
    ...(type === 'Update' ? { OldResourceProperties: {} } : {}),
  };
}

type PoolSpec = { name: string; instanceType: string; gpusPerInstance: number; maxGpus: number };

const pools = (...list: PoolSpec[]) => JSON.stringify(list);

const job = (id: string, gpus: number): Job =>
  jobRecord({ id, name: id, pool: 'a10g', gpus, createdAt: new Date().toISOString() });

describe('seed-pools custom resource on DynamoDB Local', { timeout: 180_000 }, () => {
  const dynamo = dynamoPerFile();

  /** A fresh store whose pools table a Create seeded with `pool`. */
  async function seededWith(pool: PoolSpec): Promise<{ store: Store; table: string }> {
    const { store } = await freshStore(dynamo());
    const table = poolsTable(store);
    await seedPools(dynamo().doc, request('Create', { PoolsTable: table, Pools: pools(pool) }), quietLog);
    return { store, table };
  }

  it('Create puts every configured pool with nothing used, under a stable physical id', async () => {
    const { store } = await freshStore(dynamo());
    const result = await seedPools(
      dynamo().doc,
      request('Create', {
        PoolsTable: poolsTable(store),
        Pools: pools(
          { name: 'a10g', instanceType: 'g5.xlarge', gpusPerInstance: 1, maxGpus: 4 },
          { name: 'a100', instanceType: 'p4d.24xlarge', gpusPerInstance: 8, maxGpus: 16 },
        ),
      }),
      quietLog,
    );

    assert.equal(result.PhysicalResourceId, POOLS_PHYSICAL_ID);
    assert.deepEqual(await store.listPools(), [
      {
        name: 'a100',
        instanceType: 'p4d.24xlarge',
        gpusPerInstance: 8,
        maxGpus: 16,
        usedGpus: 0,
        availableGpus: 16,
        backfill: false,
      },
      {
        name: 'a10g',
        instanceType: 'g5.xlarge',
        gpusPerInstance: 1,
        maxGpus: 4,
        usedGpus: 0,
        availableGpus: 4,
        backfill: false,
      },
    ]);
  });

  it('Update changes the cap and instance type but keeps the GPUs running jobs hold, and keeps the physical id', async () => {
    const { store, table } = await seededWith({
      name: 'a10g',
      instanceType: 'g5.xlarge',
      gpusPerInstance: 1,
      maxGpus: 4,
    });
    const held = job('job-held', 3);
    await store.createJob(held);
    assert.equal((await store.admit(held, new Date().toISOString())).admitted, true);

    const result = await seedPools(
      dynamo().doc,
      request(
        'Update',
        {
          PoolsTable: table,
          Pools: pools({ name: 'a10g', instanceType: 'g5.2xlarge', gpusPerInstance: 1, maxGpus: 8 }),
        },
        POOLS_PHYSICAL_ID,
      ),
      quietLog,
    );

    assert.equal(result.PhysicalResourceId, POOLS_PHYSICAL_ID);
    assert.deepEqual(await store.getPool('a10g'), {
      name: 'a10g',
      instanceType: 'g5.2xlarge',
      gpusPerInstance: 1,
      maxGpus: 8,
      usedGpus: 3,
      availableGpus: 5,
      backfill: false,
    });
  });

  it('Update adds a new pool and leaves a pool it no longer names as it was', async () => {
    const { store, table } = await seededWith({
      name: 'old',
      instanceType: 'g5.xlarge',
      gpusPerInstance: 1,
      maxGpus: 2,
    });

    await seedPools(
      dynamo().doc,
      request(
        'Update',
        { PoolsTable: table, Pools: pools({ name: 'l4', instanceType: 'g6.xlarge', gpusPerInstance: 1, maxGpus: 8 }) },
        POOLS_PHYSICAL_ID,
      ),
      quietLog,
    );

    assert.deepEqual(
      (await store.listPools()).map((p) => [p.name, p.maxGpus, p.availableGpus]),
      [
        ['l4', 8, 8],
        ['old', 2, 2],
      ],
    );
  });

  it('Delete leaves the table as it is and answers with the same physical id, whatever the properties', async () => {
    const { store, table } = await seededWith({
      name: 'a10g',
      instanceType: 'g5.xlarge',
      gpusPerInstance: 1,
      maxGpus: 4,
    });

    // A rollback after a failed Create deletes with whatever properties were declared, even bad ones.
    const result = await seedPools(
      dynamo().doc,
      request('Delete', { PoolsTable: table, Pools: 'not json' }, POOLS_PHYSICAL_ID),
      quietLog,
    );

    assert.equal(result.PhysicalResourceId, POOLS_PHYSICAL_ID);
    assert.equal((await store.getPool('a10g'))?.maxGpus, 4);
  });

  const invalid: [string, Record<string, unknown>, RegExp][] = [
    [
      'a cap below one instance',
      { Pools: pools({ name: 'a100', instanceType: 'p4d.24xlarge', gpusPerInstance: 8, maxGpus: 4 }) },
      /ResourceProperties\.Pools\.0\.maxGpus/,
    ],
    ['pools that are not JSON', { Pools: '[{name:' }, /ResourceProperties\.Pools: must be JSON/],
    ['no pool at all', { Pools: '[]' }, /ResourceProperties\.Pools/],
    [
      'a pool named twice',
      {
        Pools: pools(
          { name: 'a', instanceType: 'g5.xlarge', gpusPerInstance: 1, maxGpus: 1 },
          { name: 'a', instanceType: 'g5.xlarge', gpusPerInstance: 1, maxGpus: 1 },
        ),
      },
      /names a pool twice/,
    ],
    [
      'an unknown pool field',
      { Pools: JSON.stringify([{ name: 'a', instanceType: 'g5.xlarge', gpusPerInstance: 1, maxGpus: 1, gpus: 1 }]) },
      /ResourceProperties\.Pools\.0\.gpus: unknown field/,
    ],
  ];
  for (const [what, properties, message] of invalid) {
    it(`fails on ${what}, naming the field, and writes nothing`, async () => {
      const { store } = await freshStore(dynamo());
      await assert.rejects(
        seedPools(dynamo().doc, request('Create', { PoolsTable: poolsTable(store), ...properties }), quietLog),
        (error: unknown) => {
          assert.ok(error instanceof ValidationError, String(error));
          assert.match(error.message, message);
          return true;
        },
      );
      assert.deepEqual(await store.listPools(), []);
    });
  }

  it('fails without a table to seed', async () => {
    await assert.rejects(
      seedPools(
        dynamo().doc,
        request('Create', { Pools: pools({ name: 'a', instanceType: 'g5.xlarge', gpusPerInstance: 1, maxGpus: 1 }) }),
        quietLog,
      ),
      /ResourceProperties\.PoolsTable/,
    );
  });

  it('the deployed entry seeds through its own DynamoDB client', async () => {
    const { store } = await freshStore(dynamo());
    // What the Lambda runtime provides, pointed at DynamoDB Local.
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_DYNAMODB: dynamo().local.endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'flarelocal',
      AWS_SECRET_ACCESS_KEY: 'flarelocal',
    });

    const result = await handler(
      request('Create', {
        PoolsTable: poolsTable(store),
        Pools: pools({ name: 'a10g', instanceType: 'g5.xlarge', gpusPerInstance: 1, maxGpus: 4 }),
      }),
      {} as never,
    );

    assert.deepEqual(result, { PhysicalResourceId: POOLS_PHYSICAL_ID, Data: { Pools: 'a10g' } });
    assert.equal((await store.getPool('a10g'))?.availableGpus, 4);
  });
});
