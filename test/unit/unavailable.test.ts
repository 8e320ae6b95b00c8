/**
 * DynamoDB or Step Functions throttling or unreachable: the adapters' clients
 * throw StoreUnavailable / WorkflowsUnavailable (lambdas/adapters/unavailable.ts),
 * and the API answers 503 `unavailable` with Retry-After, never a 500. The SDK
 * errors are the SDK's own classes, thrown by aws-sdk-client-mock where the
 * real client would throw them.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import {
  DynamoDBServiceException,
  InternalServerError,
  ProvisionedThroughputExceededException,
  RequestLimitExceeded,
  ThrottlingException,
  TransactionCanceledException,
} from '@aws-sdk/client-dynamodb';
import { SendTaskSuccessCommand, SFNClient, SFNServiceException, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoCatalog } from '../../lambdas/adapters/dynamo/dynamo-catalog.js';
import { dynamoStores } from '../../lambdas/adapters/dynamo/dynamo-stores.js';
import { SfnWorkflows } from '../../lambdas/adapters/sfn-workflows.js';
import { reportUnavailable, unavailableReason } from '../../lambdas/adapters/unavailable.js';
import type { Deps } from '../../lambdas/core/deps.js';
import { StoreUnavailable, Unavailable, WorkflowsUnavailable } from '../../lambdas/core/errors.js';
import { workflowInput } from '../../lambdas/core/workflow.js';
import { createApiHandler } from '../../lambdas/handlers/http/api.js';
import { mapError } from '../../lambdas/handlers/http/middleware.js';
import { freeLoopbackPort } from '../../lambdas/local/dynamodb-local.js';
import { defaultTableNames, makeDynamoClients } from '../../lambdas/local/tables.js';
import { quietLog } from '../support/harness.js';
import { apiEvent, invokeApi, type ApiResponse } from '../support/api-calls.js';
import { awsError } from '../support/aws-errors.js';

const $metadata = { httpStatusCode: 400 };
const dynamoErrors = {
  ThrottlingException: () =>
    new ThrottlingException({ message: 'Rate of requests exceeds the allowed throughput.', $metadata }),
  ProvisionedThroughputExceededException: () =>
    new ProvisionedThroughputExceededException({ message: 'exceeded', $metadata }),
  RequestLimitExceeded: () =>
    new RequestLimitExceeded({
      message: 'Throughput exceeds the current throughput limit for your account.',
      $metadata,
    }),
  InternalServerError: () =>
    new InternalServerError({ message: 'Internal server error', $metadata: { httpStatusCode: 500 } }),
  ServiceUnavailable: () =>
    new DynamoDBServiceException({
      name: 'ServiceUnavailable',
      $fault: 'server',
      $metadata: { httpStatusCode: 503 },
      message: 'Service unavailable',
    }),
  ECONNREFUSED: () =>
    Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8000'), { code: 'ECONNREFUSED', $metadata: {} }),
  ECONNRESET: () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET', $metadata: {} }),
  TimeoutError: () =>
    Object.assign(new Error('a request has exceeded the configured 10000 ms requestTimeout'), {
      name: 'TimeoutError',
      code: 'ETIMEDOUT',
    }),
  'TransactionCanceledException (ThrottlingError)': () =>
    new TransactionCanceledException({
      message: 'Transaction cancelled',
      $metadata,
      CancellationReasons: [{ Code: 'None' }, { Code: 'ThrottlingError' }],
    }),
};

/** The API over the local runner's own DynamoDB clients (makeDynamoClients), with the Document client's `send` mocked. */
async function call(method: string, path: string): Promise<ApiResponse> {
  const { doc } = makeDynamoClients('http://127.0.0.1:9');
  const tables = defaultTableNames();
  const deps = {
    ...dynamoStores(doc, tables),
    catalog: new DynamoCatalog(doc, tables),
    log: quietLog,
    now: () => new Date(),
    newId: () => 'j-0000000000000001',
  } as unknown as Deps;
  return invokeApi(
    createApiHandler(() => deps),
    apiEvent(method, path),
  );
}

const documentMock = mockClient(DynamoDBDocumentClient);
const sfnMock = mockClient(SFNClient);
afterEach(() => {
  documentMock.reset();
  sfnMock.reset();
});

