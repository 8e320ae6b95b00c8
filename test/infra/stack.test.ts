/**
 * The synthesized FlareStack, checked where it matters: the tables match
 * schema/tables.json, the state machine is the ASL file with the tasks
 * function's ARN filled in, the Lambdas get their environment contract, the
 * launch template and IAM keep instances on a short leash, the API guards
 * everything but its public routes, bad context fails synth by key, and
 * cdk-nag's AwsSolutions pack has nothing unacknowledged.
 *
 * The default stack is synthesized once (with real esbuild bundling); the
 * variants skip bundling. CloudFormation's built-in schema validation is off
 * here because it costs ~15 s per synth and `npm run synth` runs it anyway.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { App, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { FlareStack, HANDLER_ENTRIES, type FlareStackProps } from '../../lib/flare-stack.js';
import { REPO_ROOT } from '../../lib/lambda-defaults.js';
import { DEFAULT_GPU_AMI_PARAMETER } from '../../lib/settings.js';

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
];
const ASL_PATH = path.join(REPO_ROOT, 'statemachines', 'job-lifecycle.asl.json');
const SCHEMA = JSON.parse(readFileSync(path.join(REPO_ROOT, 'schema', 'tables.json'), 'utf8')) as Record<string, any>;

type Resources = Record<string, { Type: string; Properties?: any; DependsOn?: string | string[]; DeletionPolicy?: string }>;

/**
 * Stand-ins only for files another part of the tree has not written yet.
 * NodejsFunction needs entries under the project root, so they live in the
 * git-ignored .cache/ and are removed afterwards.
 */
let scratch: string | undefined;
function standIns(): FlareStackProps {
  const props: { handlerEntries: { api?: string; tasks?: string }; workflowDefinitionPath?: string } = { handlerEntries: {} };
  const dir = () => {
    if (!scratch) {
      mkdirSync(path.join(REPO_ROOT, '.cache'), { recursive: true });
      scratch = mkdtempSync(path.join(REPO_ROOT, '.cache', 'infra-test-'));
    }
    return scratch;
  };
  for (const key of ['api', 'tasks'] as const) {
    if (existsSync(path.join(REPO_ROOT, HANDLER_ENTRIES[key]))) continue;
    const file = path.join(dir(), `${key}.ts`);
    writeFileSync(file, 'export const handler = async (event: unknown) => event;\n');
    props.handlerEntries[key] = file;
  }
  if (!existsSync(ASL_PATH)) {
    const file = path.join(dir(), 'job-lifecycle.asl.json');
    writeFileSync(
      file,
      JSON.stringify({
        StartAt: 'Admit',
        States: {
          Admit: { Type: 'Task', Resource: '${TasksFunctionArn}', Parameters: { task: 'admit', 'jobId.$': '$.jobId' }, Next: 'Run' },
          Run: {
            Type: 'Task',
            Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
            Parameters: { FunctionName: '${TasksFunctionArn}', Payload: { task: 'run', 'token.$': '$$.Task.Token' } },
            End: true,
          },
        },
      }),
    );
    props.workflowDefinitionPath = file;
  }
  return props;
}

function synth(context: Record<string, unknown> = {}, bundle = false): { app: App; stack: FlareStack; template: Template } {
  const app = new App({
    builtinCloudFormationValidation: false,
    context: bundle ? context : { 'aws:cdk:bundling-stacks': [], ...context },
  });
  const stack = new FlareStack(app, 'FlareStack', standIns());
  // As in bin/app.ts: an unacknowledged finding makes synth throw.
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack, template: Template.fromStack(stack) };
}

function construct(context: Record<string, unknown>): () => FlareStack {
  return () => new FlareStack(new App({ context: { 'aws:cdk:bundling-stacks': [], ...context } }), 'FlareStack', standIns());
}

const logicalId = (stack: FlareStack, c: IConstruct) => stack.getLogicalId(c.node.defaultChild as never);

/** Every policy statement in the template, with the policy's logical id. */
function statements(resources: Resources): { policy: string; statement: any }[] {
  return Object.entries(resources)
    .filter(([, r]) => r.Type === 'AWS::IAM::Policy')
    .flatMap(([id, r]) => (r.Properties.PolicyDocument.Statement as any[]).map((statement) => ({ policy: id, statement })));
}
const actionsOf = (statement: any): string[] => [statement.Action].flat();

