/**
 * The synth matrix: every context key docs/operations.md documents, alone and
 * all together, synthesizes with cdk-nag registered as bin/app.ts registers it
 * (an unacknowledged finding makes synth throw), and changes the template the
 * way the key says. Each option's check is also run against the default stack,
 * where it must fail: a check that passes there would not notice the option
 * being ignored. Also: two stacks side by side (their own buses), and the
 * egress warning for subnets that may have no way out.
 *
 * Bundling is skipped (handler stand-ins), so the whole file takes seconds.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { App, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type { FlareStack } from '../../lib/flare-stack.js';
import type { FlareFunction } from '../../lib/lambda-defaults.js';
import { REPO_ROOT } from '../../lib/lambda-defaults.js';
import { EGRESS_WARNINGS, FlareNetwork } from '../../lib/network.js';
import { CONTEXT_KEYS } from '../../lib/settings.js';
import { logicalId, removeStandIns, render, synthApp } from '../support/cdk-synth.js';

type Resources = Record<string, { Type: string; Properties?: any }>;
interface Synth {
  readonly app: App;
  readonly stack: FlareStack;
  readonly template: Template;
  readonly resources: Resources;
}

function synth(context: Record<string, unknown>): Synth {
  const {
    app,
    stacks: [stack],
  } = synthApp(context);
  const template = Template.fromStack(stack);
  return { app, stack, template, resources: template.toJSON().Resources };
}

const env = (s: Synth, fn: FlareFunction): Record<string, any> =>
  s.resources[logicalId(s.stack, fn.function)].Properties.Environment.Variables;
const ofType = (s: Synth, type: string) => Object.entries(s.resources).filter(([, r]) => r.Type === type);
const ref = (s: Synth, c: Parameters<typeof logicalId>[1]) => ({ Ref: logicalId(s.stack, c) });
const getAtt = (s: Synth, c: Parameters<typeof logicalId>[1], attr: string) => ({
  'Fn::GetAtt': [logicalId(s.stack, c), attr],
});

const VPC_ID = 'vpc-0a1b2c3d4e5f60718';
const SUBNET_IDS = ['subnet-0a1b2c3d4e5f60001', 'subnet-0a1b2c3d4e5f60002'];
const ISSUER = 'https://login.example.com/realms/research';

interface Option {
  readonly what: string;
  /** The documented keys this case sets (another key it needs may ride along). */
  readonly keys: readonly string[];
  readonly context: Record<string, unknown>;
  /** What the option changes in the template; throws when it is not there. */
  readonly check: (s: Synth) => void;
}

