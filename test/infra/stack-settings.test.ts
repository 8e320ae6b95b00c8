/**
 * FlareStack's deployment settings: an existing VPC, an OIDC issuer and custom pools reach
 * the network, the API's authorizer, the functions and the pools table; bad context fails
 * synth naming its key.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { App } from 'aws-cdk-lib';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { FlareStack } from '../../lib/flare-stack.js';
import { logicalId, removeStandIns, standIns, synthStack, type Resources } from '../support/cdk-synth.js';

function construct(context: Record<string, unknown>): () => FlareStack {
  return () =>
    new FlareStack(new App({ context: { 'aws:cdk:bundling-stacks': [], ...context } }), 'FlareStack', standIns());
}

after(removeStandIns);

describe('FlareStack with an existing VPC, an OIDC issuer and custom pools', () => {
  const issuer = 'https://login.example.com/realms/research';
  let stack: FlareStack;
  let template: Template;
  let resources: Resources;

  before(() => {
    ({ stack, template, resources } = synthStack({
      'flare:vpcId': 'vpc-0123456789abcdef0',
      'flare:subnetIds': 'subnet-0123456789abcdef0,subnet-0123456789abcdef1',
      'flare:authIssuer': issuer,
      'flare:authAudience': ['flare-cli'],
      'flare:authGroupsClaim': 'groups',
      'flare:adminGroup': 'flare-admins',
      'flare:gpuAmiParameter': '/my/gpu/ami',
      'flare:pools': JSON.stringify([
        { name: 'a100', instanceType: 'p4d.24xlarge', gpusPerInstance: 8, maxGpus: 16, containerMemory: '1000g' },
        {
          name: 'l4',
          instanceType: 'g6.xlarge',
          fallbackInstanceTypes: ['g6.2xlarge'],
          gpusPerInstance: 1,
          maxGpus: 8,
        },
      ]),
    }));
  });

  it('launches into the given subnets and VPC, creating no network', () => {
    template.resourceCountIs('AWS::EC2::VPC', 0);
    template.hasResourceProperties('AWS::EC2::SecurityGroup', { VpcId: 'vpc-0123456789abcdef0' });
    const env = resources[logicalId(stack, stack.tasks.function)].Properties.Environment.Variables;
    assert.equal(env.SUBNET_IDS, 'subnet-0123456789abcdef0,subnet-0123456789abcdef1');
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: 'ec2:RunInstances',
            Resource: Match.arrayWith([
              Match.objectLike({ 'Fn::Join': ['', Match.arrayWith([':subnet/subnet-0123456789abcdef1'])] }),
            ]),
          }),
        ]),
      },
    });
  });

  it('hands the pools to the Lambdas as POOLS', () => {
    const env = resources[logicalId(stack, stack.api.function)].Properties.Environment.Variables;
    assert.deepEqual(JSON.parse(env.POOLS), {
      a100: { instanceTypes: ['p4d.24xlarge'], gpusPerInstance: 8, memory: '1000g' },
      l4: { instanceTypes: ['g6.xlarge', 'g6.2xlarge'], gpusPerInstance: 1 },
    });
  });

  it('uses the configured AMI parameter', () => {
    const parameters = template.toJSON().Parameters as Record<string, any>;
    assert.ok(Object.values(parameters).some((p) => p.Default === '/my/gpu/ami'));
  });

  it("tells the API the issuer's groups claim and admin group", () => {
    const env = resources[logicalId(stack, stack.api.function)].Properties.Environment.Variables;
    assert.equal(env.AUTH_GROUPS_CLAIM, 'groups');
    assert.equal(env.AUTH_ADMIN_GROUP, 'flare-admins');
  });

  it('seeds the configured pools', () => {
    const [resource] = Object.values(resources).filter((r) => r.Type === 'Custom::FlarePools');
    assert.deepEqual(JSON.parse(resource.Properties.Pools), [
      { name: 'a100', instanceType: 'p4d.24xlarge', gpusPerInstance: 8, maxGpus: 16 },
      { name: 'l4', instanceType: 'g6.xlarge', gpusPerInstance: 1, maxGpus: 8 },
    ]);
  });

  it('trusts the external issuer and audience, and creates no user pool', () => {
    template.resourceCountIs('AWS::Cognito::UserPool', 0);
    template.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
      AuthorizerType: 'JWT',
      JwtConfiguration: { Issuer: issuer, Audience: ['flare-cli'] },
    });
    template.hasResourceProperties('AWS::ApiGatewayV2::Route', {
      RouteKey: 'ANY /v1/{proxy+}',
      AuthorizationType: 'JWT',
    });
    template.hasResourceProperties('AWS::ApiGatewayV2::Route', {
      RouteKey: 'GET /v1/health',
      AuthorizationType: 'NONE',
    });
  });
});

describe('FlareStack context validation', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['a VPC without subnets', { 'flare:vpcId': 'vpc-0123456789abcdef0' }, /^context flare:subnetIds: required/],
    ['subnets without a VPC', { 'flare:subnetIds': 'subnet-0123456789abcdef0' }, /^context flare:vpcId: required/],
    [
      'a malformed subnet id',
      { 'flare:vpcId': 'vpc-0123456789abcdef0', 'flare:subnetIds': ['subnet-0123456789abcdef0', 'sn-1'] },
      /^context flare:subnetIds\[1\]:/,
    ],
    ['pools that are not JSON', { 'flare:pools': '[{name:' }, /^context flare:pools: is not valid JSON/],
    [
      'a pool with fractional GPUs',
      { 'flare:pools': [{ name: 'a10g', instanceType: 'g5.xlarge', gpusPerInstance: 1.5, maxGpus: 4 }] },
      /^context flare:pools\[0\]\.gpusPerInstance: must be a positive integer/,
    ],
    [
      'a pool capped below one instance',
      { 'flare:pools': [{ name: 'a100', instanceType: 'p4d.24xlarge', gpusPerInstance: 8, maxGpus: 4 }] },
      /^context flare:pools\[0\]\.maxGpus:/,
    ],
    [
      'a pool with an unknown field',
      { 'flare:pools': [{ name: 'a10g', instanceType: 'g5.xlarge', gpusPerInstance: 1, maxGpus: 4, gpus: 4 }] },
      /^context flare:pools\[0\]\.gpus: unknown field/,
    ],
    [
      'a bad fallback instance type',
      {
        'flare:pools': [
          {
            name: 'a10g',
            instanceType: 'g5.xlarge',
            fallbackInstanceTypes: ['g5 2xlarge'],
            gpusPerInstance: 1,
            maxGpus: 4,
          },
        ],
      },
      /^context flare:pools\[0\]\.fallbackInstanceTypes\[0\]:/,
    ],
    [
      'two pools with one name',
      {
        'flare:pools': [
          { name: 'a', instanceType: 'g5.xlarge', gpusPerInstance: 1, maxGpus: 1 },
          { name: 'a', instanceType: 'g6.xlarge', gpusPerInstance: 1, maxGpus: 1 },
        ],
      },
      /^context flare:pools\[1\]\.name: pool 'a' is defined twice/,
    ],
    ['an AMI parameter that is not a path', { 'flare:gpuAmiParameter': 'ami-0123' }, /^context flare:gpuAmiParameter:/],
    [
      'an issuer without an audience',
      { 'flare:authIssuer': 'https://login.example.com' },
      /^context flare:authAudience: required/,
    ],
    [
      'a plain-http issuer',
      { 'flare:authIssuer': 'http://login.example.com', 'flare:authAudience': 'flare' },
      /^context flare:authIssuer: must be the issuer's https:\/\/ URL/,
    ],
    ['a misspelt key', { 'flare:pool': [] }, /^context flare:pool: unknown key/],
    [
      'endpoints that are not a boolean',
      { 'flare:vpcEndpoints': 'yes' },
      /^context flare:vpcEndpoints: must be true or false/,
    ],
    [
      'a negative default quota',
      { 'flare:defaultQuotas': { gpus: -1 } },
      /^context flare:defaultQuotas\.gpus: must be a non-negative integer/,
    ],
    [
      'a fractional default quota',
      { 'flare:defaultQuotas': '{"jobs": 2.5}' },
      /^context flare:defaultQuotas\.jobs: must be a non-negative integer/,
    ],
    [
      'a default quota for an unknown resource',
      { 'flare:defaultQuotas': { cpus: 4 } },
      /^context flare:defaultQuotas\.cpus: unknown resource/,
    ],
    [
      'default quotas that are not an object',
      { 'flare:defaultQuotas': [8] },
      /^context flare:defaultQuotas: must be an object/,
    ],
    [
      'a groups claim with a space',
      { 'flare:authGroupsClaim': 'my groups' },
      /^context flare:authGroupsClaim: must be a JWT claim name/,
    ],
    [
      'another groups claim with the stack-made Cognito pool',
      { 'flare:authGroupsClaim': 'groups' },
      /^context flare:authGroupsClaim: the Cognito user pool this stack creates puts groups in 'cognito:groups'/,
    ],
    [
      'an admin group with a space',
      { 'flare:adminGroup': 'flare admins' },
      /^context flare:adminGroup: must be a group name/,
    ],
    [
      'notifications that are not a list',
      { 'flare:notifications': { id: 'a' } },
      /^context flare:notifications: must be an array/,
    ],
    [
      'a channel of an unknown type',
      { 'flare:notifications': [{ id: 'a', type: 'discord', secretName: 'flare/a' }] },
      /^context flare:notifications\[0\]\.type: must be 'slack' or 'teams'/,
    ],
    [
      'a channel naming its secret by ARN',
      {
        'flare:notifications': [
          { id: 'a', type: 'slack', secretName: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:flare/a-AbCdEf' },
        ],
      },
      /^context flare:notifications\[0\]\.secretName: must be the name \(not the ARN\)/,
    ],
    [
      'a channel without a secret',
      { 'flare:notifications': [{ id: 'a', type: 'slack' }] },
      /^context flare:notifications\[0\]\.secretName:/,
    ],
    [
      'a channel filtering on a state Flare does not have',
      { 'flare:notifications': [{ id: 'a', type: 'slack', secretName: 'flare/a', states: ['FAILED', 'DONE'] }] },
      /^context flare:notifications\[0\]\.states\[1\]: must be a job state \(PENDING WAITING LAUNCHING RUNNING STOPPING SUCCEEDED FAILED EXPIRED CANCELLED\)/,
    ],
    [
      'a channel with an empty project list',
      { 'flare:notifications': [{ id: 'a', type: 'teams', secretName: 'flare/a', projects: [] }] },
      /^context flare:notifications\[0\]\.projects: must be a non-empty array/,
    ],
    [
      'a channel with an unknown field',
      { 'flare:notifications': [{ id: 'a', type: 'slack', secretName: 'flare/a', url: 'https://hooks.slack.com/x' }] },
      /^context flare:notifications\[0\]\.url: unknown field/,
    ],
    [
      'two channels with one id',
      {
        'flare:notifications': [
          { id: 'a', type: 'slack', secretName: 'flare/a' },
          { id: 'a', type: 'teams', secretName: 'flare/b' },
        ],
      },
      /^context flare:notifications\[1\]\.id: channel 'a' is defined twice/,
    ],
    [
      'notifications that are not JSON',
      { 'flare:notifications': '[{id:' },
      /^context flare:notifications: is not valid JSON/,
    ],
    [
      'a reconcile period of 0',
      { 'flare:reconcilePeriodMinutes': 0 },
      /^context flare:reconcilePeriodMinutes: must be a whole number of minutes from 1 to 60/,
    ],
    [
      'a reconcile period over an hour',
      { 'flare:reconcilePeriodMinutes': '61' },
      /^context flare:reconcilePeriodMinutes: must be a whole number of minutes from 1 to 60/,
    ],
    [
      'a reconcile period with a unit',
      { 'flare:reconcilePeriodMinutes': '5m' },
      /^context flare:reconcilePeriodMinutes:/,
    ],
    [
      'a fractional agent timeout',
      { 'flare:agentTimeoutMinutes': 2.5 },
      /^context flare:agentTimeoutMinutes: must be a whole number of minutes from 1 to 60/,
    ],
    ['an agent timeout over an hour', { 'flare:agentTimeoutMinutes': 90 }, /^context flare:agentTimeoutMinutes:/],
    [
      'an alarm email without a domain',
      { 'flare:alarmEmail': 'gpu-ops' },
      /^context flare:alarmEmail: must be an email address/,
    ],
  ];
  for (const [what, context, message] of cases) {
    it(`fails synth on ${what}, naming the key`, () => {
      assert.throws(construct(context), { name: 'InvalidSetting', message });
    });
  }
});
