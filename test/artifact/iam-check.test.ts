/**
 * The IAM check itself, on the real synthesized FlareStack (bundling skipped):
 * hand-built recorded calls that the synthesized policies must allow, and their
 * near twins (an untagged instance, a foreign table, another secret) that they
 * must deny. Every test expects a denial, so a check that allowed everything
 * would fail each one. The least-privilege report is printed, never asserted
 * beyond its mechanics.
 */
import assert, { AssertionError } from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { FlareStack, HANDLER_ENTRIES, type HandlerKey } from '../../lib/flare-stack.js';
import { REPO_ROOT } from '../../lib/lambda-defaults.js';
import { arnOf, physicalName, refOf, resolveValue, secretArn, type CfnTemplate } from './support/cfn-resolve.js';
import { assertCallsAllowed, formatUnusedGrants, unusedGrants } from './support/iam-check.js';
import {
  ARTIFACT_ACCOUNT,
  ARTIFACT_REGION,
  type AwsService,
  type RecordedCall,
  type TagLookup,
} from './support/types.js';

const NOTIFICATIONS = [
  { id: 'ops', type: 'slack', secretName: 'flare/webhooks/ops' },
  { id: 'ml', type: 'teams', secretName: 'flare/webhooks/ml-team', projects: ['ml'] },
];
const EC2 = `arn:aws:ec2:${ARTIFACT_REGION}:${ARTIFACT_ACCOUNT}`;
const FLARE_TAGS = { 'managed-by': 'flare', 'flare:deployment': 'FlareStack', 'flare:job': 'job-1' };

let scratch: string;
let template: CfnTemplate;
/** Logical ids by what they are, found by type and construct path so the test does not hard-code hashes. */
const ids: Record<string, string> = {};

function logicalIdOf(type: string, prefix: string): string {
  const found = Object.keys(template.Resources).filter(
    (id) => template.Resources[id].Type === type && id.startsWith(prefix),
  );
  assert.equal(found.length, 1, `one ${type} whose logical id starts with ${prefix}, found ${found.join(', ')}`);
  return found[0];
}

before(() => {
  mkdirSync(path.join(REPO_ROOT, '.cache'), { recursive: true });
  scratch = mkdtempSync(path.join(REPO_ROOT, '.cache', 'iam-check-'));
  // Bundling is skipped, but NodejsFunction still wants each entry to exist.
  const handlerEntries: { [K in HandlerKey]?: string } = {};
  for (const key of Object.keys(HANDLER_ENTRIES) as HandlerKey[]) {
    handlerEntries[key] = path.join(scratch, `${key}.ts`);
    writeFileSync(handlerEntries[key]!, 'export const handler = async (event: unknown) => event;\n');
  }
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [], 'flare:notifications': NOTIFICATIONS } });
  template = Template.fromStack(new FlareStack(app, 'FlareStack', { handlerEntries })).toJSON() as CfnTemplate;
  for (const [name, type, prefix] of [
    ['tasks', 'AWS::IAM::Role', 'TasksRole'],
    ['api', 'AWS::IAM::Role', 'ApiRole'],
    ['reconciler', 'AWS::IAM::Role', 'ReconcilerHandlerRole'],
    ['computeEvents', 'AWS::IAM::Role', 'ComputeEventsHandlerRole'],
    ['notifier', 'AWS::IAM::Role', 'NotifierHandlerRole'],
    ['instanceRole', 'AWS::IAM::Role', 'ComputeInstanceRole'],
    ['tasksFunction', 'AWS::Lambda::Function', 'TasksFunction'],
    ['launchTemplate', 'AWS::EC2::LaunchTemplate', 'ComputeLaunchTemplate'],
    ['subnet', 'AWS::EC2::Subnet', 'NetworkVpcjobsSubnet1'],
    ['publicSubnet', 'AWS::EC2::Subnet', 'NetworkVpcpublicSubnet1'],
    ['jobs', 'AWS::DynamoDB::Table', 'TablesJobs'],
    ['quotas', 'AWS::DynamoDB::Table', 'TablesQuotas'],
    ['stateMachine', 'AWS::StepFunctions::StateMachine', 'Workflow'],
    ['bus', 'AWS::Events::EventBus', 'Events'],
  ] as const) {
    ids[name] = logicalIdOf(type, prefix);
  }
});

