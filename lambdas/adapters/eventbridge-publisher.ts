import { PutEventsCommand, type EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { EVENT_SOURCE, JOB_STATE_CHANGE, type EventPublisher, type JobStateChange } from '../ports/events.js';

export class EventBridgePublisher implements EventPublisher {
  constructor(
    private readonly events: EventBridgeClient,
    private readonly busName: string,
  ) {}

  async publish(event: JobStateChange): Promise<void> {
    const result = await this.events.send(
      new PutEventsCommand({
        Entries: [{ EventBusName: this.busName, Source: EVENT_SOURCE, DetailType: JOB_STATE_CHANGE, Detail: JSON.stringify(event), Time: new Date(event.at) }],
      }),
    );
    if (result.FailedEntryCount) {
      throw new Error(`EventBridge refused the event: ${result.Entries?.[0]?.ErrorCode} ${result.Entries?.[0]?.ErrorMessage}`);
    }
  }
}
