import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidTransition } from '../../lambdas/core/errors.js';
import { assertTransition, canTransition, isTerminal, JOB_STATES, JobState, publicJob, statesBefore, terminalFor, type Job } from '../../lambdas/core/job.js';

describe('job state transitions', () => {
  it('follows the lifecycle of DESIGN.md', () => {
    const path = [JobState.PENDING, JobState.WAITING, JobState.LAUNCHING, JobState.RUNNING, JobState.STOPPING, JobState.SUCCEEDED];
    for (let i = 1; i < path.length; i++) assert.ok(canTransition(path[i - 1], path[i]), `${path[i - 1]} -> ${path[i]}`);
    assert.ok(canTransition(JobState.PENDING, JobState.LAUNCHING), 'admitted at once without waiting');
    for (const end of [JobState.SUCCEEDED, JobState.FAILED, JobState.EXPIRED, JobState.CANCELLED]) assert.ok(canTransition(JobState.STOPPING, end));
  });

  it('refuses illegal moves with a named error', () => {
    assert.throws(() => assertTransition('j-1', JobState.RUNNING, JobState.SUCCEEDED), InvalidTransition);
    assert.throws(() => assertTransition('j-1', JobState.WAITING, JobState.RUNNING), /cannot go from WAITING to RUNNING/);
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
  it('exit code 0 succeeds, anything else fails with the code', () => {
    assert.deepEqual(terminalFor({ kind: 'exited', exitCode: 0 }, false), { state: 'SUCCEEDED', reason: 'exited with code 0', exitCode: 0 });
    assert.deepEqual(terminalFor({ kind: 'exited', exitCode: 3 }, false), { state: 'FAILED', reason: 'exited with code 3', exitCode: 3 });
  });

  it('a recorded outcome wins over the timer; the timer alone expires', () => {
    assert.equal(terminalFor({ kind: 'exited', exitCode: 0 }, true).state, JobState.SUCCEEDED);
    assert.equal(terminalFor({ kind: 'cancelled', by: 'alice' }, true).state, JobState.CANCELLED);
    assert.equal(terminalFor(undefined, true).state, JobState.EXPIRED);
  });

  it('a lost instance or a failed step fails with the reason', () => {
    assert.deepEqual(terminalFor({ kind: 'lost', reason: 'i-1 terminated' }, false), { state: 'FAILED', reason: 'instance lost: i-1 terminated' });
    assert.deepEqual(terminalFor(undefined, false, 'LaunchFailed: no capacity'), { state: 'FAILED', reason: 'LaunchFailed: no capacity' });
  });
});

describe('public view of a job', () => {
  it('hides bookkeeping', () => {
    const job = { id: 'j-1', state: JobState.RUNNING, heldGpus: 2, taskToken: 't', outcome: { kind: 'exited', exitCode: 0 }, devices: [0], verdict: { state: 'FAILED', reason: 'x' } } as unknown as Job;
    assert.deepEqual(Object.keys(publicJob(job)).sort(), ['id', 'state']);
  });
});