after(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

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
          AttributeDefinitions: Match.arrayEquals(schema.AttributeDefinitions.map((a: unknown) => Match.objectEquals(a as Record<string, unknown>))),
          GlobalSecondaryIndexes: schema.GlobalSecondaryIndexes
            ? Match.arrayEquals(schema.GlobalSecondaryIndexes.map((g: any) => Match.objectLike({ IndexName: g.IndexName, KeySchema: g.KeySchema, Projection: g.Projection })))
            : Match.absent(),
          TimeToLiveSpecification: schema.TimeToLiveAttribute ? { AttributeName: schema.TimeToLiveAttribute, Enabled: true } : Match.absent(),
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
    it('give both handlers the whole environment contract, pointing at this stack', () => {
      const tables = stack.tables;
      for (const fn of [stack.api, stack.tasks]) {
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
        assert.deepEqual(JSON.parse(env.POOLS), { a10g: { instanceTypes: ['g5.xlarge'], memory: '14g' } });
        // The created VPC's private subnets, comma-separated.
        const subnets = env.SUBNET_IDS['Fn::Join'];
        assert.equal(subnets[0], ',');
        assert.equal(subnets[1].length, 2);
        for (const ref of subnets[1]) assert.equal(resources[ref.Ref].Type, 'AWS::EC2::Subnet');
        // Built from the machine's name, not a reference to it (no cycle).
        const arn = JSON.stringify(env.STATE_MACHINE_ARN);
        assert.match(arn, /:stateMachine:FlareStack-job-lifecycle/);
        assert.doesNotMatch(arn, /StateMachine[0-9A-F]{8}/);

        assert.equal(props.Runtime, 'nodejs22.x');
        assert.equal(props.Handler, 'index.handler');
        assert.deepEqual(props.TracingConfig, { Mode: 'Active' });
        assert.deepEqual(props.LoggingConfig.LogGroup, { Ref: logicalId(stack, fn.logGroup) });
      }
      const machineName = resources[logicalId(stack, stack.workflow.stateMachine)].Properties.StateMachineName;
      assert.equal(machineName, 'FlareStack-job-lifecycle');
    });

    it('bundle as ESM with a require shim, from local esbuild', () => {
      const code = resources[logicalId(stack, stack.tasks.function)].Properties.Code;
      assert.ok(code.S3Key, 'tasks function has a bundled asset');
      const assets = readFileSync(path.join(app.outdir, 'FlareStack.assets.json'), 'utf8');
      const asset = Object.values(JSON.parse(assets).files as Record<string, any>).find((f) => code.S3Key === f.destinations[Object.keys(f.destinations)[0]].objectKey);
      assert.ok(asset, 'the asset of the tasks function is in the manifest');
      const bundle = readFileSync(path.join(app.outdir, asset.source.path, 'index.mjs'), 'utf8');
      assert.ok(bundle.startsWith("import { createRequire as flareCreateRequire } from 'node:module';"), 'the banner opens the bundle');
    });

    it('let the state machine, and only it, reach the tasks function', () => {
      const role = resources[logicalId(stack, stack.workflow.stateMachine)].Properties.RoleArn['Fn::GetAtt'][0];
      const invokes = statements(resources).filter(({ statement }) => actionsOf(statement).includes('lambda:InvokeFunction'));
      assert.deepEqual(invokes.map(({ statement }) => statement.Resource), [{ 'Fn::GetAtt': [logicalId(stack, stack.tasks.function), 'Arn'] }]);
      const policy = invokes[0].policy;
      assert.deepEqual(resources[policy].Properties.Roles, [{ Ref: role }]);
    });

    it('let both handlers start executions, answer task tokens and publish events, on this machine and bus only', () => {
      for (const fn of [stack.api, stack.tasks]) {
        const mine = statements(resources).filter(({ policy }) => JSON.stringify(resources[policy].Properties.Roles).includes(logicalId(stack, fn.role)));
        const grants = (action: string) => mine.filter(({ statement }) => actionsOf(statement).includes(action)).map(({ statement }) => JSON.stringify(statement.Resource));
        for (const action of ['states:StartExecution', 'states:SendTaskSuccess', 'states:SendTaskFailure']) {
          const resourcesFor = grants(action);
          assert.equal(resourcesFor.length, 1, `${fn.node.id}: ${action}`);
          assert.match(resourcesFor[0], /:stateMachine:FlareStack-job-lifecycle/);
        }
        assert.deepEqual(grants('events:PutEvents'), [JSON.stringify({ 'Fn::GetAtt': [logicalId(stack, stack.events.bus), 'Arn'] })]);
      }
    });
  });

  describe('state machine', () => {
    it('is the ASL file with ${TasksFunctionArn} bound to the tasks function, and no other placeholder', () => {
      const props = resources[logicalId(stack, stack.workflow.stateMachine)].Properties;
      const asl = readFileSync(ASL_PATH, 'utf8');
      assert.equal(props.DefinitionString, asl, 'deployed inline from the file, not as an S3 asset');
      assert.deepEqual(props.DefinitionSubstitutions, { TasksFunctionArn: { 'Fn::GetAtt': [logicalId(stack, stack.tasks.function), 'Arn'] } });

      // What CloudFormation will do: replace each ${Key} with its substitution.
      const deployed = props.DefinitionString.replace(/\$\{([^}]*)\}/g, (whole: string, key: string) => (key in props.DefinitionSubstitutions ? '<TASKS_FUNCTION_ARN>' : whole));
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
        const target = task.Resource.startsWith('arn:aws:states:::lambda:invoke') ? task.Parameters?.FunctionName : task.Resource;
        assert.equal(target, '<TASKS_FUNCTION_ARN>', `task ${JSON.stringify(task).slice(0, 80)} targets the tasks function`);
      }
    });

    it('is a STANDARD machine with ALL-level logging and X-Ray tracing', () => {
      template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
        StateMachineType: 'STANDARD',
        TracingConfiguration: { Enabled: true },
        LoggingConfiguration: Match.objectLike({
          Level: 'ALL',
          Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: { 'Fn::GetAtt': [logicalId(stack, stack.workflow.logGroup), 'Arn'] } } }],
        }),
      });
    });

    it('leaves no dependency cycle between the machine, the functions and their policies', () => {
      const edges = new Map<string, Set<string>>();
      const refs = (value: unknown, out: Set<string>) => {
        if (Array.isArray(value)) value.forEach((v) => refs(v, out));
        else if (value && typeof value === 'object') {
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
      assert.ok(Object.values(parameters).some((p) => p.Default === DEFAULT_GPU_AMI_PARAMETER && String(p.Type).includes('AWS::EC2::Image::Id')));
    });

    it('gives instances SSM core and their log group only', () => {
      const role = resources[logicalId(stack, stack.compute.instanceRole)].Properties;
      assert.equal(role.ManagedPolicyArns.length, 1);
      assert.match(JSON.stringify(role.ManagedPolicyArns[0]), /:iam::aws:policy\/AmazonSSMManagedInstanceCore/);
      const own = statements(resources).filter(({ policy }) => JSON.stringify(resources[policy].Properties.Roles).includes(logicalId(stack, stack.compute.instanceRole)));
      const writes = own.filter(({ statement }) => actionsOf(statement).some((a) => a === 'logs:PutLogEvents'));
      assert.deepEqual(writes.map(({ statement }) => statement.Resource), [{ 'Fn::GetAtt': [logicalId(stack, stack.compute.jobLogGroup), 'Arn'] }]);
      assert.ok(own.every(({ statement }) => actionsOf(statement).every((a) => a.startsWith('logs:'))), 'nothing but logs besides SSM core');
    });

    it('lets the tasks function create only managed-by=flare instances from the Flare template', () => {
      const launchTemplateArn = Match.objectLike({ 'Fn::Join': ['', Match.arrayWith([':launch-template/', { Ref: logicalId(stack, stack.compute.launchTemplate) }])] });
      template.hasResourceProperties('AWS::IAM::Policy', {
        Roles: [{ Ref: logicalId(stack, stack.tasks.role) }],
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Action: 'ec2:RunInstances',
              Resource: Match.objectLike({ 'Fn::Join': ['', Match.arrayWith([':instance/*'])] }),
              Condition: { StringEquals: { 'aws:RequestTag/managed-by': 'flare' }, ArnEquals: { 'ec2:LaunchTemplate': launchTemplateArn } },
            }),
            Match.objectLike({ Action: 'ec2:RunInstances', Condition: { ArnEquals: { 'ec2:LaunchTemplate': launchTemplateArn } } }),
            Match.objectLike({ Action: 'ec2:CreateTags', Condition: { StringEquals: { 'ec2:CreateAction': 'RunInstances' } } }),
            Match.objectLike({ Action: 'ec2:TerminateInstances', Condition: { StringEquals: { 'aws:ResourceTag/managed-by': 'flare' } } }),
            Match.objectLike({ Action: 'ssm:SendCommand', Condition: { StringEquals: { 'aws:ResourceTag/managed-by': 'flare' } } }),
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
        'ssm:SendCommand': (s) => s.Condition?.StringEquals?.['aws:ResourceTag/managed-by'] === 'flare' || /document\/AWS-RunShellScript/.test(JSON.stringify(s.Resource)),
      };
      const found = new Set<string>();
      for (const { policy, statement } of statements(resources)) {
        for (const action of actionsOf(statement)) {
          assert.ok(!action.includes('*'), `${policy} grants wildcard action ${action}`);
          if (!(action in guarded)) continue;
          found.add(action);
          assert.ok(guarded[action](statement), `${policy}: ${action} without its condition: ${JSON.stringify(statement)}`);
          assert.notEqual(statement.Resource, '*', `${policy}: ${action} on *`);
        }
      }
      assert.deepEqual([...found].sort(), Object.keys(guarded).sort());
      const instanceRunStatement = statements(resources).find(({ statement }) => actionsOf(statement).includes('ec2:RunInstances') && /:instance\/\*/.test(JSON.stringify(statement.Resource)));
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
      assert.deepEqual(authorizer.Properties.JwtConfiguration.Audience, [{ Ref: logicalId(stack, stack.httpApi.userPoolClient!) }]);

      template.hasResourceProperties('AWS::ApiGatewayV2::Route', { RouteKey: 'ANY /v1/{proxy+}', AuthorizationType: 'JWT', AuthorizerId: { Ref: authorizerId } });
      for (const key of ['GET /', 'GET /v1', 'GET /v1/health']) {
        template.hasResourceProperties('AWS::ApiGatewayV2::Route', { RouteKey: key, AuthorizationType: 'NONE', AuthorizerId: Match.absent() });
      }
      const routes = Object.values(resources).filter((r) => r.Type === 'AWS::ApiGatewayV2::Route');
      assert.deepEqual(routes.map((r) => r.Properties.RouteKey).sort(), ['ANY /v1/{proxy+}', 'GET /', 'GET /v1', 'GET /v1/health']);
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
        AccessLogSettings: { DestinationArn: { 'Fn::GetAtt': [logicalId(stack, stack.httpApi.accessLogs), 'Arn'] }, Format: Match.stringLikeRegexp('\\$context\\.requestId') },
        DefaultRouteSettings: { ThrottlingRateLimit: 50, ThrottlingBurstLimit: 100 },
      });
    });
  });

  it('publishes to an EventBridge bus named flare', () => {
    template.hasResourceProperties('AWS::Events::EventBus', { Name: 'flare' });
  });

  it('creates a VPC whose job subnets are private, with a flow log', () => {
    template.resourceCountIs('AWS::EC2::VPC', 1);
    template.hasResourceProperties('AWS::EC2::FlowLog', { TrafficType: 'REJECT' });
    const subnets = Object.values(resources).filter((r) => r.Type === 'AWS::EC2::Subnet');
    assert.ok(subnets.every((s) => s.Properties.MapPublicIpOnLaunch === false), 'no subnet maps public IPs');
  });

  describe('cdk-nag AwsSolutions', () => {
    it('reports no unacknowledged finding', () => {
      const report = new AwsSolutionsChecks().validateScope(app);
      const findings = report.violations.map((v) => `${v.severity} ${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`);
      assert.deepEqual(findings, []);
    });

    it('acknowledges only named AwsSolutions rules, each with a reason', () => {
      const acknowledgements: [string, string][] = [];
      const walk = (c: IConstruct) => {
        for (const entry of c.node.metadata) {
          if (entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY) acknowledgements.push(...Object.entries(entry.data as Record<string, string>));
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
      assert.deepEqual([...rules].sort(), ['AwsSolutions-APIG4', 'AwsSolutions-COG8', 'AwsSolutions-IAM4', 'AwsSolutions-IAM5', 'AwsSolutions-L1']);
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
      'flare:gpuAmiParameter': '/my/gpu/ami',
      'flare:pools': JSON.stringify([
        { name: 'a100', instanceType: 'p4d.24xlarge', gpusPerInstance: 8, maxGpus: 16, containerMemory: '1000g' },
        { name: 'l4', instanceType: 'g6.xlarge', fallbackInstanceTypes: ['g6.2xlarge'], gpusPerInstance: 1, maxGpus: 8 },
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
          Match.objectLike({ Action: 'ec2:RunInstances', Resource: Match.arrayWith([Match.objectLike({ 'Fn::Join': ['', Match.arrayWith([':subnet/subnet-0123456789abcdef1'])] })]) }),
        ]),
      },
    });
  });

  it('hands the pools to the Lambdas as POOLS', () => {
    const env = resources[logicalId(stack, stack.api.function)].Properties.Environment.Variables;
    assert.deepEqual(JSON.parse(env.POOLS), {
      a100: { instanceTypes: ['p4d.24xlarge'], memory: '1000g' },
      l4: { instanceTypes: ['g6.xlarge', 'g6.2xlarge'] },
    });
  });

  it('uses the configured AMI parameter', () => {
    const parameters = template.toJSON().Parameters as Record<string, any>;
    assert.ok(Object.values(parameters).some((p) => p.Default === '/my/gpu/ami'));
  });

  it('trusts the external issuer and audience, and creates no user pool', () => {
    template.resourceCountIs('AWS::Cognito::UserPool', 0);
    template.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
      AuthorizerType: 'JWT',
      JwtConfiguration: { Issuer: issuer, Audience: ['flare-cli'] },
    });
    template.hasResourceProperties('AWS::ApiGatewayV2::Route', { RouteKey: 'ANY /v1/{proxy+}', AuthorizationType: 'JWT' });
    template.hasResourceProperties('AWS::ApiGatewayV2::Route', { RouteKey: 'GET /v1/health', AuthorizationType: 'NONE' });
  });
});

