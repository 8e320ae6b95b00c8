/**
 * Flare's events on an EventBridge bus (source `flare`): job state changes and
 * operator events. PutEvents takes at most 10 entries and may refuse some of
 * them while accepting others, so every call checks each entry and says how far
 * it got.
 */
import { PutEventsCommand, type EventBridgeClient, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { FlareError } from '../core/errors.js';
import {
  EVENT_SOURCE,
  JOB_STATE_CHANGE,
  OPERATOR_EVENT,
  type EventPublisher,
  type JobStateChange,
  type OperatorEvent,
} from '../ports/events.js';

/** PutEvents' limit on entries per request. */
export const MAX_ENTRIES_PER_PUT = 10;

/** Not every event reached the bus: the first `published` of the `total` asked for did, in order; the rest may not have. */
export class EventsNotPublished extends FlareError {
  constructor(
    readonly published: number,
    readonly total: number,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`EventBridge took ${published} of ${total} events: ${detail}`, options);
  }
}

export class EventBridgePublisher implements EventPublisher {
  constructor(
    private readonly events: EventBridgeClient,
    private readonly busName: string,
  ) {}

  async publish(event: JobStateChange): Promise<void> {
    await this.publishStateChanges([event]);
  }

  async publishOperatorEvent(event: OperatorEvent): Promise<void> {
    await this.put([this.entry(OPERATOR_EVENT, event, event.at)]);
  }

  /**
   * Publishes in order, at most 10 per request, and stops at the first entry
   * that did not go through: throws EventsNotPublished, whose `published` is
   * how many leading events are on the bus.
   */
  async publishStateChanges(events: readonly JobStateChange[]): Promise<void> {
    await this.put(events.map((event) => this.entry(JOB_STATE_CHANGE, event, event.at)));
  }

  private entry(detailType: string, detail: JobStateChange | OperatorEvent, at: string): PutEventsRequestEntry {
    return {
      EventBusName: this.busName,
      Source: EVENT_SOURCE,
      DetailType: detailType,
      Detail: JSON.stringify(detail),
      Time: new Date(at),
    };
  }

  private async put(entries: readonly PutEventsRequestEntry[]): Promise<void> {
    for (let start = 0; start < entries.length; start += MAX_ENTRIES_PER_PUT) {
      const batch = entries.slice(start, start + MAX_ENTRIES_PER_PUT);
      let result;
      try {
        result = await this.events.send(new PutEventsCommand({ Entries: batch }));
      } catch (error) {
        throw new EventsNotPublished(
          start,
          entries.length,
          error instanceof Error ? `${error.name}: ${error.message}` : String(error),
          { cause: error },
        );
      }
      if (!result.FailedEntryCount) continue;
      // Result entries line up with request entries; failed ones carry an ErrorCode.
      const index = result.Entries?.findIndex((e) => e.ErrorCode) ?? -1;
      const failed = index >= 0 ? result.Entries![index] : undefined;
      throw new EventsNotPublished(
        start + Math.max(index, 0),
        entries.length,
        `${failed?.ErrorCode ?? 'unknown error'}: ${failed?.ErrorMessage ?? `${result.FailedEntryCount} entries failed`}`,
      );
    }
  }
}
