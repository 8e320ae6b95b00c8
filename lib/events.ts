/**
 * The EventBridge bus every job state change is published to (source
 * `flare`, detail-type `Job State Change`; see docs/concepts.md), named after the
 * stack (`<stack name>-events`). Rules for the chat notifier subscribe here.
 */
import { Stack } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import type * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

export interface FlareEventsProps {
  /**
   * Bus names are unique per account and region, and so are stack names:
   * the default lets several Flare stacks live side by side.
   * @default '<stack name>-events'
   */
  readonly busName?: string;
}

export class FlareEvents extends Construct {
  public readonly bus: events.EventBus;

  constructor(scope: Construct, id: string, props: FlareEventsProps = {}) {
    super(scope, id);
    const busName = props.busName ?? `${Stack.of(this).stackName}-events`;
    if (!/^[A-Za-z0-9._-]{1,256}$/.test(busName) || busName === 'default') {
      throw new Error(
        `${this.node.path}: busName must be 1-256 letters, digits, '.', '_' or '-' and not 'default', got '${busName}'`,
      );
    }
    this.bus = new events.EventBus(this, 'Bus', { eventBusName: busName, description: 'Flare job state changes' });
  }

  /** `events:PutEvents` on this bus only. */
  public grantPublish(grantee: iam.IGrantable): iam.Grant {
    return this.bus.grantPutEventsTo(grantee);
  }

  public environment(): Record<string, string> {
    return { EVENT_BUS_NAME: this.bus.eventBusName };
  }
}
