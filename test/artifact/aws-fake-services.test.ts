/**
 * The local AWS fake's Step Functions API, EventBridge, Secrets Manager and CloudWatch Logs, and DynamoDB
 * forwarded to DynamoDB Local, spoken to by the real SDK v3 clients configured only through the
 * environment (test/artifact/support/aws-fake-clients.ts).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  GetLogEventsCommand,
  ResourceNotFoundException as LogsResourceNotFound,
} from '@aws-sdk/client-cloudwatch-logs';
import {
  ConditionalCheckFailedException,
  CreateTableCommand,
  GetItemCommand,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import { PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { GetSecretValueCommand, ResourceNotFoundException as SecretNotFound } from '@aws-sdk/client-secrets-manager';
import { ExecutionAlreadyExists, SendTaskSuccessCommand, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { ARTIFACT_ACCOUNT, ARTIFACT_REGION } from './support/types.js';
import { clients, fake, useAwsFake } from './support/aws-fake-clients.js';
import { PRINCIPAL, rejection } from './support/aws-fake-clients.js';

useAwsFake();

describe('Step Functions API', () => {
  test('without a handler the call fails at once, naming what is missing', async () => {
    fake.onStates = undefined;
    const error = await rejection(
      clients.sfn.send(
        new StartExecutionCommand({
          stateMachineArn: 'arn:aws:states:us-east-1:123456789012:stateMachine:Jobs',
          name: 'x',
        }),
      ),
    );
    assert.match(error.message, /states:StartExecution.*fake\.onStates/);
    assert.equal(error.$metadata?.attempts, 1);
  });

  test("the harness's handler answers, and an error it throws reaches the SDK as its typed exception", async () => {
    const machine = `arn:aws:states:${ARTIFACT_REGION}:${ARTIFACT_ACCOUNT}:stateMachine:Jobs`;
    const seen: Array<[string, Record<string, unknown>]> = [];
    fake.onStates = async (action, params) => {
      seen.push([action, params]);
      if (action === 'StartExecution' && params.name === 'taken')
        throw Object.assign(new Error('Execution Already Exists'), { name: 'ExecutionAlreadyExists' });
      if (action === 'StartExecution')
        return {
          executionArn: `arn:aws:states:us-east-1:123456789012:execution:Jobs:${String(params.name)}`,
          startDate: new Date('2026-01-01T00:00:00Z'),
        };
      return {};
    };
    fake.taskTokenArn = (token) => (token === 'token-1' ? machine : undefined);
    try {
      const started = await clients.sfn.send(
        new StartExecutionCommand({ stateMachineArn: machine, name: 'job-e', input: '{"jobId":"job-e"}' }),
      );
      assert.equal(started.executionArn, 'arn:aws:states:us-east-1:123456789012:execution:Jobs:job-e');
      assert.deepEqual(started.startDate, new Date('2026-01-01T00:00:00Z'));
      const taken = await rejection(
        clients.sfn.send(new StartExecutionCommand({ stateMachineArn: machine, name: 'taken' })),
      );
      assert.ok(taken instanceof ExecutionAlreadyExists, `typed ExecutionAlreadyExists, got ${taken.name}`);
      await clients.sfn.send(new SendTaskSuccessCommand({ taskToken: 'token-1', output: '{}' }));

      assert.deepEqual(seen[0], [
        'StartExecution',
        { stateMachineArn: machine, name: 'job-e', input: '{"jobId":"job-e"}' },
      ]);
      const calls = fake.calls({ service: 'states' }).slice(-3);
      assert.deepEqual(
        calls.map((c) => [c.action, c.resources, c.error]),
        [
          ['StartExecution', [machine], undefined],
          ['StartExecution', [machine], 'ExecutionAlreadyExists'],
          ['SendTaskSuccess', [machine], undefined],
        ],
      );
    } finally {
      fake.onStates = undefined;
      fake.taskTokenArn = undefined;
    }
  });
});

describe('EventBridge', () => {
  test('PutEvents keeps each entry, Detail parsed, and refuses a malformed one by entry', async () => {
    const output = await clients.events.send(
      new PutEventsCommand({
        Entries: [
          {
            EventBusName: 'flare-Stack',
            Source: 'flare',
            DetailType: 'Job State Change',
            Detail: JSON.stringify({ jobId: 'job-f', state: 'RUNNING' }),
            Time: new Date('2026-01-01T00:00:01Z'),
          },
          { EventBusName: 'flare-Stack', Source: 'flare', DetailType: 'Job State Change', Detail: 'not json' },
        ],
      }),
    );
    assert.equal(output.FailedEntryCount, 1);
    assert.match(output.Entries![0].EventId!, /^[0-9a-f-]{36}$/);
    assert.equal(output.Entries![1].ErrorCode, 'MalformedDetail');
    const [event] = fake.events({ busName: 'flare-Stack' });
    assert.deepEqual(
      { ...event, EventId: undefined },
      {
        EventId: undefined,
        EventBusName: 'flare-Stack',
        Source: 'flare',
        DetailType: 'Job State Change',
        Detail: { jobId: 'job-f', state: 'RUNNING' },
        Time: new Date('2026-01-01T00:00:01Z'),
        Resources: [],
        principal: PRINCIPAL,
        region: ARTIFACT_REGION,
      },
    );
    assert.deepEqual(fake.calls({ service: 'events' }).at(-1)!.resources, [
      `arn:aws:events:${ARTIFACT_REGION}:${ARTIFACT_ACCOUNT}:event-bus/flare-Stack`,
    ]);
  });
});

describe('Secrets Manager', () => {
  test('GetSecretValue answers a secret the test put, by ARN or name; any other is ResourceNotFoundException', async () => {
    const arn = `arn:aws:secretsmanager:${ARTIFACT_REGION}:${ARTIFACT_ACCOUNT}:secret:flare/webhook-AbC123`;
    fake.putSecret(arn, '{"url":"https://hooks.example.com/x"}');
    const byArn = await clients.secrets.send(new GetSecretValueCommand({ SecretId: arn }));
    assert.deepEqual(
      [byArn.ARN, byArn.Name, byArn.SecretString],
      [arn, 'flare/webhook', '{"url":"https://hooks.example.com/x"}'],
    );
    const byName = await clients.secrets.send(new GetSecretValueCommand({ SecretId: 'flare/webhook' }));
    assert.equal(byName.ARN, arn);
    const missing = await rejection(clients.secrets.send(new GetSecretValueCommand({ SecretId: 'flare/other' })));
    assert.ok(missing instanceof SecretNotFound, `typed ResourceNotFoundException, got ${missing.name}`);
    assert.deepEqual(
      fake.calls({ service: 'secretsmanager' }).map((c) => [c.resources, c.error]),
      [
        [[arn], undefined],
        [[arn], undefined],
        [
          [`arn:aws:secretsmanager:${ARTIFACT_REGION}:${ARTIFACT_ACCOUNT}:secret:flare/other`],
          'ResourceNotFoundException',
        ],
      ],
    );
  });
});

describe('CloudWatch Logs', () => {
  test('GetLogEvents pages a stream backwards and forwards with tokens that stop at its ends', async () => {
    fake.putLogLines(
      '/flare/jobs',
      'job-h',
      ['one', 'two', 'three', 'four', 'five'].map((message, i) => ({ message, timestamp: 1_000 + i })),
    );
    const read = (input: Record<string, unknown>) =>
      clients.logs.send(new GetLogEventsCommand({ logGroupName: '/flare/jobs', logStreamName: 'job-h', ...input }));
    const messages = (page: { events?: Array<{ message?: string }> }) => page.events!.map((e) => e.message);

    const tail = await read({ startFromHead: false, limit: 2 });
    assert.deepEqual(messages(tail), ['four', 'five']);
    assert.equal(tail.events![0].timestamp, 1_003);
    const older = await read({ startFromHead: false, limit: 2, nextToken: tail.nextBackwardToken });
    assert.deepEqual(messages(older), ['two', 'three']);
    const oldest = await read({ startFromHead: false, limit: 2, nextToken: older.nextBackwardToken });
    assert.deepEqual(messages(oldest), ['one']);
    const start = await read({ startFromHead: false, limit: 2, nextToken: oldest.nextBackwardToken });
    assert.deepEqual([messages(start), start.nextBackwardToken], [[], oldest.nextBackwardToken]);

    const end = await read({ startFromHead: true, nextToken: tail.nextForwardToken });
    assert.deepEqual([messages(end), end.nextForwardToken], [[], tail.nextForwardToken]);
    fake.putLogLines('/flare/jobs', 'job-h', [{ message: 'six', timestamp: 1_005 }]);
    const more = await read({ startFromHead: true, nextToken: tail.nextForwardToken });
    assert.deepEqual(messages(more), ['six']);

    const bad = await rejection(read({ startFromHead: true, nextToken: 'not-a-token' }));
    assert.equal(bad.name, 'InvalidParameterException');
    const noStream = await rejection(
      clients.logs.send(new GetLogEventsCommand({ logGroupName: '/flare/jobs', logStreamName: 'job-none' })),
    );
    assert.ok(noStream instanceof LogsResourceNotFound, `typed ResourceNotFoundException, got ${noStream.name}`);
    assert.deepEqual(fake.calls({ service: 'logs' })[0].resources, [
      `arn:aws:logs:${ARTIFACT_REGION}:${ARTIFACT_ACCOUNT}:log-group:/flare/jobs:log-stream:job-h`,
    ]);
  });
});

describe('DynamoDB', () => {
  test('calls pass through to DynamoDB Local unchanged and are recorded with their table ARNs', async () => {
    const table = 'fake-proxy-jobs';
    await clients.dynamodb.send(
      new CreateTableCommand({
        TableName: table,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      }),
    );
    await clients.dynamodb.send(
      new PutItemCommand({ TableName: table, Item: { pk: { S: 'job-i' }, state: { S: 'QUEUED' } } }),
    );
    const read = await clients.dynamodb.send(new GetItemCommand({ TableName: table, Key: { pk: { S: 'job-i' } } }));
    assert.deepEqual(read.Item, { pk: { S: 'job-i' }, state: { S: 'QUEUED' } });
    const conflict = await rejection(
      clients.dynamodb.send(
        new PutItemCommand({
          TableName: table,
          Item: { pk: { S: 'job-i' } },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      ),
    );
    assert.ok(
      conflict instanceof ConditionalCheckFailedException,
      `typed ConditionalCheckFailedException, got ${conflict.name}`,
    );

    const tableArn = `arn:aws:dynamodb:${ARTIFACT_REGION}:${ARTIFACT_ACCOUNT}:table/${table}`;
    assert.deepEqual(
      fake.calls({ service: 'dynamodb' }).map((c) => [c.action, c.resources, c.principal, c.error]),
      [
        ['CreateTable', [tableArn], PRINCIPAL, undefined],
        ['PutItem', [tableArn], PRINCIPAL, undefined],
        ['GetItem', [tableArn], PRINCIPAL, undefined],
        ['PutItem', [tableArn], PRINCIPAL, 'ConditionalCheckFailedException'],
      ],
    );
    assert.equal(fake.calls({ service: 'dynamodb', action: 'GetItem' })[0].params.TableName, table);
  });
});
