/**
 * CloudWatchJobLogs against the AWS SDK with aws-sdk-client-mock: the exact
 * GetLogEvents requests for a tail, backward pagination, the end of the stream,
 * a stream that does not exist yet, and the bounds; then the follow cursor
 * (forward tokens) the same way.
 */
import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import {
  CloudWatchLogsClient,
  CloudWatchLogsServiceException,
  GetLogEventsCommand,
  ResourceNotFoundException,
  type GetLogEventsCommandOutput,
  type OutputLogEvent,
} from '@aws-sdk/client-cloudwatch-logs';
import { mockClient } from 'aws-sdk-client-mock';
import { CloudWatchJobLogs, JobLogsUnavailable, STREAM_HEAD } from '../../lambdas/adapters/cloudwatch-job-logs.js';
import { ValidationError } from '../../lambdas/core/errors.js';
import type { Job } from '../../lambdas/core/job.js';
import { awsError } from '../support/aws-errors.js';

const client = new CloudWatchLogsClient({
  region: 'eu-west-1',
  credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
});
const logsMock = mockClient(client);

const GROUP = '/flare/jobs';
const T0 = Date.parse('2030-01-01T00:00:00.000Z');

const job = { id: 'job-7', project: 'vision' } as Job;

/** Events n..m-1, one second apart, message `line n`. */
function events(from: number, to: number): OutputLogEvent[] {
  return Array.from({ length: to - from }, (_, i) => ({
    timestamp: T0 + (from + i) * 1000,
    message: `line ${from + i}`,
    ingestionTime: T0 + (from + i) * 1000 + 5,
  }));
}

function page(items: OutputLogEvent[], backward: string, forward = 'f/end'): Partial<GetLogEventsCommandOutput> {
  return { events: items, nextBackwardToken: backward, nextForwardToken: forward };
}

const requests = () => logsMock.commandCalls(GetLogEventsCommand).map((call) => call.args[0].input);
const messages = (lines: Array<{ message: string }>) => lines.map((l) => l.message);

beforeEach(() => {
  logsMock.reset();
});

