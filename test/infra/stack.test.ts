/**
 * The synthesized FlareStack, checked where it matters: the tables match
 * schema/tables.json, the state machine is the ASL file with the tasks
 * function's ARN filled in, the Lambdas get their environment contract, the
 * launch template and IAM keep instances on a short leash (and install the
 * dead-man switch that dead-man-switch.test.ts runs), the API guards
 * everything but its public routes, completion events, the reconciler, the
 * event outbox and the chat notifier are wired with retries, dead-letter
 * queues and alarms, the pools reach the pools table, bad context fails synth
 * by key, and cdk-nag's AwsSolutions pack has nothing unacknowledged.
 *
 * The default stack is synthesized once (with real esbuild bundling); the
 * variants skip bundling. CloudFormation's built-in schema validation is off
 * here because it costs ~15 s per synth and `npm run synth` runs it anyway.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { App, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { deadManSwitchScript } from '../../lib/compute.js';
import { PUBLIC_ROUTES } from '../../lib/http-api.js';
import { apiRoutes } from '../../lambdas/handlers/http/api.js';
import { FlareStack } from '../../lib/flare-stack.js';
import type { FlareFunction } from '../../lib/lambda-defaults.js';
import { REPO_ROOT } from '../../lib/lambda-defaults.js';
import { DEFAULT_GPU_AMI_PARAMETER } from '../../lib/settings.js';
import { ASL_PATH, logicalId, removeStandIns, render, standIns, synthApp } from '../support/cdk-synth.js';

/** What api, tasks, compute-events and the reconciler all get. */
const ENV_CONTRACT = [
  'JOBS_TABLE',
  'QUOTAS_TABLE',
  'POOLS_TABLE',
  'IDEMPOTENCY_TABLE',
  'CATALOG_TABLE',
  'EVENT_BUS_NAME',
  'STATE_MACHINE_ARN',
  'LAUNCH_TEMPLATE_ID',
  'SUBNET_IDS',
  'POOLS',
  'LOG_GROUP_NAME',
  'DEFAULT_QUOTAS',
  'AGENT_TIMEOUT_SECONDS',
  'ROOT_DEVICE_NAME',
  'DEPLOYMENT_NAME',
  'GPU_IMAGE_ID',
];
const SCHEMA = JSON.parse(readFileSync(path.join(REPO_ROOT, 'schema', 'tables.json'), 'utf8')) as Record<string, any>;

type Resources = Record<
  string,
  { Type: string; Properties?: any; DependsOn?: string | string[]; DeletionPolicy?: string }
>;

function synth(
  context: Record<string, unknown> = {},
  bundle = false,
): { app: App; stack: FlareStack; template: Template } {
  const {
    app,
    stacks: [stack],
  } = synthApp(context, { bundle });
  return { app, stack, template: Template.fromStack(stack) };
}

function construct(context: Record<string, unknown>): () => FlareStack {
  return () =>
    new FlareStack(new App({ context: { 'aws:cdk:bundling-stacks': [], ...context } }), 'FlareStack', standIns());
}

/** Every policy statement in the template, with the policy's logical id. */
function statements(resources: Resources): { policy: string; statement: any }[] {
  return Object.entries(resources)
    .filter(([, r]) => r.Type === 'AWS::IAM::Policy')
    .flatMap(([id, r]) =>
      (r.Properties.PolicyDocument.Statement as any[]).map((statement) => ({ policy: id, statement })),
    );
}
const actionsOf = (statement: any): string[] => [statement.Action].flat();

/** The statements of every policy attached to this function's role. */
function statementsOf(stack: FlareStack, resources: Resources, fn: FlareFunction): any[] {
  const role = logicalId(stack, fn.role);
  return statements(resources)
    .filter(({ policy }) => (resources[policy].Properties.Roles as any[]).some((r) => r.Ref === role))
    .map(({ statement }) => statement);
}

/** Every action a function's role may take, each with the resources it may take it on (JSON). */
function grantsOf(stack: FlareStack, resources: Resources, fn: FlareFunction): Map<string, string[]> {
  const grants = new Map<string, string[]>();
  for (const statement of statementsOf(stack, resources, fn)) {
    for (const action of actionsOf(statement)) {
      grants.set(action, [...(grants.get(action) ?? []), ...[statement.Resource].flat().map((r) => JSON.stringify(r))]);
    }
  }
  return grants;
}

/** What every Flare function's role has whatever it does: its own logs and X-Ray. */
const BASELINE_ACTIONS = [
  'logs:CreateLogStream',
  'logs:PutLogEvents',
  'xray:PutTraceSegments',
  'xray:PutTelemetryRecords',
];

after(removeStandIns);

