/**
 * The GPU AMI's root snapshot bounds every root volume (flare:minVolumeSizeGb, default 75,
 * the default AMI's): synth reads it, sizes the launch template's root volume to at
 * least it, and hands it to the Lambdas as MIN_VOLUME_SIZE_GB, the API's floor for a
 * template's volumeSizeGb.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { FlareCompute } from '../../lib/compute.js';
import { DEFAULT_GPU_AMI_PARAMETER, DEFAULT_POOLS, readSettings } from '../../lib/settings.js';

function compute(props: { minVolumeSizeGb?: number; rootVolumeGb?: number } = {}) {
  const stack = new Stack(new App(), 'VolumeFloor', { env: { account: '123456789012', region: 'eu-west-1' } });
  const vpc = new ec2.Vpc(stack, 'Vpc', {
    natGateways: 0,
    subnetConfiguration: [{ name: 'jobs', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }],
  });
  const flare = new FlareCompute(stack, 'Compute', {
    vpc,
    subnetIds: vpc.isolatedSubnets.map((s) => s.subnetId),
    pools: DEFAULT_POOLS,
    gpuAmiParameter: DEFAULT_GPU_AMI_PARAMETER,
    ...props,
  });
  return { flare, template: Template.fromStack(stack) };
}

function rootVolumeGb(template: Template): number {
  const [lt] = Object.values(template.findResources('AWS::EC2::LaunchTemplate')) as Array<{ Properties: any }>;
  const [root] = lt.Properties.LaunchTemplateData.BlockDeviceMappings;
  assert.equal(root.DeviceName, '/dev/sda1');
  return root.Ebs.VolumeSize;
}

describe('the root volume floor', () => {
  it('is the default AMI snapshot, 75 GB, unless flare:minVolumeSizeGb names a larger one', () => {
    assert.equal(readSettings(new App()).minVolumeSizeGb, 75);
    assert.equal(readSettings(new App({ context: { 'flare:minVolumeSizeGb': 150 } })).minVolumeSizeGb, 150);
    assert.equal(readSettings(new App({ context: { 'flare:minVolumeSizeGb': '120' } })).minVolumeSizeGb, 120);
  });

  it('refuses a floor below the default AMI snapshot or not a whole number, naming the key', () => {
    for (const bad of [50, 100.5, 'big']) {
      assert.throws(() => readSettings(new App({ context: { 'flare:minVolumeSizeGb': bad } })), {
        name: 'InvalidSetting',
        message: /^context flare:minVolumeSizeGb: must be the GPU AMI's root snapshot size/,
      });
    }
  });

  it('sizes the launch template root volume to at least the floor, and tells the Lambdas', () => {
    const plain = compute();
    assert.equal(rootVolumeGb(plain.template), 100);
    assert.equal(plain.flare.environment().MIN_VOLUME_SIZE_GB, '75');

    const large = compute({ minVolumeSizeGb: 150 });
    assert.equal(rootVolumeGb(large.template), 150);
    assert.equal(large.flare.environment().MIN_VOLUME_SIZE_GB, '150');
  });

  it('refuses a launch template root volume below the floor', () => {
    assert.throws(
      () => compute({ minVolumeSizeGb: 150, rootVolumeGb: 100 }),
      /rootVolumeGb must be an integer from minVolumeSizeGb \(150, the AMI's root snapshot\)/,
    );
  });
});
