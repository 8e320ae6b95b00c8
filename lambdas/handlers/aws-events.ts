/**
 * EventBridge on AWS: one client per process, for the Deps of aws-deps.ts and
 * for the stream publisher, whose deps are built here. Apart from aws-deps.ts
 * because that module imports @aws-sdk/lib-dynamodb (not `sideEffects: false`),
 * which would put a DynamoDB client into the stream publisher's bundle.
 */
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { EventBridgePublisher } from '../adapters/eventbridge-publisher.js';
import { readEnv, StreamPublisherEnv } from './aws-env.js';
import { awsLogger, STREAM_PUBLISHER_SERVICE } from './aws-observability.js';
import type { StreamPublisherDeps } from './events/stream-publisher.js';

let eventBridge: EventBridgeClient | undefined;
let streamPublisher: StreamPublisherDeps | undefined;

export function eventBridgeClient(): EventBridgeClient {
  return (eventBridge ??= new EventBridgeClient({}));
}

/** The stream publisher's: the bus that Job State Change events go to; built on the first call. */
export function awsStreamPublisherDeps(env: NodeJS.ProcessEnv = process.env): StreamPublisherDeps {
  if (streamPublisher) return streamPublisher;
  const { EVENT_BUS_NAME } = readEnv(StreamPublisherEnv, env);
  return (streamPublisher = {
    publisher: new EventBridgePublisher(eventBridgeClient(), EVENT_BUS_NAME),
    log: awsLogger(STREAM_PUBLISHER_SERVICE),
    now: () => new Date(),
  });
}