const OPTIONS: readonly Option[] = [
  {
    what: 'an existing VPC and subnets',
    keys: ['flare:vpcId', 'flare:subnetIds'],
    context: { 'flare:vpcId': VPC_ID, 'flare:subnetIds': SUBNET_IDS.join(',') },
    check: (s) => {
      s.template.resourceCountIs('AWS::EC2::VPC', 0);
      assert.equal(s.resources[logicalId(s.stack, s.stack.compute.securityGroup)].Properties.VpcId, VPC_ID);
      assert.equal(env(s, s.stack.tasks).SUBNET_IDS, SUBNET_IDS.join(','));
    },
  },
  {
    what: 'VPC endpoints',
    keys: ['flare:vpcEndpoints'],
    context: { 'flare:vpcEndpoints': true },
    check: (s) => {
      const endpoints = ofType(s, 'AWS::EC2::VPCEndpoint').filter(
        ([, r]) => r.Properties.VpcEndpointType === 'Interface',
      );
      const services = endpoints
        .map(([, r]) => render(r.Properties.ServiceName).replace(/^.*<AWS::Region>\./, ''))
        .sort();
      assert.deepEqual(services, ['ec2messages', 'logs', 'ssm', 'ssmmessages']);
      const group = s.stack.network.endpointSecurityGroup;
      assert.ok(group, 'an endpoint security group');
      for (const [id, endpoint] of endpoints) {
        assert.deepEqual(
          endpoint.Properties.SubnetIds,
          s.stack.resolve(s.stack.network.subnetIds),
          `${id} sits in the job subnets`,
        );
        assert.deepEqual(endpoint.Properties.SecurityGroupIds, [getAtt(s, group, 'GroupId')], id);
        assert.equal(endpoint.Properties.PrivateDnsEnabled, true, id);
      }
      // HTTPS from the instances' group, nothing from any CIDR.
      assert.equal(s.resources[logicalId(s.stack, group)].Properties.SecurityGroupIngress, undefined);
      const ingress = ofType(s, 'AWS::EC2::SecurityGroupIngress').filter(
        ([, r]) => JSON.stringify(r.Properties.GroupId) === JSON.stringify(getAtt(s, group, 'GroupId')),
      );
      assert.deepEqual(
        ingress.map(([, r]) => [
          r.Properties.IpProtocol,
          r.Properties.FromPort,
          r.Properties.ToPort,
          r.Properties.SourceSecurityGroupId,
          r.Properties.CidrIp,
        ]),
        [['tcp', 443, 443, getAtt(s, s.stack.compute.securityGroup, 'GroupId'), undefined]],
      );
    },
  },
  {
    what: 'several pools',
    keys: ['flare:pools'],
    context: {
      'flare:pools': [
        { name: 'a10g', instanceType: 'g5.xlarge', gpusPerInstance: 1, maxGpus: 8, containerMemory: '14g' },
        { name: 'a100', instanceType: 'p4d.24xlarge', gpusPerInstance: 8, maxGpus: 16, containerMemory: '1000g' },
      ],
    },
    check: (s) => {
      const pools = JSON.parse(env(s, s.stack.api).POOLS);
      assert.deepEqual(pools.a10g, { instanceTypes: ['g5.xlarge'], gpusPerInstance: 1, memory: '14g' });
      assert.deepEqual(pools.a100, { instanceTypes: ['p4d.24xlarge'], gpusPerInstance: 8, memory: '1000g' });
      const [[, seed]] = ofType(s, 'Custom::FlarePools');
      const seeded = JSON.parse(seed.Properties.Pools) as { name: string; maxGpus: number }[];
      assert.deepEqual(
        ['a10g', 'a100'].map((name) => seeded.find((p) => p.name === name)?.maxGpus),
        [8, 16],
      );
    },
  },
  {
    what: 'fallback instance types',
    keys: ['flare:pools'],
    context: {
      'flare:pools': [
        {
          name: 'l4',
          instanceType: 'g6.xlarge',
          fallbackInstanceTypes: ['g6.2xlarge', 'gr6.4xlarge'],
          gpusPerInstance: 1,
          maxGpus: 4,
        },
      ],
    },
    check: (s) => {
      assert.deepEqual(JSON.parse(env(s, s.stack.tasks).POOLS).l4?.instanceTypes, [
        'g6.xlarge',
        'g6.2xlarge',
        'gr6.4xlarge',
      ]);
    },
  },
  {
    what: 'a GPU AMI parameter',
    keys: ['flare:gpuAmiParameter'],
    context: { 'flare:gpuAmiParameter': '/flare/test/gpu-ami' },
    check: (s) => {
      const parameters = Object.values(
        s.template.toJSON().Parameters as Record<string, { Type: string; Default?: string }>,
      );
      assert.ok(
        parameters.some((p) => p.Type.includes('AWS::EC2::Image::Id') && p.Default === '/flare/test/gpu-ami'),
        JSON.stringify(parameters),
      );
    },
  },
  {
    what: 'a minimum volume size',
    keys: ['flare:minVolumeSizeGb'],
    context: { 'flare:minVolumeSizeGb': 240 },
    check: (s) => {
      assert.equal(env(s, s.stack.tasks).MIN_VOLUME_SIZE_GB, '240');
      s.template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
        LaunchTemplateData: { BlockDeviceMappings: [Match.objectLike({ Ebs: Match.objectLike({ VolumeSize: 240 }) })] },
      });
    },
  },
  {
    what: 'an external OIDC issuer',
    keys: ['flare:authIssuer', 'flare:authAudience'],
    context: { 'flare:authIssuer': ISSUER, 'flare:authAudience': ['flare-cli'] },
    check: (s) => {
      s.template.resourceCountIs('AWS::Cognito::UserPool', 0);
      s.template.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
        AuthorizerType: 'JWT',
        JwtConfiguration: { Issuer: ISSUER, Audience: ['flare-cli'] },
      });
    },
  },
  {
    what: 'a groups claim',
    keys: ['flare:authGroupsClaim'],
    context: { 'flare:authIssuer': ISSUER, 'flare:authAudience': ['flare-cli'], 'flare:authGroupsClaim': 'groups' },
    check: (s) => assert.equal(env(s, s.stack.api).AUTH_GROUPS_CLAIM, 'groups'),
  },
  {
    what: 'an admin group',
    keys: ['flare:adminGroup'],
    context: { 'flare:adminGroup': 'gpu-admins' },
    check: (s) => {
      assert.equal(env(s, s.stack.api).AUTH_ADMIN_GROUP, 'gpu-admins');
      // The stack's own Cognito pool gets the group; with an external issuer there is none.
      if (s.stack.httpApi.userPool)
        s.template.hasResourceProperties('AWS::Cognito::UserPoolGroup', { GroupName: 'gpu-admins' });
    },
  },
  {
    what: 'default quotas',
    keys: ['flare:defaultQuotas'],
    context: { 'flare:defaultQuotas': { gpus: 8, jobs: 20, templates: 50 } },
    check: (s) => {
      for (const fn of [s.stack.api, s.stack.tasks, s.stack.reconciler.handler])
        assert.deepEqual(JSON.parse(env(s, fn).DEFAULT_QUOTAS), { gpus: 8, jobs: 20, templates: 50 });
    },
  },
  {
    what: 'a Slack channel',
    keys: ['flare:notifications'],
    context: {
      'flare:notifications': [
        {
          id: 'vision-slack',
          type: 'slack',
          secretName: 'flare/webhooks/vision-slack',
          projects: ['vision'],
          states: ['RUNNING', 'FAILED'],
        },
      ],
    },
    check: (s) =>
      checkChannel(s, 'vision-slack', 'slack', 'flare/webhooks/vision-slack', {
        project: ['vision'],
        state: ['RUNNING', 'FAILED'],
      }),
  },
  {
    what: 'a Teams channel',
    keys: ['flare:notifications'],
    context: {
      'flare:notifications': [
        { id: 'ops-teams', type: 'teams', secretName: 'flare/webhooks/ops-teams', states: ['FAILED'] },
      ],
    },
    check: (s) => checkChannel(s, 'ops-teams', 'teams', 'flare/webhooks/ops-teams', { state: ['FAILED'] }),
  },
  {
    what: 'an outputs retention',
    keys: ['flare:outputsRetentionDays'],
    context: { 'flare:outputsRetentionDays': 7 },
    check: (s) => {
      const rules = s.resources[logicalId(s.stack, s.stack.outputs.bucket)].Properties.LifecycleConfiguration.Rules;
      assert.ok(
        rules.some((r: { ExpirationInDays?: number }) => r.ExpirationInDays === 7),
        JSON.stringify(rules),
      );
    },
  },
  {
    what: 'an outputs cap',
    keys: ['flare:outputsMaxBytes'],
    context: { 'flare:outputsMaxBytes': 1048576 },
    check: (s) => {
      const tasks = s.resources[logicalId(s.stack, s.stack.tasks.function)];
      assert.equal(tasks.Properties.Environment.Variables.OUTPUTS_MAX_BYTES, '1048576');
    },
  },
  {
    what: 'a reconcile period',
    keys: ['flare:reconcilePeriodMinutes'],
    context: { 'flare:reconcilePeriodMinutes': 3 },
    check: (s) => {
      assert.equal(
        s.resources[logicalId(s.stack, s.stack.reconciler.schedule)].Properties.ScheduleExpression,
        'rate(3 minutes)',
      );
      assert.equal(
        s.resources[logicalId(s.stack, s.stack.reconciler.handler.function)].Properties.Timeout,
        3 * 60,
        'a run never outlasts its period',
      );
    },
  },
  {
    what: 'an agent timeout',
    keys: ['flare:agentTimeoutMinutes'],
    context: { 'flare:agentTimeoutMinutes': '17' },
    check: (s) => {
      for (const fn of [s.stack.api, s.stack.tasks]) assert.equal(env(s, fn).AGENT_TIMEOUT_SECONDS, '1020');
    },
  },
  {
    what: 'an alarm email',
    keys: ['flare:alarmEmail'],
    context: { 'flare:alarmEmail': 'gpu-ops@example.com' },
    check: (s) =>
      s.template.hasResourceProperties('AWS::SNS::Subscription', {
        Protocol: 'email',
        Endpoint: 'gpu-ops@example.com',
        TopicArn: ref(s, s.stack.alarms.topic),
      }),
  },
  {
    what: 'ECR repositories',
    keys: ['flare:ecrRepositories'],
    context: { 'flare:ecrRepositories': ['team/trainer'] },
    check: (s) => {
      const pulls = ofType(s, 'AWS::IAM::Policy')
        .flatMap(([, r]) => r.Properties.PolicyDocument.Statement as any[])
        .filter((st) => [st.Action].flat().includes('ecr:BatchGetImage'));
      assert.deepEqual(
        pulls.flatMap((st) => [st.Resource].flat().map(render)),
        ['arn:<AWS::Partition>:ecr:<AWS::Region>:<AWS::AccountId>:repository/team/trainer'],
      );
    },
  },
];

