import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LocalEventBus } from '../../lambdas/adapters/local-event-bus.js';
import type { JobStateChange, OperatorEvent } from '../../lambdas/ports/events.js';
import { recordingLog } from '../support/fakes.js';

const event: JobStateChange = {
  eventId: 'e-1',
  jobId: 'j-1',
  name: 'train',
  project: 'vision',
  owner: 'alice',
  pool: 'local',
  gpus: 1,
  previousState: null,
  state: 'PENDING',
  at: '2025-02-03T10:00:00.000Z',
};

describe('LocalEventBus', () => {
  it('calls every subscriber with the event', async () => {
    const bus = new LocalEventBus(recordingLog().log);
    const a: JobStateChange[] = [];
    const b: JobStateChange[] = [];
    bus.subscribe((e) => void a.push(e));
    bus.subscribe((e) => void b.push(e));
    await bus.publish(event);
    assert.deepEqual(a, [event]);
    assert.deepEqual(b, [event]);
  });

  it('isolates a subscriber that throws or rejects, and logs it', async () => {
    const { log, entries: errors } = recordingLog();
    const bus = new LocalEventBus(log);
    const got: string[] = [];
    bus.subscribe(() => {
      throw new Error('sync failure');
    });
    bus.subscribe(async () => {
      throw new Error('async failure');
    });
    bus.subscribe((e) => void got.push(e.jobId));
    await bus.publish(event);
    await bus.idle();
    assert.deepEqual(got, ['j-1']);
    assert.deepEqual(errors.map((e) => e.data?.error).sort(), ['Error: async failure', 'Error: sync failure']);
  });

  it('does not wait for subscribers’ work; idle() does', async () => {
    const bus = new LocalEventBus(recordingLog().log);
    let release!: () => void;
    let done = false;
    bus.subscribe(() => new Promise<void>((resolve) => (release = resolve)).then(() => void (done = true)));
    await bus.publish(event);
    assert.equal(done, false);
    const idle = bus.idle();
    release();
    await idle;
    assert.equal(done, true);
  });

  it('gives each subscriber its own copy', async () => {
    const bus = new LocalEventBus(recordingLog().log);
    let seen: string | undefined;
    bus.subscribe((e) => void (e.state = 'FAILED'));
    bus.subscribe((e) => void (seen = e.state));
    await bus.publish(event);
    assert.equal(seen, 'PENDING');
    assert.equal(event.state, 'PENDING');
  });

  it('stops calling a subscriber that unsubscribed', async () => {
    const bus = new LocalEventBus(recordingLog().log);
    let calls = 0;
    const unsubscribe = bus.subscribe(() => void calls++);
    await bus.publish(event);
    unsubscribe();
    await bus.publish(event);
    assert.equal(calls, 1);
  });

  it('delivers operator events to their own subscribers only', async () => {
    const bus = new LocalEventBus(recordingLog().log);
    const operator: OperatorEvent = {
      eventId: 'o-1',
      kind: 'orphan-terminated',
      subject: 'i-0abc',
      reason: 'no live job',
      at: '2025-02-03T10:00:00.000Z',
    };
    const changes: JobStateChange[] = [];
    const operatorEvents: OperatorEvent[] = [];
    bus.subscribe((e) => void changes.push(e));
    bus.subscribeOperatorEvents((e) => void operatorEvents.push(e));
    await bus.publishOperatorEvent(operator);
    await bus.publish(event);
    assert.deepEqual(operatorEvents, [operator]);
    assert.deepEqual(changes, [event]);
  });

  it('isolates and logs a failing operator subscriber', async () => {
    const { log, entries: errors } = recordingLog();
    const bus = new LocalEventBus(log);
    bus.subscribeOperatorEvents(async () => {
      throw new Error('pager down');
    });
    await bus.publishOperatorEvent({
      eventId: 'o-2',
      kind: 'vcpu-limit',
      subject: 'a10g',
      reason: 'account limit reached',
      at: '2025-02-03T10:00:00.000Z',
    });
    await bus.idle();
    assert.deepEqual(errors, [
      {
        level: 'error',
        message: 'event subscriber failed',
        data: { kind: 'vcpu-limit', subject: 'a10g', error: 'Error: pager down' },
      },
    ]);
  });
});
