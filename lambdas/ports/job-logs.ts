import type { Job } from '../core/job.js';

export interface LogLine {
  /** ISO 8601 UTC, when the source records it. */
  at?: string;
  message: string;
}

export interface ReadLogsOptions {
  /** The last N lines only. Ignored when `after` is given. */
  tail?: number;
  /**
   * A cursor from an earlier read (its `nextToken`): return the lines written
   * after it, oldest first, as many as fit in one answer. A cursor this source
   * did not hand out is a ValidationError naming `nextToken`.
   */
  after?: string;
  /**
   * The job can write no more (it is terminal). Until then a cursor read holds
   * back a last line without its newline, which may still be growing, so that a
   * follower never sees one line split in two.
   */
  ended?: boolean;
}

export interface LogsRead {
  lines: LogLine[];
  /**
   * Where the lines returned end: pass it back as `after` for what comes next.
   * Absent only from sources that cannot be followed.
   */
  nextToken?: string;
}

/**
 * A job's container output: its CloudWatch Logs stream on AWS, its log file on
 * this machine. A job that has produced nothing yet has no lines, not an error.
 */
export interface JobLogs {
  read(job: Job, options: ReadLogsOptions): Promise<LogsRead>;
}