/** A channel's rule on this stack's bus, its entry in NOTIFY_CHANNELS, and read access to its secret. */
function checkChannel(s: Synth, id: string, type: string, secretName: string, detail: Record<string, string[]>): void {
  const notifier = s.stack.notifier;
  assert.ok(notifier, 'a notifier');
  const rule = s.resources[logicalId(s.stack, notifier.rules[id])].Properties;
  assert.deepEqual(rule.EventBusName, ref(s, s.stack.events.bus));
  assert.deepEqual(rule.EventPattern, { source: ['flare'], 'detail-type': ['Job State Change'], detail });
  const channels = JSON.parse(render(env(s, notifier.handler).NOTIFY_CHANNELS)) as {
    id: string;
    type: string;
    secretArn: string;
  }[];
  const channel = channels.find((c) => c.id === id);
  assert.equal(channel?.type, type);
  assert.ok(channel.secretArn.endsWith(`:secret:${secretName}`), channel.secretArn);
  const policy = JSON.stringify(ofType(s, 'AWS::IAM::Policy').map(([, r]) => r.Properties.PolicyDocument));
  assert.ok(policy.includes(`:secret:${secretName}-??????`), `GetSecretValue on ${secretName}`);
}

/** Every option at once: list-valued keys (pools, channels) concatenate. */
function allTogether(): Record<string, unknown> {
  const context: Record<string, unknown> = {};
  for (const { context: c } of OPTIONS) {
    for (const [key, value] of Object.entries(c)) {
      context[key] =
        Array.isArray(value) && Array.isArray(context[key]) && key !== 'flare:authAudience'
          ? [...(context[key] as unknown[]), ...value]
          : value;
    }
  }
  return context;
}

