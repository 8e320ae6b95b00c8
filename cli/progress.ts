/**
 * `flare job wait` and `job create --wait`: poll the job and print one line
 * per change (state with its reason, queue position, time to expiry while it
 * runs); `flare job logs --follow`: poll the output with its cursor until the
 * job has ended and its last lines are printed.
 */
import { pathOf, type ApiClient } from './client.js';
import type { Context } from './context.js';
import { CliError, ExitCode } from './errors.js';
import { clock, duration, oneLine } from './output.js';
import { isTerminal, QUEUED_STATES, type JobView, type LogsView } from './views.js';

/** How `wait` ends for each terminal state. */
export const OUTCOME_EXIT_CODES: Record<string, number> = {
  SUCCEEDED: ExitCode.OK,
  FAILED: ExitCode.JOB_FAILED,
  EXPIRED: ExitCode.JOB_EXPIRED,
  CANCELLED: ExitCode.JOB_CANCELLED,
};

export const WAIT_EXIT_CODES = `exit codes:
  0  the job SUCCEEDED
  ${ExitCode.JOB_FAILED}  the job FAILED (non-zero exit, launch failure, instance lost)
  ${ExitCode.JOB_EXPIRED}  the job EXPIRED (its live timeout was reached)
  ${ExitCode.JOB_CANCELLED}  the job was CANCELLED
  1  API error   2  usage error   3  job not found   4  not authorized`;

/** Lines of output shown under a job that ended FAILED or EXPIRED, to say why without another command. */
export const FAILURE_TAIL_LINES = 20;

/** Consecutive failed polls (network, 5xx) tolerated before giving up. */
const MAX_POLL_FAILURES = 5;
/** A follow read with this many lines or more is read on without sleeping. */
const BUSY_LINES = 1000;

/** What changed since the last look at a job, as lines for people. */
export class JobProgress {
  private last?: JobView;
  private lastMark?: string;

  update(job: JobView, now: Date): string[] {
    const previous = this.last;
    this.last = job;
    let line: string | undefined;
    if (!previous || previous.state !== job.state) {
      line = stateLine(job, now);
    } else if (
      QUEUED_STATES.includes(job.state) &&
      (previous.queuePosition !== job.queuePosition || previous.stateReason !== job.stateReason)
    ) {
      line = stateLine(job, now);
    } else if (job.expiresAt && previous.expiresAt !== job.expiresAt) {
      line = `${job.state}  live timeout changed: ${expiry(job, now)}`;
    } else if (job.state === 'RUNNING' && job.expiresAt && expiryMark(job, now) !== this.lastMark) {
      line = `${job.state}  ${duration(Date.parse(job.expiresAt) - now.getTime())} left`;
    }
    this.lastMark = expiryMark(job, now);
    return line ? [`${clock(now)} ${oneLine(line)}`] : [];
  }
}

function stateLine(job: JobView, now: Date): string {
  const details: string[] = [];
  if (QUEUED_STATES.includes(job.state)) {
    const reason = job.stateReason ?? (job.state === 'PENDING' ? 'not evaluated yet' : undefined);
    if (job.queuePosition !== undefined) details.push(`${queuePlace(job.queuePosition)}${reason ? `: ${reason}` : ''}`);
    else if (reason) details.push(reason);
  } else {
    if (job.stateReason) details.push(job.stateReason);
    if (job.state === 'RUNNING' && job.expiresAt) details.push(expiry(job, now));
  }
  return [job.state, ...details].join('  ');
}

/** `queuePosition` counts the older queued jobs of the pool: 0 is the head. */
export function queuePlace(queuePosition: number): string {
  return `#${queuePosition + 1} in queue`;
}

function expiry(job: JobView, now: Date): string {
  const at = new Date(job.expiresAt!);
  return `expires ${clock(at)} (${duration(at.getTime() - now.getTime())} left)`;
}

/**
 * Time left, coarsely: a new line each 15 minutes while more than an hour is
 * left, then each 5 minutes, each minute, and each 10 seconds in the last one.
 */
function expiryMark(job: JobView, now: Date): string | undefined {
  if (job.state !== 'RUNNING' || !job.expiresAt) return undefined;
  const left = Date.parse(job.expiresAt) - now.getTime();
  const step = left >= 3_600_000 ? 900_000 : left >= 600_000 ? 300_000 : left >= 60_000 ? 60_000 : 10_000;
  return `${job.expiresAt}/${step}/${Math.floor(left / step)}`;
}

