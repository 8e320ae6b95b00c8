/**
 * How a control plane hears of the ends of the jobs it started: it watches each
 * job's directory for its exit record (and polls), takes the end the supervisor
 * tells when it could not write one, has a new supervisor adopt a job whose
 * supervisor died, and reports each end once through onExit or onLost, again
 * with backoff until the report is recorded.
 */
import { existsSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../core/deps.js';
import type { LocalComputeOptions } from '../local-compute.js';
import { readExit, type ExitRecord, type Supervision } from './jobs.js';
import type { SupervisorLink } from './link.js';

/** Reporting a job's end again after a failure: from this, doubling, up to the max. */
const REPORT_RETRY_MS = 250;
const REPORT_RETRY_MAX_MS = 30_000;

export interface JobEndsOptions extends Pick<LocalComputeOptions, 'onExit' | 'onLost'> {
  readonly link: SupervisorLink;
  readonly supervision: Supervision;
  readonly log: Logger;
  /** Fallback check of exit records and supervisor liveness, beside fs.watch. */
  readonly pollMs: number;
  /** The job's directory; throws for an id that cannot name one. */
  jobDir(jobId: string): string;
  /** True while the plane stops the job itself: its end is then no news. */
  stopping(jobId: string): boolean;
}

interface Watched {
  jobId: string;
  watcher?: FSWatcher;
  checking: boolean;
  /** A change came while a check ran: that check may have read before it, so check again after. */
  again?: boolean;
  /** Its end as the supervisor told it, when its exit record could not be written. */
  told?: ExitRecord;
  /** Reports of its end that failed so far; the next try waits until retryAt. */
  failures: number;
  retryAt?: number;
  retryTimer?: NodeJS.Timeout;
}

export class JobEnds {
  private readonly watched = new Map<string, Watched>();
  private readonly reported = new Set<string>();
  private poller: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: JobEndsOptions) {}

  /** The job's end as the supervisor told it, when its exit record could not be written. */
  toldOf(jobId: string): ExitRecord | undefined {
    return this.watched.get(jobId)?.told;
  }

  /** Stop watching every job, for good: ends that come later are for the next plane. */
  close(): void {
    this.closed = true;
    for (const id of [...this.watched.keys()]) this.unwatch(id);
  }

  /** Watch the job until its end is reported; again after its end was reported does nothing. */
  watch(jobId: string): void {
    if (this.closed || this.reported.has(jobId)) return;
    if (!this.watched.has(jobId)) {
      const entry: Watched = { jobId, checking: false, failures: 0 };
      try {
        entry.watcher = watch(this.options.jobDir(jobId), { persistent: false }, (_event, file) => {
          if (file === null || file === 'exit.json') void this.check(entry);
        });
        entry.watcher.on('error', (error) =>
          this.options.log.warn('watching a job directory failed; polling it', { jobId, error: String(error) }),
        );
      } catch (error) {
        this.options.log.warn('cannot watch a job directory; polling it', { jobId, error: String(error) });
      }
      this.watched.set(jobId, entry);
    }
    this.poller ??= setInterval(() => this.pollAll(), this.options.pollMs).unref();
    void this.check(this.watched.get(jobId)!);
  }

  /** Stop watching: the plane stops the job itself, or its end is reported. */
  unwatch(jobId: string): void {
    const entry = this.watched.get(jobId);
    if (!entry) return;
    entry.watcher?.close();
    clearTimeout(entry.retryTimer);
    this.watched.delete(jobId);
    if (this.watched.size === 0 && this.poller) {
      clearInterval(this.poller);
      this.poller = undefined;
    }
  }

  /** Look at every job now (its supervisor may have died) rather than at the next poll. */
  pollAll(): void {
    for (const entry of this.watched.values()) void this.check(entry);
  }

  private async check(entry: Watched): Promise<void> {
    if (this.watched.get(entry.jobId) !== entry) return;
    if (entry.checking) {
      entry.again = true;
      return;
    }
    if (entry.retryAt !== undefined && Date.now() < entry.retryAt) return; // backing off: its timer checks again
    entry.checking = true;
    entry.again = false;
    try {
      const dir = this.options.jobDir(entry.jobId);
      let record = entry.told ?? (await readExit(dir));
      if (!record) {
        if (await this.options.supervision.supervised(dir)) {
          if (!this.closed) await this.options.link.listen(); // a plane restarted since the job began hears of its end
          return;
        }
        if (!existsSync(join(dir, 'pid'))) return; // never started: nothing to wait for
        if (this.closed) return; // a check in flight when the plane let go: it starts no supervisor
        // Its supervisor is gone: a new one adopts the job (it runs on), or records how it ended.
        await this.options.link.request({ op: 'adopt', jobId: entry.jobId }, true);
        record = await readExit(dir);
        if (!record) return; // adopted: its end comes as a record
      }
      if (this.watched.get(entry.jobId) !== entry || this.options.stopping(entry.jobId)) return;
      await this.report(entry.jobId, record);
      // Recorded: from here on its end is the workflow's.
      if (entry.failures > 0)
        this.options.log.warn('recorded the end of a job after retrying', {
          jobId: entry.jobId,
          attempts: entry.failures + 1,
        });
      this.unwatch(entry.jobId);
      this.reported.add(entry.jobId);
    } catch (error) {
      this.retryLater(entry, error);
    } finally {
      entry.checking = false;
      // In finally: the early returns above must not skip it.
      if (entry.again) void this.check(entry);
    }
  }

  /** The supervisor could not write the job's exit record and told us its end instead: report it now. */
  told(jobId: string, record: ExitRecord): void {
    const entry = this.watched.get(jobId);
    if (!entry || entry.told) return;
    this.options.log.warn('the job supervisor could not record the end of a job; reporting what it told', { jobId });
    entry.told = record;
    entry.retryAt = undefined;
    clearTimeout(entry.retryTimer);
    void this.check(entry);
  }

  private async report(jobId: string, record: ExitRecord): Promise<void> {
    if (record.reason === 'lost') {
      this.options.log.warn('job lost', { jobId, reason: record.error });
      await this.options.onLost?.(jobId, record.error ?? 'its processes ended without an exit code', record.finishedAt);
      return;
    }
    this.options.log.info('job exited', {
      jobId,
      exitCode: record.exitCode,
      signal: record.signal,
      reason: record.reason,
    });
    await this.options.onExit(jobId, record.exitCode, record);
  }

  /** The end could not be recorded (the store is down, say): again after a backoff; logged on the 1st, 2nd, 4th, 8th... failure. */
  private retryLater(entry: Watched, error: unknown): void {
    entry.failures += 1;
    const delay = Math.min(REPORT_RETRY_MAX_MS, REPORT_RETRY_MS * 2 ** (entry.failures - 1));
    if ((entry.failures & (entry.failures - 1)) === 0) {
      this.options.log.error('recording the end of a job failed; retrying', {
        jobId: entry.jobId,
        attempt: entry.failures,
        retryInMs: delay,
        error: String(error),
      });
    }
    if (this.watched.get(entry.jobId) !== entry) return;
    entry.retryAt = Date.now() + delay;
    clearTimeout(entry.retryTimer);
    entry.retryTimer = setTimeout(() => {
      entry.retryAt = undefined;
      void this.check(entry);
    }, delay).unref();
  }
}