describe('a store that is throttling or unreachable', () => {
  for (const [name, make] of Object.entries(dynamoErrors)) {
    it(`${name}: store routes answer 503 unavailable with Retry-After`, async () => {
      documentMock.onAnyCommand().rejects(make());

      for (const [method, path] of [
        ['GET', '/v1/pools'],
        ['GET', '/v1/jobs/j-0123456789abcdef'],
        ['GET', '/v1/jobs'],
      ]) {
        const response = await call(method, path);
        assert.equal(response.status, 503, `${method} ${path}: ${JSON.stringify(response.body)}`);
        assert.equal(response.body.error.code, 'unavailable');
        assert.match(response.body.error.message, /^DynamoDB is /);
        assert.equal(response.headers['retry-after'], '5');
      }
    });
  }

  it('health is 503 degraded and says what is wrong with the store', async () => {
    documentMock.onAnyCommand().rejects(dynamoErrors.ThrottlingException());

    const response = await call('GET', '/v1/health');

    assert.equal(response.status, 503);
    assert.equal(response.body.status, 'degraded');
    assert.deepEqual(response.body.components.store, {
      status: 'unavailable',
      reason: 'DynamoDB is throttled (ThrottlingException); try again later',
    });
  });

  it('other store errors are not mistaken for an outage: a 500, as before', async () => {
    for (const error of [
      new DynamoDBServiceException({
        name: 'ValidationException',
        $fault: 'client',
        $metadata,
        message: 'One or more parameter values were invalid',
      }),
      new DynamoDBServiceException({
        name: 'ResourceNotFoundException',
        $fault: 'client',
        $metadata,
        message: 'Requested resource not found',
      }),
      new TransactionCanceledException({
        message: 'Transaction cancelled',
        $metadata,
        CancellationReasons: [{ Code: 'ConditionalCheckFailed' }, { Code: 'ThrottlingError' }],
      }),
    ]) {
      documentMock.onAnyCommand().rejects(error);
      assert.equal((await call('GET', '/v1/pools')).status, 500, error.name);
      assert.equal(unavailableReason(error), undefined, error.name);
    }
  });

  it('keeps the SDK error as the cause, and a command that succeeds is untouched', async () => {
    const { doc } = makeDynamoClients('http://127.0.0.1:9');
    const throttled = dynamoErrors.ThrottlingException();
    documentMock
      .on(GetCommand, { Key: { id: 'a' } })
      .rejects(throttled)
      .on(GetCommand, { Key: { id: 'b' } })
      .resolves({ Item: { id: 'b' } });

    const error = await doc.send(new GetCommand({ TableName: 't', Key: { id: 'a' } })).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(error instanceof StoreUnavailable);
    assert.equal(error.name, 'StoreUnavailable', 'the name the ASL Retry matches');
    assert.equal(error.cause, throttled);
    assert.deepEqual((await doc.send(new GetCommand({ TableName: 't', Key: { id: 'b' } }))).Item, { id: 'b' });
  });
});

describe('Step Functions throttling or failing', () => {
  const sfn = reportUnavailable(
    new SFNClient({ region: 'eu-west-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } }),
    'Step Functions',
    WorkflowsUnavailable,
  );
  const workflows = new SfnWorkflows(sfn, 'arn:aws:states:eu-west-1:123456789012:stateMachine:flare-job-lifecycle');
  const input = workflowInput({ id: 'j-0123456789abcdef', pool: 'a10g' });

  for (const [name, status] of [
    ['ThrottlingException', 400],
    ['ServiceUnavailable', 503],
    ['InternalServerError', 500],
  ] as const) {
    it(`${name} on StartExecution and SendTaskSuccess is WorkflowsUnavailable, a 503 with Retry-After`, async () => {
      sfnMock
        .on(StartExecutionCommand)
        .rejects(awsError(SFNServiceException, name, { status }))
        .on(SendTaskSuccessCommand)
        .rejects(awsError(SFNServiceException, name, { status }));

      for (const attempt of [
        () => workflows.start('j-0123456789abcdef', input),
        () => workflows.sendTaskSuccess('token', {}),
      ]) {
        const error = await attempt().then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.ok(error instanceof WorkflowsUnavailable, String(error));
        assert.equal(error.name, 'WorkflowsUnavailable');
        assert.deepEqual(mapError(error), { status: 503, code: 'unavailable', headers: { 'retry-after': '5' } });
      }
    });
  }

  it('what the adapter already handles passes through: a start that already happened, a wait that already ended', async () => {
    sfnMock
      .on(StartExecutionCommand)
      .rejects(awsError(SFNServiceException, 'ExecutionAlreadyExists'))
      .on(SendTaskSuccessCommand)
      .rejects(awsError(SFNServiceException, 'TaskTimedOut'));

    await workflows.start('j-0123456789abcdef', input);
    await workflows.sendTaskSuccess('token', {});
    sfnMock.on(StartExecutionCommand).rejects(awsError(SFNServiceException, 'StateMachineDoesNotExist'));
    const error = await workflows.start('j-0123456789abcdef', input).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(!(error instanceof Unavailable), 'a missing state machine is a deployment bug, not an outage');
  });
});

describe('a store nobody listens for (last: it restores the real client)', () => {
  it('a real client to a port nobody listens on fails fast with StoreUnavailable (connection refused)', async () => {
    documentMock.restore(); // the real send, over a real socket
    const port = await freeLoopbackPort(); // free, so nobody listens on it
    const { doc, client } = makeDynamoClients(`http://127.0.0.1:${port}`);
    const error = await doc.send(new GetCommand({ TableName: 't', Key: { id: 'a' } })).then(
      () => undefined,
      (e: unknown) => e,
    );
    client.destroy();
    assert.ok(error instanceof StoreUnavailable, String(error));
    assert.equal(error.message, 'DynamoDB is unreachable (ECONNREFUSED); try again later');
  });
});
