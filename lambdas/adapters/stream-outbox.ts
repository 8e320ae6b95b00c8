import type { EventPublisher, JobStateChange, OperatorEvent } from '../ports/events.js';

/**
 * Job events on AWS: the jobs table's DynamoDB stream is the outbox. Every
 * state change is a write to the table, and the stream publisher Lambda
 * (handlers/events/stream-publisher.ts) turns each one into a `Job State
 * Change` event, retried until EventBridge takes it — so a Lambda that crashes
 * right after its write loses no event, and nothing is published twice by two
 * paths. Operator events are not table writes and go straight to the bus.
 */
export class StreamOutbox implements EventPublisher {
  constructor(private readonly operatorEvents: Pick<EventPublisher, 'publishOperatorEvent'>) {}

  async publish(_event: JobStateChange): Promise<void> {
    // Published from the stream record of the write that made this change.
  }

  publishOperatorEvent(event: OperatorEvent): Promise<void> {
    return this.operatorEvents.publishOperatorEvent(event);
  }
}
