/**
 * Page tokens for every list: one codec, so a token is checked the same way
 * wherever it comes back. A token names the list that made it and the last key
 * shown; one that does not decode, names another list, or carries a key that
 * list could not have made is a 400 naming `nextToken`, before any store sees
 * it (DynamoDB refuses an over-long key with an error that is no client's fault).
 */
import { z } from 'zod';
import { ValidationError } from './errors.js';
import type { Page } from '../ports/jobs.js';

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;
/** Longer than any token Flare hands out (list tokens and log cursors alike). */
export const MAX_TOKEN_LENGTH = 2048;
/** A key in a list token: far below DynamoDB's 1,024-byte sort key. */
const MAX_KEY_LENGTH = 512;

/** The lists that hand out tokens; a token of one is refused by the others. */
export type PagedList = 'jobs' | 'pools' | 'quotas' | 'templates' | 'images';

/** A whole-number query parameter from 1 to `max` (query strings are text: coerced, then checked). */
export function wholeNumberParam(max: number) {
  return z.coerce
    .number({ error: `must be a whole number from 1 to ${max}` })
    .int(`must be a whole number from 1 to ${max}`)
    .min(1, 'must be at least 1')
    .max(max, `must be at most ${max}`);
}

/** `nextToken` as a query parameter: what the answer before gave, passed back unchanged. */
export const pageToken = z
  .string()
  .min(1, 'must not be empty')
  .max(MAX_TOKEN_LENGTH, `is not a token this list returned (at most ${MAX_TOKEN_LENGTH} characters)`);

/** `limit` and `nextToken`, as every list route takes them. */
export const PageQuery = z.strictObject({
  limit: wholeNumberParam(MAX_PAGE_SIZE)
    .optional()
    .describe(`Items per page, 1-${MAX_PAGE_SIZE} (default ${DEFAULT_PAGE_SIZE})`),
  nextToken: pageToken
    .optional()
    .describe('The nextToken of the previous page of this same list (a token of another list, or altered, is a 400)'),
});
export type PageQuery = z.infer<typeof PageQuery>;

/** One page of `items` ordered by `key` (ascending), after the token's key. */
export function pageOf<T>(list: PagedList, items: readonly T[], query: PageQuery, key: (item: T) => string): Page<T> {
  const limit = query.limit ?? DEFAULT_PAGE_SIZE;
  const sorted = [...items].sort((a, b) => compare(key(a), key(b)));
  const after = query.nextToken === undefined ? undefined : decodePageToken(list, query.nextToken);
  const rest = after === undefined ? sorted : sorted.filter((item) => compare(key(item), after) > 0);
  const shown = rest.slice(0, limit);
  return rest.length > limit
    ? { items: shown, nextToken: encodePageToken(list, key(shown[shown.length - 1])) }
    : { items: shown };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The token for the page after `key` of `list`. */
export function encodePageToken(list: PagedList, key: string): string {
  return Buffer.from(JSON.stringify({ list, after: key }), 'utf8').toString('base64url');
}

/**
 * The key a token of `list` names, or a ValidationError naming `nextToken`.
 * `keyPattern`: the shape that list's keys have (a store passes what it reads the key into).
 */
export function decodePageToken(list: PagedList, token: string, keyPattern?: RegExp): string {
  if (token.length <= MAX_TOKEN_LENGTH && /^[A-Za-z0-9_-]+$/.test(token)) {
    try {
      const parsed: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
        const { list: named, after } = parsed as { list?: unknown; after?: unknown };
        if (
          named === list &&
          typeof after === 'string' &&
          after.length > 0 &&
          after.length <= MAX_KEY_LENGTH &&
          (!keyPattern || keyPattern.test(after))
        )
          return after;
      }
    } catch {
      // not JSON: refused below
    }
  }
  throw new ValidationError([{ field: 'nextToken', reason: `is not a token this list (${list}) returned` }]);
}
