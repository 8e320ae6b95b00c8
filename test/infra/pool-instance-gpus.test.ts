/**
 * Every instance type of a pool must have the pool's gpusPerInstance (lib/instance-gpus.ts):
 * a job is charged gpusPerInstance GPUs per instance whichever type it lands on, so `cdk
 * synth` refuses a type with more or fewer, naming the context key.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { App } from 'aws-cdk-lib';
import { gpusOfInstanceType } from '../../lib/instance-gpus.js';
import { readSettings } from '../../lib/settings.js';

const settingsOf = (pools: unknown[]) => readSettings(new App({ context: { 'flare:pools': pools } }));

describe('pools and the GPUs of their instance types', () => {
  it('knows the GPUs of the GPU families the default AMI runs on', () => {
    assert.equal(gpusOfInstanceType('g5.xlarge'), 1);
    assert.equal(gpusOfInstanceType('g5.12xlarge'), 4);
    assert.equal(gpusOfInstanceType('g6e.48xlarge'), 8);
    assert.equal(gpusOfInstanceType('p4d.24xlarge'), 8);
    assert.equal(gpusOfInstanceType('p5.4xlarge'), 1);
    assert.equal(gpusOfInstanceType('m7i.large'), undefined);
  });

  it('refuses a fallback type with other GPUs than gpusPerInstance, naming it', () => {
    assert.throws(
      () =>
        settingsOf([
          {
            name: 'a10g',
            instanceType: 'g5.xlarge',
            fallbackInstanceTypes: ['g5.2xlarge', 'g5.12xlarge'],
            gpusPerInstance: 1,
            maxGpus: 8,
          },
        ]),
      {
        name: 'InvalidSetting',
        message:
          /^context flare:pools\[0\]\.fallbackInstanceTypes\[1\]: "g5\.12xlarge" has 4 GPUs per instance, but the pool's gpusPerInstance is 1/,
      },
    );
  });

  it('refuses an instance type whose GPUs are not gpusPerInstance', () => {
    assert.throws(() => settingsOf([{ name: 'a100', instanceType: 'p4d.24xlarge', gpusPerInstance: 1, maxGpus: 8 }]), {
      name: 'InvalidSetting',
      message: /^context flare:pools\[0\]\.instanceType: "p4d\.24xlarge" has 8 GPUs/,
    });
  });

  it('accepts types that match, and types the table does not know', () => {
    const [a10g, a100, other] = settingsOf([
      {
        name: 'a10g',
        instanceType: 'g5.xlarge',
        fallbackInstanceTypes: ['g5.2xlarge', 'g6.xlarge'],
        gpusPerInstance: 1,
        maxGpus: 8,
      },
      {
        name: 'a100',
        instanceType: 'p4d.24xlarge',
        fallbackInstanceTypes: ['p4de.24xlarge'],
        gpusPerInstance: 8,
        maxGpus: 16,
      },
      { name: 'new', instanceType: 'g7e.2xlarge', gpusPerInstance: 1, maxGpus: 4 },
    ]).pools;
    assert.deepEqual(a10g.fallbackInstanceTypes, ['g5.2xlarge', 'g6.xlarge']);
    assert.equal(a100.gpusPerInstance, 8);
    assert.equal(other.instanceType, 'g7e.2xlarge');
  });
});
