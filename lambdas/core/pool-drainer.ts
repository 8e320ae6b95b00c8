/**
 * One line of drain passes per pool in this process (admission.ts): a pass starts once the one before it has
 * ended. Two passes at once fight over the same head job and pool row, and every transaction one of them
 * loses is a DynamoDB write for nothing. Separate processes (Lambda instances) still race, safely: every
 * admission is a conditional transaction.
 */
import type { Job } from './job.js';

/** What a pass tells its callers; admission.ts's DrainResult. */
export interface PassResult {
  admitted: Job[];
  backfilled: string[];
}

type Pass<R extends PassResult> = () => Promise<R>;
/** A bounded pass: it stops once it has examined every job of `until`, the jobs of the submits sharing it. */
type Bounded<R extends PassResult> = (until: ReadonlySet<string>) => Promise<R>;

export class PoolDrainer<R extends PassResult> {
  /** Settles when the last pass in line has ended. */
  private tail: Promise<void> = Promise.resolve();
  /** A full pass in line that has not started: whoever asks for a drain before it starts shares it. */
  private queued?: Promise<R>;
  /** A bounded pass in line that has not started, and the jobs it goes as far as: a submit's joins it. */
  private bounded?: { run: Promise<R>; until: Set<string> };
  /** Callers waiting for their pass, each told what every pass admits until theirs ends. */
  private readonly watchers = new Set<(result: R) => void>();

  /** A full pass that starts after this call: the one in line not started yet, else a new one at the end of the line. */
  request(pass: Pass<R>): Promise<R> {
    return this.watched(() => {
      this.queued ??= this.enqueue(() => {
        this.queued = undefined;
        return pass();
      });
      return this.queued;
    });
  }

  /**
   * A submit's bounded pass, as far as the caller's job `until` in the queue. A full pass in line and not
   * started serves instead: it starts after this call and walks the queue from its head, as the caller's
   * would. Else a bounded pass in line and not started is shared: it goes as far as every sharer's job, each
   * stored before the pass reads its page. Else a new one at the end of the line.
   */
  exclusive(pass: Bounded<R>, until: string): Promise<R> {
    return this.watched(() => {
      if (this.queued) return this.queued;
      if (this.bounded) {
        this.bounded.until.add(until);
        return this.bounded.run;
      }
      const jobs = new Set([until]);
      const run = this.enqueue(() => {
        this.bounded = undefined;
        return pass(jobs);
      });
      this.bounded = { run, until: jobs };
      return run;
    });
  }

  /**
   * The caller's pass, with what every pass of the line admitted from the call until it ended: an earlier
   * pass may have admitted the caller's job, and the caller looks for it among the admitted.
   */
  private async watched(mine: () => Promise<R>): Promise<R> {
    const admitted: Job[] = [];
    const backfilled: string[] = [];
    const watch = (result: R) => {
      admitted.push(...result.admitted);
      backfilled.push(...result.backfilled);
    };
    this.watchers.add(watch);
    try {
      const result = await mine();
      return { ...result, admitted, backfilled };
    } finally {
      this.watchers.delete(watch);
    }
  }

  private enqueue(pass: Pass<R>): Promise<R> {
    const run = this.tail.then(async () => {
      const result = await pass();
      for (const watch of this.watchers) watch(result);
      return result;
    });
    this.tail = run.then(ignore, ignore);
    return run;
  }
}

function ignore(): void {}

/** Per plane (the queue port every caller in this process shares), per pool. */
const drainers = new WeakMap<object, Map<string, PoolDrainer<PassResult>>>();

export function drainerOf<R extends PassResult>(plane: object, pool: string): PoolDrainer<R> {
  let pools = drainers.get(plane);
  if (!pools) drainers.set(plane, (pools = new Map()));
  let drainer = pools.get(pool);
  if (!drainer) pools.set(pool, (drainer = new PoolDrainer()));
  return drainer as unknown as PoolDrainer<R>;
}
