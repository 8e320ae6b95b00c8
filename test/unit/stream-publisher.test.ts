/**
 * The jobs-table stream publisher, driven with DynamoDB stream events
 * (test/fixtures/events/stream-*.json) against a mocked EventBridge: what it
 * publishes, in which requests, and where it tells the stream to retry from.
 */
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { EventBridgeClient, PutEventsCommand, type PutEventsResultEntry } from '@aws-sdk/client-eventbridge';
import type { Context, DynamoDBStreamEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { EventBridgePublisher } from '../../lambdas/adapters/eventbridge-publisher.js';
import type { Logger } from '../../lambdas/core/deps.js';
import { stateChange } from '../../lambdas/core/events.js';
import type { Job, JobState } from '../../lambdas/core/job.js';
import {
  createStreamPublisherHandler,
  publishJobChanges,
  type StreamPublisherDeps,
} from '../../lambdas/handlers/events/stream-publisher.js';
import { awsStreamPublisherDeps } from '../../lambdas/handlers/aws-events.js';
import type { JobStateChange } from '../../lambdas/ports/events.js';
import { recordingLog } from '../support/fakes.js';
import { readFixture } from '../support/fixtures.js';

const fixture = (name: string): DynamoDBStreamEvent => readFixture(`events/${name}`);
const sequenceOf = (event: DynamoDBStreamEvent, index: number) => event.Records[index].dynamodb!.SequenceNumber!;

const client = new EventBridgeClient({
  region: 'eu-west-1',
  credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
});
const mock = mockClient(client);
const BUS = 'flare-bus';

function deps(log: Logger = recordingLog().log): StreamPublisherDeps {
  return { publisher: new EventBridgePublisher(client, BUS), log, now: () => new Date('2099-01-01T00:00:00.000Z') };
}

const accepted = (count: number): { FailedEntryCount: number; Entries: PutEventsResultEntry[] } => ({
  FailedEntryCount: 0,
  Entries: Array.from({ length: count }, (_, i) => ({ EventId: `eb-${i}` })),
});
const sentRequests = () => mock.commandCalls(PutEventsCommand).map((call) => call.args[0].input);
const sentJobStates = () =>
  sentRequests().map((input) =>
    input.Entries!.map((e) => {
      const d = JSON.parse(e.Detail!) as JobStateChange;
      return `${d.jobId} ${d.state}`;
    }),
  );

/** The jobs of the lifecycle fixture, as the store hands them to core. */
const j1 = {
  id: 'j-1',
  name: 'train resnet',
  project: 'vision',
  owner: 'alice',
  pool: 'a10g',
  gpus: 1,
  nodeCount: 1,
} as Job;
const j2 = {
  id: 'j-2',
  name: 'sweep <!channel>',
  project: 'vision',
  owner: 'alice',
  pool: 'a10g',
  gpus: 4,
  nodeCount: 2,
  launchAttempt: 1,
} as Job;
/** What core's in-process publisher would send for the same transition: the stream must agree, ids included. */
const expected = (job: Job, previous: JobState | null, state: JobState, at: string, stateReason?: string) =>
  stateChange({ ...job, state, ...(stateReason ? { stateReason } : {}) }, previous, at);
const entry = (detail: JobStateChange) => ({
  EventBusName: BUS,
  Source: 'flare',
  DetailType: 'Job State Change',
  Detail: JSON.stringify(detail),
  Time: new Date(detail.at),
});

describe('stream publisher', () => {
  beforeEach(() => mock.reset());

  it('publishes each stored state change once, in stream order, stamped with the record time', async () => {
    mock.on(PutEventsCommand).callsFake((input: { Entries: unknown[] }) => accepted(input.Entries.length));
    const handler = createStreamPublisherHandler(() => deps());
    const result = await handler(fixture('stream-job-lifecycle'), {} as Context);
    assert.deepEqual(result, { batchItemFailures: [] });
    assert.deepEqual(sentRequests(), [
      {
        Entries: [
          entry(expected(j1, null, 'PENDING', '2025-02-03T10:00:00.000Z')),
          entry(
            expected(j1, 'PENDING', 'WAITING', '2025-02-03T10:00:01.000Z', 'pool a10g has 0 of 8 GPUs free, needs 1'),
          ),
          entry(expected(j1, 'WAITING', 'LAUNCHING', '2025-02-03T10:05:00.000Z')),
          entry(expected(j2, 'RUNNING', 'STOPPING', '2025-02-03T10:06:50.000Z')),
          entry(expected(j2, 'STOPPING', 'FAILED', '2025-02-03T10:07:00.000Z', 'node i-0bbb exited with code 3')),
        ],
      },
    ]);
  });

  it('a job stored admitted (at its submit) is announced as submitted, then admitted; a refused second retries its record', async () => {
    const insert = structuredClone(fixture('stream-job-lifecycle').Records[0]);
    const image = insert.dynamodb!.NewImage!;
    Object.assign(image, {
      state: { S: 'LAUNCHING' },
      admittedAt: { S: '2025-02-03T10:00:00.000Z' },
      heldGpus: { N: '1' },
      queuePool: { S: 'a10g#holding' },
    });
    const event = { Records: [insert] };
    mock.on(PutEventsCommand).callsFake((input: { Entries: unknown[] }) => accepted(input.Entries.length));
    assert.deepEqual(await publishJobChanges(deps(), event), { batchItemFailures: [] });
    const at = '2025-02-03T10:00:00.000Z';
    assert.deepEqual(sentRequests(), [
      { Entries: [entry(expected(j1, null, 'PENDING', at)), entry(expected(j1, 'PENDING', 'LAUNCHING', at))] },
    ]);

    mock.reset();
    mock
      .on(PutEventsCommand)
      .resolvesOnce({ FailedEntryCount: 1, Entries: [...accepted(1).Entries, { ErrorCode: 'InternalFailure' }] });
    assert.deepEqual(await publishJobChanges(deps(), event), {
      batchItemFailures: [{ itemIdentifier: insert.dynamodb!.SequenceNumber! }],
    });
  });

  it('a job stored WAITING (at its submit) is announced as submitted, then waiting with its reason and latest start', async () => {
    const insert = structuredClone(fixture('stream-job-lifecycle').Records[0]);
    const reason = 'pool a10g has 0 of 8 GPUs free, needs 1';
    const promised = '2025-02-03T11:00:00.000Z';
    Object.assign(insert.dynamodb!.NewImage!, {
      state: { S: 'WAITING' },
      stateReason: { S: reason },
      promisedStartAt: { S: promised },
    });
    mock.on(PutEventsCommand).callsFake((input: { Entries: unknown[] }) => accepted(input.Entries.length));
    assert.deepEqual(await publishJobChanges(deps(), { Records: [insert] }), { batchItemFailures: [] });
    const at = '2025-02-03T10:00:00.000Z';
    const waiting = stateChange(
      { ...j1, state: 'WAITING', stateReason: reason, promisedStartAt: promised },
      'PENDING',
      at,
    );
    assert.equal(waiting.latestStartAt, promised);
    assert.deepEqual(sentRequests(), [{ Entries: [entry(expected(j1, null, 'PENDING', at)), entry(waiting)] }]);
  });

  it('publishes nothing for removed jobs or writes that keep the state', async () => {
    const event = fixture('stream-job-lifecycle');
    const quiet = { Records: [event.Records[2], event.Records[4], event.Records[5], event.Records[8]] };
    assert.deepEqual(
      quiet.Records.map((r) => r.eventName),
      ['MODIFY', 'MODIFY', 'MODIFY', 'REMOVE'],
    );
    assert.deepEqual(await publishJobChanges(deps(), quiet), { batchItemFailures: [] });
    assert.equal(mock.commandCalls(PutEventsCommand).length, 0);
  });

  it('sends at most 10 entries per PutEvents, in record order', async () => {
    mock.on(PutEventsCommand).callsFake((input: { Entries: unknown[] }) => accepted(input.Entries.length));
    assert.deepEqual(await publishJobChanges(deps(), fixture('stream-burst')), { batchItemFailures: [] });
    const ids = Array.from({ length: 12 }, (_, i) => `j-${String(i + 1).padStart(2, '0')} PENDING`);
    assert.deepEqual(sentJobStates(), [ids.slice(0, 10), ids.slice(10)]);
  });

  it('names the first record EventBridge refused, and publishes nothing after it', async () => {
    mock.on(PutEventsCommand).resolvesOnce({
      FailedEntryCount: 1,
      Entries: [
        ...accepted(3).Entries,
        { ErrorCode: 'InternalFailure', ErrorMessage: 'retry' },
        ...accepted(6).Entries,
      ],
    });
    const event = fixture('stream-burst');
    const { log, entries } = recordingLog();
    assert.deepEqual(await publishJobChanges(deps(log), event), {
      batchItemFailures: [{ itemIdentifier: sequenceOf(event, 3) }],
    });
    assert.equal(mock.commandCalls(PutEventsCommand).length, 1);
    const error = entries.find((e) => e.level === 'error');
    assert.equal(error?.data?.sequenceNumber, sequenceOf(event, 3));
    assert.equal(error?.data?.jobId, 'j-04');
  });

  it('retries from the refused change, not from a quiet record before it', async () => {
    mock.on(PutEventsCommand).resolvesOnce({
      FailedEntryCount: 1,
      Entries: [...accepted(2).Entries, { ErrorCode: 'InternalFailure' }, ...accepted(2).Entries],
    });
    const event = fixture('stream-job-lifecycle');
    // Record 2 (WAITING -> WAITING) publishes nothing; record 3 (-> LAUNCHING) is the third change.
    assert.deepEqual(await publishJobChanges(deps(), event), {
      batchItemFailures: [{ itemIdentifier: sequenceOf(event, 3) }],
    });
  });

  it('retries from the first record of a PutEvents request that failed as a whole', async () => {
    mock.on(PutEventsCommand).resolvesOnce(accepted(10)).rejectsOnce(new Error('socket hang up'));
    const event = fixture('stream-burst');
    assert.deepEqual(await publishJobChanges(deps(), event), {
      batchItemFailures: [{ itemIdentifier: sequenceOf(event, 10) }],
    });
  });

  it('fails fast, naming EVENT_BUS_NAME, when it is not set', () => {
    assert.throws(() => awsStreamPublisherDeps({}), /EVENT_BUS_NAME/);
    assert.throws(() => awsStreamPublisherDeps({ EVENT_BUS_NAME: '' }), /EVENT_BUS_NAME/);
  });
});