after(() => rmSync(scratch, { recursive: true, force: true }));

function call(
  principal: string,
  service: AwsService,
  action: string,
  params: Record<string, unknown>,
  resources: string[] = [],
): RecordedCall {
  return { service, action, params, resources, principal, region: ARTIFACT_REGION, at: 0 };
}

/** A RunInstances as the EC2 fake records it: query-protocol wire names, numbered members as arrays. */
function runInstances(
  principal: string,
  tags: Record<string, string>,
  subnet = refOf(template, ids.subnet),
): RecordedCall {
  const tagList = Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
  return call(principal, 'ec2', 'RunInstances', {
    LaunchTemplate: { LaunchTemplateId: refOf(template, ids.launchTemplate) },
    InstanceType: 'g5.xlarge',
    MinCount: '1',
    MaxCount: '1',
    SubnetId: subnet,
    ClientToken: 'job-1-0-0',
    TagSpecification: [
      { ResourceType: 'instance', Tag: tagList },
      { ResourceType: 'volume', Tag: tagList },
    ],
  });
}

const instanceTags: Record<string, Record<string, string>> = {
  'i-0aaaaaaaaaaaaaaa1': FLARE_TAGS,
  'i-0aaaaaaaaaaaaaaa2': {},
  'i-0aaaaaaaaaaaaaaa3': { ...FLARE_TAGS, 'flare:deployment': 'OtherStack' },
};
const tagsOf: TagLookup = (arn) => instanceTags[arn.split('/').pop()!];

async function assertDenied(calls: RecordedCall[], ...expected: RegExp[]): Promise<void> {
  await assert.rejects(assertCallsAllowed(template, calls, tagsOf), (error: unknown) => {
    assert.ok(error instanceof AssertionError, `an AssertionError, got ${String(error)}`);
    for (const pattern of expected) assert.match(error.message, pattern);
    return true;
  });
}

describe('cfn-resolve: one rule for names and ARNs', () => {
  it("resolves a function's environment to the names and ARNs its role's policies grant", () => {
    const env = resolveValue(template, template.Resources[ids.tasksFunction].Properties?.Environment).Variables;
    assert.equal(
      env.STATE_MACHINE_ARN,
      `arn:aws:states:${ARTIFACT_REGION}:${ARTIFACT_ACCOUNT}:stateMachine:FlareStack-job-lifecycle`,
    );
    assert.equal(
      env.STATE_MACHINE_ARN,
      arnOf(template, ids.stateMachine),
      'the state machine is named by its StateMachineName',
    );
    assert.equal(env.JOBS_TABLE, ids.jobs, 'a table without TableName is named by its logical id');
    assert.equal(env.EVENT_BUS_NAME, physicalName(template, ids.bus));
    assert.equal(env.EVENT_BUS_NAME, template.Resources[ids.bus].Properties?.Name);
    assert.match(env.LAUNCH_TEMPLATE_ID, /^lt-[0-9a-f]{17}$/);
    assert.deepEqual(env.SUBNET_IDS.split(','), [
      refOf(template, ids.subnet),
      refOf(template, logicalIdOf('AWS::EC2::Subnet', 'NetworkVpcjobsSubnet2')),
    ]);
    const policies = JSON.stringify(resolveValue(template, template.Resources));
    for (const granted of [
      env.STATE_MACHINE_ARN,
      arnOf(template, ids.jobs),
      `launch-template/${env.LAUNCH_TEMPLATE_ID}`,
      `subnet/${refOf(template, ids.subnet)}`,
    ]) {
      assert.ok(policies.includes(granted), `${granted} appears in the resolved template`);
    }
  });
});

