/**
 * The default FlareStack's data and entry points: the tables match schema/tables.json, the
 * Lambdas get their environment contract and are bundled as ESM, the API guards everything
 * but its public routes, the bus and the VPC, the pools reach the pools table, and cdk-nag's
 * AwsSolutions pack has nothing unacknowledged. The one synth here bundles with real esbuild
 * (the other stack-*.test.ts files skip bundling); CloudFormation's built-in schema validation
 * is off because it costs ~15 s per synth and `npm run synth` runs it anyway.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Validations, type App } from 'aws-cdk-lib';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { apiRoutes } from '../../lambdas/handlers/http/api.js';
import type { FlareStack } from '../../lib/flare-stack.js';
import { PUBLIC_ROUTES } from '../../lib/http-api.js';
import { REPO_ROOT } from '../../lib/lambda-defaults.js';
import { BASELINE_ACTIONS, actionsOf, grantsOf, statements } from '../support/cdk-policies.js';
import { logicalId, removeStandIns, render, synthStack, type Resources } from '../support/cdk-synth.js';

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

after(removeStandIns);

describe('FlareStack (defaults: created VPC, Cognito)', () => {
  let app: App;
  let stack: FlareStack;
  let template: Template;
  let resources: Resources;

  before(() => {
    ({ app, stack, template, resources } = synthStack({}, { bundle: true }));
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

  describe('HTTP API', () => {
    it('guards /v1/{proxy+} with the Cognito JWT authorizer and leaves /, /v1 and /v1/health public', () => {
      const authorizers = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::ApiGatewayV2::Authorizer');
      assert.equal(authorizers.length, 1);
      const [authorizerId, authorizer] = authorizers[0];
      assert.equal(authorizer.Properties.AuthorizerType, 'JWT');
      assert.match(JSON.stringify(authorizer.Properties.JwtConfiguration.Issuer), /https:\/\/cognito-idp\./);
      // The CLI's client and the dashboard's (test/infra/web-ui.test.ts).
      assert.deepEqual(authorizer.Properties.JwtConfiguration.Audience, [
        { Ref: logicalId(stack, stack.httpApi.userPoolClient!) },
        { Ref: logicalId(stack, stack.httpApi.webClient!) },
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
        'GET /ui',
        'GET /ui/{proxy+}',
        'GET /v1',
        'GET /v1/health',
        'GET /v1/openapi.json',
        'HEAD /ui',
        'HEAD /ui/{proxy+}',
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
        'AwsSolutions-S1',
        'AwsSolutions-SQS3',
      ]);
    });
  });
});
