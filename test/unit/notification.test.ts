import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Logger } from '../../lambdas/core/deps.js';
import { ValidationError } from '../../lambdas/core/errors.js';
import {
  escapeSlack,
  formatNotification,
  formatSlack,
  formatTeams,
  matchesRoute,
  notifyChannel,
  type DeliveryLedger,
  type NotificationChannel,
} from '../../lambdas/core/notification.js';
import { LocalConfig, NotifyChannelSpec, parse } from '../../lambdas/core/schemas.js';
import type { JobStateChange } from '../../lambdas/ports/events.js';

const event = (over: Partial<JobStateChange> = {}): JobStateChange => ({
  eventId: 'e-0001',
  jobId: 'j-0001',
  name: 'train resnet',
  project: 'vision',
  owner: 'alice',
  pool: 'a10g',
  gpus: 2,
  previousState: 'RUNNING',
  state: 'STOPPING',
  at: '2025-02-03T10:00:00.000Z',
  ...over,
});

/** Every mrkdwn string in a Slack message: the fallback text and each block's text. */
function slackTexts(message: ReturnType<typeof formatSlack>): string[] {
  const texts = [message.text];
  for (const block of message.blocks as Array<{
    text?: { text: string };
    fields?: Array<{ text: string }>;
    elements?: Array<{ text: string }>;
  }>) {
    if (block.text) texts.push(block.text.text);
    for (const f of block.fields ?? []) texts.push(f.text);
    for (const e of block.elements ?? []) texts.push(e.text);
  }
  return texts;
}

describe('Slack formatting', () => {
  it('names the job, its new state, reason, project, owner and pool', () => {
    const message = formatSlack(
      event({ state: 'WAITING', previousState: 'PENDING', stateReason: 'pool a10g has 1 of 8 GPUs free, needs 2' }),
    );
    const all = slackTexts(message).join('\n');
    for (const part of [
      'train resnet',
      '*WAITING*',
      'pool a10g has 1 of 8 GPUs free, needs 2',
      'vision',
      'alice',
      'a10g',
      'j-0001',
      'PENDING → WAITING',
    ]) {
      assert.ok(all.includes(part), `missing ${part}`);
    }
  });

  it('cannot mention a channel or a user, or smuggle a link, through user text', () => {
    const message = formatSlack(
      event({
        name: '<!channel> deploy',
        owner: '<@U123>',
        project: 'vision',
        stateReason: 'see <http://evil.example|docs> & <!here>',
      }),
    );
    for (const text of slackTexts(message)) {
      assert.doesNotMatch(text, /<!channel>|<!here>|<@U123>|<http:/);
    }
    const all = slackTexts(message).join('\n');
    assert.ok(all.includes('&lt;!channel&gt; deploy'));
    assert.ok(all.includes('&lt;@\u200bU123&gt;'));
    assert.ok(all.includes('&amp; &lt;!here&gt;'));
  });

  it('escapes &, <, > and breaks bare @mentions', () => {
    assert.equal(escapeSlack('a & b <c> @channel'), 'a &amp; b &lt;c&gt; @\u200bchannel');
  });
});

describe('Teams formatting', () => {
  it('is an Adaptive Card with the job’s facts, markdown in user text escaped', () => {
    const card = formatTeams(
      event({ name: '[click](http://evil.example) **now**', state: 'FAILED', stateReason: 'exited with code 3' }),
    ) as {
      type: string;
      attachments: Array<{
        contentType: string;
        content: {
          type: string;
          body: Array<{ type: string; text?: string; facts?: Array<{ title: string; value: string }> }>;
        };
      }>;
    };
    assert.equal(card.type, 'message');
    const { contentType, content } = card.attachments[0];
    assert.equal(contentType, 'application/vnd.microsoft.card.adaptive');
    assert.equal(content.type, 'AdaptiveCard');
    const title = content.body[0].text!;
    assert.ok(title.includes('\\[click\\]\\(http://evil.example\\)'), title);
    assert.ok(title.includes('\\*\\*now\\*\\*'), title);
    assert.ok(title.endsWith('FAILED'));
    assert.equal(content.body[1].text, 'exited with code 3');
    const facts = Object.fromEntries(content.body[2].facts!.map((f) => [f.title, f.value]));
    assert.equal(facts.Project, 'vision');
    assert.equal(facts.GPUs, '2');
  });

  it('formatNotification picks the format by type', () => {
    assert.ok('blocks' in (formatNotification('slack', event()) as object));
    assert.ok('attachments' in (formatNotification('teams', event()) as object));
  });
});

describe('matchesRoute', () => {
  it('matches everything without filters', () => {
    assert.equal(matchesRoute({}, event()), true);
  });

  it('filters by project', () => {
    assert.equal(matchesRoute({ projects: ['vision'] }, event()), true);
    assert.equal(matchesRoute({ projects: ['audio'] }, event()), false);
  });

  it('filters by state', () => {
    assert.equal(matchesRoute({ states: ['FAILED', 'EXPIRED'] }, event({ state: 'FAILED' })), true);
    assert.equal(matchesRoute({ states: ['FAILED', 'EXPIRED'] }, event({ state: 'SUCCEEDED' })), false);
  });

  it('needs both filters to match', () => {
    const route = { projects: ['vision'], states: ['SUCCEEDED' as const] };
    assert.equal(matchesRoute(route, event({ state: 'SUCCEEDED' })), true);
    assert.equal(matchesRoute(route, event({ state: 'SUCCEEDED', project: 'audio' })), false);
    assert.equal(matchesRoute(route, event({ state: 'FAILED' })), false);
  });
});

