/** The recorded events under test/fixtures, by path without `.json` (`events/…`, `http/…`). */
import { readFileSync } from 'node:fs';

/** Parsed afresh on every call: a test may change what it gets. */
export function readFixture<T = any>(name: string): T {
  return JSON.parse(readFileSync(new URL(`../fixtures/${name}.json`, import.meta.url), 'utf8'));
}