describe('assertCallsAllowed', () => {
  it('lets the tasks role launch from the launch template with the deployment tags, and nothing without them', async () => {
    await assertCallsAllowed(template, [runInstances(ids.tasks, FLARE_TAGS)], tagsOf);
    // Without flare:deployment the instance statement's request-tag condition fails.
    const { 'flare:deployment': _, ...untagged } = FLARE_TAGS;
    await assertDenied(
      [runInstances(ids.tasks, untagged)],
      new RegExp(`${ids.tasks} may not ec2:RunInstances on ${EC2}:instance/\\*`),
    );
    // A subnet outside the jobs subnets is not in the grant.
    await assertDenied(
      [runInstances(ids.tasks, FLARE_TAGS, refOf(template, ids.publicSubnet))],
      new RegExp(`ec2:RunInstances on ${EC2}:subnet/${refOf(template, ids.publicSubnet)}`),
    );
  });

  it("lets the tasks role launch only the pools' instance types and the deployed AMI, even though a request may override the template's", async () => {
    const launch = (override: Record<string, unknown>) => {
      const request = runInstances(ids.tasks, FLARE_TAGS);
      return { ...request, params: { ...request.params, ...override } };
    };
    await assertDenied(
      [launch({ InstanceType: 'p5.48xlarge' })],
      new RegExp(`${ids.tasks} may not ec2:RunInstances on ${EC2}:instance/\\*`),
    );
    await assertDenied(
      [launch({ ImageId: 'ami-00000000000000bad' })],
      /ec2:RunInstances on arn:aws:ec2:us-east-1::image\/ami-00000000000000bad/,
    );
  });

  it('lets the tasks role terminate an instance this deployment tagged, not an untagged one or another deployment’s', async () => {
    await assertCallsAllowed(
      template,
      [call(ids.tasks, 'ec2', 'TerminateInstances', { InstanceId: ['i-0aaaaaaaaaaaaaaa1'] })],
      tagsOf,
    );
    await assertDenied(
      [
        call(ids.tasks, 'ec2', 'TerminateInstances', {
          InstanceId: ['i-0aaaaaaaaaaaaaaa1', 'i-0aaaaaaaaaaaaaaa2', 'i-0aaaaaaaaaaaaaaa3'],
        }),
      ],
      new RegExp(
        `${ids.tasks} may not ec2:TerminateInstances on ${EC2}:instance/i-0aaaaaaaaaaaaaaa2 .*needed by ec2:TerminateInstances`,
      ),
      /instance\/i-0aaaaaaaaaaaaaaa3/,
    );
  });

  it('lets the tasks role send AWS-RunShellScript to tagged instances only, and no other document', async () => {
    const send = (document: string, instance: string) =>
      call(ids.tasks, 'ssm', 'SendCommand', {
        DocumentName: document,
        InstanceIds: [instance],
        Parameters: { commands: ['true'] },
      });
    await assertCallsAllowed(template, [send('AWS-RunShellScript', 'i-0aaaaaaaaaaaaaaa1')], tagsOf);
    await assertDenied(
      [send('AWS-RunShellScript', 'i-0aaaaaaaaaaaaaaa2')],
      /ssm:SendCommand on arn:aws:ec2:.*:instance\/i-0aaaaaaaaaaaaaaa2/,
    );
    await assertDenied(
      [send('AWS-RunPowerShellScript', 'i-0aaaaaaaaaaaaaaa1')],
      /ssm:SendCommand on arn:aws:ssm:us-east-1::document\/AWS-RunPowerShellScript/,
    );
  });

  it("lets the API role run an exec's AWS-RunShellScript on this deployment's instances only, and read the result", async () => {
    const send = (document: string, instance: string) =>
      call(ids.api, 'ssm', 'SendCommand', {
        DocumentName: document,
        InstanceIds: [instance],
        Comment: 'flare:exec=job-1',
        Parameters: { commands: ['true'], executionTimeout: ['15'] },
      });
    await assertCallsAllowed(
      template,
      [
        send('AWS-RunShellScript', 'i-0aaaaaaaaaaaaaaa1'),
        call(ids.api, 'ssm', 'GetCommandInvocation', { CommandId: 'c-1', InstanceId: 'i-0aaaaaaaaaaaaaaa1' }),
      ],
      tagsOf,
    );
    for (const other of ['i-0aaaaaaaaaaaaaaa2', 'i-0aaaaaaaaaaaaaaa3'])
      await assertDenied(
        [send('AWS-RunShellScript', other)],
        new RegExp(`${ids.api} may not ssm:SendCommand on arn:aws:ec2:.*:instance/${other}`),
      );
    await assertDenied(
      [send('AWS-RunPowerShellScript', 'i-0aaaaaaaaaaaaaaa1')],
      /ssm:SendCommand on arn:aws:ssm:us-east-1::document\/AWS-RunPowerShellScript/,
    );
  });

  it('lets the API role query the jobs table but not launch instances', async () => {
    await assertCallsAllowed(
      template,
      [call(ids.api, 'dynamodb', 'Query', { TableName: ids.jobs, IndexName: 'byProject' })],
      tagsOf,
    );
    await assertDenied(
      [runInstances(ids.api, FLARE_TAGS)],
      new RegExp(`${ids.api} may not ec2:RunInstances on ${EC2}:instance/\\*`),
      /iam:PassRole/,
    );
  });

  it('lets the API role read the job log group (group actions on `NAME:*`, stream actions on the stream) and not another group', async () => {
    const group = physicalName(template, logicalIdOf('AWS::Logs::LogGroup', 'ComputeJobLogs'));
    await assertCallsAllowed(template, [
      call(ids.api, 'logs', 'FilterLogEvents', { logGroupName: group, logStreamNames: ['job-1'] }),
      call(ids.api, 'logs', 'GetLogEvents', { logGroupName: group, logStreamName: 'job-1/i-0aaaaaaaaaaaaaaa1' }),
    ]);
    await assertDenied(
      [call(ids.api, 'logs', 'GetLogEvents', { logGroupName: 'other', logStreamName: 's' })],
      /logs:GetLogEvents on arn:aws:logs:us-east-1:123456789012:log-group:other:log-stream:s/,
    );
  });

  it("lets the tasks role put events on the stack's bus, not on the default bus", async () => {
    const put = (bus: string) =>
      call(ids.tasks, 'events', 'PutEvents', {
        Entries: [{ EventBusName: bus, Source: 'flare', DetailType: 'Job State Change', Detail: '{}' }],
      });
    await assertCallsAllowed(template, [put(physicalName(template, ids.bus))]);
    await assertDenied(
      [put('default')],
      /events:PutEvents on arn:aws:events:us-east-1:123456789012:event-bus\/default/,
    );
  });

  it('checks each item of a transaction: the reconciler may write its tables, not a table it is not granted', async () => {
    const put = (table: string) => ({ Put: { TableName: table, Item: { id: { S: 'x' } } } });
    // An admission's items: the reconciler updates jobs and counters (it never puts a job: lib/table-access.ts).
    const update = (table: string) => ({ Update: { TableName: table, Key: { id: { S: 'x' } } } });
    await assertCallsAllowed(template, [
      call(ids.reconciler, 'dynamodb', 'TransactWriteItems', {
        TransactItems: [update(ids.jobs), update(ids.quotas)],
      }),
    ]);
    await assertDenied(
      [
        call(ids.reconciler, 'dynamodb', 'TransactWriteItems', {
          TransactItems: [update(ids.jobs), put('SomeoneElsesTable')],
        }),
      ],
      new RegExp(
        `${ids.reconciler} may not dynamodb:PutItem on arn:aws:dynamodb:us-east-1:123456789012:table/SomeoneElsesTable .*needed by dynamodb:TransactWriteItems`,
      ),
    );
    await assertDenied(
      [call(ids.notifier, 'dynamodb', 'PutItem', { TableName: ids.jobs })],
      new RegExp(`${ids.notifier} may not dynamodb:PutItem on .*table/${ids.jobs}`),
    );
  });

  it('lets the compute-events role answer a task token of its state machine, not of another', async () => {
    const success = (machine: string) =>
      call(ids.computeEvents, 'states', 'SendTaskSuccess', { taskToken: 't', output: '{}' }, [machine]);
    await assertCallsAllowed(template, [success(arnOf(template, ids.stateMachine))]);
    await assertDenied(
      [success(`arn:aws:states:${ARTIFACT_REGION}:${ARTIFACT_ACCOUNT}:stateMachine:other`)],
      /states:SendTaskSuccess on .*stateMachine:other/,
    );
  });

  it("lets the notifier read its channels' webhook secrets and no other secret", async () => {
    // NOTIFY_CHANNELS names each secret by a partial ARN; Secrets Manager authorizes the full one.
    const channels = JSON.parse(
      resolveValue(
        template,
        template.Resources[logicalIdOf('AWS::Lambda::Function', 'NotifierHandler')].Properties?.Environment,
      ).Variables.NOTIFY_CHANNELS,
    );
    const read = (secretId: string, resolved = secretArn(secretId.split(':secret:').pop()!)) =>
      call(ids.notifier, 'secretsmanager', 'GetSecretValue', { SecretId: secretId }, [resolved]);
    await assertCallsAllowed(
      template,
      channels.map((c: { secretArn: string }) => read(c.secretArn)),
    );
    await assertDenied(
      [read('flare/webhooks/other')],
      new RegExp(`${ids.notifier} may not secretsmanager:GetSecretValue on ${secretArn('flare/webhooks/other')}`),
    );
    // The grant's `-??????` matches the six-character suffix only, not a longer name sharing the prefix.
    await assertDenied([read('flare/webhooks/ops-extra')], /secret:flare\/webhooks\/ops-extra-/);
  });

  it('refuses to evaluate a role with an AWS managed policy, and a caller that is no role of the template', async () => {
    await assert.rejects(
      assertCallsAllowed(template, [
        call(ids.instanceRole, 'logs', 'PutLogEvents', { logGroupName: 'x', logStreamName: 'y' }),
      ]),
      /AmazonSSMManagedInstanceCore/,
    );
    await assertDenied(
      [call('SomebodyElse', 'ec2', 'DescribeInstances', {})],
      /signed by SomebodyElse, which is no IAM role/,
    );
  });
});

