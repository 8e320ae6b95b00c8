/**
 * Whole-instance accounting (core/accounting.ts, docs/concepts.md "Pool"): a pool on instances
 * takes jobs of exactly gpusPerInstance GPUs per node, a local pool any number, and a
 * node's container is given exactly the devices its job is charged for, by index.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { gpusIssue, nodeDevices, runsOnInstances } from '../../lambdas/core/accounting.js';
import { dockerRunArgs } from '../../lambdas/core/container-command.js';
import type { Job } from '../../lambdas/core/job.js';
import { containerSpec } from '../../lambdas/core/lifecycle.js';
import { parse, TemplateSpec } from '../../lambdas/core/schemas.js';
import { ValidationError } from '../../lambdas/core/errors.js';
import { launchingJob } from '../support/jobs.js';

const A100 = { name: 'a100', instanceType: 'p4d.24xlarge', gpusPerInstance: 8 };
const LOCAL = { name: 'local', instanceType: 'local', gpusPerInstance: 2 };

const job = (overrides: Partial<Job> = {}): Job => launchingJob({ pool: 'a100', gpus: 8, nodeCount: 2, ...overrides });

describe('gpusIssue', () => {
  test('a pool on instances takes exactly gpusPerInstance GPUs per node, whatever the nodeCount', () => {
    assert.equal(runsOnInstances(A100), true);
    assert.equal(gpusIssue(A100, 8), undefined);
    for (const gpus of [1, 4, 7, 9, 16]) {
      const issue = gpusIssue(A100, gpus);
      assert.equal(issue?.field, 'gpus', `gpus ${gpus}`);
      assert.match(
        issue!.reason,
        /^must be 8 \(not \d+\): pool a100 runs each node on a whole p4d\.24xlarge instance with gpusPerInstance 8/,
      );
    }
  });

  test("names the template's value when the job took it from its template", () => {
    assert.match(gpusIssue(A100, 1, 'template train')!.reason, /^must be 8 \(template train gives 1\)/);
  });

  test('a local pool is a share of one machine: any whole number of its GPUs, a 1-GPU job on a 2-GPU pool included', () => {
    assert.equal(runsOnInstances(LOCAL), false);
    assert.equal(gpusIssue(LOCAL, 1), undefined);
    assert.equal(gpusIssue(LOCAL, 2), undefined);
    assert.equal(gpusIssue(LOCAL, 3), undefined);
  });
});

describe("a node's devices", () => {
  test('on an instance: the first gpus devices by index, never all of them', () => {
    assert.deepEqual(nodeDevices(job()), [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(nodeDevices(job({ gpus: 1 })), [0]);
  });

  test('locally: the host slots the local driver chose', () => {
    assert.deepEqual(nodeDevices(job({ gpus: 1, nodeCount: 2, devices: [2, 3] })), [2, 3]);
  });

  test('the container is given exactly the charged devices (--gpus device list), not --gpus=all', () => {
    const spec = containerSpec(job(), '2030-01-01T01:00:00.000Z');
    assert.deepEqual(spec.devices, [0, 1, 2, 3, 4, 5, 6, 7]);
    const argv = dockerRunArgs(spec, { memory: '1000g', detach: true });
    assert.ok(argv.includes('--gpus="device=0,1,2,3,4,5,6,7"'), argv.join(' '));
    assert.ok(argv.includes('--env=NVIDIA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7'));
    assert.ok(!argv.includes('--gpus=all'));
  });
});

describe('volumeSizeGb', () => {
  const spec = { name: 'train', project: 'vision', pool: 'a100', image: 'tools', command: ['true'] };

  test('is refused below the default AMI root snapshot (75 GB), naming the field', () => {
    for (const volumeSizeGb of [8, 74]) {
      assert.throws(
        () => parse(TemplateSpec, { ...spec, volumeSizeGb }),
        (error: unknown) =>
          error instanceof ValidationError &&
          error.details.some((d) => d.field === 'volumeSizeGb' && /at least 75/.test(d.reason)),
      );
    }
    assert.equal(parse(TemplateSpec, { ...spec, volumeSizeGb: 75 }).volumeSizeGb, 75);
  });
});
