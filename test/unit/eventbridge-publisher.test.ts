/**
 * The EventBridge adapter against aws-sdk-client-mock: the exact PutEvents
 * requests, batching by 10 in order, and how far it got when EventBridge
 * refused an entry or the request.
 */
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { EventBridgeClient, EventBridgeServiceException, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { mockClient } from 'aws-sdk-client-mock';
import {
  EventBridgePublisher,
  EventsNotPublished,
  MAX_ENTRIES_PER_PUT,
} from '../../lambdas/adapters/eventbridge-publisher.js';
import type { JobStateChange, OperatorEvent } from '../../lambdas/ports/events.js';
import { awsError } from '../support/aws-errors.js';

const client = new EventBridgeClient({
  region: 'eu-west-1',
  credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
});
const mock = mockClient(client);
const BUS = 'flare-bus';

const change = (n = 1, over: Partial<JobStateChange> = {}): JobStateChange => ({
  eventId: `e-${n}`,
  jobId: `j-${n}`,
  name: 'train',
  project: 'vision',
  owner: 'alice',
  pool: 'a10g',
  gpus: 2,
  previousState: 'LAUNCHING',
  state: 'RUNNING',
  at: '2025-02-03T10:00:00.000Z',
  ...over,
});

const ok = (count: number) => ({
  FailedEntryCount: 0,
  Entries: Array.from({ length: count }, (_, i) => ({ EventId: `eb-${i}` })),
});
const sentDetails = () =>
  mock
    .commandCalls(PutEventsCommand)
    .map((call) => call.args[0].input.Entries!.map((e) => (JSON.parse(e.Detail!) as { eventId: string }).eventId));

describe('EventBridgePublisher', () => {
  beforeEach(() => mock.reset());

  it('publishes a job state change as one entry on the bus', async () => {
    mock.on(PutEventsCommand).resolves(ok(1));
    const event = change(1, { stateReason: 'container started' });
    await new EventBridgePublisher(client, BUS).publish(event);
    assert.deepEqual(mock.commandCalls(PutEventsCommand)[0].args[0].input, {
      Entries: [
        {
          EventBusName: BUS,
          Source: 'flare',
          DetailType: 'Job State Change',
          Detail:
            '{"eventId":"e-1","jobId":"j-1","name":"train","project":"vision","owner":"alice","pool":"a10g","gpus":2,"previousState":"LAUNCHING","state":"RUNNING","at":"2025-02-03T10:00:00.000Z","stateReason":"container started"}',
          Time: new Date('2025-02-03T10:00:00.000Z'),
        },
      ],
    });
  });

  it('publishes an operator event with its own detail-type', async () => {
    mock.on(PutEventsCommand).resolves(ok(1));
    const event: OperatorEvent = {
      eventId: 'o-1',
      kind: 'vcpu-limit',
      subject: 'a10g',
      reason: 'the account G vCPU limit (64) is reached',
      at: '2025-02-03T11:30:00.000Z',
    };
    await new EventBridgePublisher(client, BUS).publishOperatorEvent(event);
    assert.deepEqual(mock.commandCalls(PutEventsCommand)[0].args[0].input, {
      Entries: [
        {
          EventBusName: BUS,
          Source: 'flare',
          DetailType: 'Flare Operator Event',
          Detail: JSON.stringify(event),
          Time: new Date('2025-02-03T11:30:00.000Z'),
        },
      ],
    });
  });

  it('throws when EventBridge refuses the entry (FailedEntryCount), naming its error code', async () => {
    mock
      .on(PutEventsCommand)
      .resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'InternalFailure', ErrorMessage: 'try again' }] });
    const publisher = new EventBridgePublisher(client, BUS);
    await assert.rejects(publisher.publish(change()), (error: unknown) => {
      assert.ok(error instanceof EventsNotPublished);
      assert.equal(error.published, 0);
      assert.equal(error.total, 1);
      assert.match(error.message, /InternalFailure: try again/);
      return true;
    });
    await assert.rejects(
      publisher.publishOperatorEvent({
        eventId: 'o',
        kind: 'k',
        subject: 's',
        reason: 'r',
        at: '2025-02-03T11:30:00.000Z',
      }),
      EventsNotPublished,
    );
  });

  it(`sends many changes in order, at most ${MAX_ENTRIES_PER_PUT} per request`, async () => {
    mock.on(PutEventsCommand).callsFake((input: { Entries: unknown[] }) => ok(input.Entries.length));
    const events = Array.from({ length: 23 }, (_, i) => change(i + 1));
    await new EventBridgePublisher(client, BUS).publishStateChanges(events);
    const ids = events.map((e) => e.eventId);
    assert.deepEqual(sentDetails(), [ids.slice(0, 10), ids.slice(10, 20), ids.slice(20)]);
  });

  it('stops at the first refused entry and says how many leading events went through', async () => {
    mock
      .on(PutEventsCommand)
      .resolvesOnce(ok(10))
      .resolvesOnce({
        FailedEntryCount: 2,
        Entries: [
          { EventId: 'a' },
          { EventId: 'b' },
          { EventId: 'c' },
          { EventId: 'd' },
          { ErrorCode: 'ThrottlingException', ErrorMessage: 'slow down' },
          { EventId: 'f' },
          { ErrorCode: 'ThrottlingException' },
          { EventId: 'h' },
          { EventId: 'i' },
          { EventId: 'j' },
        ],
      });
    const events = Array.from({ length: 25 }, (_, i) => change(i + 1));
    await assert.rejects(
      new EventBridgePublisher(client, BUS).publishStateChanges(events),
      (error: unknown) => error instanceof EventsNotPublished && error.published === 14 && error.total === 25,
    );
    assert.equal(mock.commandCalls(PutEventsCommand).length, 2, 'nothing after the failed request');
  });

  it('counts a request that failed as a whole from its first entry, keeping the cause', async () => {
    const throttled = awsError(EventBridgeServiceException, 'ThrottlingException', { message: 'Rate exceeded' });
    mock.on(PutEventsCommand).resolvesOnce(ok(10)).rejectsOnce(throttled);
    const events = Array.from({ length: 12 }, (_, i) => change(i + 1));
    await assert.rejects(new EventBridgePublisher(client, BUS).publishStateChanges(events), (error: unknown) => {
      assert.ok(error instanceof EventsNotPublished);
      assert.equal(error.published, 10);
      assert.equal(error.cause, throttled);
      assert.match(error.message, /ThrottlingException: Rate exceeded/);
      return true;
    });
  });

  it('sends nothing for no changes', async () => {
    await new EventBridgePublisher(client, BUS).publishStateChanges([]);
    assert.equal(mock.commandCalls(PutEventsCommand).length, 0);
  });
});
