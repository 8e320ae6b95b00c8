/**
 * The outbox on AWS: a Lambda on the jobs table's DynamoDB stream
 * (NEW_AND_OLD_IMAGES, ReportBatchItemFailures). Every stored state change
 * becomes a `Job State Change` on the bus, at least once and in stream order,
 * whatever happened to the writer after its write.
 *
 * Publishing stops at the first event EventBridge does not take; the answer
 * names that record's sequence number, so the stream checkpoints before it and
 * retries from there (records after it may be published twice: consumers
 * deduplicate on `eventId`).
 */
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import middy from '@middy/core';
import type { DynamoDBBatchResponse } from 'aws-lambda';
import { z } from 'zod';
import { fromItem } from '../../adapters/dynamo/items.js';
import { type EventBridgePublisher, EventsNotPublished } from '../../adapters/eventbridge-publisher.js';
import type { Logger } from '../../core/deps.js';
import { stateChangesBetween } from '../../core/events.js';
import { parse } from '../../core/schemas.js';
import type { JobStateChange } from '../../ports/events.js';
import { awsStreamPublisherDeps } from '../aws-events.js';
import { observed, STREAM_PUBLISHER_SERVICE } from '../aws-observability.js';

const Image = z.record(z.string(), z.unknown());
/** The parts of a DynamoDB stream event this Lambda reads. */
export const JobsStreamEvent = z.object({
  Records: z.array(
    z.object({
      eventName: z.enum(['INSERT', 'MODIFY', 'REMOVE']),
      dynamodb: z.object({
        SequenceNumber: z.string().min(1),
        /** Seconds since the epoch. */
        ApproximateCreationDateTime: z.number().optional(),
        OldImage: Image.optional(),
        NewImage: Image.optional(),
      }),
    }),
  ),
});
export type JobsStreamEvent = z.infer<typeof JobsStreamEvent>;

export interface StreamPublisherDeps {
  publisher: Pick<EventBridgePublisher, 'publishStateChanges'>;
  log: Logger;
  now(): Date;
}

export async function publishJobChanges(deps: StreamPublisherDeps, raw: unknown): Promise<DynamoDBBatchResponse> {
  const { Records } = parse(JobsStreamEvent, raw, 'event');
  // A record may say two changes (a job stored admitted: submitted, then admitted); a retry from it says both again.
  const pending = Records.flatMap((record) =>
    changesOf(record, deps.now).map((change) => ({ sequenceNumber: record.dynamodb.SequenceNumber, change })),
  );
  try {
    await deps.publisher.publishStateChanges(pending.map((p) => p.change));
    return { batchItemFailures: [] };
  } catch (error) {
    if (!(error instanceof EventsNotPublished)) throw error;
    const first = pending[error.published]!;
    deps.log.error('job state changes not published; the stream retries from the first', {
      sequenceNumber: first.sequenceNumber,
      jobId: first.change.jobId,
      published: error.published,
      total: pending.length,
      error: error.message,
    });
    return { batchItemFailures: [{ itemIdentifier: first.sequenceNumber }] };
  }
}

/** The state changes a record stores: a removed job or a write that kept the state announces nothing. */
function changesOf(record: JobsStreamEvent['Records'][number], now: () => Date): JobStateChange[] {
  if (record.eventName === 'REMOVE') return [];
  const { OldImage, NewImage, ApproximateCreationDateTime } = record.dynamodb;
  const at = ApproximateCreationDateTime === undefined ? now() : new Date(ApproximateCreationDateTime * 1000);
  return stateChangesBetween(OldImage && jobOf(OldImage), NewImage && jobOf(NewImage), at.toISOString());
}

/** A stream image is the item in DynamoDB JSON; the store's own conversion drops its index attributes. */
function jobOf(image: Record<string, unknown>) {
  return fromItem(unmarshall(image as Record<string, AttributeValue>));
}

export function createStreamPublisherHandler(deps: () => StreamPublisherDeps) {
  return middy<unknown, DynamoDBBatchResponse>().handler((event) => publishJobChanges(deps(), event));
}

export const handler = observed(createStreamPublisherHandler(awsStreamPublisherDeps), {
  service: STREAM_PUBLISHER_SERVICE,
});
