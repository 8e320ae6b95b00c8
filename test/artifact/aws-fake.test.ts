/**
 * The local AWS fake, spoken to by the real SDK v3 clients configured only
 * through the environment (AWS_ENDPOINT_URL_* and fake credentials), as the
 * bundled handlers will be: the parsed outputs, the recorded calls, EC2's
 * ClientToken idempotency, injected faults as the SDK's typed exceptions, a
 * vanished instance, an unmodelled action, and DynamoDB forwarded to DynamoDB Local.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  CloudWatchLogsClient,
  GetLogEventsCommand,
  ResourceNotFoundException as LogsResourceNotFound,
} from '@aws-sdk/client-cloudwatch-logs';
import {
  ConditionalCheckFailedException,
  CreateTableCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import {
  DescribeInstancesCommand,
  DescribeVpcsCommand,
  EC2Client,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type RunInstancesCommandInput,
} from '@aws-sdk/client-ec2';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import {
  GetSecretValueCommand,
  ResourceNotFoundException as SecretNotFound,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { ExecutionAlreadyExists, SendTaskSuccessCommand, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  GetParameterCommand,
  InvalidInstanceId,
  ListCommandsCommand,
  SendCommandCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import { startDynamoDbLocal, type DynamoDbLocal } from '../../lambdas/local/dynamodb-local.js';
import { startAwsFake, type AwsFake } from './support/aws-fake.js';
import { ARTIFACT_ACCOUNT, ARTIFACT_REGION } from './support/types.js';

const PRINCIPAL = 'TasksFunctionServiceRole';
const ARN_PREFIX = `arn:aws:ec2:${ARTIFACT_REGION}:${ARTIFACT_ACCOUNT}`;

let dynamo: DynamoDbLocal;
let fake: AwsFake;
let clients: {
  ec2: EC2Client;
  ssm: SSMClient;
  sfn: SFNClient;
  events: EventBridgeClient;
  secrets: SecretsManagerClient;
  logs: CloudWatchLogsClient;
  dynamodb: DynamoDBClient;
};
const savedEnv = { ...process.env };

before(async () => {
  dynamo = await startDynamoDbLocal({ inMemory: true });
  fake = await startAwsFake({ dynamodbUpstream: dynamo.endpoint });
  for (const name of Object.keys(process.env)) if (name.startsWith('AWS_')) delete process.env[name];
  // Nothing but the environment points the clients here, as in the bundled handlers.
  Object.assign(process.env, fake.endpoints(), {
    AWS_ACCESS_KEY_ID: PRINCIPAL,
    AWS_SECRET_ACCESS_KEY: 'fake-secret',
    AWS_REGION: ARTIFACT_REGION,
    AWS_EC2_METADATA_DISABLED: 'true',
  });
  clients = {
    ec2: new EC2Client({}),
    ssm: new SSMClient({}),
    sfn: new SFNClient({}),
    events: new EventBridgeClient({}),
    secrets: new SecretsManagerClient({}),
    logs: new CloudWatchLogsClient({}),
    dynamodb: new DynamoDBClient({}),
  };
});

after(async () => {
  for (const client of Object.values(clients ?? {})) client.destroy();
  await fake?.close();
  await dynamo?.stop();
  process.env = savedEnv;
});

function launchInput(job: string, overrides: Partial<RunInstancesCommandInput> = {}): RunInstancesCommandInput {
  const tags = [
    { Key: 'managed-by', Value: 'flare' },
    { Key: 'flare:job', Value: job },
  ];
  return {
    LaunchTemplate: { LaunchTemplateId: 'lt-0123456789abcdef0' },
    InstanceType: 'g5.xlarge',
    MinCount: 2,
    MaxCount: 2,
    SubnetId: 'subnet-0aaa',
    ClientToken: `${job}.0.0`,
    TagSpecifications: [
      { ResourceType: 'instance', Tags: tags },
      { ResourceType: 'volume', Tags: tags },
    ],
    ...overrides,
  };
}

async function launched(job: string): Promise<string[]> {
  const output = await clients.ec2.send(new RunInstancesCommand(launchInput(job, { MinCount: 1, MaxCount: 1 })));
  return output.Instances!.map((i) => i.InstanceId!);
}

async function rejection(
  promise: Promise<unknown>,
): Promise<Error & { $metadata?: { httpStatusCode?: number; attempts?: number } }> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  assert.fail('expected the call to fail');
}

describe('EC2', () => {
  test('RunInstances launches tagged instances, and the same ClientToken returns them again', async () => {
    const first = await clients.ec2.send(new RunInstancesCommand(launchInput('job-a')));
    const ids = first.Instances!.map((i) => i.InstanceId!);
    assert.equal(ids.length, 2);
    for (const id of ids) assert.match(id, /^i-[0-9a-f]{17}$/);
    const [one] = first.Instances!;
    assert.equal(one.State?.Name, 'pending');
    assert.equal(one.InstanceType, 'g5.xlarge');
    assert.equal(one.SubnetId, 'subnet-0aaa');
    assert.ok(one.LaunchTime instanceof Date);
    assert.deepEqual(one.Tags, [
      { Key: 'managed-by', Value: 'flare' },
      { Key: 'flare:job', Value: 'job-a' },
    ]);

    const again = await clients.ec2.send(new RunInstancesCommand(launchInput('job-a')));
    assert.deepEqual(
      again.Instances!.map((i) => i.InstanceId),
      ids,
    );
    assert.equal(again.ReservationId, first.ReservationId);
    assert.equal(
      fake.instances().filter((i) => i.tags['flare:job'] === 'job-a').length,
      2,
      'the retried token launched nothing new',
    );

    const mismatch = await rejection(
      clients.ec2.send(new RunInstancesCommand(launchInput('job-a', { InstanceType: 'g5.2xlarge' }))),
    );
    assert.equal(mismatch.name, 'IdempotentParameterMismatch');

    const [call] = fake.calls({ service: 'ec2', action: 'RunInstances' });
    assert.equal(call.principal, PRINCIPAL);
    assert.equal(call.region, ARTIFACT_REGION);
    assert.equal(call.error, undefined);
    assert.deepEqual(call.resources, [
      `${ARN_PREFIX}:instance/*`,
      `${ARN_PREFIX}:launch-template/lt-0123456789abcdef0`,
      `${ARN_PREFIX}:subnet/subnet-0aaa`,
    ]);
    const params = call.params as {
      MinCount: string;
      ClientToken: string;
      TagSpecification: Array<{ ResourceType: string; Tag: Array<{ Key: string; Value: string }> }>;
    };
    assert.equal(params.MinCount, '2');
    assert.equal(params.ClientToken, 'job-a.0.0');
    assert.deepEqual(params.TagSpecification[0], {
      ResourceType: 'instance',
      Tag: [
        { Key: 'managed-by', Value: 'flare' },
        { Key: 'flare:job', Value: 'job-a' },
      ],
    });
    assert.equal(fake.calls({ error: 'IdempotentParameterMismatch' }).length, 1);
    assert.deepEqual(fake.tagsOf(`${ARN_PREFIX}:instance/${ids[0]}`), { 'managed-by': 'flare', 'flare:job': 'job-a' });
  });

  test('DescribeInstances filters by tag and state; TerminateInstances moves instances to shutting-down', async () => {
    const [id] = await launched('job-b');
    fake.setInstanceState(id, 'running');
    const live = {
      Filters: [
        { Name: 'tag:flare:job', Values: ['job-b'] },
        { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
      ],
    };
    const before = await clients.ec2.send(new DescribeInstancesCommand(live));
    assert.deepEqual(
      before.Reservations!.flatMap((r) => r.Instances!.map((i) => [i.InstanceId, i.State?.Name])),
      [[id, 'running']],
    );

    const terminated = await clients.ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    assert.deepEqual(terminated.TerminatingInstances, [
      {
        InstanceId: id,
        CurrentState: { Code: 32, Name: 'shutting-down' },
        PreviousState: { Code: 16, Name: 'running' },
      },
    ]);
    const afterwards = await clients.ec2.send(new DescribeInstancesCommand(live));
    assert.deepEqual(afterwards.Reservations, []);
    const [call] = fake.calls({ action: 'TerminateInstances' });
    assert.deepEqual(call.resources, [`${ARN_PREFIX}:instance/${id}`]);
    assert.deepEqual(call.params, { InstanceId: [id] });
  });

  test('a vanished instance is InvalidInstanceID.NotFound for every call naming it', async () => {
    const [id] = await launched('job-c');
    const seen: string[] = [];
    fake.onInstanceStateChange = (instance) => seen.push(`${instance.instanceId}:${instance.state}`);
    fake.vanish(id);
    fake.onInstanceStateChange = undefined;
    assert.deepEqual(seen, [`${id}:terminated`], 'EC2 announces the end of an instance before it forgets it');
    assert.equal(fake.instance(id), undefined);
    assert.deepEqual(
      fake
        .instances({ vanished: true })
        .filter((i) => i.instanceId === id)
        .map((i) => i.state),
      ['terminated'],
    );
    const described = await rejection(clients.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] })));
    assert.equal(described.name, 'InvalidInstanceID.NotFound');
    assert.match(described.message, new RegExp(id));
    assert.equal(described.$metadata?.httpStatusCode, 400);
    const terminate = await rejection(clients.ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] })));
    assert.equal(terminate.name, 'InvalidInstanceID.NotFound');
    const byTag = await clients.ec2.send(
      new DescribeInstancesCommand({ Filters: [{ Name: 'tag:flare:job', Values: ['job-c'] }] }),
    );
    assert.deepEqual(byTag.Reservations, []);
    assert.deepEqual(
      fake.tagsOf(`${ARN_PREFIX}:instance/${id}`)?.['flare:job'],
      'job-c',
      'a recorded call on it can still be checked against its tags',
    );
  });

  test('an action the fake does not model fails at once, naming it, and is recorded', async () => {
    const error = await rejection(clients.ec2.send(new DescribeVpcsCommand({})));
    assert.equal(error.name, 'InvalidAction');
    assert.match(error.message, /ec2:DescribeVpcs/);
    assert.equal(error.$metadata?.attempts, 1);
    const ssmError = await rejection(clients.ssm.send(new GetParameterCommand({ Name: '/x' })));
    assert.equal(ssmError.name, 'UnknownOperationException');
    assert.match(ssmError.message, /ssm:GetParameter/);
    assert.deepEqual(
      fake
        .calls({ error: true })
        .filter((c) => c.action === 'DescribeVpcs' || c.action === 'GetParameter')
        .map((c) => `${c.service}:${c.action}:${c.error}`),
      ['ec2:DescribeVpcs:InvalidAction', 'ssm:GetParameter:UnknownOperationException'],
    );
  });
});

describe('SSM', () => {
  test('an agent comes online when the test says so; SendCommand reaches only online instances', async () => {
    const [id] = await launched('job-d');
    const query = new DescribeInstanceInformationCommand({
      Filters: [{ Key: 'InstanceIds', Values: [id] }],
      MaxResults: 50,
    });
    assert.deepEqual((await clients.ssm.send(query)).InstanceInformationList, []);
    const offline = await rejection(
      clients.ssm.send(
        new SendCommandCommand({
          DocumentName: 'AWS-RunShellScript',
          InstanceIds: [id],
          Parameters: { commands: ['true'] },
        }),
      ),
    );
    assert.ok(offline instanceof InvalidInstanceId, `typed InvalidInstanceId, got ${offline.name}`);

    fake.agentOnline(id);
    const info = (await clients.ssm.send(query)).InstanceInformationList!;
    assert.deepEqual(
      info.map((i) => [i.InstanceId, i.PingStatus]),
      [[id, 'Online']],
    );
    assert.equal(fake.instance(id)?.state, 'running', 'an agent reports only from a running instance');

    const sent = await clients.ssm.send(
      new SendCommandCommand({
        DocumentName: 'AWS-RunShellScript',
        InstanceIds: [id],
        Comment: 'flare:job=job-d',
        Parameters: { commands: ['docker run x'], executionTimeout: ['172800'] },
      }),
    );
    const commandId = sent.Command!.CommandId!;
    assert.ok(sent.Command!.RequestedDateTime instanceof Date);
    const [recorded] = fake.commands().filter((c) => c.commandId === commandId);
    assert.deepEqual(recorded.parameters, { commands: ['docker run x'], executionTimeout: ['172800'] });
    const call = fake.calls({ service: 'ssm', action: 'SendCommand', error: false }).at(-1)!;
    assert.deepEqual(call.resources, [
      `arn:aws:ssm:${ARTIFACT_REGION}::document/AWS-RunShellScript`,
      `${ARN_PREFIX}:instance/${id}`,
    ]);

    const listed = await clients.ssm.send(
      new ListCommandsCommand({
        InstanceId: id,
        Filters: [{ key: 'DocumentName', value: 'AWS-RunShellScript' }],
        MaxResults: 50,
      }),
    );
    assert.deepEqual(
      listed.Commands!.map((c) => [c.CommandId, c.Comment, c.Status]),
      [[commandId, 'flare:job=job-d', 'InProgress']],
    );

    const running = await clients.ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: id }));
    assert.deepEqual([running.Status, running.ResponseCode, running.ExecutionEndDateTime], ['InProgress', -1, '']);
    fake.setInvocation(commandId, id, {
      status: 'TimedOut',
      statusDetails: 'DeliveryTimedOut',
      endedAt: new Date('2026-01-02T03:04:05.000Z'),
    });
    const timedOut = await clients.ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: id }));
    assert.deepEqual(
      [timedOut.Status, timedOut.StatusDetails, timedOut.ResponseCode, timedOut.ExecutionEndDateTime, timedOut.Comment],
      ['TimedOut', 'DeliveryTimedOut', -1, '2026-01-02T03:04:05.000Z', 'flare:job=job-d'],
    );

    fake.setInstanceState(id, 'shutting-down');
    assert.deepEqual(
      (await clients.ssm.send(query)).InstanceInformationList!.map((i) => i.PingStatus),
      ['ConnectionLost'],
    );
  });
});

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

describe('fault injection', () => {
  test('InsufficientInstanceCapacity for one instance type: the SDK throws it (after its own retries, as on AWS), other types launch', async () => {
    const capacity = fake.inject({
      service: 'ec2',
      action: 'RunInstances',
      code: 'InsufficientInstanceCapacity',
      when: (params) => params.InstanceType === 'p4d.24xlarge',
    });
    try {
      const error = await rejection(
        clients.ec2.send(
          new RunInstancesCommand(launchInput('job-g', { InstanceType: 'p4d.24xlarge', ClientToken: 'job-g.0.0' })),
        ),
      );
      assert.equal(error.name, 'InsufficientInstanceCapacity');
      assert.equal(error.$metadata?.httpStatusCode, 500);
      assert.equal(capacity.hits, error.$metadata?.attempts, 'every attempt the SDK made was refused');
      assert.equal(fake.calls({ action: 'RunInstances', error: 'InsufficientInstanceCapacity' }).length, capacity.hits);
      assert.equal(fake.instances().filter((i) => i.tags['flare:job'] === 'job-g').length, 0);

      const fallback = await clients.ec2.send(
        new RunInstancesCommand(launchInput('job-g', { InstanceType: 'p5.48xlarge', ClientToken: 'job-g.0.1' })),
      );
      assert.equal(fallback.Instances!.length, 2);
    } finally {
      capacity.remove();
    }
  });

  test('a throttle that clears: the SDK retries RequestLimitExceeded and gets through; both calls are recorded', async () => {
    fake.inject({ service: 'ec2', action: 'DescribeInstances', code: 'RequestLimitExceeded', times: 1 });
    const output = await clients.ec2.send(
      new DescribeInstancesCommand({ Filters: [{ Name: 'tag:flare:job', Values: ['job-a'] }] }),
    );
    assert.equal(output.$metadata.attempts, 2);
    assert.equal(output.Reservations![0].Instances!.length, 2);
    const [throttled, answered] = fake.calls({ action: 'DescribeInstances' }).slice(-2);
    assert.deepEqual([throttled.error, answered.error], ['RequestLimitExceeded', undefined]);
  });

  test('a JSON service fault carries its code and status: ThrottlingException on SendCommand', async () => {
    const throttle = fake.inject({
      service: 'ssm',
      action: 'SendCommand',
      code: 'ThrottlingException',
      message: 'Rate exceeded',
      status: 400,
    });
    try {
      const error = await rejection(
        clients.ssm.send(
          new SendCommandCommand({ DocumentName: 'AWS-RunShellScript', InstanceIds: ['i-0123456789abcdef0'] }),
        ),
      );
      assert.equal(error.name, 'ThrottlingException');
      assert.equal(error.message, 'Rate exceeded');
      assert.equal(error.$metadata?.httpStatusCode, 400);
      assert.ok(throttle.hits >= 1);
    } finally {
      throttle.remove();
    }
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