/** A ledger in a Map that records what was asked of it. */
class FakeLedger implements DeliveryLedger {
  readonly state = new Map<string, 'claimed' | 'sent'>();
  readonly calls: string[] = [];
  async claim(key: string) {
    this.calls.push(`claim ${key}`);
    const current = this.state.get(key);
    if (current) return current === 'sent' ? ('sent' as const) : ('busy' as const);
    this.state.set(key, 'claimed');
    return 'claimed' as const;
  }
  async markSent(key: string) {
    this.calls.push(`sent ${key}`);
    this.state.set(key, 'sent');
  }
  async release(key: string) {
    this.calls.push(`release ${key}`);
    this.state.delete(key);
  }
}

const quiet: Logger = { info() {}, warn() {}, error() {} };

describe('notifyChannel', () => {
  const channel: NotificationChannel = { id: 'ml-alerts', type: 'slack', projects: ['vision'], states: ['FAILED'] };

  it('posts a routed event once, however often it arrives', async () => {
    const ledger = new FakeLedger();
    const posted: string[] = [];
    const deps = {
      ledger,
      log: quiet,
      post: async (c: NotificationChannel, e: JobStateChange) => void posted.push(`${c.id} ${e.eventId}`),
    };
    assert.equal(await notifyChannel(deps, channel, event({ state: 'FAILED' })), 'posted');
    assert.equal(
      await notifyChannel(deps, channel, event({ state: 'FAILED', at: '2025-02-03T10:00:07.000Z' })),
      'already-sent',
    );
    assert.deepEqual(posted, ['ml-alerts e-0001']);
    assert.deepEqual(ledger.calls, [
      'claim notify|ml-alerts|e-0001',
      'sent notify|ml-alerts|e-0001',
      'claim notify|ml-alerts|e-0001',
    ]);
  });

  it('does not touch the ledger for an event its route does not take', async () => {
    const ledger = new FakeLedger();
    const deps = { ledger, log: quiet, post: async () => assert.fail('posted') };
    assert.equal(await notifyChannel(deps, channel, event({ state: 'SUCCEEDED' })), 'not-routed');
    assert.equal(await notifyChannel(deps, channel, event({ state: 'FAILED', project: 'audio' })), 'not-routed');
    assert.deepEqual(ledger.calls, []);
  });

  it('leaves a delivery in flight elsewhere alone', async () => {
    const ledger = new FakeLedger();
    ledger.state.set('notify|ml-alerts|e-0001', 'claimed');
    const deps = { ledger, log: quiet, post: async () => assert.fail('posted') };
    assert.equal(await notifyChannel(deps, channel, event({ state: 'FAILED' })), 'in-flight');
  });

  it('gives the claim up when the post fails, so a redelivery posts', async () => {
    const ledger = new FakeLedger();
    let fail = true;
    const deps = {
      ledger,
      log: quiet,
      post: async () => {
        if (fail) throw new Error('webhook answered 500');
      },
    };
    await assert.rejects(notifyChannel(deps, channel, event({ state: 'FAILED' })), /500/);
    assert.equal(ledger.state.get('notify|ml-alerts|e-0001'), undefined);
    fail = false;
    assert.equal(await notifyChannel(deps, channel, event({ state: 'FAILED' })), 'posted');
    assert.equal(ledger.state.get('notify|ml-alerts|e-0001'), 'sent');
  });
});

describe('notification routes in configuration', () => {
  it('the local config takes a states filter and refuses an unknown state', () => {
    const config = parse(LocalConfig, {
      notifications: [
        {
          type: 'teams',
          url: 'https://example.webhook.office.com/x',
          projects: ['vision'],
          states: ['FAILED', 'EXPIRED'],
        },
      ],
    });
    assert.deepEqual(config.notifications[0].states, ['FAILED', 'EXPIRED']);
    assert.throws(
      () =>
        parse(LocalConfig, { notifications: [{ type: 'slack', url: 'https://hooks.example/x', states: ['DONE'] }] }),
      (error: unknown) =>
        error instanceof ValidationError && error.details.some((d) => d.field === 'notifications.0.states.0'),
    );
  });

  it('an AWS channel names its secret by ARN, never by URL', () => {
    const arn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:flare/slack-ml-AbCdEf';
    assert.deepEqual(parse(NotifyChannelSpec, { id: 'ml', type: 'slack', secretArn: arn, states: ['FAILED'] }), {
      id: 'ml',
      type: 'slack',
      secretArn: arn,
      states: ['FAILED'],
    });
    assert.throws(
      () => parse(NotifyChannelSpec, { id: 'ml', type: 'slack', secretArn: 'https://hooks.slack.com/services/T/B/x' }),
      /secretArn/,
    );
    assert.throws(
      () => parse(NotifyChannelSpec, { id: 'ml', type: 'slack', secretArn: arn, url: 'https://hooks.slack.com/x' }),
      /url: unknown field/,
    );
  });
});
