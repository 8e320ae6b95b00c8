import {
  GetLogEventsCommand,
  type CloudWatchLogsClient,
  type GetLogEventsCommandInput,
  type OutputLogEvent,
} from '@aws-sdk/client-cloudwatch-logs';
import { FlareError, ValidationError } from '../core/errors.js';
import type { Job } from '../core/job.js';
import type { JobLogs, LogLine, LogsRead, ReadLogsOptions } from '../ports/job-logs.js';

/** The deployment collects no container output (no log group configured). */
export class JobLogsUnavailable extends FlareError {}

export interface CloudWatchJobLogsOptions {
  /**
   * Stop collecting once the messages add up to this many bytes; older lines are
   * left out. Keeps the API answer under Lambda's 6 MB response limit.
   * @default 4 MiB
   */
  readonly maxBytes?: number;
  /** GetLogEvents calls per read, at most: the service may answer with empty pages. @default 50 */
  readonly maxRequests?: number;
  /** Lines returned at most by one read after a cursor. @default 10000 */
  readonly maxLines?: number;
}

/** GetLogEvents returns at most this many events per call... */
const PAGE_LIMIT = 10_000;
/** ...and at most this many bytes. */
const PAGE_BYTES = 1024 * 1024;
/** The cursor of a stream that does not exist yet: a read after it starts at the stream's head. */
export const STREAM_HEAD = 'head';

/**
 * Container output on AWS: the awslogs driver writes each job to the stream
 * named by its id in the job log group (see Ec2SsmCompute). The tail is read
 * from the end of the stream backwards, one page at a time, only as far as
 * needed. A stream that does not exist yet (the container has not started or
 * printed nothing) is no lines.
 *
 * The cursor (`nextToken`) is the service's own nextForwardToken: a tail read
 * hands out the one of its newest page, a read after a cursor walks forward
 * from it and hands out the one of its last page, which GetLogEvents gives back
 * unchanged at the end of the stream. Pages are taken whole (a forward token
 * covers its whole page), so another page is asked for only while one more
 * would still fit in maxBytes.
 */
export class CloudWatchJobLogs implements JobLogs {
  private readonly maxBytes: number;
  private readonly maxRequests: number;
  private readonly maxLines: number;

  constructor(
    private readonly client: CloudWatchLogsClient,
    /** Undefined when the deployment sets no LOG_GROUP_NAME: reads then fail with JobLogsUnavailable. */
    private readonly logGroupName: string | undefined,
    options: CloudWatchJobLogsOptions = {},
  ) {
    this.maxBytes = options.maxBytes ?? 4 * 1024 * 1024;
    this.maxRequests = options.maxRequests ?? 50;
    this.maxLines = options.maxLines ?? PAGE_LIMIT;
    if (!(this.maxBytes > 0))
      throw new RangeError(`CloudWatchJobLogs: maxBytes must be positive, got ${options.maxBytes}`);
    if (!Number.isInteger(this.maxRequests) || this.maxRequests < 1)
      throw new RangeError(`CloudWatchJobLogs: maxRequests must be a whole number >= 1, got ${options.maxRequests}`);
    if (!Number.isInteger(this.maxLines) || this.maxLines < 1)
      throw new RangeError(`CloudWatchJobLogs: maxLines must be a whole number >= 1, got ${options.maxLines}`);
  }

  async read(job: Job, options: ReadLogsOptions): Promise<LogsRead> {
    if (!this.logGroupName)
      throw new JobLogsUnavailable('container output is not collected: the deployment sets no LOG_GROUP_NAME');
    return options.after === undefined
      ? this.readTail(this.logGroupName, job, options.tail)
      : this.readAfter(this.logGroupName, job, options.after);
  }

  private async readTail(logGroupName: string, job: Job, tail: number | undefined): Promise<LogsRead> {
    const wanted = tail ?? Number.POSITIVE_INFINITY;
    // Pages come newest first; each page is itself oldest first.
    const pages: OutputLogEvent[][] = [];
    let count = 0;
    let bytes = 0;
    let token: string | undefined;
    // Where the newest page ends: a follower goes on from there.
    let forward = STREAM_HEAD;
    for (let request = 0; request < this.maxRequests && count < wanted; request++) {
      const remaining = wanted - count;
      const input: GetLogEventsCommandInput = {
        logGroupName,
        logStreamName: job.id,
        startFromHead: false,
        ...(Number.isFinite(remaining) ? { limit: Math.min(remaining, PAGE_LIMIT) } : {}),
        ...(token ? { nextToken: token } : {}),
      };
      let page;
      try {
        page = await this.client.send(new GetLogEventsCommand(input));
      } catch (error) {
        if ((error as { name?: string }).name === 'ResourceNotFoundException') break; // no stream yet: nothing written
        throw error;
      }
      if (request === 0 && page.nextForwardToken) forward = page.nextForwardToken;

      const kept: OutputLogEvent[] = [];
      let full = false;
      for (const event of (page.events ?? []).slice(-remaining).reverse()) {
        const size = Buffer.byteLength(event.message ?? '', 'utf8');
        if (bytes + size > this.maxBytes && count + kept.length > 0) {
          full = true;
          break;
        }
        bytes += size;
        kept.push(event);
      }
      pages.push(kept.reverse());
      count += kept.length;
      if (full) break;

      // The backward token comes back unchanged at the start of the stream.
      const next = page.nextBackwardToken;
      if (!next || next === token) break;
      token = next;
    }
    return { lines: pages.reverse().flat().map(toLine), nextToken: forward };
  }

  private async readAfter(logGroupName: string, job: Job, after: string): Promise<LogsRead> {
    const events: OutputLogEvent[] = [];
    let bytes = 0;
    let token = after === STREAM_HEAD ? undefined : after;
    for (let request = 0; request < this.maxRequests && events.length < this.maxLines; request++) {
      const input: GetLogEventsCommandInput = {
        logGroupName,
        logStreamName: job.id,
        startFromHead: true, // required with a forward token
        limit: Math.min(PAGE_LIMIT, this.maxLines - events.length),
        ...(token ? { nextToken: token } : {}),
      };
      let page;
      try {
        page = await this.client.send(new GetLogEventsCommand(input));
      } catch (error) {
        const name = (error as { name?: string }).name;
        if (name === 'ResourceNotFoundException') break; // no stream yet: still at its head
        if (token && name === 'InvalidParameterException') {
          throw new ValidationError([{ field: 'nextToken', reason: "is not a position in this job's output" }]);
        }
        throw error;
      }
      for (const event of page.events ?? []) {
        events.push(event);
        bytes += Buffer.byteLength(event.message ?? '', 'utf8');
      }
      const next = page.nextForwardToken;
      if (!next || next === token) break; // the end of the stream
      token = next;
      if (events.length > 0 && bytes + PAGE_BYTES > this.maxBytes) break;
    }
    return { lines: events.map(toLine), nextToken: token ?? after };
  }
}

function toLine(event: OutputLogEvent): LogLine {
  return {
    ...(event.timestamp !== undefined ? { at: new Date(event.timestamp).toISOString() } : {}),
    message: event.message ?? '',
  };
}
