/**
 * Both runtimes stop an expired job the same way: SIGTERM, then SIGKILL after
 * one grace of a few seconds (docs/concepts.md, "Expiry wins").
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEAD_MAN_STOP_GRACE_SECONDS } from '../../lib/instance-user-data.js';
import { DEFAULT_STOP_GRACE_MS } from '../../lambdas/adapters/local-supervisor/job-run.mjs';

describe('stop grace', () => {
  it('is the same few seconds for the local supervisor and the instance dead-man switch', () => {
    assert.equal(DEFAULT_STOP_GRACE_MS, DEAD_MAN_STOP_GRACE_SECONDS * 1000);
    assert.ok(DEFAULT_STOP_GRACE_MS > 0 && DEFAULT_STOP_GRACE_MS <= 10_000, 'a few seconds at most');
  });
});
