/**
 * Chat messages for job state changes: Slack (and Slack-compatible hooks such as
 * Mattermost) and Microsoft Teams. Routing, de-duplication and formatting live
 * here, shared by the local webhooks and the AWS notifier; the HTTP post and
 * where the ledger lives are adapters' jobs.
 *
 * Job names, reasons, projects and owners are user text: they are escaped so a
 * job named `<!channel>` or `[click](http://…)` cannot ping a channel or
 * smuggle a link.
 */
import type { Logger } from './deps.js';
import type { JobState } from './job.js';
import type { JobStateChange } from '../ports/events.js';

export type ChatType = 'slack' | 'teams';

export interface NotificationRoute {
  /** Only these projects; absent: every project. */
  projects?: readonly string[];
  /** Only these states; absent: every state change. */
  states?: readonly JobState[];
}

/** The one routing rule, for the local webhooks and the AWS notifier alike: every filter given must match. */
export function matchesRoute(spec: NotificationRoute, event: JobStateChange): boolean {
  if (spec.projects && !spec.projects.includes(event.project)) return false;
  if (spec.states && !spec.states.includes(event.state)) return false;
  return true;
}

/** A chat target as delivery sees it; how its webhook URL is found is the poster's business. */
export interface NotificationChannel extends NotificationRoute {
  /** Stable per channel: deliveries are remembered under it. */
  id: string;
  type: ChatType;
}

/**
 * Which (channel, event) deliveries are done. Events arrive at least once (and
 * on AWS both from the stream and from the writer), so a delivery is claimed
 * before it is posted and marked sent after.
 */
export interface DeliveryLedger {
  /** `claimed`: post it now; `sent`: it was posted already; `busy`: another delivery of it is in flight. */
  claim(key: string): Promise<'claimed' | 'sent' | 'busy'>;
  markSent(key: string): Promise<void>;
  /** Gives up a claim after a failed post, so a redelivery may try again. */
  release(key: string): Promise<void>;
}

export type NotifyOutcome = 'posted' | 'not-routed' | 'already-sent' | 'in-flight';

export interface NotifyDeps<C extends NotificationChannel = NotificationChannel> {
  ledger: DeliveryLedger;
  /** One delivery (with whatever retries the poster does); throws when it failed. */
  post(channel: C, event: JobStateChange): Promise<void>;
  log: Logger;
}

/** The ledger key of one event on one channel. */
export function deliveryKey(channelId: string, event: Pick<JobStateChange, 'eventId'>): string {
  return `notify|${channelId}|${event.eventId}`;
}

/**
 * Posts `event` to `channel` if the channel's route takes it and nobody has
 * posted it there yet. A failed post throws, leaving the delivery unclaimed.
 */
export async function notifyChannel<C extends NotificationChannel>(
  deps: NotifyDeps<C>,
  channel: C,
  event: JobStateChange,
): Promise<NotifyOutcome> {
  if (!matchesRoute(channel, event)) return 'not-routed';
  const key = deliveryKey(channel.id, event);
  const claim = await deps.ledger.claim(key);
  if (claim === 'sent') return 'already-sent';
  if (claim === 'busy') return 'in-flight';
  try {
    await deps.post(channel, event);
  } catch (error) {
    await deps.ledger.release(key).catch((releaseError: unknown) =>
      deps.log.warn('delivery claim not released; it lapses on its own', {
        channel: channel.id,
        eventId: event.eventId,
        error: String(releaseError),
      }),
    );
    throw error;
  }
  await deps.ledger.markSent(key);
  return 'posted';
}

const EMOJI: Record<JobState, string> = {
  PENDING: ':inbox_tray:',
  WAITING: ':hourglass_flowing_sand:',
  LAUNCHING: ':rocket:',
  RUNNING: ':arrow_forward:',
  STOPPING: ':black_square_for_stop:',
  SUCCEEDED: ':white_check_mark:',
  FAILED: ':x:',
  EXPIRED: ':alarm_clock:',
  CANCELLED: ':no_entry_sign:',
};

