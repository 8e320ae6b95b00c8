/**
 * The events EC2 and SSM put on the account's default bus, from the fake's
 * state: an instance state change for every state an instance moves to (our
 * own terminations included, as on AWS), and a command invocation status
 * change when a test says how a command ended. Built on the recorded fixtures
 * in test/fixtures/events.
 */
import { readFileSync } from 'node:fs';
import type { AwsFake, InvocationOutcome } from './aws-fake.js';
import { busEvent, type Delivery, type EventRouter } from './event-sources.js';
import { ARTIFACT_ACCOUNT, ARTIFACT_REGION } from './types.js';

const fixture = (name: string) =>
  JSON.parse(readFileSync(new URL(`../../fixtures/events/${name}`, import.meta.url), 'utf8')) as {
    source: string;
    'detail-type': string;
    detail: Record<string, unknown>;
  };
const instanceArn = (id: string) => `arn:aws:ec2:${ARTIFACT_REGION}:${ARTIFACT_ACCOUNT}:instance/${id}`;

export class ComputeEventSource {
  private readonly seen = new Map<string, string>();

  constructor(
    private readonly fake: AwsFake,
    private readonly router: EventRouter,
  ) {}

  /** Instance state changes since the last poll, each put on the default bus. */
  async poll(): Promise<number> {
    let moved = 0;
    for (const instance of this.fake.instances()) {
      if (this.seen.get(instance.instanceId) === instance.state) continue;
      this.seen.set(instance.instanceId, instance.state);
      await this.instanceState(instance.instanceId, instance.state);
      moved += 1;
    }
    return moved;
  }

  /** EC2's state-change event for one instance (also a late one, for an instance EC2 has forgotten since). */
  instanceState(instanceId: string, state: string): Promise<Delivery[]> {
    const template = fixture('aws-ec2-instance-terminated.json');
    return this.router.put(
      'default',
      busEvent({
        Source: template.source,
        DetailType: template['detail-type'],
        Detail: { 'instance-id': instanceId, state },
        Resources: [instanceArn(instanceId)],
      }),
    );
  }

  /** The agent reports how the command ended on one instance; SSM announces it on the default bus. */
  async finishCommand(commandId: string, instanceId: string, outcome: InvocationOutcome): Promise<Delivery[]> {
    const command = this.fake.commands().find((c) => c.commandId === commandId);
    if (!command) throw new Error(`no command ${commandId} was sent`);
    this.fake.setInvocation(commandId, instanceId, outcome);
    const template = fixture('aws-ssm-command-invocation-success.json');
    return this.router.put(
      'default',
      busEvent({
        Source: template.source,
        DetailType: template['detail-type'],
        Detail: {
          ...template.detail,
          'command-id': commandId,
          'document-name': command.documentName,
          'instance-id': instanceId,
          'requested-date-time': command.requestedAt.toISOString(),
          status: outcome.status,
        },
        Resources: [instanceArn(instanceId)],
        Time: outcome.endedAt ?? new Date(),
      }),
    );
  }
}