describe('FlareStack (defaults: created VPC, Cognito)', () => {
  let app: App;
  let stack: FlareStack;
  let template: Template;
  let resources: Resources;

  before(() => {
    ({ app, stack, template } = synth({}, true));
    resources = template.toJSON().Resources;
  });
  describe('tables', () => {
    for (const key of ['jobs', 'quotas', 'pools', 'idempotency', 'catalog']) {
      it(`${key} has the keys, indexes and TTL of schema/tables.json, on demand, with PITR and encryption`, () => {
        const schema = SCHEMA[key];
        template.hasResourceProperties('AWS::DynamoDB::Table', {
          KeySchema: schema.KeySchema,
          AttributeDefinitions: Match.arrayEquals(
            schema.AttributeDefinitions.map((a: unknown) => Match.objectEquals(a as Record<string, unknown>)),
          ),
          GlobalSecondaryIndexes: schema.GlobalSecondaryIndexes
            ? Match.arrayEquals(
                schema.GlobalSecondaryIndexes.map((g: any) =>
                  Match.objectLike({ IndexName: g.IndexName, KeySchema: g.KeySchema, Projection: g.Projection }),
                ),
              )
            : Match.absent(),
          TimeToLiveSpecification: schema.TimeToLiveAttribute
            ? { AttributeName: schema.TimeToLiveAttribute, Enabled: true }
            : Match.absent(),
          BillingMode: 'PAY_PER_REQUEST',
          PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
          SSESpecification: { SSEEnabled: true },
        });
      });
    }

    it('orders the waiting queue per pool: index queue is queuePool HASH + queueKey RANGE', () => {
      template.hasResourceProperties('AWS::DynamoDB::Table', {
        KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
        GlobalSecondaryIndexes: Match.arrayWith([
          Match.objectLike({
            IndexName: 'queue',
            KeySchema: [
              { AttributeName: 'queuePool', KeyType: 'HASH' },
              { AttributeName: 'queueKey', KeyType: 'RANGE' },
            ],
          }),
        ]),
      });
    });

    it('keeps the jobs table when the stack is deleted', () => {
      const jobs = resources[logicalId(stack, stack.tables.jobs)];
      assert.equal(jobs.DeletionPolicy, 'Retain');
      assert.equal(jobs.Properties.DeletionProtectionEnabled, true);
    });
  });

  describe('Lambda functions', () => {
    it('give api, tasks, compute-events and the reconciler the whole environment contract, pointing at this stack', () => {
      const tables = stack.tables;
      for (const fn of [stack.api, stack.tasks, stack.computeEvents.handler, stack.reconciler.handler]) {
        const props = resources[logicalId(stack, fn.function)].Properties;
        const env = props.Environment.Variables;
        for (const name of ENV_CONTRACT) assert.ok(env[name] !== undefined, `${fn.node.id} lacks ${name}`);
        assert.deepEqual(env.JOBS_TABLE, { Ref: logicalId(stack, tables.jobs) });
        assert.deepEqual(env.QUOTAS_TABLE, { Ref: logicalId(stack, tables.quotas) });
        assert.deepEqual(env.POOLS_TABLE, { Ref: logicalId(stack, tables.pools) });
        assert.deepEqual(env.IDEMPOTENCY_TABLE, { Ref: logicalId(stack, tables.idempotency) });
        assert.deepEqual(env.CATALOG_TABLE, { Ref: logicalId(stack, tables.catalog) });
        assert.deepEqual(env.EVENT_BUS_NAME, { Ref: logicalId(stack, stack.events.bus) });
        assert.deepEqual(env.LAUNCH_TEMPLATE_ID, { Ref: logicalId(stack, stack.compute.launchTemplate) });
        assert.deepEqual(env.LOG_GROUP_NAME, { Ref: logicalId(stack, stack.compute.jobLogGroup) });
        assert.deepEqual(JSON.parse(env.POOLS), {
          a10g: { instanceTypes: ['g5.xlarge'], gpusPerInstance: 1, memory: '14g' },
        });
        // Defaults: no deployment-wide quota, a 10-minute agent bound, Ubuntu's root device.
        assert.equal(env.DEFAULT_QUOTAS, '{}');
        assert.equal(env.AGENT_TIMEOUT_SECONDS, '600');
        assert.equal(env.ROOT_DEVICE_NAME, '/dev/sda1');
        // The created VPC's private subnets, comma-separated.
        const subnets = env.SUBNET_IDS['Fn::Join'];
        assert.equal(subnets[0], ',');
        assert.equal(subnets[1].length, 2);
        for (const ref of subnets[1]) assert.equal(resources[ref.Ref].Type, 'AWS::EC2::Subnet');
        // Built from the machine's name, not a reference to it (no cycle).
        const arn = JSON.stringify(env.STATE_MACHINE_ARN);
        assert.match(arn, /:stateMachine:FlareStack-job-lifecycle/);
        assert.doesNotMatch(arn, /StateMachine[0-9A-F]{8}/);

        assert.equal(props.Runtime, 'nodejs24.x');
        assert.equal(props.Handler, 'index.handler');
        assert.deepEqual(props.TracingConfig, { Mode: 'Active' });
        assert.deepEqual(props.LoggingConfig.LogGroup, { Ref: logicalId(stack, fn.logGroup) });
      }
      const machineName = resources[logicalId(stack, stack.workflow.stateMachine)].Properties.StateMachineName;
      assert.equal(machineName, 'FlareStack-job-lifecycle');
    });

    it('tell the API which claim lists groups and which group is admin, matching the Cognito group', () => {
      const env = resources[logicalId(stack, stack.api.function)].Properties.Environment.Variables;
      assert.equal(env.AUTH_GROUPS_CLAIM, 'cognito:groups');
      assert.equal(env.AUTH_ADMIN_GROUP, 'admin');
      template.hasResourceProperties('AWS::Cognito::UserPoolGroup', { GroupName: env.AUTH_ADMIN_GROUP });
      for (const fn of [stack.tasks, stack.computeEvents.handler, stack.reconciler.handler]) {
        const other = resources[logicalId(stack, fn.function)].Properties.Environment.Variables;
        assert.equal(other.AUTH_ADMIN_GROUP, undefined, `${fn.node.path} has no business with auth`);
      }
    });

    it('bundle as ESM with a require shim, from local esbuild', () => {
      const code = resources[logicalId(stack, stack.tasks.function)].Properties.Code;
      assert.ok(code.S3Key, 'tasks function has a bundled asset');
      const assets = readFileSync(path.join(app.outdir, 'FlareStack.assets.json'), 'utf8');
      const asset = Object.values(JSON.parse(assets).files as Record<string, any>).find(
        (f) => code.S3Key === f.destinations[Object.keys(f.destinations)[0]].objectKey,
      );
      assert.ok(asset, 'the asset of the tasks function is in the manifest');
      const bundle = readFileSync(path.join(app.outdir, asset.source.path, 'index.mjs'), 'utf8');
      assert.ok(
        bundle.startsWith("import { createRequire as flareCreateRequire } from 'node:module';"),
        'the banner opens the bundle',
      );
    });

    it('let the state machine, and only it, reach the tasks function', () => {
      const role = resources[logicalId(stack, stack.workflow.stateMachine)].Properties.RoleArn['Fn::GetAtt'][0];
      const tasks = logicalId(stack, stack.tasks.function);
      const invokes = statements(resources).filter(({ statement }) =>
        actionsOf(statement).includes('lambda:InvokeFunction'),
      );
      const ofTasks = invokes.filter(({ statement }) => JSON.stringify(statement.Resource).includes(tasks));
      assert.deepEqual(
        ofTasks.map(({ statement }) => statement.Resource),
        [{ 'Fn::GetAtt': [tasks, 'Arn'] }],
      );
      assert.deepEqual(resources[ofTasks[0].policy].Properties.Roles, [{ Ref: role }]);
      // The only other invoker is the custom resource framework, of the pool seeding function alone.
      const seed = logicalId(stack, stack.poolSeed.handler.function);
      for (const { statement } of invokes.filter((i) => !ofTasks.includes(i))) {
        for (const resource of [statement.Resource].flat())
          assert.match(render(resource), new RegExp(`^<${seed}\\.Arn>(:\\*)?$`));
      }
    });

    it('let both handlers start executions, answer task tokens and publish events, on this machine and bus only', () => {
      for (const fn of [stack.api, stack.tasks]) {
        const mine = statements(resources).filter(({ policy }) =>
          JSON.stringify(resources[policy].Properties.Roles).includes(logicalId(stack, fn.role)),
        );
        const grants = (action: string) =>
          mine
            .filter(({ statement }) => actionsOf(statement).includes(action))
            .map(({ statement }) => JSON.stringify(statement.Resource));
        for (const action of ['states:StartExecution', 'states:SendTaskSuccess']) {
          const resourcesFor = grants(action);
          assert.equal(resourcesFor.length, 1, `${fn.node.id}: ${action}`);
          assert.match(resourcesFor[0], /:stateMachine:FlareStack-job-lifecycle/);
        }
        // Least privilege: no code path fails a task or sends a heartbeat.
        for (const action of ['states:SendTaskFailure', 'states:SendTaskHeartbeat'])
          assert.deepEqual(grants(action), [], `${fn.node.id}: ${action}`);
        assert.deepEqual(grants('events:PutEvents'), [
          JSON.stringify({ 'Fn::GetAtt': [logicalId(stack, stack.events.bus), 'Arn'] }),
        ]);
      }
    });
  });

  describe('state machine', () => {
    it('is the ASL file with ${TasksFunctionArn} bound to the tasks function, and no other placeholder', () => {
      const props = resources[logicalId(stack, stack.workflow.stateMachine)].Properties;
      const asl = readFileSync(ASL_PATH, 'utf8');
      assert.equal(props.DefinitionString, asl, 'deployed inline from the file, not as an S3 asset');
      assert.deepEqual(props.DefinitionSubstitutions, {
        TasksFunctionArn: { 'Fn::GetAtt': [logicalId(stack, stack.tasks.function), 'Arn'] },
      });

      // What CloudFormation will do: replace each ${Key} with its substitution.
      const deployed = props.DefinitionString.replace(/\$\{([^}]*)\}/g, (whole: string, key: string) =>
        key in props.DefinitionSubstitutions ? '<TASKS_FUNCTION_ARN>' : whole,
      );
      assert.ok(!deployed.includes('${'), 'a placeholder is left unsubstituted');
      const definition = JSON.parse(deployed);
      const tasks: any[] = [];
      const walk = (states: Record<string, any>) => {
        for (const state of Object.values(states)) {
          if (state.Type === 'Task') tasks.push(state);
          for (const branch of state.Branches ?? []) walk(branch.States);
          if (state.Iterator) walk(state.Iterator.States);
          if (state.ItemProcessor) walk(state.ItemProcessor.States);
        }
      };
      walk(definition.States);
      assert.ok(tasks.length > 0);
      for (const task of tasks) {
        const target = task.Resource.startsWith('arn:aws:states:::lambda:invoke')
          ? task.Parameters?.FunctionName
          : task.Resource;
        assert.equal(
          target,
          '<TASKS_FUNCTION_ARN>',
          `task ${JSON.stringify(task).slice(0, 80)} targets the tasks function`,
        );
      }
    });

    it('is a STANDARD machine with ALL-level logging and X-Ray tracing', () => {
      template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
        StateMachineType: 'STANDARD',
        TracingConfiguration: { Enabled: true },
        LoggingConfiguration: Match.objectLike({
          Level: 'ALL',
          Destinations: [
            {
              CloudWatchLogsLogGroup: {
                LogGroupArn: { 'Fn::GetAtt': [logicalId(stack, stack.workflow.logGroup), 'Arn'] },
              },
            },
          ],
        }),
      });
    });

    it('leaves no dependency cycle between the machine, the functions and their policies', () => {
      const edges = new Map<string, Set<string>>();
      const refs = (value: unknown, out: Set<string>) => {
        if (Array.isArray(value)) {
          for (const v of value) refs(v, out);
        } else if (value && typeof value === 'object') {
          for (const [k, v] of Object.entries(value)) {
            if (k === 'Ref' && typeof v === 'string' && v in resources) out.add(v);
            else if (k === 'Fn::GetAtt') out.add((v as string[])[0]);
            else refs(v, out);
          }
        }
      };
      for (const [id, r] of Object.entries(resources)) {
        const out = new Set<string>([r.DependsOn ?? []].flat());
        refs(r.Properties, out);
        edges.set(id, out);
      }
      const state = new Map<string, 'open' | 'done'>();
      const visit = (id: string, trail: string[]) => {
        if (state.get(id) === 'done') return;
        assert.notEqual(state.get(id), 'open', `cycle: ${[...trail, id].join(' -> ')}`);
        state.set(id, 'open');
        for (const next of edges.get(id) ?? []) visit(next, [...trail, id]);
        state.set(id, 'done');
      };
      for (const id of edges.keys()) visit(id, []);
    });
  });

  describe('compute', () => {
    it('lets the nodes of a job reach each other on any port, and nothing else reach them', () => {
      const group = logicalId(stack, stack.compute.securityGroup);
      template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
        GroupId: { 'Fn::GetAtt': [group, 'GroupId'] },
        SourceSecurityGroupId: { 'Fn::GetAtt': [group, 'GroupId'] },
        IpProtocol: '-1',
      });
      const ingress = Object.values(resources).filter(
        (r) => r.Type === 'AWS::EC2::SecurityGroupIngress' && JSON.stringify(r.Properties.GroupId).includes(group),
      );
      assert.equal(ingress.length, 1, 'one ingress rule: the group itself');
      assert.equal(
        resources[group].Properties.SecurityGroupIngress,
        undefined,
        'no inline ingress (no CIDR, no other group)',
      );
    });

    it('user data lets only root reach the instance metadata service (multi-node jobs share the host network as non-root)', () => {
      const userData: string =
        resources[logicalId(stack, stack.compute.launchTemplate)].Properties.LaunchTemplateData.UserData['Fn::Base64'];
      const line = userData.split('\n').find((l) => l.includes('/etc/systemd/system/flare-imds-guard.service'));
      assert.ok(line, 'the user data writes the guard unit');
      const dir = mkdtempSync(path.join(tmpdir(), 'flare-imds-'));
      const unitFile = path.join(dir, 'guard.service');
      execFileSync('sh', ['-c', line.replace('/etc/systemd/system/flare-imds-guard.service', unitFile)]);
      const unit = readFileSync(unitFile, 'utf8');
      assert.match(unit, /^Before=docker\.service$/m, 'in place before any container starts');
      assert.match(unit, /^Type=oneshot$/m);
      assert.ok(unit.includes('iptables -C OUTPUT -d 169.254.169.254/32 -m owner ! --uid-owner 0 -j REJECT'), unit);
      assert.ok(unit.includes('iptables -I OUTPUT -d 169.254.169.254/32 -m owner ! --uid-owner 0 -j REJECT'), unit);
      assert.ok(
        userData.includes('systemctl enable --now flare-imds-guard.service'),
        'enabled, so it is back after a reboot',
      );
      rmSync(dir, { recursive: true, force: true });
    });

    it('user data installs the dead-man switch as a service, with the 15-minute default grace (test/infra/dead-man-switch.test.ts runs it)', () => {
      const userData: string =
        resources[logicalId(stack, stack.compute.launchTemplate)].Properties.LaunchTemplateData.UserData['Fn::Base64'];
      const match = /<<'FLARE_EOF'\n([\s\S]*?)\nFLARE_EOF/.exec(userData);
      assert.ok(match, 'the user data installs the switch from a quoted heredoc');
      assert.equal(match[1], deadManSwitchScript(15));
      assert.ok(userData.includes('systemctl enable --now flare-deadman.service'), 'the switch runs as a service');
    });

    it('launches from a template with IMDSv2 only, hop limit 1, encrypted EBS, and terminate on shutdown', () => {
      template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
        LaunchTemplateData: Match.objectLike({
          MetadataOptions: Match.objectLike({ HttpTokens: 'required', HttpPutResponseHopLimit: 1 }),
          InstanceInitiatedShutdownBehavior: 'terminate',
          BlockDeviceMappings: [Match.objectLike({ Ebs: Match.objectLike({ Encrypted: true }) })],
          // The adapter passes SubnetId per attempt; EC2 refuses that next to template interfaces.
          NetworkInterfaces: Match.absent(),
          SecurityGroupIds: [{ 'Fn::GetAtt': [logicalId(stack, stack.compute.securityGroup), 'GroupId'] }],
        }),
      });
    });

    it('resolves the GPU AMI from the Deep Learning Base AMI parameter', () => {
      const parameters = template.toJSON().Parameters as Record<string, any>;
      assert.ok(
        Object.values(parameters).some(
          (p) => p.Default === DEFAULT_GPU_AMI_PARAMETER && String(p.Type).includes('AWS::EC2::Image::Id'),
        ),
      );
    });

    it('gives instances SSM core, their log group and ECR pulls only', () => {
      const role = resources[logicalId(stack, stack.compute.instanceRole)].Properties;
      assert.equal(role.ManagedPolicyArns.length, 1);
      assert.match(JSON.stringify(role.ManagedPolicyArns[0]), /:iam::aws:policy\/AmazonSSMManagedInstanceCore/);
      const own = statements(resources).filter(({ policy }) =>
        JSON.stringify(resources[policy].Properties.Roles).includes(logicalId(stack, stack.compute.instanceRole)),
      );
      const writes = own.filter(({ statement }) => actionsOf(statement).some((a) => a === 'logs:PutLogEvents'));
      assert.deepEqual(
        writes.map(({ statement }) => statement.Resource),
        [{ 'Fn::GetAtt': [logicalId(stack, stack.compute.jobLogGroup), 'Arn'] }],
      );
      // The ECR statements themselves: test/infra/ecr-pull.test.ts.
      assert.ok(
        own.every(({ statement }) => actionsOf(statement).every((a) => a.startsWith('logs:') || a.startsWith('ecr:'))),
        'nothing but logs and ECR pulls besides SSM core',
      );
    });

    it('lets the tasks function create only managed-by=flare instances from the Flare template', () => {
      const launchTemplateArn = Match.objectLike({
        'Fn::Join': [
          '',
          Match.arrayWith([':launch-template/', { Ref: logicalId(stack, stack.compute.launchTemplate) }]),
        ],
      });
      template.hasResourceProperties('AWS::IAM::Policy', {
        Roles: [{ Ref: logicalId(stack, stack.tasks.role) }],
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Action: 'ec2:RunInstances',
              Resource: Match.objectLike({ 'Fn::Join': ['', Match.arrayWith([':instance/*'])] }),
              Condition: {
                StringEquals: {
                  'aws:RequestTag/managed-by': 'flare',
                  'aws:RequestTag/flare:deployment': stack.stackName,
                },
                ArnEquals: { 'ec2:LaunchTemplate': launchTemplateArn },
              },
            }),
            Match.objectLike({
              Action: 'ec2:RunInstances',
              Condition: { ArnEquals: { 'ec2:LaunchTemplate': launchTemplateArn } },
            }),
            Match.objectLike({
              Action: 'ec2:CreateTags',
              Condition: { StringEquals: { 'ec2:CreateAction': 'RunInstances' } },
            }),
            Match.objectLike({
              Action: 'ec2:TerminateInstances',
              Condition: {
                StringEquals: {
                  'aws:ResourceTag/managed-by': 'flare',
                  'aws:ResourceTag/flare:deployment': stack.stackName,
                },
              },
            }),
            Match.objectLike({
              Action: 'ssm:SendCommand',
              Condition: {
                StringEquals: {
                  'aws:ResourceTag/managed-by': 'flare',
                  'aws:ResourceTag/flare:deployment': stack.stackName,
                },
              },
            }),
            Match.objectLike({
              Action: 'ssm:SendCommand',
              Resource: Match.objectLike({ 'Fn::Join': ['', Match.arrayWith(['::document/AWS-RunShellScript'])] }),
            }),
            Match.objectLike({
              Action: 'iam:PassRole',
              Resource: { 'Fn::GetAtt': [logicalId(stack, stack.compute.instanceRole), 'Arn'] },
              Condition: { StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } },
            }),
          ]),
        },
      });
    });

    it('grants no instance-changing action anywhere without its condition', () => {
      const guarded: Record<string, (s: any) => boolean> = {
        'ec2:RunInstances': (s) => !!s.Condition?.ArnEquals?.['ec2:LaunchTemplate'],
        'ec2:CreateTags': (s) => s.Condition?.StringEquals?.['ec2:CreateAction'] === 'RunInstances',
        'ec2:TerminateInstances': (s) => s.Condition?.StringEquals?.['aws:ResourceTag/managed-by'] === 'flare',
        'iam:PassRole': (s) => s.Condition?.StringEquals?.['iam:PassedToService'] === 'ec2.amazonaws.com',
        'ssm:SendCommand': (s) =>
          s.Condition?.StringEquals?.['aws:ResourceTag/managed-by'] === 'flare' ||
          /document\/AWS-RunShellScript/.test(JSON.stringify(s.Resource)),
      };
      const found = new Set<string>();
      for (const { policy, statement } of statements(resources)) {
        for (const action of actionsOf(statement)) {
          assert.ok(!action.includes('*'), `${policy} grants wildcard action ${action}`);
          if (!(action in guarded)) continue;
          found.add(action);
          assert.ok(
            guarded[action](statement),
            `${policy}: ${action} without its condition: ${JSON.stringify(statement)}`,
          );
          assert.notEqual(statement.Resource, '*', `${policy}: ${action} on *`);
        }
      }
      assert.deepEqual([...found].sort(), Object.keys(guarded).sort());
      const instanceRunStatement = statements(resources).find(
        ({ statement }) =>
          actionsOf(statement).includes('ec2:RunInstances') && /:instance\/\*/.test(JSON.stringify(statement.Resource)),
      );
      assert.equal(instanceRunStatement?.statement.Condition.StringEquals['aws:RequestTag/managed-by'], 'flare');
    });
  });

  describe('HTTP API', () => {
    it('guards /v1/{proxy+} with the Cognito JWT authorizer and leaves /, /v1 and /v1/health public', () => {
      const authorizers = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::ApiGatewayV2::Authorizer');
      assert.equal(authorizers.length, 1);
      const [authorizerId, authorizer] = authorizers[0];
      assert.equal(authorizer.Properties.AuthorizerType, 'JWT');
      assert.match(JSON.stringify(authorizer.Properties.JwtConfiguration.Issuer), /https:\/\/cognito-idp\./);
      assert.deepEqual(authorizer.Properties.JwtConfiguration.Audience, [
        { Ref: logicalId(stack, stack.httpApi.userPoolClient!) },
      ]);

      template.hasResourceProperties('AWS::ApiGatewayV2::Route', {
        RouteKey: 'ANY /v1/{proxy+}',
        AuthorizationType: 'JWT',
        AuthorizerId: { Ref: authorizerId },
      });
      const servedPublicly = apiRoutes(() => {
        throw new Error('unused');
      })
        .filter((r) => r.public)
        .map((r) => `GET ${r.path}`);
      assert.deepEqual(
        [...PUBLIC_ROUTES].map((p) => `GET ${p}`).sort(),
        servedPublicly.sort(),
        "the stack's public routes are the API's public routes",
      );
      for (const key of ['GET /', 'GET /v1', 'GET /v1/health', 'GET /v1/openapi.json']) {
        template.hasResourceProperties('AWS::ApiGatewayV2::Route', {
          RouteKey: key,
          AuthorizationType: 'NONE',
          AuthorizerId: Match.absent(),
        });
      }
      const routes = Object.values(resources).filter((r) => r.Type === 'AWS::ApiGatewayV2::Route');
      assert.deepEqual(routes.map((r) => r.Properties.RouteKey).sort(), [
        'ANY /v1/{proxy+}',
        'GET /',
        'GET /v1',
        'GET /v1/health',
        'GET /v1/openapi.json',
      ]);
    });

    it('creates an admin group in the user pool, with MFA required and no self sign-up', () => {
      template.hasResourceProperties('AWS::Cognito::UserPoolGroup', { GroupName: 'admin' });
      template.hasResourceProperties('AWS::Cognito::UserPool', {
        MfaConfiguration: 'ON',
        AdminCreateUserConfig: { AllowAdminCreateUserOnly: true },
      });
    });

    it('logs access and throttles on the $default stage', () => {
      template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
        StageName: '$default',
        AutoDeploy: true,
        AccessLogSettings: {
          DestinationArn: { 'Fn::GetAtt': [logicalId(stack, stack.httpApi.accessLogs), 'Arn'] },
          Format: Match.stringLikeRegexp('\\$context\\.requestId'),
        },
        DefaultRouteSettings: { ThrottlingRateLimit: 50, ThrottlingBurstLimit: 100 },
      });
    });
  });

  it('publishes to an EventBridge bus named after the stack (synth-matrix.test.ts deploys two side by side)', () => {
    template.hasResourceProperties('AWS::Events::EventBus', { Name: 'FlareStack-events' });
  });

  it('creates a VPC whose job subnets are private, with a flow log', () => {
    template.resourceCountIs('AWS::EC2::VPC', 1);
    template.hasResourceProperties('AWS::EC2::FlowLog', { TrafficType: 'REJECT' });
    const subnets = Object.values(resources).filter((r) => r.Type === 'AWS::EC2::Subnet');
    assert.ok(
      subnets.every((s) => s.Properties.MapPublicIpOnLaunch === false),
      'no subnet maps public IPs',
    );
  });

  describe('completion events (default bus)', () => {
    const dlqArn = () => ({ 'Fn::GetAtt': [logicalId(stack, stack.computeEvents.deadLetters.queue), 'Arn'] });
    const target = () =>
      Match.objectLike({
        Arn: { 'Fn::GetAtt': [logicalId(stack, stack.computeEvents.handler.function), 'Arn'] },
        DeadLetterConfig: { Arn: dlqArn() },
        RetryPolicy: { MaximumRetryAttempts: 8, MaximumEventAgeInSeconds: 7200 },
      });

    it('hands final Run Command statuses of AWS-RunShellScript to compute-events, with retries and a dead-letter queue', () => {
      template.hasResourceProperties('AWS::Events::Rule', {
        EventBusName: Match.absent(),
        EventPattern: {
          source: ['aws.ssm'],
          'detail-type': ['EC2 Command Invocation Status-change Notification'],
          // Delivery failures and cancels too: they fail the job at once instead of at its live timeout.
          detail: {
            'document-name': ['AWS-RunShellScript'],
            status: [
              'Success',
              'Failed',
              'TimedOut',
              'Cancelled',
              'DeliveryTimedOut',
              'ExecutionTimedOut',
              'Undeliverable',
              'Terminated',
            ],
          },
        },
        Targets: [target()],
      });
    });

    it('hands instances that stop or terminate to compute-events, with retries and a dead-letter queue', () => {
      template.hasResourceProperties('AWS::Events::Rule', {
        EventBusName: Match.absent(),
        EventPattern: {
          source: ['aws.ec2'],
          'detail-type': ['EC2 Instance State-change Notification'],
          detail: { state: ['shutting-down', 'terminated', 'stopping', 'stopped'] },
        },
        Targets: [target()],
      });
    });

    it('sends invocations that failed every Lambda retry to the same dead-letter queue', () => {
      template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
        FunctionName: { Ref: logicalId(stack, stack.computeEvents.handler.function) },
        MaximumRetryAttempts: 2,
        DestinationConfig: { OnFailure: { Destination: dlqArn() } },
      });
    });

    it('lets compute-events read instance and command state, answer task tokens with success only, and use the tables, nothing more', () => {
      const grants = grantsOf(stack, resources, stack.computeEvents.handler);
      assert.deepEqual(grants.get('ec2:DescribeInstances'), ['"*"']);
      assert.deepEqual(grants.get('ssm:GetCommandInvocation'), ['"*"']);
      assert.equal(grants.get('states:SendTaskSuccess')?.length, 1);
      assert.match(grants.get('states:SendTaskSuccess')![0], /:stateMachine:FlareStack-job-lifecycle/);
      assert.ok(grants.get('dynamodb:UpdateItem')?.some((r) => r.includes(logicalId(stack, stack.tables.jobs))));
      const allowed = new Set([
        ...BASELINE_ACTIONS,
        'ec2:DescribeInstances',
        'ssm:GetCommandInvocation',
        'states:SendTaskSuccess',
        'sqs:SendMessage',
        'sqs:GetQueueAttributes',
        'sqs:GetQueueUrl',
        ...[...grants.keys()].filter((a) => a.startsWith('dynamodb:')),
      ]);
      assert.deepEqual(
        [...grants.keys()].filter((a) => !allowed.has(a)),
        [],
      );
      assert.deepEqual(grants.get('sqs:SendMessage'), [JSON.stringify(dlqArn())]);
      for (const [action, on] of grants)
        if (action.startsWith('dynamodb:'))
          assert.ok(
            on.every((r) => r.includes('Tables')),
            `${action} on ${on}`,
          );
    });
  });

  describe('reconciler', () => {
    it('runs every 5 minutes by default', () => {
      template.hasResourceProperties('AWS::Events::Rule', {
        ScheduleExpression: 'rate(5 minutes)',
        Targets: [
          Match.objectLike({ Arn: { 'Fn::GetAtt': [logicalId(stack, stack.reconciler.handler.function), 'Arn'] } }),
        ],
      });
    });

    it('does not retry a failed run (the next one repeats it) and never runs longer than a period', () => {
      template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
        FunctionName: { Ref: logicalId(stack, stack.reconciler.handler.function) },
        MaximumRetryAttempts: 0,
      });
      assert.equal(resources[logicalId(stack, stack.reconciler.handler.function)].Properties.Timeout, 300);
    });

    it('may terminate only managed-by=flare instances, list and start executions of this machine and end their waits, publish on the bus', () => {
      template.hasResourceProperties('AWS::IAM::Policy', {
        Roles: [{ Ref: logicalId(stack, stack.reconciler.handler.role) }],
        PolicyDocument: {
          Statement: [
            Match.objectLike({
              Action: 'ec2:TerminateInstances',
              Resource: Match.objectLike({ 'Fn::Join': ['', Match.arrayWith([':instance/*'])] }),
              Condition: {
                StringEquals: {
                  'aws:ResourceTag/managed-by': 'flare',
                  'aws:ResourceTag/flare:deployment': stack.stackName,
                },
              },
            }),
          ],
        },
      });
      const grants = grantsOf(stack, resources, stack.reconciler.handler);
      // SendTaskSuccess: a job whose instances are lost is reported as compute-events does, ending its Run wait.
      for (const action of ['states:ListExecutions', 'states:StartExecution', 'states:SendTaskSuccess']) {
        assert.equal(grants.get(action)?.length, 1, action);
        assert.match(grants.get(action)![0], /:stateMachine:FlareStack-job-lifecycle/);
      }
      assert.deepEqual(grants.get('events:PutEvents'), [
        JSON.stringify({ 'Fn::GetAtt': [logicalId(stack, stack.events.bus), 'Arn'] }),
      ]);
      assert.deepEqual(grants.get('ec2:DescribeInstances'), ['"*"']);
      for (const action of [
        'ec2:RunInstances',
        'ec2:CreateTags',
        'ssm:SendCommand',
        'iam:PassRole',
        'states:SendTaskFailure',
      ])
        assert.equal(grants.get(action), undefined, action);
    });

    it('raises an alarm on the alarm topic when two runs in a row fail', () => {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/Lambda',
        MetricName: 'Errors',
        Dimensions: [{ Name: 'FunctionName', Value: { Ref: logicalId(stack, stack.reconciler.handler.function) } }],
        Period: 300,
        EvaluationPeriods: 2,
        DatapointsToAlarm: 2,
        Threshold: 1,
        AlarmActions: [{ Ref: logicalId(stack, stack.alarms.topic) }],
      });
    });
  });

  describe('Job State Change outbox (jobs table stream)', () => {
    it('streams old and new images of the jobs table', () => {
      const jobs = resources[logicalId(stack, stack.tables.jobs)].Properties;
      assert.deepEqual(jobs.StreamSpecification, { StreamViewType: 'NEW_AND_OLD_IMAGES' });
      for (const key of ['quotas', 'pools', 'idempotency', 'catalog'] as const) {
        assert.equal(resources[logicalId(stack, stack.tables[key])].Properties.StreamSpecification, undefined, key);
      }
    });

    it('feeds the stream publisher with partial-batch failures, batch splitting, bounded retries and a dead-letter queue', () => {
      template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
        EventSourceArn: { 'Fn::GetAtt': [logicalId(stack, stack.tables.jobs), 'StreamArn'] },
        FunctionName: { Ref: logicalId(stack, stack.jobEvents.handler.function) },
        FunctionResponseTypes: ['ReportBatchItemFailures'],
        BisectBatchOnFunctionError: true,
        MaximumRetryAttempts: 10,
        ParallelizationFactor: 1,
        StartingPosition: 'TRIM_HORIZON',
        DestinationConfig: {
          OnFailure: { Destination: { 'Fn::GetAtt': [logicalId(stack, stack.jobEvents.deadLetters.queue), 'Arn'] } },
        },
        FilterCriteria: { Filters: [{ Pattern: JSON.stringify({ eventName: ['INSERT', 'MODIFY'] }) }] },
      });
    });

    it('lets the stream publisher put events on the flare bus and nowhere else, and touch no table item', () => {
      const grants = grantsOf(stack, resources, stack.jobEvents.handler);
      assert.deepEqual(grants.get('events:PutEvents'), [
        JSON.stringify({ 'Fn::GetAtt': [logicalId(stack, stack.events.bus), 'Arn'] }),
      ]);
      const stream = JSON.stringify({ 'Fn::GetAtt': [logicalId(stack, stack.tables.jobs), 'StreamArn'] });
      for (const action of ['dynamodb:GetRecords', 'dynamodb:GetShardIterator', 'dynamodb:DescribeStream'])
        assert.deepEqual(grants.get(action), [stream], action);
      const allowed = new Set([
        ...BASELINE_ACTIONS,
        'events:PutEvents',
        'dynamodb:GetRecords',
        'dynamodb:GetShardIterator',
        'dynamodb:DescribeStream',
        'dynamodb:ListStreams',
        'sqs:SendMessage',
        'sqs:GetQueueAttributes',
        'sqs:GetQueueUrl',
      ]);
      assert.deepEqual(
        [...grants.keys()].filter((a) => !allowed.has(a)),
        [],
      );
      assert.deepEqual(grants.get('sqs:SendMessage'), [
        JSON.stringify({ 'Fn::GetAtt': [logicalId(stack, stack.jobEvents.deadLetters.queue), 'Arn'] }),
      ]);
    });

    it('gives the stream publisher EVENT_BUS_NAME and nothing else', () => {
      const env = resources[logicalId(stack, stack.jobEvents.handler.function)].Properties.Environment.Variables;
      assert.deepEqual(Object.keys(env).sort(), ['EVENT_BUS_NAME', 'NODE_OPTIONS']);
      assert.deepEqual(env.EVENT_BUS_NAME, { Ref: logicalId(stack, stack.events.bus) });
    });
  });

  it('deploys no notifier and no rule on the flare bus when no chat channel is configured', () => {
    assert.equal(stack.notifier, undefined);
    const onFlareBus = Object.values(resources).filter(
      (r) => r.Type === 'AWS::Events::Rule' && r.Properties.EventBusName !== undefined,
    );
    assert.deepEqual(onFlareBus, []);
    const functions = Object.values(resources).filter((r) => r.Type === 'AWS::Lambda::Function');
    assert.ok(!functions.some((f) => f.Properties.Environment?.Variables?.NOTIFY_CHANNELS !== undefined));
  });

  describe('queues and alarms', () => {
    it('encrypts every queue and refuses requests without TLS', () => {
      const queues = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::SQS::Queue');
      assert.ok(queues.length >= 2);
      for (const [id, queue] of queues) {
        assert.equal(queue.Properties.SqsManagedSseEnabled, true, id);
        template.hasResourceProperties('AWS::SQS::QueuePolicy', {
          Queues: [{ Ref: id }],
          PolicyDocument: {
            Statement: Match.arrayWith([
              Match.objectLike({
                Effect: 'Deny',
                Action: 'sqs:*',
                Condition: { Bool: { 'aws:SecureTransport': 'false' } },
              }),
            ]),
          },
        });
      }
    });

    it('alarms on every dead-letter queue as soon as it holds a message', () => {
      for (const dlq of [stack.computeEvents.deadLetters, stack.jobEvents.deadLetters]) {
        template.hasResourceProperties('AWS::CloudWatch::Alarm', {
          Namespace: 'AWS/SQS',
          MetricName: 'ApproximateNumberOfMessagesVisible',
          Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [logicalId(stack, dlq.queue), 'QueueName'] } }],
          Threshold: 1,
          ComparisonOperator: 'GreaterThanOrEqualToThreshold',
          AlarmActions: [{ Ref: logicalId(stack, stack.alarms.topic) }],
        });
      }
    });

    it('sends every alarm, and its recovery, to the one alarm topic', () => {
      const alarms = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::CloudWatch::Alarm');
      assert.equal(alarms.length, stack.alarms.alarms.length);
      for (const [id, alarm] of alarms) {
        assert.deepEqual(alarm.Properties.AlarmActions, [{ Ref: logicalId(stack, stack.alarms.topic) }], id);
        assert.deepEqual(alarm.Properties.OKActions, [{ Ref: logicalId(stack, stack.alarms.topic) }], id);
      }
    });

    it('encrypts the alarm topic with a rotated key CloudWatch may use, enforces TLS, and subscribes nobody by default', () => {
      const key = logicalId(stack, stack.alarms.key);
      template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: { 'Fn::GetAtt': [key, 'Arn'] } });
      template.hasResourceProperties('AWS::KMS::Key', {
        EnableKeyRotation: true,
        KeyPolicy: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Principal: { Service: 'cloudwatch.amazonaws.com' },
              Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
            }),
          ]),
        },
      });
      template.hasResourceProperties('AWS::SNS::TopicPolicy', {
        Topics: [{ Ref: logicalId(stack, stack.alarms.topic) }],
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Effect: 'Deny',
              Action: 'sns:Publish',
              Condition: { Bool: { 'aws:SecureTransport': 'false' } },
            }),
          ]),
        },
      });
      template.resourceCountIs('AWS::SNS::Subscription', 0);
    });
  });

  describe('pools custom resource', () => {
    it('carries the configured pools and the pools table to the seeding function through the provider framework', () => {
      const [resource] = Object.values(resources).filter((r) => r.Type === 'Custom::FlarePools');
      assert.ok(resource, 'a Custom::FlarePools resource');
      assert.deepEqual(JSON.parse(resource.Properties.Pools), [
        { name: 'a10g', instanceType: 'g5.xlarge', gpusPerInstance: 1, maxGpus: 4 },
      ]);
      assert.deepEqual(resource.Properties.PoolsTable, { Ref: logicalId(stack, stack.tables.pools) });
      const token = resource.Properties.ServiceToken['Fn::GetAtt'][0];
      assert.equal(
        resources[token].Properties.Environment.Variables.USER_ON_EVENT_FUNCTION_ARN['Fn::GetAtt'][0],
        logicalId(stack, stack.poolSeed.handler.function),
      );
    });

    it('lets the seeding function update items of the pools table and nothing else', () => {
      const grants = grantsOf(stack, resources, stack.poolSeed.handler);
      assert.deepEqual(grants.get('dynamodb:UpdateItem'), [
        JSON.stringify({ 'Fn::GetAtt': [logicalId(stack, stack.tables.pools), 'Arn'] }),
      ]);
      assert.deepEqual(
        [...grants.keys()].filter((a) => !BASELINE_ACTIONS.includes(a)),
        ['dynamodb:UpdateItem'],
      );
    });
  });

  describe('cdk-nag AwsSolutions', () => {
    it('reports no unacknowledged finding', () => {
      const report = new AwsSolutionsChecks().validateScope(app);
      const findings = report.violations.map(
        (v) => `${v.severity} ${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`,
      );
      assert.deepEqual(findings, []);
    });

    it('acknowledges only named AwsSolutions rules, each with a reason', () => {
      const acknowledgements: [string, string][] = [];
      const walk = (c: IConstruct) => {
        for (const entry of c.node.metadata) {
          if (entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
            acknowledgements.push(...Object.entries(entry.data as Record<string, string>));
        }
        c.node.children.forEach(walk);
      };
      walk(app);
      // aws-cdk-lib acknowledges some of its own CloudFormation-Validate warnings; those are not ours.
      const nag = acknowledgements.filter(([id]) => id.includes('AwsSolutions-'));
      for (const [id, reason] of nag) {
        assert.match(id, /AwsSolutions-[A-Z]+\d+(\[.+\])?$/, id);
        assert.ok(reason.length >= 40, `${id}: reason too thin: ${reason}`);
      }
      // A new kind of suppression is a decision: add it here and to lib/README.md.
      const rules = new Set(nag.map(([id]) => id.replace(/^.*(AwsSolutions-[A-Z]+\d+).*$/, '$1')));
      assert.deepEqual([...rules].sort(), [
        'AwsSolutions-APIG4',
        'AwsSolutions-COG8',
        'AwsSolutions-IAM4',
        'AwsSolutions-IAM5',
        'AwsSolutions-SQS3',
      ]);
    });
  });
});

