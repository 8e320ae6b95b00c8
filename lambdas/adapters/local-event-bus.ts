/**
 * The local stand-in for the EventBridge bus: fans each job state change (from
 * the jobs table's stream, lambdas/local/jobs-stream.ts) and each operator
 * event out to in-process subscribers (the webhooks, the log).
 * Publishing only hands the event over; what subscribers do with it (a slow
 * webhook) never holds up the control plane, and one subscriber's failure
 * touches no other.
 */
import type { Logger } from '../core/deps.js';
import type { EventPublisher, JobStateChange, OperatorEvent } from '../ports/events.js';

export type Subscriber = (event: JobStateChange) => void | Promise<void>;
export type OperatorSubscriber = (event: OperatorEvent) => void | Promise<void>;

export class LocalEventBus implements EventPublisher {
  private readonly subscribers = new Set<Subscriber>();
  private readonly operatorSubscribers = new Set<OperatorSubscriber>();
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly log: Logger) {}

  /** Job state changes. Returns a function that unsubscribes. */
  subscribe(subscriber: Subscriber): () => void {
    this.subscribers.add(subscriber);
    return () => this.subscribers.delete(subscriber);
  }

  /** Operator events (repairs, problems such as a vCPU limit). Returns a function that unsubscribes. */
  subscribeOperatorEvents(subscriber: OperatorSubscriber): () => void {
    this.operatorSubscribers.add(subscriber);
    return () => this.operatorSubscribers.delete(subscriber);
  }

  /** Resolves once every subscriber has been called; their work goes on in the background. */
  async publish(event: JobStateChange): Promise<void> {
    this.fanOut(this.subscribers, event, { jobId: event.jobId, state: event.state });
  }

  /** The stream publisher's call (handlers/events/stream-publisher.ts): each change in order, as EventBridge takes them. */
  async publishStateChanges(events: readonly JobStateChange[]): Promise<void> {
    for (const event of events) await this.publish(event);
  }

  /** Like publish, for operator events; core has already logged the event itself. */
  async publishOperatorEvent(event: OperatorEvent): Promise<void> {
    this.fanOut(this.operatorSubscribers, event, { kind: event.kind, subject: event.subject });
  }

  /** Resolves when no subscriber work is in flight, including work started while waiting. */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  private fanOut<E>(
    subscribers: ReadonlySet<(event: E) => void | Promise<void>>,
    event: E,
    about: Record<string, unknown>,
  ): void {
    for (const subscriber of subscribers) {
      // Each gets its own copy: one subscriber cannot change what the next one sees.
      const copy = structuredClone(event);
      let work: Promise<void>;
      try {
        work = Promise.resolve(subscriber(copy));
      } catch (error) {
        work = Promise.reject(error);
      }
      const tracked = work.then(
        () => undefined,
        (error: unknown) =>
          this.log.error('event subscriber failed', {
            ...about,
            error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
          }),
      );
      this.inFlight.add(tracked);
      void tracked.finally(() => this.inFlight.delete(tracked));
    }
  }
}