describe('FlareStack context validation', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['a VPC without subnets', { 'flare:vpcId': 'vpc-0123456789abcdef0' }, /^context flare:subnetIds: required/],
    ['subnets without a VPC', { 'flare:subnetIds': 'subnet-0123456789abcdef0' }, /^context flare:vpcId: required/],
    ['a malformed subnet id', { 'flare:vpcId': 'vpc-0123456789abcdef0', 'flare:subnetIds': ['subnet-0123456789abcdef0', 'sn-1'] }, /^context flare:subnetIds\[1\]:/],
    ['pools that are not JSON', { 'flare:pools': '[{name:' }, /^context flare:pools: is not valid JSON/],
    ['a pool with fractional GPUs', { 'flare:pools': [{ name: 'a10g', instanceType: 'g5.xlarge', gpusPerInstance: 1.5, maxGpus: 4 }] }, /^context flare:pools\[0\]\.gpusPerInstance: must be a positive integer/],
    ['a pool capped below one instance', { 'flare:pools': [{ name: 'a100', instanceType: 'p4d.24xlarge', gpusPerInstance: 8, maxGpus: 4 }] }, /^context flare:pools\[0\]\.maxGpus:/],
    ['a pool with an unknown field', { 'flare:pools': [{ name: 'a10g', instanceType: 'g5.xlarge', gpusPerInstance: 1, maxGpus: 4, gpus: 4 }] }, /^context flare:pools\[0\]\.gpus: unknown field/],
    ['a bad fallback instance type', { 'flare:pools': [{ name: 'a10g', instanceType: 'g5.xlarge', fallbackInstanceTypes: ['g5 2xlarge'], gpusPerInstance: 1, maxGpus: 4 }] }, /^context flare:pools\[0\]\.fallbackInstanceTypes\[0\]:/],
    ['two pools with one name', { 'flare:pools': [{ name: 'a', instanceType: 'g5.xlarge', gpusPerInstance: 1, maxGpus: 1 }, { name: 'a', instanceType: 'g6.xlarge', gpusPerInstance: 1, maxGpus: 1 }] }, /^context flare:pools\[1\]\.name: pool 'a' is defined twice/],
    ['an AMI parameter that is not a path', { 'flare:gpuAmiParameter': 'ami-0123' }, /^context flare:gpuAmiParameter:/],
    ['an issuer without an audience', { 'flare:authIssuer': 'https://login.example.com' }, /^context flare:authAudience: required/],
    ['a plain-http issuer', { 'flare:authIssuer': 'http://login.example.com', 'flare:authAudience': 'flare' }, /^context flare:authIssuer: must be the issuer's https:\/\/ URL/],
    ['a misspelt key', { 'flare:pool': [] }, /^context flare:pool: unknown key/],
    ['endpoints for a VPC the stack does not own', { 'flare:vpcId': 'vpc-0123456789abcdef0', 'flare:subnetIds': 'subnet-0123456789abcdef0', 'flare:vpcEndpoints': true }, /^context flare:vpcEndpoints:/],
  ];
  for (const [what, context, message] of cases) {
    it(`fails synth on ${what}, naming the key`, () => {
      assert.throws(construct(context), { name: 'InvalidSetting', message });
    });
  }
});