after(removeStandIns);

describe('synth matrix: every documented context key', () => {
  let defaults: Synth;
  before(() => {
    defaults = synth({});
  });

  it('covers every key docs/operations.md documents, and no other', () => {
    const doc = readFileSync(path.join(REPO_ROOT, 'docs', 'operations.md'), 'utf8');
    const table = doc.split('\n').filter((line) => line.startsWith('| `flare:'));
    const documented = new Set(
      table.flatMap((line) => [...line.split('|')[1].matchAll(/`(flare:[A-Za-z]+)`/g)].map((m) => m[1])),
    );
    const covered = new Set(OPTIONS.flatMap((o) => o.keys));
    assert.deepEqual(
      [...documented].sort(),
      [...CONTEXT_KEYS].sort(),
      'docs/operations.md documents every key settings.ts reads',
    );
    assert.deepEqual([...covered].sort(), [...documented].sort());
  });

  for (const option of OPTIONS) {
    it(`${option.what} (${option.keys.join(', ')}): synthesizes nag-clean and shows in the template`, () => {
      option.check(synth(option.context));
    });
  }

  it('every check fails on the default stack (so each would notice its option ignored)', () => {
    for (const option of OPTIONS) assert.throws(() => option.check(defaults), option.what);
  });

  it('all options together synthesize nag-clean, each showing in the template', () => {
    const s = synth(allTogether());
    for (const option of OPTIONS) option.check(s);
  });
});

