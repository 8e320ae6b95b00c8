/**
 * Chat webhook URLs kept in Secrets Manager. A secret's string is either the
 * URL itself or JSON `{"url": "..."}`. Each URL is cached per secret for five
 * minutes, so a warm Lambda reads a secret once per batch and a rotated secret
 * is picked up within that time.
 *
 * The URL is a credential: it is never logged and never put into an error
 * (nor is anything that could quote it, such as a JSON parse message).
 */
import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { FlareError } from '../core/errors.js';

export const WEBHOOK_URL_CACHE_MS = 5 * 60_000;

/** The secret exists but holds no usable webhook URL. */
export class WebhookSecretInvalid extends FlareError {
  constructor(
    readonly secretArn: string,
    reason: string,
  ) {
    super(`secret ${secretArn} does not hold a webhook URL: ${reason}`);
  }
}

export interface SecretsWebhooksOptions {
  /** @default WEBHOOK_URL_CACHE_MS */
  cacheMs?: number;
  /** @default Date.now */
  now?: () => number;
}

export class SecretsWebhooks {
  /** By secret ARN; the promise itself, so concurrent lookups share one GetSecretValue. */
  private readonly cache = new Map<string, { until: number; url: Promise<string> }>();
  private readonly cacheMs: number;
  private readonly now: () => number;

  constructor(
    private readonly secrets: SecretsManagerClient,
    options: SecretsWebhooksOptions = {},
  ) {
    this.cacheMs = options.cacheMs ?? WEBHOOK_URL_CACHE_MS;
    this.now = options.now ?? Date.now;
  }

  urlFor(secretArn: string): Promise<string> {
    const cached = this.cache.get(secretArn);
    if (cached && cached.until > this.now()) return cached.url;
    const url = this.read(secretArn);
    this.cache.set(secretArn, { until: this.now() + this.cacheMs, url });
    // A failed read is not remembered: the next delivery asks again.
    url.catch(() => {
      if (this.cache.get(secretArn)?.url === url) this.cache.delete(secretArn);
    });
    return url;
  }

  private async read(secretArn: string): Promise<string> {
    const { SecretString } = await this.secrets.send(new GetSecretValueCommand({ SecretId: secretArn }));
    if (SecretString === undefined) throw new WebhookSecretInvalid(secretArn, 'it has no SecretString');
    return webhookUrl(secretArn, SecretString);
  }
}

function webhookUrl(secretArn: string, secret: string): string {
  const text = secret.trim();
  let url: unknown = text;
  if (text.startsWith('{')) {
    try {
      url = (JSON.parse(text) as { url?: unknown }).url;
    } catch {
      // The parse error quotes the text; say only what is wrong.
      throw new WebhookSecretInvalid(secretArn, 'it starts with { but is not valid JSON');
    }
    if (typeof url !== 'string') throw new WebhookSecretInvalid(secretArn, 'its JSON has no string "url"');
  }
  const href = url as string;
  const protocol = URL.canParse(href) ? new URL(href).protocol : undefined;
  if (protocol !== 'https:' && protocol !== 'http:') {
    throw new WebhookSecretInvalid(secretArn, 'it is not an http(s) URL or JSON {"url": "..."}');
  }
  return href;
}