describe('FlareStack with an existing VPC, an OIDC issuer and custom pools', () => {
  const issuer = 'https://login.example.com/realms/research';
  let stack: FlareStack;
  let template: Template;
  let resources: Resources;

  before(() => {
    ({ stack, template } = synth({
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
    resources = template.toJSON().Resources;
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

describe('FlareStack with chat channels, an alarm email and tuned settings', () => {
  const channels = [
    {
      id: 'vision-slack',
      type: 'slack',
      secretName: 'flare/vision-slack',
      projects: ['vision'],
      states: ['SUCCEEDED', 'FAILED', 'EXPIRED'],
    },
    { id: 'ops-teams', type: 'teams', secretName: 'flare/ops-teams' },
  ];
  let app: App;
  let stack: FlareStack;
  let template: Template;
  let resources: Resources;
  let notifier: NonNullable<FlareStack['notifier']>;

  before(() => {
    ({ app, stack, template } = synth({
      'flare:notifications': channels,
      'flare:alarmEmail': 'gpu-ops@example.com',
      'flare:adminGroup': 'flare-admins',
      'flare:defaultQuotas': { gpus: 8, jobs: 20 },
      // As `-c key=value` passes them: strings.
      'flare:reconcilePeriodMinutes': '1',
      'flare:agentTimeoutMinutes': '20',
    }));
    resources = template.toJSON().Resources;
    assert.ok(stack.notifier);
    notifier = stack.notifier;
  });

  it('passes default quotas and the agent timeout to the functions', () => {
    for (const fn of [stack.api, stack.tasks, stack.computeEvents.handler, stack.reconciler.handler]) {
      const env = resources[logicalId(stack, fn.function)].Properties.Environment.Variables;
      assert.deepEqual(JSON.parse(env.DEFAULT_QUOTAS), { gpus: 8, jobs: 20 });
      assert.equal(env.AGENT_TIMEOUT_SECONDS, '1200');
    }
  });

  it('creates the configured admin group in the Cognito pool and tells the API its name', () => {
    template.hasResourceProperties('AWS::Cognito::UserPoolGroup', { GroupName: 'flare-admins' });
    template.resourceCountIs('AWS::Cognito::UserPoolGroup', 1);
    assert.equal(
      resources[logicalId(stack, stack.api.function)].Properties.Environment.Variables.AUTH_ADMIN_GROUP,
      'flare-admins',
    );
  });

  it('runs the reconciler at the configured period, within it, and alarms per period', () => {
    template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(1 minute)' });
    assert.equal(resources[logicalId(stack, stack.reconciler.handler.function)].Properties.Timeout, 60);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'Errors',
      Period: 60,
      EvaluationPeriods: 2,
    });
  });

  it('subscribes the alarm email to the alarm topic', () => {
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'gpu-ops@example.com',
      TopicArn: { Ref: logicalId(stack, stack.alarms.topic) },
    });
  });

  it('routes each channel with one rule on the flare bus, by project and state when the channel says so', () => {
    const bus = { Ref: logicalId(stack, stack.events.bus) };
    template.hasResourceProperties('AWS::Events::Rule', {
      EventBusName: bus,
      EventPattern: {
        source: ['flare'],
        'detail-type': ['Job State Change'],
        detail: { project: ['vision'], state: ['SUCCEEDED', 'FAILED', 'EXPIRED'] },
      },
    });
    template.hasResourceProperties('AWS::Events::Rule', {
      EventBusName: bus,
      EventPattern: { source: ['flare'], 'detail-type': ['Job State Change'], detail: Match.absent() },
    });
    const onBus = Object.values(resources).filter((r) => r.Type === 'AWS::Events::Rule' && r.Properties.EventBusName);
    assert.equal(onBus.length, channels.length);
  });

  it('puts { channel, event } on the notification queue, with retries and a dead-letter queue for what cannot be delivered', () => {
    for (const { id } of channels) {
      const rule = resources[logicalId(stack, notifier.rules[id])].Properties;
      const [target] = rule.Targets;
      assert.deepEqual(target.Arn, { 'Fn::GetAtt': [logicalId(stack, notifier.queue), 'Arn'] });
      assert.deepEqual(target.DeadLetterConfig, {
        Arn: { 'Fn::GetAtt': [logicalId(stack, notifier.undeliverable.queue), 'Arn'] },
      });
      assert.equal(target.RetryPolicy.MaximumRetryAttempts, 8);
      // What EventBridge will send: the template with the whole event in place of <f1>.
      const { InputPathsMap, InputTemplate } = target.InputTransformer;
      const [[placeholder, jsonPath]] = Object.entries(InputPathsMap as Record<string, string>);
      assert.equal(jsonPath, '$');
      const message = JSON.parse(
        InputTemplate.replace(
          `<${placeholder}>`,
          JSON.stringify({ 'detail-type': 'Job State Change', detail: { jobId: 'j1' } }),
        ),
      );
      assert.deepEqual(message, { channel: id, event: { 'detail-type': 'Job State Change', detail: { jobId: 'j1' } } });
    }
  });

  it('moves a message to the dead-letter queue after 5 receives, and alarms on it', () => {
    template.hasResourceProperties('AWS::SQS::Queue', {
      RedrivePolicy: {
        deadLetterTargetArn: { 'Fn::GetAtt': [logicalId(stack, notifier.deadLetters.queue), 'Arn'] },
        maxReceiveCount: 5,
      },
      SqsManagedSseEnabled: true,
      VisibilityTimeout: 360,
    });
    for (const dlq of [notifier.deadLetters, notifier.undeliverable]) {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: 'ApproximateNumberOfMessagesVisible',
        Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [logicalId(stack, dlq.queue), 'QueueName'] } }],
        AlarmActions: [{ Ref: logicalId(stack, stack.alarms.topic) }],
      });
    }
  });

  it('consumes the queue with partial-batch failures', () => {
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [logicalId(stack, notifier.queue), 'Arn'] },
      FunctionName: { Ref: logicalId(stack, notifier.handler.function) },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
  });

  it('gives the notifier its channels (secret ARNs, not URLs) and the idempotency table, and nothing else', () => {
    const env = resources[logicalId(stack, notifier.handler.function)].Properties.Environment.Variables;
    assert.deepEqual(Object.keys(env).sort(), ['IDEMPOTENCY_TABLE', 'NODE_OPTIONS', 'NOTIFY_CHANNELS']);
    assert.deepEqual(env.IDEMPOTENCY_TABLE, { Ref: logicalId(stack, stack.tables.idempotency) });
    const secretArn = (name: string) =>
      `arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:${name}`;
    assert.deepEqual(JSON.parse(render(env.NOTIFY_CHANNELS)), [
      {
        id: 'vision-slack',
        type: 'slack',
        secretArn: secretArn('flare/vision-slack'),
        projects: ['vision'],
        states: ['SUCCEEDED', 'FAILED', 'EXPIRED'],
      },
      { id: 'ops-teams', type: 'teams', secretArn: secretArn('flare/ops-teams') },
    ]);
  });

  it('lets the notifier read exactly the configured secrets and the idempotency table, and not touch the jobs table or the bus', () => {
    const grants = grantsOf(stack, resources, notifier.handler);
    const secrets = (grants.get('secretsmanager:GetSecretValue') ?? []).map((r) => render(JSON.parse(r))).sort();
    assert.deepEqual(secrets, [
      'arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:flare/ops-teams-??????',
      'arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:flare/vision-slack-??????',
    ]);
    const tables = [...grants].filter(([a]) => a.startsWith('dynamodb:')).flatMap(([, on]) => on);
    assert.ok(tables.length > 0);
    for (const on of tables)
      assert.ok(
        on.includes(logicalId(stack, stack.tables.idempotency)) || on.includes('AWS::NoValue'),
        `dynamodb on ${on}`,
      );
    for (const key of ['jobs', 'quotas', 'pools', 'catalog'] as const) {
      assert.ok(
        !JSON.stringify(statementsOf(stack, resources, notifier.handler)).includes(logicalId(stack, stack.tables[key])),
        `notifier reaches ${key}`,
      );
    }
    for (const action of [
      'events:PutEvents',
      'states:StartExecution',
      'ec2:DescribeInstances',
      'secretsmanager:ListSecrets',
    ])
      assert.equal(grants.get(action), undefined, action);
    const queue = JSON.stringify({ 'Fn::GetAtt': [logicalId(stack, notifier.queue), 'Arn'] });
    assert.deepEqual(grants.get('sqs:ReceiveMessage'), [queue]);
    assert.deepEqual(grants.get('sqs:DeleteMessage'), [queue]);
  });

  it('reports no unacknowledged cdk-nag finding', () => {
    const report = new AwsSolutionsChecks().validateScope(app);
    assert.deepEqual(
      report.violations.map((v) => `${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`),
      [],
    );
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
