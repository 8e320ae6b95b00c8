/**
 * Chat webhooks (Slack-compatible or Teams): `WebhookPoster` makes the HTTP
 * post, used by the local `WebhookNotifier` and by the AWS notifier Lambda.
 * Webhook URLs are secrets: only their host is ever logged or put in an error.
 */
import type { Logger } from '../core/deps.js';
import { FlareError } from '../core/errors.js';
import {
  formatNotification,
  notifyChannel,
  type ChatType,
  type DeliveryLedger,
  type NotificationChannel,
} from '../core/notification.js';
import type { NotificationSpec } from '../core/schemas.js';
import type { JobStateChange } from '../ports/events.js';

export interface WebhookPosterOptions {
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Per attempt. @default 5000 */
  timeoutMs?: number;
  /** Retries after the first attempt, for 5xx, 429, timeouts and network errors. @default 3 */
  retries?: number;
  /** First backoff; doubles each retry. @default 250 */
  backoffMs?: number;
}

export interface WebhookNotifierOptions extends WebhookPosterOptions {
  /** Deliveries remembered for de-duplication. @default 10000 */
  dedupeSize?: number;
}

export interface WebhookTarget {
  type: ChatType;
  url: string;
}

/** One webhook post failed for good (after its retries); names the host only. */
export class WebhookPostFailed extends FlareError {
  constructor(
    readonly host: string,
    readonly detail: Record<string, unknown>,
  ) {
    super(
      `webhook post to ${host} failed: ${Object.entries(detail)
        .map(([k, v]) => `${k} ${String(v)}`)
        .join(', ')}`,
    );
  }
}

/** Some deliveries failed after their retries (each was logged with its host). */
export class WebhookDeliveryFailed extends FlareError {
  constructor(
    readonly failed: number,
    readonly attempted: number,
  ) {
    super(`${failed} of ${attempted} webhook deliveries failed`);
  }
}

type Attempt = { ok: true } | { ok: false; transient: boolean; detail: Record<string, unknown> };

export class WebhookPoster {
  private readonly fetch: typeof fetch;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoffMs: number;

  constructor(
    private readonly log: Logger,
    options: WebhookPosterOptions = {},
  ) {
    this.fetch = options.fetch ?? globalThis.fetch;
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.retries = options.retries ?? 3;
    this.backoffMs = options.backoffMs ?? 250;
  }

  /** Posts the event, formatted for the target's type; throws WebhookPostFailed when every attempt failed. */
  async post(target: WebhookTarget, event: JobStateChange): Promise<void> {
    const host = new URL(target.url).host;
    const body = JSON.stringify(formatNotification(target.type, event));
    for (let attempt = 1; ; attempt++) {
      const result = await this.attempt(target.url, body);
      if (result.ok) return;
      const context = { type: target.type, host, jobId: event.jobId, state: event.state, attempt, ...result.detail };
      if (!result.transient || attempt > this.retries) {
        this.log.error('webhook delivery failed', context);
        throw new WebhookPostFailed(host, result.detail);
      }
      this.log.warn('webhook delivery failed, retrying', context);
      await sleep(this.backoffMs * 2 ** (attempt - 1));
    }
  }

  private async attempt(url: string, body: string): Promise<Attempt> {
    try {
      const response = await this.fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      await response.body?.cancel().catch(() => undefined); // free the connection; the text is not needed
      if (response.ok) return { ok: true };
      return {
        ok: false,
        transient: response.status >= 500 || response.status === 429,
        detail: { status: response.status },
      };
    } catch (error) {
      return { ok: false, transient: true, detail: { error: describe(error) } };
    }
  }
}

type LocalChannel = NotificationChannel & WebhookTarget;

/**
 * The local notifier: posts job state changes to the config's webhooks whose
 * routes match, each event once per webhook (remembered in memory).
 */
export class WebhookNotifier {
  private readonly poster: WebhookPoster;
  private readonly ledger: MemoryLedger;
  private readonly channels: LocalChannel[];

  constructor(
    specs: readonly NotificationSpec[],
    private readonly log: Logger,
    options: WebhookNotifierOptions = {},
  ) {
    this.poster = new WebhookPoster(log, options);
    this.ledger = new MemoryLedger(options.dedupeSize ?? 10_000);
    // The config's order names a webhook: it is the same for the life of the process, which is all the memory lasts.
    this.channels = specs.map((spec, index) => ({ ...spec, id: String(index) }));
  }

  /** Deliver to every matching webhook; throws WebhookDeliveryFailed when any failed for good. */
  async notify(event: JobStateChange): Promise<void> {
    const deps = {
      ledger: this.ledger,
      log: this.log,
      post: (channel: LocalChannel, e: JobStateChange) => this.poster.post(channel, e),
    };
    const results = await Promise.allSettled(this.channels.map((channel) => notifyChannel(deps, channel, event)));
    // A delivery in flight elsewhere is that delivery's business; only posts made here count.
    const attempted = results.filter((r) => r.status === 'rejected' || r.value === 'posted').length;
    const failed = results.filter((r) => r.status === 'rejected').length;
    if (failed) throw new WebhookDeliveryFailed(failed, attempted);
  }
}

/** A bounded in-process ledger: enough for one process, where every delivery starts and ends. */
export class MemoryLedger implements DeliveryLedger {
  private readonly entries = new Map<string, 'claimed' | 'sent'>();

  constructor(private readonly size: number) {}

  async claim(key: string): Promise<'claimed' | 'sent' | 'busy'> {
    const entry = this.entries.get(key);
    if (entry) return entry === 'sent' ? 'sent' : 'busy';
    this.entries.set(key, 'claimed');
    if (this.entries.size > this.size) this.entries.delete(this.entries.keys().next().value as string);
    return 'claimed';
  }

  async markSent(key: string): Promise<void> {
    this.entries.set(key, 'sent');
  }

  async release(key: string): Promise<void> {
    if (this.entries.get(key) === 'claimed') this.entries.delete(key);
  }
}

/** What went wrong, without the message: fetch errors can quote the URL. */
function describe(error: unknown): string {
  if (error instanceof Error) {
    if (error.name === 'TimeoutError' || error.name === 'AbortError') return 'timeout';
    const code = (error.cause as { code?: unknown } | undefined)?.code;
    return typeof code === 'string' ? code : error.name;
  }
  return 'unknown';
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