/**
 * Slack mrkdwn control characters are `&`, `<` and `>` (mentions and links are
 * `<!channel>`, `<@U…>`, `<http://…|…>`); a zero-width space after `@` keeps
 * hooks that still expand a bare `@channel` (Mattermost) from doing so.
 */
export function escapeSlack(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/@/g, '@\u200b');
}

/** Teams renders a Markdown subset: backslash-escape what makes links, autolinks and emphasis. */
export function escapeTeams(text: string): string {
  return text.replace(/[\\`*_[\]()~<>]/g, (c) => `\\${c}`);
}

export interface SlackMessage {
  text: string;
  blocks: Array<Record<string, unknown>>;
}

export function formatSlack(event: JobStateChange): SlackMessage {
  const e = escapeSlack;
  const headline = `${EMOJI[event.state]} Job ${e(event.name)} is now *${event.state}*`;
  const promise = latestStartLine(event);
  const reason = (event.stateReason ? `\n${e(event.stateReason)}` : '') + (promise ? `\n${e(promise)}` : '');
  return {
    text: `${headline} (project ${e(event.project)})${reason}`,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `${headline}${reason}` } },
      {
        type: 'section',
        fields: [
          { type: 'mrkdwn', text: `*Project*\n${e(event.project)}` },
          { type: 'mrkdwn', text: `*Owner*\n${e(event.owner)}` },
          { type: 'mrkdwn', text: `*Pool*\n${e(event.pool)}` },
          { type: 'mrkdwn', text: `*GPUs*\n${event.gpus}` },
        ],
      },
      {
        type: 'context',
        elements: [
          {
            type: 'mrkdwn',
            text: `job ${e(event.jobId)} · ${event.previousState ?? 'new'} → ${event.state} · ${e(event.at)}`,
          },
        ],
      },
    ],
  };
}

/** A waiting job's promise, when its event carries one: `starts by 2024-05-01T10:32:00.000Z at the latest`. */
export function latestStartLine(event: Pick<JobStateChange, 'state' | 'latestStartAt'>): string | undefined {
  if (event.state !== 'WAITING' || !event.latestStartAt) return undefined;
  return `starts by ${event.latestStartAt} at the latest (if no running job is extended)`;
}

/** An Adaptive Card in the message envelope Teams incoming webhooks and Workflows accept. */
export function formatTeams(event: JobStateChange): Record<string, unknown> {
  const t = escapeTeams;
  const failed = event.state === 'FAILED' || event.state === 'EXPIRED';
  return {
    type: 'message',
    attachments: [
      {
        contentType: 'application/vnd.microsoft.card.adaptive',
        contentUrl: null,
        content: {
          $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
          type: 'AdaptiveCard',
          version: '1.4',
          body: [
            {
              type: 'TextBlock',
              size: 'Medium',
              weight: 'Bolder',
              wrap: true,
              text: `Job ${t(event.name)} is now ${event.state}`,
              ...(failed ? { color: 'Attention' } : {}),
            },
            ...(event.stateReason ? [{ type: 'TextBlock', wrap: true, text: t(event.stateReason) }] : []),
            ...(latestStartLine(event) ? [{ type: 'TextBlock', wrap: true, text: t(latestStartLine(event)!) }] : []),
            {
              type: 'FactSet',
              facts: [
                { title: 'Project', value: t(event.project) },
                { title: 'Owner', value: t(event.owner) },
                { title: 'Pool', value: t(event.pool) },
                { title: 'GPUs', value: String(event.gpus) },
                { title: 'Previous state', value: event.previousState ?? 'new' },
                { title: 'Job', value: t(event.jobId) },
                { title: 'At', value: t(event.at) },
              ],
            },
          ],
        },
      },
    ],
  };
}

export function formatNotification(type: ChatType, event: JobStateChange): unknown {
  return type === 'slack' ? formatSlack(event) : formatTeams(event);
}
