import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidTransition } from '../../lambdas/core/errors.js';
import {
  assertTransition,
  canTransition,
  isTerminal,
  JOB_STATES,
  JobState,
  publicJob,
  statesBefore,
  terminalFor,
  type Job,
} from '../../lambdas/core/job.js';

describe('job state transitions', () => {
  it('follows the lifecycle of docs/concepts.md', () => {
    const path = [
      JobState.PENDING,
      JobState.WAITING,
      JobState.LAUNCHING,
      JobState.RUNNING,
      JobState.STOPPING,
      JobState.SUCCEEDED,
    ];
    for (let i = 1; i < path.length; i++)
      assert.ok(canTransition(path[i - 1], path[i]), `${path[i - 1]} -> ${path[i]}`);
    assert.ok(canTransition(JobState.PENDING, JobState.LAUNCHING), 'admitted at once without waiting');
    for (const end of [JobState.SUCCEEDED, JobState.FAILED, JobState.EXPIRED, JobState.CANCELLED])
      assert.ok(canTransition(JobState.STOPPING, end));
  });

  it('refuses illegal moves with a named error', () => {
    assert.throws(() => assertTransition('j-1', JobState.RUNNING, JobState.SUCCEEDED), InvalidTransition);
    assert.throws(
      () => assertTransition('j-1', JobState.WAITING, JobState.RUNNING),
      /cannot go from WAITING to RUNNING/,
    );
    assert.throws(() => assertTransition('j-1', JobState.PENDING, JobState.EXPIRED), InvalidTransition);
  });

  it('never leaves a terminal state', () => {
    for (const from of JOB_STATES.filter(isTerminal)) {
      for (const to of JOB_STATES) assert.equal(canTransition(from, to), false, `${from} -> ${to}`);
    }
  });

  it('only a held job can be stopped, and only a queued one admitted', () => {
    assert.deepEqual(statesBefore(JobState.LAUNCHING).sort(), [JobState.PENDING, JobState.WAITING].sort());
    assert.deepEqual(statesBefore(JobState.STOPPING).sort(), [JobState.LAUNCHING, JobState.RUNNING].sort());
  });
});

describe('terminal verdicts', () => {
  const now = new Date('2026-01-01T00:10:00.000Z');
  const expiresAt = '2026-01-01T00:05:00.000Z';
  const before = '2026-01-01T00:04:59.999Z';

  it('exit code 0 succeeds, anything else fails with the code', () => {
    assert.deepEqual(terminalFor({ outcome: { kind: 'exited', exitCode: 0, at: before }, expiresAt }, now), {
      state: 'SUCCEEDED',
      reason: 'exited with code 0',
      exitCode: 0,
    });
    assert.deepEqual(terminalFor({ outcome: { kind: 'exited', exitCode: 3, at: before }, expiresAt }, now), {
      state: 'FAILED',
      reason: 'exited with code 3',
      exitCode: 3,
    });
  });

  it('an outcome before the expiry wins, however late it is read; the timer alone expires', () => {
    assert.equal(
      terminalFor({ outcome: { kind: 'exited', exitCode: 0, at: before }, expiresAt }, now).state,
      JobState.SUCCEEDED,
    );
    assert.equal(
      terminalFor({ outcome: { kind: 'cancelled', by: 'alice', at: before }, expiresAt }, now).state,
      JobState.CANCELLED,
    );
    assert.deepEqual(terminalFor({ expiresAt }, now), { state: 'EXPIRED', reason: 'live timeout reached' });
    assert.equal(
      terminalFor({ expiresAt }, new Date(before)).state,
      JobState.FAILED,
      'a step that failed before the expiry fails the job',
    );
  });

  it('expiry wins: an exit, a cancel or a loss at or after expiresAt ends the job EXPIRED, whatever its code', () => {
    for (const at of [expiresAt, '2026-01-01T00:05:03.900Z']) {
      assert.deepEqual(terminalFor({ outcome: { kind: 'exited', exitCode: 0, at }, expiresAt }, now), {
        state: 'EXPIRED',
        reason: 'live timeout reached',
        exitCode: 0,
      });
      assert.deepEqual(terminalFor({ outcome: { kind: 'exited', exitCode: 143, at }, expiresAt }, now), {
        state: 'EXPIRED',
        reason: 'live timeout reached',
        exitCode: 143,
      });
      assert.equal(
        terminalFor({ outcome: { kind: 'cancelled', by: 'alice', at }, expiresAt }, now).state,
        JobState.EXPIRED,
      );
      assert.equal(
        terminalFor({ outcome: { kind: 'lost', reason: 'gone', at }, expiresAt }, now).state,
        JobState.EXPIRED,
      );
    }
  });

  it('an exit its own dead-man switch caused is EXPIRED even when a change raced it and moved expiresAt later', () => {
    const moved = { outcome: { kind: 'exited' as const, exitCode: 143, at: before, expired: true }, expiresAt };
    assert.deepEqual(terminalFor(moved, now), { state: 'EXPIRED', reason: 'live timeout reached', exitCode: 143 });
  });

  it('a job that never started has no expiry; an outcome recorded without its time keeps its own state', () => {
    assert.equal(
      terminalFor({ outcome: { kind: 'exited', exitCode: 0, at: now.toISOString() } }, now).state,
      JobState.SUCCEEDED,
    );
    assert.equal(terminalFor({ outcome: { kind: 'exited', exitCode: 0 }, expiresAt }, now).state, JobState.SUCCEEDED);
  });

  it('a lost instance or a failed step fails with the reason', () => {
    assert.deepEqual(terminalFor({ outcome: { kind: 'lost', reason: 'i-1 terminated', at: before }, expiresAt }, now), {
      state: 'FAILED',
      reason: 'instance lost: i-1 terminated',
    });
    assert.deepEqual(terminalFor({}, now, 'LaunchFailed: no capacity'), {
      state: 'FAILED',
      reason: 'LaunchFailed: no capacity',
    });
  });
});

describe('public view of a job', () => {
  it('hides bookkeeping', () => {
    const job = {
      id: 'j-1',
      state: JobState.RUNNING,
      heldGpus: 2,
      taskToken: 't',
      outcome: { kind: 'exited', exitCode: 0 },
      devices: [0],
      verdict: { state: 'FAILED', reason: 'x' },
    } as unknown as Job;
    assert.deepEqual(Object.keys(publicJob(job)).sort(), ['id', 'state']);
  });
});
