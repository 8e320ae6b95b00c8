/**
 * Pages over lists that are read whole (pools, quotas): sorted by a key, the
 * token names the last key shown, so a page never repeats or skips an item
 * when others are added or removed between requests.
 */
import { z } from 'zod';
import { ValidationError } from './errors.js';
import type { Page } from '../ports/job-store.js';

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

/** A whole-number query parameter from 1 to `max` (query strings are text: coerced, then checked). */
export function wholeNumberParam(max: number) {
  return z.coerce
    .number({ error: `must be a whole number from 1 to ${max}` })
    .int(`must be a whole number from 1 to ${max}`)
    .min(1, 'must be at least 1')
    .max(max, `must be at most ${max}`);
}

/** `limit` and `nextToken`, as every list route takes them. */
export const PageQuery = z.strictObject({
  limit: wholeNumberParam(MAX_PAGE_SIZE).optional(),
  nextToken: z.string().min(1).max(2048).optional(),
});
export type PageQuery = z.infer<typeof PageQuery>;

/** One page of `items` ordered by `key` (ascending), after the token's key. */
export function pageOf<T>(items: readonly T[], query: PageQuery, key: (item: T) => string): Page<T> {
  const limit = query.limit ?? DEFAULT_PAGE_SIZE;
  const sorted = [...items].sort((a, b) => compare(key(a), key(b)));
  const after = query.nextToken === undefined ? undefined : decodeToken(query.nextToken);
  const rest = after === undefined ? sorted : sorted.filter((item) => compare(key(item), after) > 0);
  const shown = rest.slice(0, limit);
  return rest.length > limit ? { items: shown, nextToken: encodeToken(key(shown[shown.length - 1])) } : { items: shown };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function encodeToken(key: string): string {
  return Buffer.from(JSON.stringify({ after: key }), 'utf8').toString('base64url');
}

function decodeToken(token: string): string {
  try {
    const parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { after?: unknown };
    if (typeof parsed.after === 'string') return parsed.after;
  } catch {
    // fall through to the error below
  }
  throw new ValidationError([{ field: 'nextToken', reason: 'is not a token this list returned' }]);
}
