/**
 * What the tests of the local AWS fake (test/artifact/aws-fake-*.test.ts) share: the fake in front of
 * DynamoDB Local, and the real SDK v3 clients configured only through the environment, as the bundled
 * handlers are; a launch request and the error a call rejects with.
 */
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EC2Client, RunInstancesCommand, type RunInstancesCommandInput } from '@aws-sdk/client-ec2';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SSMClient } from '@aws-sdk/client-ssm';
import { startDynamoDbLocal, type DynamoDbLocal } from '../../../lambdas/local/dynamodb-local.js';
import { startAwsFake, type AwsFake } from './aws-fake.js';
import { ARTIFACT_ACCOUNT, ARTIFACT_REGION } from './types.js';

export const PRINCIPAL = 'TasksFunctionServiceRole';
export const ARN_PREFIX = `arn:aws:ec2:${ARTIFACT_REGION}:${ARTIFACT_ACCOUNT}`;

let dynamo: DynamoDbLocal;
export let fake: AwsFake;
export let clients: {
  ec2: EC2Client;
  ssm: SSMClient;
  sfn: SFNClient;
  events: EventBridgeClient;
  secrets: SecretsManagerClient;
  logs: CloudWatchLogsClient;
  dynamodb: DynamoDBClient;
};
const savedEnv = { ...process.env };

export function launchInput(job: string, overrides: Partial<RunInstancesCommandInput> = {}): RunInstancesCommandInput {
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

export async function launched(job: string): Promise<string[]> {
  const output = await clients.ec2.send(new RunInstancesCommand(launchInput(job, { MinCount: 1, MaxCount: 1 })));
  return output.Instances!.map((i) => i.InstanceId!);
}

export async function rejection(
  promise: Promise<unknown>,
): Promise<Error & { $metadata?: { httpStatusCode?: number; attempts?: number } }> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  assert.fail('expected the call to fail');
}

/** Starts DynamoDB Local, the fake and the clients before the file's tests; closes them and restores the environment after. */
export function useAwsFake(): void {
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
}
