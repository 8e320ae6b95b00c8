/**
 * SecretsManagerSecrets against the AWS SDK with aws-sdk-client-mock: the exact
 * requests for put (create, then a new value for an existing name), list (one
 * project's names under the deployment's prefix, paginated), delete (at once,
 * no recovery window), the existence check and the values read for masking.
 */
import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import {
  CreateSecretCommand,
  DeleteSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  ListSecretsCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
  SecretsManagerServiceException,
} from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { SecretsManagerSecrets } from '../../lambdas/adapters/secrets-manager-secrets.js';
import { awsError } from '../support/aws-errors.js';

const client = new SecretsManagerClient({
  region: 'eu-west-1',
  credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
});
const sm = mockClient(client);
const store = new SecretsManagerSecrets(client, 'FlareStack');
const notFound = () => awsError(SecretsManagerServiceException, 'ResourceNotFoundException');

beforeEach(() => sm.reset());

describe('SecretsManagerSecrets', () => {
  test('put creates the secret under the deployment and project, tagged with both', async () => {
    sm.on(CreateSecretCommand).resolves({});
    await store.put('vision', 'openai-key', 'sk-1');
    assert.deepEqual(sm.commandCalls(CreateSecretCommand)[0]!.args[0].input, {
      Name: 'flare/FlareStack/projects/vision/openai-key',
      SecretString: 'sk-1',
      Tags: [
        { Key: 'flare:deployment', Value: 'FlareStack' },
        { Key: 'flare:project', Value: 'vision' },
      ],
    });
    assert.equal(sm.commandCalls(PutSecretValueCommand).length, 0);
  });

  test('put of an existing name puts a new value, and nothing else', async () => {
    sm.on(CreateSecretCommand).rejects(awsError(SecretsManagerServiceException, 'ResourceExistsException'));
    sm.on(PutSecretValueCommand).resolves({});
    await store.put('vision', 'openai-key', 'sk-2');
    assert.deepEqual(sm.commandCalls(PutSecretValueCommand)[0]!.args[0].input, {
      SecretId: 'flare/FlareStack/projects/vision/openai-key',
      SecretString: 'sk-2',
    });
  });

  test("list pages through the project's prefix and keeps only its own names", async () => {
    sm.on(ListSecretsCommand, { NextToken: undefined })
      .resolves({
        SecretList: [
          { Name: 'flare/FlareStack/projects/vision/a', LastChangedDate: new Date('2030-01-01T00:00:00Z') },
          { Name: 'flare/FlareStack/projects/vision/nested/b' },
        ],
        NextToken: 't1',
      })
      .on(ListSecretsCommand, { NextToken: 't1' })
      .resolves({
        SecretList: [{ Name: 'flare/FlareStack/projects/vision/c', CreatedDate: new Date('2030-01-02T00:00:00Z') }],
      });
    assert.deepEqual(await store.list('vision'), [
      { name: 'a', updatedAt: '2030-01-01T00:00:00.000Z' },
      { name: 'c', updatedAt: '2030-01-02T00:00:00.000Z' },
    ]);
    assert.deepEqual(
      sm.commandCalls(ListSecretsCommand).map((c) => c.args[0].input),
      [
        { Filters: [{ Key: 'name', Values: ['flare/FlareStack/projects/vision/'] }], MaxResults: 100 },
        {
          Filters: [{ Key: 'name', Values: ['flare/FlareStack/projects/vision/'] }],
          MaxResults: 100,
          NextToken: 't1',
        },
      ],
    );
  });

  test('delete removes at once (no recovery window); a name that is not there is false', async () => {
    sm.on(DeleteSecretCommand).resolvesOnce({}).rejectsOnce(notFound());
    assert.equal(await store.delete('vision', 'a'), true);
    assert.equal(await store.delete('vision', 'a'), false);
    assert.deepEqual(sm.commandCalls(DeleteSecretCommand)[0]!.args[0].input, {
      SecretId: 'flare/FlareStack/projects/vision/a',
      ForceDeleteWithoutRecovery: true,
    });
  });

  test('missing asks for each name; values reads each, leaving out the ones that are gone', async () => {
    sm.on(DescribeSecretCommand, { SecretId: 'flare/FlareStack/projects/vision/a' })
      .resolves({ Name: 'flare/FlareStack/projects/vision/a' })
      .on(DescribeSecretCommand, { SecretId: 'flare/FlareStack/projects/vision/b' })
      .rejects(notFound())
      .on(DescribeSecretCommand, { SecretId: 'flare/FlareStack/projects/vision/c' })
      .resolves({ DeletedDate: new Date() });
    assert.deepEqual(await store.missing('vision', ['a', 'b', 'c']), ['b', 'c']);

    sm.on(GetSecretValueCommand, { SecretId: 'flare/FlareStack/projects/vision/a' })
      .resolves({ SecretString: 'va' })
      .on(GetSecretValueCommand, { SecretId: 'flare/FlareStack/projects/vision/b' })
      .rejects(notFound());
    assert.deepEqual([...(await store.values('vision', ['a', 'b']))], [['a', 'va']]);
  });

  test('any other error is the caller’s to see', async () => {
    sm.on(DescribeSecretCommand).rejects(awsError(SecretsManagerServiceException, 'AccessDeniedException'));
    await assert.rejects(store.missing('vision', ['a']), { name: 'AccessDeniedException' });
  });
});
