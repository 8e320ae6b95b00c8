/**
 * Array jobs (a sweep: `array: { size, env? }` on POST /v1/jobs): one submit, all stored or none, each
 * member queued and run like any job with its index in its environment. Real ASL, DynamoDB Local, real
 * processes; the HTTP shapes through the API handler.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CreateTableCommand, DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { submitArray } from '../../lambdas/core/jobs.js';
import { JobState } from '../../lambdas/core/job.js';
import { MAX_ARRAY_SIZE } from '../../lambdas/core/job-schemas.js';
import { createTables, defaultTableNames, loadTableSpecs } from '../../lambdas/local/tables.js';
import { alice } from '../support/identities.js';
import { apiWorld, caller, dynamoPerFile, template, usage, waitForState, worldPerTest } from '../support/harness.js';

const dynamo = dynamoPerFile();
const ALICE = caller('alice', 'vision');
const TEMPLATES = [
  template({ name: 'sweep', command: ['sleep', '30'] }),
  // Exits with its own index: member 0 succeeds, member 1 fails with code 1.
  template({ name: 'by-index', command: ['sh', '-c', 'exit "$FLARE_ARRAY_INDEX"'] }),
];
const setup = worldPerTest({ pools: [{ name: 'local', gpus: 2 }], templates: TEMPLATES });

describe('array jobs (API, DynamoDB Local)', () => {
  it('stores every member in one submit: those with room admitted, the rest WAITING, each with its index and env', async () => {
    const w = await apiWorld(dynamo(), { pools: [{ name: 'local', gpus: 2 }], templates: TEMPLATES });
    const env = [{ LR: '0.1' }, { LR: '0.01' }, { LR: '0.001' }];
    const answer = await w.call('POST', '/v1/jobs', ALICE, {
      body: { template: 'sweep', env: { SEED: '7' }, array: { size: 3, env } },
    });
    assert.equal(answer.status, 202, JSON.stringify(answer.body));
    const { arrayId, items } = answer.body;
    assert.match(arrayId, /^a-[0-9a-hjkmnp-tv-z]{16}$/);
    assert.equal(answer.headers.location, `/v1/jobs?array=${arrayId}`);
    assert.deepEqual(
      items.map((j: { arrayIndex: number; state: string }) => [j.arrayIndex, j.state]),
      [
        [0, JobState.LAUNCHING],
        [1, JobState.LAUNCHING],
        [2, JobState.WAITING],
      ],
    );
    assert.equal(items[2].stateReason, 'pool local has 0 of 2 GPUs free, needs 1');
    for (const [i, job] of items.entries()) {
      assert.deepEqual([job.arrayId, job.arrayIndex, job.arraySize], [arrayId, i, 3]);
      // FLARE_ARRAY_* are Flare's to set where the job starts (like FLARE_JOB_ID), not part of its env.
      assert.deepEqual(job.env, { SEED: '7', LR: env[i].LR });
    }
    assert.deepEqual(
      w.started,
      items.slice(0, 2).map((j: { id: string }) => `${j.id}-1`),
      'a run for each admitted member',
    );
    assert.equal((await w.store.getQuota('vision', 'jobs'))?.used, 3);
    assert.equal((await w.store.getPool('local'))?.usedGpus, 2);

    const listed = await w.call('GET', `/v1/jobs?array=${arrayId}`, ALICE);
    assert.equal(listed.status, 200);
    assert.deepEqual(
      listed.body.items.map((j: { id: string }) => j.id),
      items.map((j: { id: string }) => j.id),
      'by index',
    );
    const waiting = await w.call('GET', `/v1/jobs?array=${arrayId}&state=WAITING`, ALICE);
    assert.deepEqual(
      waiting.body.items.map((j: { arrayIndex: number }) => j.arrayIndex),
      [2],
    );
    // Another project's member sees an empty list, not the array.
    const other = await w.call('GET', `/v1/jobs?array=${arrayId}`, caller('bob', 'audio'));
    assert.deepEqual(other.body.items, []);
  });

  it('is all or nothing against the jobs limit: an array the limit cannot take whole is a 429 and stores nothing', async () => {
    const w = await apiWorld(dynamo(), { pools: [{ name: 'local', gpus: 8 }], templates: TEMPLATES });
    await w.store.putQuota({ project: 'vision', resource: 'jobs', hardLimit: 4 });
    const refused = await w.call('POST', '/v1/jobs', ALICE, { body: { template: 'sweep', array: { size: 5 } } });
    assert.equal(refused.status, 429, JSON.stringify(refused.body));
    assert.match(refused.body.error.message, /an array of 5 jobs needs as many/);
    assert.equal((await w.store.getQuota('vision', 'jobs'))?.used ?? 0, 0);
    assert.equal((await w.store.getPool('local'))?.usedGpus, 0);
    assert.deepEqual((await w.call('GET', '/v1/jobs', ALICE)).body.items, []);
    assert.deepEqual(w.started, []);

    const fits = await w.call('POST', '/v1/jobs', ALICE, { body: { template: 'sweep', array: { size: 4 } } });
    assert.equal(fits.status, 202);
    assert.equal(fits.body.items.length, 4);
  });

  it('refuses a bad array with a 400 naming the field, and stores nothing', async () => {
    const w = await apiWorld(dynamo(), { templates: TEMPLATES });
    const cases: Array<[unknown, string]> = [
      [{ size: MAX_ARRAY_SIZE + 1 }, 'array.size'],
      [{ size: 0 }, 'array.size'],
      [{ size: 1.5 }, 'array.size'],
      [{ size: 2, env: [{}, {}, {}] }, 'array.env'],
      [{ size: 2, env: [{ 'not a name': 'x' }] }, 'array.env.0'],
      [{ size: 2, shards: 4 }, 'array'],
      ['3', 'array'],
    ];
    for (const [array, field] of cases) {
      const answer = await w.call('POST', '/v1/jobs', ALICE, { body: { template: 'sweep', array } });
      assert.equal(answer.status, 400, JSON.stringify({ array, body: answer.body }));
      assert.ok(
        answer.body.error.details.some((d: { field: string }) => d.field.startsWith(field)),
        `${JSON.stringify(array)} names ${field}: ${JSON.stringify(answer.body.error.details)}`,
      );
    }
    assert.deepEqual((await w.call('GET', '/v1/jobs', ALICE)).body.items, []);
    const malformed = await w.call('GET', '/v1/jobs?array=j-0123456789abcdef', ALICE);
    assert.equal(malformed.status, 400);
  });

  it('replays the same array for the same Idempotency-Key and body; another body is a 409', async () => {
    const w = await apiWorld(dynamo(), { templates: TEMPLATES });
    const submit = (size: number) =>
      w.call('POST', '/v1/jobs', ALICE, {
        body: { template: 'sweep', array: { size } },
        headers: { 'idempotency-key': 'sweep-1' },
      });
    const first = await submit(3);
    const again = await submit(3);
    assert.equal(again.status, 202);
    assert.equal(again.headers['idempotent-replayed'], 'true');
    assert.equal(again.body.arrayId, first.body.arrayId);
    assert.deepEqual(
      again.body.items.map((j: { id: string }) => j.id),
      first.body.items.map((j: { id: string }) => j.id),
    );
    assert.equal((await w.store.getQuota('vision', 'jobs'))?.used, 3, 'stored once');
    assert.equal((await submit(4)).status, 409);
  });
});

describe('array jobs run (real ASL and processes)', () => {
  it('each member runs with its own FLARE_ARRAY_INDEX, queues behind the others like any job, and releases once', async () => {
    const world = await setup({ pools: [{ name: 'local', gpus: 1 }] });
    const { jobs } = await submitArray(world.deps, alice, { template: 'by-index', array: { size: 2 } });
    assert.deepEqual(
      jobs.map((j) => j.state),
      [JobState.LAUNCHING, JobState.WAITING],
      'one GPU: the second waits',
    );
    const [zero, one] = await Promise.all(
      jobs.map((j) => waitForState(world.store, j.id, [JobState.SUCCEEDED, JobState.FAILED], 30_000)),
    );
    assert.equal(zero.state, JobState.SUCCEEDED);
    assert.deepEqual([one.state, one.exitCode], [JobState.FAILED, 1], 'exited with its index');
    await world.workflows.idle();
    assert.deepEqual(await usage(world), { pool: 0, poolAvailable: 1, project: 0, jobs: 0 });
  });
});

describe('tables of an earlier version', () => {
  it('get the array index added on start, and keep their items', async () => {
    const { client } = dynamo();
    const tables = defaultTableNames(`old${Date.now().toString(36)}`);
    const spec = loadTableSpecs().jobs;
    // The jobs table as versions before arrays created it.
    await client.send(
      new CreateTableCommand({
        TableName: tables.jobs,
        BillingMode: 'PAY_PER_REQUEST',
        KeySchema: spec.KeySchema,
        AttributeDefinitions: spec.AttributeDefinitions.filter((a) => a.AttributeName !== 'arrayId'),
        GlobalSecondaryIndexes: spec.GlobalSecondaryIndexes?.filter((i) => i.IndexName !== 'byArray'),
        StreamSpecification: spec.StreamSpecification,
      }),
    );
    await createTables(client, tables);
    const { Table } = await client.send(new DescribeTableCommand({ TableName: tables.jobs }));
    assert.ok(Table?.GlobalSecondaryIndexes?.some((i) => i.IndexName === 'byArray' && i.IndexStatus === 'ACTIVE'));
  });
});
