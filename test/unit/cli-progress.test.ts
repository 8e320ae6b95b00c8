/**
 * The lines `flare job wait` prints, from a sequence of polled jobs: one line
 * per change (state and reason, queue position, a changed expiry), time left
 * at coarse steps while running, and nothing when nothing changed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JobProgress } from '../../cli/progress.js';
import type { JobView } from '../../cli/views.js';

const T0 = Date.parse('2030-01-01T10:00:00.000Z');
const at = (seconds: number) => new Date(T0 + seconds * 1000);
const iso = (seconds: number) => at(seconds).toISOString();
/** Lines without their local-clock prefix. */
const texts = (lines: string[]) =>
  lines.map((l) => {
    assert.match(l, /^\d\d:\d\d:\d\d /);
    return l.slice(9);
  });

describe('JobProgress', () => {
  it('prints state changes with reasons, queue moves, and nothing for a poll that changed nothing', () => {
    const progress = new JobProgress();
    const seen = (job: Partial<JobView>, second: number) =>
      texts(progress.update({ id: 'j-1', state: 'PENDING', ...job } as JobView, at(second)));

    assert.deepEqual(seen({ state: 'PENDING', queuePosition: 0 }, 0), ['PENDING  #1 in queue: not evaluated yet']);
    assert.deepEqual(seen({ state: 'WAITING', queuePosition: 2, stateReason: 'behind 2 older jobs in pool a10g' }, 1), [
      'WAITING  #3 in queue: behind 2 older jobs in pool a10g',
    ]);
    assert.deepEqual(
      seen({ state: 'WAITING', queuePosition: 2, stateReason: 'behind 2 older jobs in pool a10g' }, 2),
      [],
      'no change, no line',
    );
    assert.deepEqual(
      seen({ state: 'WAITING', queuePosition: 0, stateReason: 'pool a10g has 1 of 8 GPUs free, needs 4' }, 3),
      ['WAITING  #1 in queue: pool a10g has 1 of 8 GPUs free, needs 4'],
    );
    assert.deepEqual(seen({ state: 'LAUNCHING' }, 4), ['LAUNCHING']);
    assert.deepEqual(seen({ state: 'RUNNING', expiresAt: iso(5 + 90 * 60) }, 5), [
      `RUNNING  expires ${clockOf(5 + 90 * 60)} (1h30m left)`,
    ]);
    assert.deepEqual(seen({ state: 'STOPPING', stateReason: 'exited with code 3' }, 6), [
      'STOPPING  exited with code 3',
    ]);
    assert.deepEqual(seen({ state: 'FAILED', stateReason: 'exited with code 3' }, 7), ['FAILED  exited with code 3']);
  });

  it('prints time left at coarse steps while running, and a changed expiry at once', () => {
    const progress = new JobProgress();
    const expiresAt = iso(3600 + 120); // 1h02m after T0
    const poll = (second: number, expires = expiresAt) =>
      texts(progress.update({ id: 'j-1', state: 'RUNNING', expiresAt: expires }, at(second)));

    assert.equal(poll(0).length, 1, 'the RUNNING line');
    assert.deepEqual(poll(1), []);
    assert.deepEqual(poll(60), [], 'still in the same 15-minute step');
    assert.deepEqual(poll(150), ['RUNNING  59m30s left'], 'under an hour: a new step');
    assert.deepEqual(poll(200), []);
    assert.deepEqual(poll(3600 + 120 - 55), ['RUNNING  55s left'], 'the last minute');
    assert.deepEqual(poll(3600 + 120 - 54), []);
    const later = iso(7200);
    assert.deepEqual(poll(3600 + 120 - 50, later), [
      `RUNNING  live timeout changed: expires ${clockOf(7200)} (58m50s left)`,
    ]);
    assert.deepEqual(poll(3600 + 120 - 49, later), []);
  });
});

function clockOf(second: number): string {
  return at(second).toTimeString().slice(0, 8);
}
