/**
 * Reading a job's container output (`GET /v1/jobs/{id}/logs`). Where the output
 * lives is the JobLogs adapter's business; who may read it is decided here.
 */
import type { Deps } from './deps.js';
import { isTerminal } from './job.js';
import { JobNotFound } from './errors.js';
import { canAccessProject, type Identity } from './identity.js';
import type { JobLogsQuery } from './job-schemas.js';
import { maskableValues, maskLine } from './secrets.js';
import type { LogLine } from '../ports/job-logs.js';

export const DEFAULT_LOG_TAIL = 1000;

/**
 * The response body of `GET /v1/jobs/{id}/logs?tail=N` and `?nextToken=T`:
 *
 *   { "jobId": "…", "lines": [{ "at": "2025-02-03T10:00:00.000Z", "message": "epoch 1 …" }, …], "nextToken": "…" }
 *
 * Without nextToken, `lines` are the last `tail` lines of output (default 1000,
 * at most 10000), oldest first. With nextToken (from an earlier answer), they
 * are the lines written after it, oldest first, as many as fit in one answer.
 * Either way `nextToken` says where these lines end: asking again with it
 * returns only what came next, so a client follows a job's output by polling
 * with each answer's nextToken until the job is terminal and an answer brings
 * no lines. While the job runs, a follow read holds back a last line without
 * its newline until it is complete. `at` is present when the source records
 * when a line was written (CloudWatch Logs does, the local log file does not).
 * A job that has produced nothing yet, or never ran, has `lines: []`. An
 * adapter may return fewer lines than asked when they would not fit in one
 * response. The values of the job's secrets read as `***` (core/secrets.ts).
 */
export interface JobLogsView {
  jobId: string;
  lines: LogLine[];
  nextToken?: string;
}

export async function readJobLogs(
  deps: Deps,
  identity: Identity,
  id: string,
  query: JobLogsQuery,
): Promise<JobLogsView> {
  const job = await deps.jobs.getJob(id);
  // Same rule as getJob: another project's job does not exist for the caller.
  if (!job || !canAccessProject(identity, job.project)) throw new JobNotFound(id);
  // Read after the job state: a job seen terminal here has written its last byte.
  const ended = isTerminal(job.state);
  const read =
    query.nextToken === undefined
      ? await deps.logs.read(job, { tail: query.tail ?? DEFAULT_LOG_TAIL, ended })
      : await deps.logs.read(job, { after: query.nextToken, ended });
  // A job's secret values never leave through the API, whatever the job printed.
  const secrets = await maskableValues(deps, job);
  const lines =
    secrets.length === 0 ? read.lines : read.lines.map((l) => ({ ...l, message: maskLine(l.message, secrets) }));
  return { jobId: job.id, lines, ...(read.nextToken === undefined ? {} : { nextToken: read.nextToken }) };
}
