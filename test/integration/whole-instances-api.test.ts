/**
 * Whole-instance accounting through the API Lambda on DynamoDB Local (docs/concepts.md "Pool"):
 * a pool that runs on instances refuses, with a 400 naming `gpus` and the pool's
 * gpusPerInstance, every template or job that would run on part of an instance — at
 * template create and change, at submit, and after a deploy changed the pool — and
 * stores nothing; a local pool takes jobs of any number of its GPUs. Also the floor
 * of `volumeSizeGb`.
 */
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { apiWorld, caller, dynamoPerFile, IMAGE, type ApiResponse, type ApiWorld } from '../support/harness.js';

const ALICE = caller('alice', 'vision');
const A100 = { name: 'a100', instanceType: 'p4d.24xlarge', gpusPerInstance: 8, maxGpus: 16 };
const TRAIN = {
  name: 'train',
  pool: 'a100',
  image: IMAGE.name,
  command: ['python', 'train.py'],
  gpus: 8,
  nodeCount: 2,
};

function refused(response: ApiResponse, field: string, reason: RegExp): void {
  assert.equal(response.status, 400, JSON.stringify(response.body));
  assert.equal(response.body.error.code, 'validation_error');
  assert.deepEqual(
    response.body.error.details.map((d: { field: string }) => d.field),
    [field],
  );
  assert.match(response.body.error.details[0].reason, reason);
}

describe('whole instances through the API', () => {
  const dynamo = dynamoPerFile();
  let w: ApiWorld;
  beforeEach(async () => {
    w = await apiWorld(dynamo(), { pools: [{ name: 'local', gpus: 2 }] });
    await w.store.putPool(A100);
  });

  const templates = async () => (await w.call('GET', '/v1/templates', ALICE)).body.items;
  const jobs = async () => (await w.call('GET', '/v1/jobs', ALICE)).body.items;

  it("refuses a template of part of an instance, naming gpus and the pool's gpusPerInstance, and stores nothing", async () => {
    refused(
      await w.call('POST', '/v1/templates', ALICE, { body: { ...TRAIN, gpus: 1 } }),
      'gpus',
      /^must be 8 \(not 1\): pool a100 .*gpusPerInstance 8/,
    );
    refused(
      await w.call('POST', '/v1/templates', ALICE, { body: { ...TRAIN, gpus: 16, nodeCount: 1 } }),
      'gpus',
      /gpusPerInstance 8/,
    );
    assert.deepEqual(await templates(), []);

    const created = await w.call('POST', '/v1/templates', ALICE, { body: TRAIN });
    assert.equal(created.status, 201, JSON.stringify(created.body));
  });

  it('refuses a change that leaves part of an instance: gpus, or a pool with other instances', async () => {
    await w.call('POST', '/v1/templates', ALICE, { body: TRAIN });
    await w.store.putPool({ name: 'a10g', instanceType: 'g5.xlarge', gpusPerInstance: 1, maxGpus: 8 });

    refused(await w.call('PATCH', '/v1/templates/train', ALICE, { body: { gpus: 4 } }), 'gpus', /^must be 8 \(not 4\)/);
    refused(
      await w.call('PATCH', '/v1/templates/train', ALICE, { body: { pool: 'a10g' } }),
      'gpus',
      /^must be 1 \(not 8\): pool a10g/,
    );
    const [kept] = await templates();
    assert.equal(kept.revision, 1);
    assert.equal(kept.pool, 'a100');

    const moved = await w.call('PATCH', '/v1/templates/train', ALICE, { body: { pool: 'a10g', gpus: 1 } });
    assert.equal(moved.status, 200, JSON.stringify(moved.body));
  });

  it("refuses a submit whose gpus is not gpusPerInstance, and stores no job; the template's own runs on whole instances", async () => {
    await w.call('POST', '/v1/templates', ALICE, { body: TRAIN });

    refused(
      await w.call('POST', '/v1/jobs', ALICE, { body: { template: 'train', gpus: 1 } }),
      'gpus',
      /^must be 8 \(not 1\): pool a100/,
    );
    assert.deepEqual(await jobs(), []);
    assert.deepEqual(w.started, []);

    const submitted = await w.call('POST', '/v1/jobs', ALICE, { body: { template: 'train' } });
    assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
    assert.equal(submitted.body.gpus, 8);
    assert.equal(submitted.body.nodeCount, 2);
  });

  it("refuses jobs of a template the pool no longer fits after a deploy changed its instances, naming the template's gpus", async () => {
    await w.call('POST', '/v1/templates', ALICE, { body: TRAIN });
    await w.store.putPool({ ...A100, instanceType: 'g6e.12xlarge', gpusPerInstance: 4 });

    refused(
      await w.call('POST', '/v1/jobs', ALICE, { body: { template: 'train' } }),
      'gpus',
      /^must be 4 \(template train gives 8\): pool a100 .*g6e\.12xlarge/,
    );
    assert.deepEqual(await jobs(), []);
    const fixed = await w.call('POST', '/v1/jobs', ALICE, { body: { template: 'train', gpus: 4 } });
    assert.equal(fixed.status, 202, JSON.stringify(fixed.body));
  });

  it('a local pool is not instances: a job of 1 GPU runs on a 2-GPU local pool', async () => {
    const created = await w.call('POST', '/v1/templates', ALICE, {
      body: { ...TRAIN, name: 'small', pool: 'local', gpus: 1, nodeCount: 1 },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const submitted = await w.call('POST', '/v1/jobs', ALICE, { body: { template: 'small' } });
    assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
    assert.equal(submitted.body.gpus, 1);
    const two = await w.call('POST', '/v1/jobs', ALICE, { body: { template: 'small', gpus: 2 } });
    assert.equal(two.status, 202, JSON.stringify(two.body));
  });

  it('refuses a root volume below the default AMI snapshot, naming volumeSizeGb, on create and on change', async () => {
    refused(
      await w.call('POST', '/v1/templates', ALICE, { body: { ...TRAIN, volumeSizeGb: 8 } }),
      'volumeSizeGb',
      /^must be at least 75/,
    );
    assert.deepEqual(await templates(), []);
    await w.call('POST', '/v1/templates', ALICE, { body: { ...TRAIN, volumeSizeGb: 75 } });
    refused(
      await w.call('PATCH', '/v1/templates/train', ALICE, { body: { volumeSizeGb: 50 } }),
      'volumeSizeGb',
      /^must be at least 75/,
    );
    assert.equal((await templates())[0].volumeSizeGb, 75);
  });

  it("refuses a root volume below a deployment's larger AMI snapshot (MIN_VOLUME_SIZE_GB), naming volumeSizeGb", async () => {
    w.deps.policy = { minVolumeSizeGb: 120 };
    refused(
      await w.call('POST', '/v1/templates', ALICE, { body: { ...TRAIN, volumeSizeGb: 100 } }),
      'volumeSizeGb',
      /^must be at least 120: the root snapshot of this deployment's GPU AMI/,
    );
    assert.deepEqual(await templates(), []);
    await w.call('POST', '/v1/templates', ALICE, { body: { ...TRAIN, volumeSizeGb: 120 } });
    refused(
      await w.call('PATCH', '/v1/templates/train', ALICE, { body: { volumeSizeGb: 119 } }),
      'volumeSizeGb',
      /^must be at least 120/,
    );
    assert.equal((await templates())[0].volumeSizeGb, 120);
  });
});
