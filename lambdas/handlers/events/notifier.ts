/**
 * The chat notifier on AWS: the target of an SQS queue that EventBridge rules
 * feed (ReportBatchItemFailures; the queue's redrive policy moves a message to
 * the DLQ after a few receives). Each message is `{ channel, event }`, `event`
 * being the whole EventBridge event of a job state change.
 *
 * Per message: re-check the channel's route, claim the delivery in the
 * idempotency table, read the webhook URL from Secrets Manager, post, mark
 * sent. A message that could not be posted is reported in `batchItemFailures`
 * so SQS delivers it again; one that is already sent, or that the channel's
 * route does not take, is done.
 */
import middy from '@middy/core';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { z } from 'zod';
import type { WebhookPoster } from '../../adapters/webhook-notifier.js';
import type { Logger } from '../../core/deps.js';
import { FlareError } from '../../core/errors.js';
import { JOB_STATES } from '../../core/job.js';
import { deliveryKey, notifyChannel, type DeliveryLedger } from '../../core/notification.js';
import { type NotifyChannelSpec, parse } from '../../core/schemas.js';
import { EVENT_SOURCE, JOB_STATE_CHANGE, type JobStateChange } from '../../ports/events.js';
import { awsNotifierDeps } from '../aws-deps.js';
import { NOTIFIER_SERVICE, observed } from '../aws-observability.js';

const JobStateChangeDetail = z.object({
  eventId: z.string().min(1),
  jobId: z.string().min(1),
  name: z.string(),
  project: z.string(),
  owner: z.string(),
  pool: z.string(),
  gpus: z.number(),
  previousState: z.enum(JOB_STATES).nullable(),
  state: z.enum(JOB_STATES),
  stateReason: z.string().optional(),
  at: z.string(),
}) satisfies z.ZodType<JobStateChange>;

/** One SQS message body: the channel a rule picked and the EventBridge event it matched. */
export const NotifyMessage = z.object({
  channel: z.string().min(1),
  event: z.object({
    source: z.literal(EVENT_SOURCE),
    'detail-type': z.literal(JOB_STATE_CHANGE),
    detail: JobStateChangeDetail,
  }),
});

/** A rule names a channel this notifier was not configured with: a deployment mismatch, for the DLQ. */
export class UnknownChannel extends FlareError {
  constructor(readonly channel: string) {
    super(`channel '${channel}' is not in NOTIFY_CHANNELS`);
  }
}

export interface NotifierDeps {
  channels: readonly NotifyChannelSpec[];
  ledger: DeliveryLedger;
  webhooks: { urlFor(secretArn: string): Promise<string> };
  poster: Pick<WebhookPoster, 'post'>;
  log: Logger;
}

export async function notifyRecords(deps: NotifierDeps, records: readonly SQSRecord[]): Promise<SQSBatchResponse> {
  // Copies of one delivery in one batch go one after the other, so the second finds the first's mark instead of its claim.
  const queues = new Map<string, SQSRecord[]>();
  for (const record of records) {
    const key = keyOf(record) ?? record.messageId;
    queues.set(key, [...(queues.get(key) ?? []), record]);
  }
  const failed: string[] = [];
  await Promise.all(
    [...queues.values()].map(async (queue) => {
      for (const record of queue) if (!(await notifyRecord(deps, record))) failed.push(record.messageId);
    }),
  );
  const order = records.map((r) => r.messageId);
  return {
    batchItemFailures: failed
      .sort((a, b) => order.indexOf(a) - order.indexOf(b))
      .map((itemIdentifier) => ({ itemIdentifier })),
  };
}

/** True when the message is done with (posted, already sent, or not for this channel). */
async function notifyRecord(deps: NotifierDeps, record: SQSRecord): Promise<boolean> {
  const context: Record<string, unknown> = { messageId: record.messageId };
  try {
    const message = parse(NotifyMessage, parseJson(record.body), 'body');
    const event = message.event.detail;
    Object.assign(context, {
      channel: message.channel,
      jobId: event.jobId,
      state: event.state,
      eventId: event.eventId,
    });
    const channel = deps.channels.find((c) => c.id === message.channel);
    if (!channel) throw new UnknownChannel(message.channel);
    const post = async (c: NotifyChannelSpec, e: JobStateChange) =>
      deps.poster.post({ type: c.type, url: await deps.webhooks.urlFor(c.secretArn) }, e);
    const outcome = await notifyChannel({ ledger: deps.ledger, post, log: deps.log }, channel, event);
    if (outcome === 'in-flight') {
      deps.log.warn('notification in flight elsewhere; retried later', context);
      return false;
    }
    deps.log.info('notification', { ...context, outcome });
    return true;
  } catch (error) {
    deps.log.error('notification failed; SQS retries it', {
      ...context,
      error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
    });
    return false;
  }
}

function keyOf(record: SQSRecord): string | undefined {
  const message = NotifyMessage.safeParse(parseJson(record.body));
  return message.success ? deliveryKey(message.data.channel, message.data.event.detail) : undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export function createNotifierHandler(deps: () => NotifierDeps) {
  return middy<SQSEvent, SQSBatchResponse>().handler((event) => notifyRecords(deps(), event.Records));
}

export const handler = observed(createNotifierHandler(awsNotifierDeps), { service: NOTIFIER_SERVICE });