describe('CloudWatchJobLogs', () => {
  test('reads the tail from the end of the job’s stream in one request when one page holds it', async () => {
    logsMock.on(GetLogEventsCommand).resolves(page(events(7, 10), 'b/1'));

    const { lines } = await new CloudWatchJobLogs(client, GROUP).read(job, { tail: 3 });

    assert.deepEqual(requests(), [{ logGroupName: GROUP, logStreamName: 'job-7', startFromHead: false, limit: 3 }]);
    assert.deepEqual(lines, [
      { at: '2030-01-01T00:00:07.000Z', message: 'line 7' },
      { at: '2030-01-01T00:00:08.000Z', message: 'line 8' },
      { at: '2030-01-01T00:00:09.000Z', message: 'line 9' },
    ]);
  });

  test('follows nextBackwardToken for the rest when a page holds fewer events than asked, oldest line first', async () => {
    // The 1 MB response cap: the first page has only the newest 2 of the 5 asked for.
    logsMock
      .on(GetLogEventsCommand)
      .resolvesOnce(page(events(8, 10), 'b/1'))
      .resolvesOnce(page(events(5, 8), 'b/2'))
      .rejects(new Error('no third request expected'));

    const { lines } = await new CloudWatchJobLogs(client, GROUP).read(job, { tail: 5 });

    assert.deepEqual(requests(), [
      { logGroupName: GROUP, logStreamName: 'job-7', startFromHead: false, limit: 5 },
      { logGroupName: GROUP, logStreamName: 'job-7', startFromHead: false, limit: 3, nextToken: 'b/1' },
    ]);
    assert.deepEqual(messages(lines), ['line 5', 'line 6', 'line 7', 'line 8', 'line 9']);
  });

  test('stops at the start of the stream, where the backward token comes back unchanged, and passes empty pages', async () => {
    logsMock
      .on(GetLogEventsCommand)
      .resolvesOnce(page(events(2, 4), 'b/1'))
      .resolvesOnce(page([], 'b/2')) // "can return empty results while there are more log events"
      .resolvesOnce(page(events(0, 2), 'b/3'))
      .resolvesOnce(page([], 'b/3'))
      .rejects(new Error('read past the start of the stream'));

    const { lines } = await new CloudWatchJobLogs(client, GROUP).read(job, { tail: 1000 });

    assert.deepEqual(
      requests().map((r) => [r.limit, r.nextToken]),
      [
        [1000, undefined],
        [998, 'b/1'],
        [998, 'b/2'],
        [996, 'b/3'],
      ],
    );
    assert.deepEqual(messages(lines), ['line 0', 'line 1', 'line 2', 'line 3']);
  });

  test('a stream that does not exist yet is no lines', async () => {
    logsMock.on(GetLogEventsCommand).rejects(
      new ResourceNotFoundException({
        message: 'The specified log stream does not exist.',
        $metadata: { httpStatusCode: 400 },
      }),
    );

    const { lines } = await new CloudWatchJobLogs(client, GROUP).read(job, { tail: 10 });

    assert.deepEqual(lines, []);
    assert.deepEqual(requests(), [{ logGroupName: GROUP, logStreamName: 'job-7', startFromHead: false, limit: 10 }]);
  });

  test('an existing but empty stream is no lines', async () => {
    logsMock.on(GetLogEventsCommand).resolvesOnce(page([], 'b/0')).resolvesOnce(page([], 'b/0'));
    const { lines } = await new CloudWatchJobLogs(client, GROUP).read(job, { tail: 10 });
    assert.deepEqual(lines, []);
    assert.equal(requests().length, 2);
  });

  test('other errors reach the caller', async () => {
    const denied = awsError(CloudWatchLogsServiceException, 'AccessDeniedException', {
      message: 'not authorized to perform: logs:GetLogEvents',
    });
    logsMock.on(GetLogEventsCommand).rejects(denied);
    await assert.rejects(new CloudWatchJobLogs(client, GROUP).read(job, { tail: 10 }), (error) => error === denied);
  });

  test('without a log group, reading fails with JobLogsUnavailable and calls nothing', async () => {
    await assert.rejects(new CloudWatchJobLogs(client, undefined).read(job, { tail: 10 }), JobLogsUnavailable);
    assert.equal(requests().length, 0);
  });

  test('without a tail, reads the whole stream backwards with the service’s own page size', async () => {
    logsMock
      .on(GetLogEventsCommand)
      .resolvesOnce(page(events(1, 3), 'b/1'))
      .resolvesOnce(page(events(0, 1), 'b/2'))
      .resolvesOnce(page([], 'b/2'));
    const { lines } = await new CloudWatchJobLogs(client, GROUP).read(job, {});
    assert.deepEqual(requests(), [
      { logGroupName: GROUP, logStreamName: 'job-7', startFromHead: false },
      { logGroupName: GROUP, logStreamName: 'job-7', startFromHead: false, nextToken: 'b/1' },
      { logGroupName: GROUP, logStreamName: 'job-7', startFromHead: false, nextToken: 'b/2' },
    ]);
    assert.deepEqual(messages(lines), ['line 0', 'line 1', 'line 2']);
  });

  test('stops at maxBytes, keeping the newest lines whole', async () => {
    const big = (n: number): OutputLogEvent => ({ timestamp: T0 + n, message: `${n}`.padEnd(100, '.') });
    logsMock
      .on(GetLogEventsCommand)
      .resolvesOnce(page([big(8), big(9)], 'b/1'))
      .resolvesOnce(page([big(5), big(6), big(7)], 'b/2'))
      .rejects(new Error('read past maxBytes'));

    const { lines } = await new CloudWatchJobLogs(client, GROUP, { maxBytes: 350 }).read(job, { tail: 10 });

    assert.deepEqual(
      lines.map((l) => l.message.replace(/\.+$/, '')),
      ['7', '8', '9'],
    );
    assert.equal(requests().length, 2);
  });

  test('returns one line even when it alone is larger than maxBytes', async () => {
    logsMock.on(GetLogEventsCommand).resolves(
      page(
        [
          { timestamp: T0, message: 'x'.repeat(500) },
          { timestamp: T0, message: 'y'.repeat(500) },
        ],
        'b/1',
      ),
    );
    const { lines } = await new CloudWatchJobLogs(client, GROUP, { maxBytes: 100 }).read(job, { tail: 2 });
    assert.deepEqual(messages(lines), ['y'.repeat(500)]);
  });

  test('makes at most maxRequests calls', async () => {
    let n = 0;
    logsMock.on(GetLogEventsCommand).callsFake(async () => page([], `b/${++n}`));
    const { lines } = await new CloudWatchJobLogs(client, GROUP, { maxRequests: 4 }).read(job, { tail: 10 });
    assert.deepEqual(lines, []);
    assert.equal(requests().length, 4);
  });

  test('refuses nonsensical bounds', () => {
    assert.throws(() => new CloudWatchJobLogs(client, GROUP, { maxRequests: 0 }), RangeError);
    assert.throws(() => new CloudWatchJobLogs(client, GROUP, { maxBytes: 0 }), RangeError);
    assert.throws(() => new CloudWatchJobLogs(client, GROUP, { maxLines: 2.5 }), RangeError);
  });
});

