import type { Job } from '../core/job.js';

export interface LogLine {
  /** ISO 8601 UTC, when the source records it. */
  at?: string;
  message: string;
}

export interface ReadLogsOptions {
  /** The last N lines only. */
  tail?: number;
}

/**
 * A job's container output: its CloudWatch Logs stream on AWS, its log file on
 * this machine. A job that has produced nothing yet has no lines, not an error.
 */
export interface JobLogs {
  read(job: Job, options: ReadLogsOptions): Promise<{ lines: LogLine[] }>;
}