describe('two stacks in one account and region', () => {
  it('each has its own bus, and its functions, rules and outputs use that one', () => {
    const { stacks } = synthApp(
      { 'flare:notifications': [{ id: 'ops-teams', type: 'teams', secretName: 'flare/webhooks/ops-teams' }] },
      { stackIds: ['FlareBlue', 'FlareGreen'] },
    );
    const names = stacks.map((stack) => {
      const template = Template.fromStack(stack);
      const resources = template.toJSON().Resources as Resources;
      const bus = { Ref: stack.getLogicalId(stack.events.bus.node.defaultChild as never) };
      const [[, busResource], ...others] = Object.entries(resources).filter(
        ([, r]) => r.Type === 'AWS::Events::EventBus',
      );
      assert.equal(others.length, 0);
      for (const [id, fn] of Object.entries(resources).filter(([, r]) => r.Type === 'AWS::Lambda::Function')) {
        const name = fn.Properties.Environment?.Variables?.EVENT_BUS_NAME;
        if (name !== undefined) assert.deepEqual(name, bus, id);
      }
      const rules = Object.values(resources).filter(
        (r) => r.Type === 'AWS::Events::Rule' && r.Properties.EventBusName !== undefined,
      );
      assert.equal(rules.length, 1);
      assert.deepEqual(rules[0].Properties.EventBusName, bus);
      assert.deepEqual(template.toJSON().Outputs.EventBusName.Value, bus);
      const putEvents = Object.values(resources)
        .filter((r) => r.Type === 'AWS::IAM::Policy')
        .flatMap((r) => r.Properties.PolicyDocument.Statement as any[])
        .filter((st) => [st.Action].flat().includes('events:PutEvents'));
      assert.ok(putEvents.length > 0);
      for (const st of putEvents) assert.deepEqual(st.Resource, { 'Fn::GetAtt': [bus.Ref, 'Arn'] });
      return busResource.Properties.Name;
    });
    assert.deepEqual(names, ['FlareBlue-events', 'FlareGreen-events']);
  });
});

describe('egress of the job subnets', () => {
  const existing = { 'flare:vpcId': VPC_ID, 'flare:subnetIds': SUBNET_IDS };
  const egressWarnings = (stack: Stack) =>
    Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('NAT gateway'));

  it('warns once, naming the subnets, that it cannot check subnets given by id without endpoints', () => {
    const { stack } = synth(existing);
    Annotations.fromStack(stack).hasWarning(
      '/FlareStack/Network',
      Match.stringLikeRegexp(`Cannot check the egress of subnets ${SUBNET_IDS.join(', ')}:`),
    );
    assert.equal(egressWarnings(stack).length, 1);
  });

  it('does not warn when the stack creates the endpoints in those subnets, or creates the VPC', () => {
    assert.deepEqual(egressWarnings(synth({ ...existing, 'flare:vpcEndpoints': true }).stack), []);
    assert.deepEqual(egressWarnings(synth({}).stack), []);
  });

  it('names the isolated subnets of a looked-up VPC, and not those with a NAT route', () => {
    const app = new App();
    const stack = new Stack(app, 'Net', { env: { account: '123456789012', region: 'eu-west-1' } });
    // What Vpc.fromLookup gives: subnets grouped by type (isolated: no route to a NAT or internet gateway).
    const vpc = ec2.Vpc.fromVpcAttributes(stack, 'LookedUp', {
      vpcId: VPC_ID,
      availabilityZones: ['eu-west-1a'],
      isolatedSubnetIds: ['subnet-0a1b2c3d4e5f600aa'],
      privateSubnetIds: ['subnet-0a1b2c3d4e5f600bb'],
    });
    new FlareNetwork(stack, 'Network', {
      existing: { vpcId: VPC_ID, subnetIds: ['subnet-0a1b2c3d4e5f600aa', 'subnet-0a1b2c3d4e5f600bb'] },
      existingVpc: vpc,
    });
    const warnings = egressWarnings(stack);
    assert.equal(warnings.length, 1);
    assert.match(
      String(warnings[0].entry.data),
      new RegExp(
        `^Subnets subnet-0a1b2c3d4e5f600aa are isolated: no route to a NAT or internet gateway\\..*\\[ack: ${EGRESS_WARNINGS.none}\\]$`,
      ),
    );
  });
});
