/**
 * The API over HTTP (fetch): JSON in and out, the bearer token, error answers
 * turned into ApiError, and lists followed through `nextToken`.
 */
import { ApiError, CliError, ExitCode } from './errors.js';

export type Query = Record<string, string | number | undefined>;

export interface Page<T> {
  items: T[];
  nextToken?: string;
}

/** The most a list asks for per page when the user set --limit (the API's own cap). */
const MAX_PAGE = 1000;

export class ApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string | undefined,
    private readonly timeoutMs = 60_000,
  ) {}

  get<T>(path: string, query?: Query): Promise<T> {
    return this.send<T>('GET', path, { query });
  }

  post<T>(path: string, body: unknown, headers?: Record<string, string>): Promise<T> {
    return this.send<T>('POST', path, { body, headers });
  }

  patch<T>(path: string, body: unknown, query?: Query): Promise<T> {
    return this.send<T>('PATCH', path, { body, query });
  }

  /** The answer body; undefined for 204. */
  delete<T>(path: string, query?: Query): Promise<T | undefined> {
    return this.send<T | undefined>('DELETE', path, { query });
  }

  /**
   * Every item of a list, page after page; with `limit`, at most that many (the
   * nextToken of the last page read comes back when more remain).
   */
  async list<T>(path: string, query: Query = {}, limit?: number): Promise<Page<T>> {
    const items: T[] = [];
    let nextToken: string | undefined;
    const seen = new Set<string>();
    do {
      const pageLimit = limit === undefined ? undefined : Math.min(MAX_PAGE, limit - items.length);
      const page = await this.get<Page<T>>(path, { ...query, limit: pageLimit, nextToken });
      if (!page || !Array.isArray(page.items))
        throw new CliError(`unexpected answer from ${this.baseUrl}${path}: no items`);
      items.push(...page.items);
      nextToken = page.nextToken ?? undefined;
      if (nextToken !== undefined) {
        if (seen.has(nextToken)) throw new CliError(`the API at ${this.baseUrl} repeated a nextToken for ${path}`);
        seen.add(nextToken);
      }
    } while (nextToken !== undefined && (limit === undefined || items.length < limit));
    return {
      items: limit === undefined ? items : items.slice(0, limit),
      ...(nextToken !== undefined ? { nextToken } : {}),
    };
  }

  /**
   * A file's bytes (`GET .../outputs/{path}`): the response, its body unread. A redirect (AWS: a presigned
   * URL) is followed without the bearer token, which the URL's own signature replaces.
   */
  async download(path: string): Promise<Response> {
    const url = `${this.baseUrl}${path}`;
    const reach = async (target: string, auth: boolean) => {
      try {
        return await fetch(target, {
          headers: auth && this.token ? { authorization: `Bearer ${this.token}` } : {},
          redirect: 'manual',
        });
      } catch (error) {
        throw new CliError(
          `cannot download ${target.split('?')[0]}: ${networkReason(error, this.timeoutMs)}`,
          ExitCode.API,
          [],
          {
            cause: error,
            retryable: true,
          },
        );
      }
    };
    let response = await reach(url, true);
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location) {
      await response.body?.cancel();
      response = await reach(new URL(location, url).toString(), false);
    }
    if (!response.ok) {
      const text = await response.text().catch(() => '');
      let body: unknown;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        body = undefined;
      }
      throw toApiError(response.status, response.statusText, body);
    }
    return response;
  }

  /** `accept`: error statuses whose body is the answer (health's 503). */
  async send<T>(
    method: string,
    path: string,
    options: { query?: Query; body?: unknown; headers?: Record<string, string>; accept?: number[] } = {},
  ): Promise<T> {
    const url = `${this.baseUrl}${path}${queryString(options.query)}`;
    const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers,
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      throw new CliError(
        `cannot reach the API at ${this.baseUrl}: ${networkReason(error, this.timeoutMs)}`,
        ExitCode.API,
        [],
        { cause: error, retryable: true },
      );
    }
    const text = await response.text().catch(() => '');
    let body: unknown;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        if (response.ok)
          throw new CliError(
            `unexpected answer from ${method} ${url}: not JSON (HTTP ${response.status})`,
            ExitCode.API,
            [],
            { retryable: true },
          );
      }
    }
    if (!response.ok && !(options.accept?.includes(response.status) && body !== undefined))
      throw toApiError(response.status, response.statusText, body);
    return body as T;
  }
}

/** `/v1/jobs/{id}`-style paths: every segment encoded. */
export function pathOf(...segments: string[]): string {
  return segments.map((s, i) => (i === 0 ? s : encodeURIComponent(s))).join('/');
}

function queryString(query: Query | undefined): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) if (value !== undefined) params.set(key, String(value));
  const text = params.toString();
  return text ? `?${text}` : '';
}

function toApiError(status: number, statusText: string, body: unknown): ApiError {
  const error = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)?.error;
  const code = typeof error?.code === 'string' ? error.code : `http_${status}`;
  const message =
    typeof error?.message === 'string' && error.message
      ? error.message
      : `HTTP ${status}${statusText ? ` ${statusText}` : ''}`;
  const details = Array.isArray(error?.details)
    ? error.details.filter(
        (d): d is { field: string; reason: string } => typeof d?.field === 'string' && typeof d?.reason === 'string',
      )
    : [];
  return new ApiError(status, code, message, details);
}

function networkReason(error: unknown, timeoutMs: number): string {
  const e = error as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError') return `no answer within ${Math.round(timeoutMs / 1000)} s`;
  return e.cause?.code ?? e.cause?.message ?? e.message ?? String(error);
}
