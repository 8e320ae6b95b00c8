/**
 * Webhook delivery to a real loopback receiver: what is posted, retries, routing,
 * de-duplication, and the in-process bus that feeds it locally.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { LocalEventBus } from '../../lambdas/adapters/local-event-bus.js';
import { WebhookDeliveryFailed, WebhookNotifier } from '../../lambdas/adapters/webhook-notifier.js';
import type { NotificationSpec } from '../../lambdas/core/schemas.js';
import type { JobStateChange } from '../../lambdas/ports/events.js';
import { recordingLog } from '../support/fakes.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';

/** One id per transition, as core gives them: the same job, state and previous state is the same event. */
const change = (over: Partial<JobStateChange> = {}): JobStateChange => ({
  eventId: `e|${over.jobId ?? 'j-0001'}|${over.previousState ?? 'RUNNING'}|${over.state ?? 'STOPPING'}`,
  jobId: 'j-0001',
  name: 'train',
  project: 'vision',
  owner: 'alice',
  pool: 'local',
  gpus: 1,
  previousState: 'RUNNING',
  state: 'STOPPING',
  at: '2025-02-03T10:00:00.000Z',
  ...over,
});

const FAST = { backoffMs: 5, timeoutMs: 2000 };

describe('WebhookNotifier', () => {
  const receiver = new WebhookReceiver();
  before(() => receiver.start());
  after(() => receiver.stop());
  beforeEach(() => {
    receiver.received = [];
    receiver.script = [];
    receiver.delayMs = 0;
  });

  const slack = (path: string, over: Partial<NotificationSpec> = {}): NotificationSpec => ({
    type: 'slack',
    url: `${receiver.url}${path}`,
    ...over,
  });

  it('posts a Slack message as JSON to the webhook URL', async () => {
    const { log } = recordingLog();
    await new WebhookNotifier([slack('/hooks/T000/B000/secret')], log, FAST).notify(
      change({ state: 'SUCCEEDED', stateReason: 'exited with code 0' }),
    );
    assert.equal(receiver.received.length, 1);
    const [got] = receiver.received;
    assert.equal(got.path, '/hooks/T000/B000/secret');
    assert.equal(got.contentType, 'application/json');
    assert.match(got.body.text, /Job train is now \*SUCCEEDED\*/);
    assert.match(got.body.text, /exited with code 0/);
    assert.ok(Array.isArray(got.body.blocks));
  });

  it('posts a Teams card to a teams webhook', async () => {
    const { log } = recordingLog();
    await new WebhookNotifier([{ type: 'teams', url: `${receiver.url}/teams` }], log, FAST).notify(change());
    assert.equal(receiver.received[0].body.attachments[0].contentType, 'application/vnd.microsoft.card.adaptive');
  });

  it('retries after a 500 and delivers, logging the host but never the secret path', async () => {
    receiver.script = [500, 503];
    const { log, entries } = recordingLog();
    await new WebhookNotifier([slack('/hooks/T000/B000/secret')], log, FAST).notify(change());
    assert.equal(receiver.received.length, 3);
    const warnings = entries.filter((e) => e.level === 'warn');
    assert.equal(warnings.length, 2);
    assert.equal(warnings[0].data?.host, new URL(receiver.url).host);
    assert.equal(warnings[0].data?.status, 500);
    assert.doesNotMatch(JSON.stringify(entries), /secret|hooks/);
  });

  it('gives up after 3 retries, logs once as an error and throws', async () => {
    receiver.script = [500, 500, 500, 500, 500];
    const { log, entries } = recordingLog();
    await assert.rejects(
      new WebhookNotifier([slack('/hooks/secret')], log, FAST).notify(change()),
      WebhookDeliveryFailed,
    );
    assert.equal(receiver.received.length, 4);
    const errors = entries.filter((e) => e.level === 'error');
    assert.equal(errors.length, 1);
    assert.equal(errors[0].data?.attempt, 4);
    assert.doesNotMatch(JSON.stringify(entries), /secret/);
  });

  it('does not retry a 4xx other than 429', async () => {
    receiver.script = [404];
    const { log } = recordingLog();
    await assert.rejects(new WebhookNotifier([slack('/gone')], log, FAST).notify(change()), WebhookDeliveryFailed);
    assert.equal(receiver.received.length, 1);
  });

  it('retries a network failure (nothing listening), reporting the error code, not the URL', async () => {
    const closed = new WebhookReceiver();
    await closed.start();
    const url = `${closed.url}/hooks/secret`;
    await closed.stop();
    const { log, entries } = recordingLog();
    await assert.rejects(
      new WebhookNotifier([{ type: 'slack', url }], log, FAST).notify(change()),
      WebhookDeliveryFailed,
    );
    const failures = entries.filter((e) => e.level !== 'info');
    assert.equal(failures.length, 4);
    assert.equal(failures[0].data?.error, 'ECONNREFUSED');
    assert.doesNotMatch(JSON.stringify(entries), /secret/);
  });

  it('times out a receiver that does not answer, and retries', async () => {
    receiver.delayMs = 300;
    const { log, entries } = recordingLog();
    await assert.rejects(
      new WebhookNotifier([slack('/slow')], log, { backoffMs: 1, timeoutMs: 50, retries: 1 }).notify(change()),
      WebhookDeliveryFailed,
    );
    assert.equal(entries.find((e) => e.level === 'warn')?.data?.error, 'timeout');
    assert.equal(receiver.received.length, 2);
  });

  it('routes by project and by state', async () => {
    const { log } = recordingLog();
    const notifier = new WebhookNotifier(
      [
        slack('/vision', { projects: ['vision'] }),
        slack('/failures', { states: ['FAILED', 'EXPIRED'] }),
        slack('/audio-done', { projects: ['audio'], states: ['SUCCEEDED'] }),
        slack('/all'),
      ],
      log,
      FAST,
    );
    await notifier.notify(change({ jobId: 'j-1', project: 'vision', state: 'FAILED' }));
    await notifier.notify(change({ jobId: 'j-2', project: 'audio', state: 'SUCCEEDED' }));
    await notifier.notify(change({ jobId: 'j-3', project: 'audio', state: 'RUNNING' }));
    const byPath = (path: string) =>
      receiver.received.filter((r) => r.path === path).map((r) => r.body.blocks[2].elements[0].text.split(' ')[1]);
    assert.deepEqual(byPath('/vision'), ['j-1']);
    assert.deepEqual(byPath('/failures'), ['j-1']);
    assert.deepEqual(byPath('/audio-done'), ['j-2']);
    assert.deepEqual(byPath('/all').sort(), ['j-1', 'j-2', 'j-3']);
  });

  it('delivers an event seen twice (at-least-once upstream) once, but a new state again', async () => {
    const { log } = recordingLog();
    const notifier = new WebhookNotifier([slack('/once')], log, FAST);
    await Promise.all([notifier.notify(change()), notifier.notify(change())]);
    await notifier.notify(change());
    assert.equal(receiver.received.length, 1);
    await notifier.notify(change({ state: 'SUCCEEDED', previousState: 'STOPPING' }));
    assert.equal(receiver.received.length, 2);
  });

  it('knows an event by its id: a second copy published at another time is not posted again', async () => {
    const { log } = recordingLog();
    const notifier = new WebhookNotifier([slack('/by-id')], log, FAST);
    await notifier.notify(change({ at: '2025-02-03T10:00:00.000Z' }));
    await notifier.notify(change({ at: '2025-02-03T10:00:01.000Z' }));
    assert.equal(receiver.received.length, 1);
  });

  it('tries a redelivered event again when its first delivery failed', async () => {
    receiver.script = [400];
    const { log } = recordingLog();
    const notifier = new WebhookNotifier([slack('/flaky')], log, FAST);
    await assert.rejects(notifier.notify(change()), WebhookDeliveryFailed);
    await notifier.notify(change());
    assert.equal(receiver.received.length, 2);
  });

  it('is fed by the local event bus without slowing publish down', async () => {
    receiver.delayMs = 200;
    const { log } = recordingLog();
    const bus = new LocalEventBus(log);
    const notifier = new WebhookNotifier([slack('/bus')], log, FAST);
    bus.subscribe((event) => notifier.notify(event));
    const started = Date.now();
    await bus.publish(change({ state: 'RUNNING', previousState: 'LAUNCHING' }));
    assert.ok(Date.now() - started < 150, 'publish returned before the webhook answered');
    await bus.idle();
    assert.equal(receiver.received.length, 1);
    assert.equal(receiver.received[0].path, '/bus');
  });
});