/** Poll until the job is terminal, printing its progress through `emit`. */
export async function waitForJob(
  ctx: Context,
  client: ApiClient,
  id: string,
  intervalMs: number,
  emit: (line: string) => void,
): Promise<JobView> {
  const progress = new JobProgress();
  const poll = retrying(ctx, intervalMs);
  for (;;) {
    const job = await poll(() => client.get<JobView>(pathOf('/v1/jobs', id)));
    for (const line of progress.update(job, ctx.io.now())) emit(line);
    if (isTerminal(job.state)) return job;
    await ctx.io.sleep(intervalMs);
  }
}

/**
 * Under a job that ended FAILED or EXPIRED: its last lines of output, through
 * `emit` (stderr with --output json). A failed read is said, never fatal: the
 * exit code is the job's outcome.
 */
export async function printFailureTail(client: ApiClient, job: JobView, emit: (line: string) => void): Promise<void> {
  if (job.state !== 'FAILED' && job.state !== 'EXPIRED') return;
  let read: LogsView;
  try {
    read = await client.get<LogsView>(pathOf('/v1/jobs', job.id, 'logs'), { tail: FAILURE_TAIL_LINES });
  } catch (error) {
    emit(`(its output could not be read: ${error instanceof Error ? error.message : String(error)})`);
    return;
  }
  if (!read.lines.length) {
    emit('(the job wrote no output)');
    return;
  }
  emit(`last ${read.lines.length} line(s) of output (all of it: flare job logs ${job.id}):`);
  for (const line of read.lines) emit(`  ${line.message}`);
}

/**
 * Print a job's output: the last `tail` lines (the API's default without it),
 * then, following, what comes next until the job is terminal and nothing is left.
 */
export async function printLogs(
  ctx: Context,
  client: ApiClient,
  id: string,
  options: { tail?: number; follow: boolean; intervalMs: number; timestamps: boolean },
): Promise<void> {
  const logsPath = pathOf('/v1/jobs', id, 'logs');
  const first = await client.get<LogsView>(logsPath, { tail: options.tail });
  if (!options.follow) {
    if (ctx.json) ctx.printJson(first);
    else writeLines(ctx, first, options.timestamps);
    return;
  }
  const emit = (read: LogsView) => {
    if (ctx.json) for (const line of read.lines) ctx.print(JSON.stringify(line));
    else writeLines(ctx, read, options.timestamps);
  };
  emit(first);
  let cursor = first.nextToken;
  if (cursor === undefined)
    throw new CliError(`the API at ${client.baseUrl} cannot follow output (its logs answer has no nextToken)`);
  const poll = retrying(ctx, options.intervalMs);
  for (;;) {
    // The state first: once it is terminal, the output read after it is complete.
    const job = await poll(() => client.get<JobView>(pathOf('/v1/jobs', id)));
    const read = await poll(() => client.get<LogsView>(logsPath, { nextToken: cursor }));
    emit(read);
    const moved = read.nextToken !== undefined && read.nextToken !== cursor;
    cursor = read.nextToken ?? cursor;
    if (isTerminal(job.state)) {
      if (!moved) return;
      continue; // the job has ended: read what is left at once
    }
    if (moved && read.lines.length >= BUSY_LINES) continue; // a busy job: catch up before sleeping
    await ctx.io.sleep(options.intervalMs);
  }
}

function writeLines(ctx: Context, read: LogsView, timestamps: boolean): void {
  if (!read.lines.length) return;
  ctx.io.stdout(read.lines.map((l) => `${timestamps && l.at ? `${l.at} ` : ''}${l.message}\n`).join(''));
}

/** A poll that rides out a few transient failures (network, 5xx, 429), saying so on stderr. */
function retrying(ctx: Context, intervalMs: number) {
  let failures = 0;
  return async <T>(call: () => Promise<T>): Promise<T> => {
    for (;;) {
      try {
        const result = await call();
        failures = 0;
        return result;
      } catch (error) {
        if (!(error instanceof CliError) || !error.retryable || ++failures >= MAX_POLL_FAILURES) throw error;
        ctx.io.stderr(`flare: ${error.message} (retrying)\n`);
        await ctx.io.sleep(intervalMs);
      }
    }
  };
}