describe('CloudWatchJobLogs: the follow cursor', () => {
  const forward = (nextToken?: string, limit = 10_000) => ({
    logGroupName: GROUP,
    logStreamName: 'job-7',
    startFromHead: true,
    limit,
    ...(nextToken ? { nextToken } : {}),
  });

  test('a tail read hands out the forward token of the newest page, even when it reads older pages too', async () => {
    logsMock
      .on(GetLogEventsCommand)
      .resolvesOnce(page(events(8, 10), 'b/1', 'f/newest'))
      .resolvesOnce(page(events(5, 8), 'b/2', 'f/older'));
    const read = await new CloudWatchJobLogs(client, GROUP).read(job, { tail: 5 });
    assert.equal(read.nextToken, 'f/newest');
    assert.deepEqual(messages(read.lines), ['line 5', 'line 6', 'line 7', 'line 8', 'line 9']);
  });

  test('a read after a cursor walks forward from it and stops where the service gives the same token back', async () => {
    logsMock
      .on(GetLogEventsCommand)
      .resolvesOnce(page(events(10, 12), 'b/x', 'f/2'))
      .resolvesOnce(page(events(12, 13), 'b/y', 'f/3'))
      .resolvesOnce(page([], 'b/z', 'f/3'))
      .rejects(new Error('read past the end of the stream'));

    const read = await new CloudWatchJobLogs(client, GROUP).read(job, { after: 'f/1' });

    assert.deepEqual(
      requests(),
      [forward('f/1'), forward('f/2', 9998), forward('f/3', 9997)],
      'each asks only for what maxLines leaves',
    );
    assert.deepEqual(read.lines, [
      { at: '2030-01-01T00:00:10.000Z', message: 'line 10' },
      { at: '2030-01-01T00:00:11.000Z', message: 'line 11' },
      { at: '2030-01-01T00:00:12.000Z', message: 'line 12' },
    ]);
    assert.equal(read.nextToken, 'f/3');
  });

  test('nothing new: no lines and the same cursor back, in one request', async () => {
    logsMock.on(GetLogEventsCommand).resolves(page([], 'b/x', 'f/9'));
    const read = await new CloudWatchJobLogs(client, GROUP).read(job, { after: 'f/9' });
    assert.deepEqual(read, { lines: [], nextToken: 'f/9' });
    assert.deepEqual(requests(), [forward('f/9')]);
  });

  test('a stream that does not exist yet: a tail read hands out the head cursor, and a read after it starts at the head of the stream', async () => {
    logsMock.on(GetLogEventsCommand).rejects(
      new ResourceNotFoundException({
        message: 'The specified log stream does not exist.',
        $metadata: { httpStatusCode: 400 },
      }),
    );
    const none = await new CloudWatchJobLogs(client, GROUP).read(job, { tail: 10 });
    assert.deepEqual(none, { lines: [], nextToken: STREAM_HEAD });
    assert.deepEqual(await new CloudWatchJobLogs(client, GROUP).read(job, { after: STREAM_HEAD }), {
      lines: [],
      nextToken: STREAM_HEAD,
    });

    logsMock.reset();
    logsMock
      .on(GetLogEventsCommand)
      .resolvesOnce(page(events(0, 2), 'b/0', 'f/1'))
      .resolvesOnce(page([], 'b/0', 'f/1'));
    const first = await new CloudWatchJobLogs(client, GROUP).read(job, { after: STREAM_HEAD });
    assert.deepEqual(requests(), [forward(undefined), forward('f/1', 9998)], 'from the head: no token');
    assert.deepEqual(first.nextToken, 'f/1');
    assert.deepEqual(messages(first.lines), ['line 0', 'line 1']);
  });

  test('asks for no more than maxLines, and no further page once one more might not fit in maxBytes', async () => {
    logsMock
      .on(GetLogEventsCommand)
      .resolvesOnce(page(events(0, 3), 'b', 'f/2'))
      .resolvesOnce(page(events(3, 5), 'b', 'f/3'))
      .rejects(new Error('no third page expected'));
    const capped = await new CloudWatchJobLogs(client, GROUP, { maxLines: 5 }).read(job, { after: 'f/1' });
    assert.deepEqual(requests(), [forward('f/1', 5), forward('f/2', 2)]);
    assert.deepEqual(capped.nextToken, 'f/3');
    assert.equal(capped.lines.length, 5);

    logsMock.reset();
    logsMock
      .on(GetLogEventsCommand)
      .resolvesOnce(page([], 'b', 'f/2'))
      .resolvesOnce(page(events(0, 1), 'b', 'f/3'))
      .rejects(new Error('no third page expected'));
    const small = await new CloudWatchJobLogs(client, GROUP, { maxBytes: 1024 * 1024 }).read(job, { after: 'f/1' });
    assert.equal(requests().length, 2, 'an empty page is passed; after lines, a 1 MB page more would not fit');
    assert.deepEqual(small, { lines: [{ at: '2030-01-01T00:00:00.000Z', message: 'line 0' }], nextToken: 'f/3' });
  });

  test('a cursor the service refuses is a ValidationError naming nextToken; other errors reach the caller', async () => {
    const invalid = awsError(CloudWatchLogsServiceException, 'InvalidParameterException', {
      message: 'The specified nextToken is invalid.',
    });
    logsMock.on(GetLogEventsCommand).rejects(invalid);
    await assert.rejects(new CloudWatchJobLogs(client, GROUP).read(job, { after: 'not-a-token' }), (error: unknown) => {
      assert.ok(error instanceof ValidationError);
      assert.deepEqual(
        error.details.map((d) => d.field),
        ['nextToken'],
      );
      return true;
    });
    const throttled = awsError(CloudWatchLogsServiceException, 'ThrottlingException', { message: 'Rate exceeded' });
    logsMock.on(GetLogEventsCommand).rejects(throttled);
    await assert.rejects(
      new CloudWatchJobLogs(client, GROUP).read(job, { after: 'f/1' }),
      (error) => error === throttled,
    );
  });
});
