/**
 * Posts job state changes to chat webhooks (Slack-compatible or Teams) whose
 * routes match. Webhook URLs are secrets: only their host is ever logged.
 */
import type { Logger } from '../core/deps.js';
import { FlareError } from '../core/errors.js';
import { formatNotification, matchesRoute } from '../core/notification.js';
import type { NotificationSpec } from '../core/schemas.js';
import type { JobStateChange } from '../ports/events.js';

export interface WebhookNotifierOptions {
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Per attempt. @default 5000 */
  timeoutMs?: number;
  /** Retries after the first attempt, for 5xx, 429, timeouts and network errors. @default 3 */
  retries?: number;
  /** First backoff; doubles each retry. @default 250 */
  backoffMs?: number;
  /** Deliveries remembered for de-duplication. @default 10000 */
  dedupeSize?: number;
}

/** Some deliveries failed after their retries (each was logged with its host). */
export class WebhookDeliveryFailed extends FlareError {
  constructor(readonly failed: number, readonly attempted: number) {
    super(`${failed} of ${attempted} webhook deliveries failed`);
  }
}

type Attempt = { ok: true } | { ok: false; transient: boolean; detail: Record<string, unknown> };

export class WebhookNotifier {
  private readonly fetch: typeof fetch;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoffMs: number;
  private readonly dedupeSize: number;
  /** Deliveries done or in flight, by target and event; events arrive at least once. */
  private readonly seen = new Set<string>();

  constructor(
    private readonly specs: readonly NotificationSpec[],
    private readonly log: Logger,
    options: WebhookNotifierOptions = {},
  ) {
    this.fetch = options.fetch ?? globalThis.fetch;
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.retries = options.retries ?? 3;
    this.backoffMs = options.backoffMs ?? 250;
    this.dedupeSize = options.dedupeSize ?? 10_000;
  }

  /** Deliver to every matching webhook; throws WebhookDeliveryFailed when any failed for good. */
  async notify(event: JobStateChange): Promise<void> {
    const targets = this.specs.map((spec, index) => ({ spec, key: `${index}|${event.jobId}|${event.state}|${event.at}` }));
    const due = targets.filter(({ spec, key }) => matchesRoute(spec, event) && !this.seen.has(key));
    for (const { key } of due) this.remember(key);
    const results = await Promise.all(
      due.map(async ({ spec, key }) => {
        const delivered = await this.deliver(spec, event);
        if (!delivered) this.seen.delete(key); // a redelivered event may try again
        return delivered;
      }),
    );
    const failed = results.filter((ok) => !ok).length;
    if (failed) throw new WebhookDeliveryFailed(failed, due.length);
  }

  private async deliver(spec: NotificationSpec, event: JobStateChange): Promise<boolean> {
    const host = new URL(spec.url).host;
    const body = JSON.stringify(formatNotification(spec.type, event));
    for (let attempt = 1; ; attempt++) {
      const result = await this.post(spec.url, body);
      if (result.ok) return true;
      const context = { type: spec.type, host, jobId: event.jobId, state: event.state, attempt, ...result.detail };
      if (!result.transient || attempt > this.retries) {
        this.log.error('webhook delivery failed', context);
        return false;
      }
      this.log.warn('webhook delivery failed, retrying', context);
      await sleep(this.backoffMs * 2 ** (attempt - 1));
    }
  }

  private async post(url: string, body: string): Promise<Attempt> {
    try {
      const response = await this.fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      await response.body?.cancel().catch(() => undefined); // free the connection; the text is not needed
      if (response.ok) return { ok: true };
      return { ok: false, transient: response.status >= 500 || response.status === 429, detail: { status: response.status } };
    } catch (error) {
      return { ok: false, transient: true, detail: { error: describe(error) } };
    }
  }

  private remember(key: string): void {
    this.seen.add(key);
    if (this.seen.size > this.dedupeSize) this.seen.delete(this.seen.values().next().value as string);
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
