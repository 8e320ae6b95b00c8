/**
 * docs/api.md is run, not just read: every `sh` example whose first line is
 * `# → <status>` runs in order, with curl, against a local control plane
 * started from docs/api-example.local.json. The status must match, the answer
 * must have every field the `json` block under it shows (and the same error
 * code), and every route of the API must have an example.
 *
 * A first line like `# → 202 Accepted; $JOB_ID is .id` also keeps that field
 * of the answer for later examples.
 */
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { apiRoutes } from '../../lambdas/handlers/http/api.js';
import type { Deps } from '../../lambdas/core/deps.js';
import { waitFor } from '../support/harness.js';
import { startLocalPlaneIn, stopLocalPlane } from '../support/local-plane.js';

const DOC = new URL('../../docs/api.md', import.meta.url);
const CONFIG = new URL('../../docs/api-example.local.json', import.meta.url);

interface Example {
  line: number;
  script: string;
  status: number;
  captures: Array<{ name: string; path: string }>;
  expected?: unknown;
}

/** The runnable examples of the document, in order. */
export function parseExamples(markdown: string): Example[] {
  const examples: Example[] = [];
  const fence = /```(sh|json)\n([\s\S]*?)```/g;
  let match: RegExpExecArray | null;
  let last: Example | undefined;
  let lastEnd = -1;
  while ((match = fence.exec(markdown))) {
    const [whole, lang, body] = match;
    const line = markdown.slice(0, match.index).split('\n').length;
    if (lang === 'sh') {
      const head = /^# → (\d{3})[^\n]*/.exec(body);
      last = undefined;
      if (!head) continue;
      const captures = [...head[0].matchAll(/\$([A-Z_]+) is (\.[A-Za-z0-9_.[\]]+)/g)].map((m) => ({
        name: m[1],
        path: m[2],
      }));
      last = { line, script: body, status: Number(head[1]), captures };
      examples.push(last);
    } else if (last && markdown.slice(lastEnd, match.index).trim() === '') {
      last.expected = JSON.parse(body);
      last = undefined;
    }
    lastEnd = match.index + whole.length;
  }
  return examples;
}

function pick(value: unknown, path: string): unknown {
  return path
    .slice(1)
    .split(/\.|\[(\d+)\]/)
    .filter((p) => p !== undefined && p !== '')
    .reduce<unknown>((v, key) => (v as Record<string, unknown> | undefined)?.[key], value);
}

/** Every field the documented answer shows is in the real one (values may differ: ids, times). */
function assertShape(actual: unknown, expected: unknown, where: string): void {
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${where}: expected a list`);
    if (expected.length > 0) {
      assert.ok((actual as unknown[]).length > 0, `${where}: expected at least one item`);
      assertShape((actual as unknown[])[0], expected[0], `${where}[0]`);
    }
    return;
  }
  if (expected && typeof expected === 'object') {
    assert.ok(
      actual && typeof actual === 'object' && !Array.isArray(actual),
      `${where}: expected an object, got ${JSON.stringify(actual)}`,
    );
    for (const [key, value] of Object.entries(expected)) {
      assert.ok(
        key in (actual as object),
        `${where}.${key} is documented but missing from ${JSON.stringify(actual).slice(0, 300)}`,
      );
      assertShape((actual as Record<string, unknown>)[key], value, `${where}.${key}`);
    }
    return;
  }
  if (where.endsWith('.error.code') || where.endsWith('.state') || where.endsWith('.status'))
    assert.equal(actual, expected, where);
}

const ADMIN = 'docs-admin-token-0123456789';
const ALICE = 'docs-alice-token-0123456789';

let dir: string;
let plane: ChildProcess | undefined;
let url: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flare-docs-'));
  const config = JSON.parse(await readFile(CONFIG, 'utf8'));
  ({ child: plane, url } = await startLocalPlaneIn(dir, {
    ...config,
    port: 0,
    dataDir: 'data',
    users: [
      { name: 'root', token: ADMIN, admin: true },
      { name: 'alice', token: ALICE, projects: ['vision'] },
    ],
  }));
});

after(() => stopLocalPlane(plane, dir));

describe('docs/api.md', () => {
  it('has an example for every route', async () => {
    const markdown = await readFile(DOC, 'utf8');
    const scripts = parseExamples(markdown).map((e) => e.script);
    const noDeps = (): Deps => {
      throw new Error('unused');
    };
    for (const route of apiRoutes(noDeps)) {
      const path = route.path.replace(/\{[^}]+\}/g, '[^/?"\\s]+').replace(/\./g, '\\.');
      const method = route.method === 'GET' ? '(?:-X GET )?' : `-X ${route.method} `;
      const pattern = new RegExp(`curl [^\\n]*${method}"\\$FLARE_API_URL${path === '/' ? '/?' : path}(?:\\?[^"]*)?"`);
      assert.ok(
        scripts.some(
          (s) =>
            pattern.test(s.replace(/\\\n\s*/g, ' ')) &&
            (route.method !== 'GET' || !/-X (POST|PATCH|DELETE|PUT)/.test(s)),
        ),
        `no runnable example for ${route.method} ${route.path}`,
      );
    }
  });

  it('runs every example against the local control plane and gets what it shows', { timeout: 240_000 }, async () => {
    const markdown = await readFile(DOC, 'utf8');
    const env: Record<string, string> = {
      ...(process.env as Record<string, string>),
      FLARE_API_URL: url,
      FLARE_TOKEN: ALICE,
      ADMIN_TOKEN: ADMIN,
    };
    const examples = parseExamples(markdown);
    assert.ok(examples.length > 20, 'the document has its examples');
    for (const example of examples) {
      const where = `docs/api.md:${example.line}`;
      // Every curl also prints the status on a last line of its own; the reader never sees this.
      const script = `set -euo pipefail\ncurl() { command curl -sS -w '\\n%{http_code}' "$@"; }\n${example.script}`;
      const waits = /waits? until/i.test(example.script.split('\n')[0]);
      const answer = await waitFor(
        `${where} to answer ${example.status}`,
        async () => {
          const run = spawnSync('bash', ['-c', script], { env, encoding: 'utf8', timeout: 30_000 });
          assert.equal(run.status, 0, `${where}: ${run.stderr}`);
          const lines = run.stdout.trimEnd().split('\n');
          const status = Number(lines.pop());
          const text = lines.join('\n');
          const result = { status, body: text.trim() ? (JSON.parse(text) as unknown) : undefined, text };
          if (!waits) return result;
          // An example that says it waits (for a job to move on) is retried until it answers as shown.
          try {
            assert.equal(status, example.status);
            if (example.expected !== undefined) assertShape(result.body, example.expected, where);
            return result;
          } catch {
            return undefined;
          }
        },
        60_000,
        500,
      );
      assert.equal(answer.status, example.status, `${where}: status (answer: ${answer.text.slice(0, 500)})`);
      const body = answer.body;
      if (example.expected !== undefined) assertShape(body, example.expected, where);
      for (const capture of example.captures) {
        const value = pick(body, capture.path);
        assert.ok(
          typeof value === 'string' || typeof value === 'number',
          `${where}: ${capture.path} to keep as $${capture.name}`,
        );
        env[capture.name] = String(value);
      }
    }
  });
});
