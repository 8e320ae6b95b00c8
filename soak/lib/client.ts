/** The soak's HTTP client: every answer is tallied by route and status, and no answer (plane down) is not an error. */
import type { HttpTally } from './record.js';

export interface Answer {
  status: number;
  // The API's JSON, read freely by the soak.
  body: any;
}

/** `GET /v1/jobs/j-1?x=1` → `GET /v1/jobs/{id}`: the route, so the tally stays small. */
export function routeOf(method: string, path: string): string {
  const bare = path.split('?')[0];
  return `${method} ${bare.replace(/^\/v1\/(jobs|quotas|pools|templates)\/[^/]+/, '/v1/$1/{id}')}`;
}

export function tallyAnswer(tally: HttpTally, route: string, status: number | 'network'): void {
  const byStatus = (tally[route] ??= {});
  byStatus[String(status)] = (byStatus[String(status)] ?? 0) + 1;
}

export class SoakClient {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
    /** Shared by every client of a run. */
    readonly tally: HttpTally,
  ) {}

  /** One request; undefined when no answer came (refused, reset, timed out). */
  async call(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Answer | undefined> {
    const route = routeOf(method, path);
    try {
      const res = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(15_000),
      });
      const text = await res.text();
      tallyAnswer(this.tally, route, res.status);
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        // not JSON: keep the text
      }
      return { status: res.status, body: parsed };
    } catch {
      tallyAnswer(this.tally, route, 'network');
      return undefined;
    }
  }
}
