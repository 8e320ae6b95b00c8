/**
 * FlareStack with chat channels, an alarm email and tuned settings: the settings reach the
 * functions and the schedule, and each channel gets a rule on the flare bus feeding the
 * notifier's queue, with retries, dead-letter queues, alarms and least privilege.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { App } from 'aws-cdk-lib';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { FlareStack } from '../../lib/flare-stack.js';
import { grantsOf, statementsOf } from '../support/cdk-policies.js';
import { logicalId, removeStandIns, render, synthStack, type Resources } from '../support/cdk-synth.js';

after(removeStandIns);

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
    ({ app, stack, template, resources } = synthStack({
      'flare:notifications': channels,
      'flare:alarmEmail': 'gpu-ops@example.com',
      'flare:adminGroup': 'flare-admins',
      'flare:defaultQuotas': { gpus: 8, jobs: 20 },
      // As `-c key=value` passes them: strings.
      'flare:reconcilePeriodMinutes': '1',
      'flare:agentTimeoutMinutes': '20',
    }));
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