describe('unusedGrants (least-privilege report)', () => {
  it('lists the granted actions no recorded call used, per role, and not the ones used', async (t) => {
    const calls = [runInstances(ids.tasks, FLARE_TAGS), call(ids.tasks, 'ec2', 'DescribeInstances', {})];
    const unused = await unusedGrants(template, calls, tagsOf);
    t.diagnostic(`least privilege (two tasks calls only):\n${formatUnusedGrants(unused)}`);
    const tasks = new Map(unused.filter((u) => u.role === ids.tasks).map((u) => [u.action, u.resources]));
    assert.ok(
      tasks.has('ec2:TerminateInstances') && tasks.has('ssm:SendCommand'),
      `unused by tasks: ${[...tasks.keys()].join(', ')}`,
    );
    for (const used of ['iam:PassRole', 'ec2:DescribeInstances']) assert.ok(!tasks.has(used), `${used} was used`);
    // Used on one subnet and not the other: only the other is listed.
    const subnet2 = refOf(template, logicalIdOf('AWS::EC2::Subnet', 'NetworkVpcjobsSubnet2'));
    assert.deepEqual(tasks.get('ec2:RunInstances'), [`${EC2}:subnet/${subnet2}`]);
    assert.deepEqual(
      tasks.get('ec2:CreateTags'),
      [`${EC2}:network-interface/*`],
      'instance and volume tags were created at launch',
    );
    // The Lambda service's own grants (logging, tracing) are not the handler's to use.
    assert.ok(!unused.some((u) => u.action.startsWith('xray:') || u.action === 'logs:PutLogEvents'));
    assert.ok(
      unused.some((u) => u.role === ids.api && u.action === 'dynamodb:PutItem'),
      'a role with no calls lists its grants',
    );
  });
});
