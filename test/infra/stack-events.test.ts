/**
 * The default FlareStack's events and their safety nets: completion events from SSM and EC2,
 * the reconciler's schedule and rights, the jobs table's stream feeding the Job State Change
 * outbox, no notifier without a channel, and the queues' encryption and every alarm.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import type { FlareStack } from '../../lib/flare-stack.js';
import { BASELINE_ACTIONS, grantsOf } from '../support/cdk-policies.js';
import { logicalId, removeStandIns, synthStack, type Resources } from '../support/cdk-synth.js';

after(removeStandIns);

describe('FlareStack (defaults: created VPC, Cognito)', () => {
  let stack: FlareStack;
  let template: Template;
  let resources: Resources;

  before(() => {
    ({ stack, template, resources } = synthStack({}));
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
});
