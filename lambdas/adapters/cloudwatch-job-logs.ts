import { GetLogEventsCommand, type CloudWatchLogsClient, type GetLogEventsCommandInput, type OutputLogEvent } from '@aws-sdk/client-cloudwatch-logs';
import { FlareError } from '../core/errors.js';
import type { Job } from '../core/job.js';
import type { JobLogs, LogLine, ReadLogsOptions } from '../ports/job-logs.js';

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
}

/** GetLogEvents returns at most this many events per call. */
const PAGE_LIMIT = 10_000;

/**
 * Container output on AWS: the awslogs driver writes each job to the stream
 * named by its id in the job log group (see Ec2SsmCompute). The tail is read
 * from the end of the stream backwards, one page at a time, only as far as
 * needed. A stream that does not exist yet (the container has not started or
 * printed nothing) is no lines.
 */
export class CloudWatchJobLogs implements JobLogs {
  private readonly maxBytes: number;
  private readonly maxRequests: number;

  constructor(
    private readonly client: CloudWatchLogsClient,
    /** Undefined when the deployment sets no LOG_GROUP_NAME: reads then fail with JobLogsUnavailable. */
    private readonly logGroupName: string | undefined,
    options: CloudWatchJobLogsOptions = {},
  ) {
    this.maxBytes = options.maxBytes ?? 4 * 1024 * 1024;
    this.maxRequests = options.maxRequests ?? 50;
    if (!(this.maxBytes > 0)) throw new RangeError(`CloudWatchJobLogs: maxBytes must be positive, got ${options.maxBytes}`);
    if (!Number.isInteger(this.maxRequests) || this.maxRequests < 1) throw new RangeError(`CloudWatchJobLogs: maxRequests must be a whole number >= 1, got ${options.maxRequests}`);
  }

  async read(job: Job, options: ReadLogsOptions): Promise<{ lines: LogLine[] }> {
    if (!this.logGroupName) throw new JobLogsUnavailable('container output is not collected: the deployment sets no LOG_GROUP_NAME');
    const wanted = options.tail ?? Number.POSITIVE_INFINITY;
    // Pages come newest first; each page is itself oldest first.
    const pages: OutputLogEvent[][] = [];
    let count = 0;
    let bytes = 0;
    let token: string | undefined;
    for (let request = 0; request < this.maxRequests && count < wanted; request++) {
      const remaining = wanted - count;
      const input: GetLogEventsCommandInput = {
        logGroupName: this.logGroupName,
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
    return { lines: pages.reverse().flat().map(toLine) };
  }
}

function toLine(event: OutputLogEvent): LogLine {
  return {
    ...(event.timestamp !== undefined ? { at: new Date(event.timestamp).toISOString() } : {}),
    message: event.message ?? '',
  };
}
