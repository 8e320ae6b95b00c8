/**
 * The AWS chat notifier driven with SQS events (test/fixtures/events/notifier-*.json):
 * real webhook receivers on 127.0.0.1, the delivery ledger in DynamoDB Local,
 * Secrets Manager through aws-sdk-client-mock (exact requests, the cache).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  GetSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import type { Context, SQSEvent, SQSRecord } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { consoleLogger } from '../../lambdas/adapters/console-logger.js';
import { DynamoDedup } from '../../lambdas/adapters/dynamo/dynamo-dedup.js';
import { SecretsWebhooks, WEBHOOK_URL_CACHE_MS } from '../../lambdas/adapters/secrets-webhooks.js';
import { WebhookPoster } from '../../lambdas/adapters/webhook-notifier.js';
import type { NotifyChannelSpec } from '../../lambdas/core/schemas.js';
import { awsNotifierDeps } from '../../lambdas/handlers/aws-deps.js';
import { createNotifierHandler, type NotifierDeps } from '../../lambdas/handlers/events/notifier.js';
import { createTables, defaultTableNames } from '../../lambdas/local/tables.js';
import type { JobStateChange } from '../../lambdas/ports/events.js';
import { startDynamo, type Dynamo } from '../support/harness.js';
import { WebhookReceiver } from '../support/webhook-receiver.js';
import { readFixture } from '../support/fixtures.js';

const fixture = (name: string): SQSEvent => readFixture(`events/${name}`);

/** The fixture's message with another channel, message id or detail. */
function message(over: { messageId: string; channel?: string; detail?: Partial<JobStateChange> }): SQSRecord {
  const [base] = fixture('notifier-job-failed').Records;
  const body = JSON.parse(base.body) as { channel: string; event: { detail: JobStateChange } };
  return {
    ...base,
    messageId: over.messageId,
    body: JSON.stringify({
      channel: over.channel ?? body.channel,
      event: { ...body.event, detail: { ...body.event.detail, ...over.detail } },
    }),
  };
}

const ARN = {
  ml: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:flare/slack-ml-alerts-AbCdEf',
  audio: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:flare/teams-audio-GhIjKl',
  broken: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:flare/broken-MnOpQr',
};
/** The secret part of the Slack webhook path; it must never reach a log line. */
const SLACK_TOKEN = 'XyZ0sEcReT0tOkEn42';

describe('notifier Lambda', () => {
  let dynamo: Dynamo;
  const slack = new WebhookReceiver();
  const teams = new WebhookReceiver();
  const secrets = new SecretsManagerClient({
    region: 'eu-west-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
  const secretsMock = mockClient(secrets);

  before(async () => {
    [dynamo] = await Promise.all([startDynamo(), slack.start(), teams.start()]);
  });
  after(async () => {
    await Promise.all([slack.stop(), teams.stop()]);
    await dynamo?.local.stop();
  });
  beforeEach(() => {
    slack.reset();
    teams.reset();
    secretsMock.reset();
  });

  const slackUrl = () => `${slack.url}/services/T000/B000/${SLACK_TOKEN}`;

  /** A notifier with fresh tables, the given secrets, and every log line kept. */
  async function notifier(
    options: {
      channels?: NotifyChannelSpec[];
      secretValues?: Record<string, string>;
      timeoutMs?: number;
      clock?: { now: number };
    } = {},
  ) {
    const secretValues = options.secretValues ?? {
      [ARN.ml]: slackUrl(),
      [ARN.audio]: JSON.stringify({ url: `${teams.url}/webhookb2/teams-secret` }),
    };
    for (const [arn, value] of Object.entries(secretValues)) {
      secretsMock
        .on(GetSecretValueCommand, { SecretId: arn })
        .resolves({ ARN: arn, Name: arn.split(':').at(-1), SecretString: value, VersionId: 'v1' });
    }
    const tables = defaultTableNames(`n${randomBytes(4).toString('hex')}`);
    await createTables(dynamo.client, tables);
    const lines: string[] = [];
    const log = consoleLogger({ service: 'flare-notifier' }, (line) => lines.push(line));
    const clock = options.clock;
    const deps: NotifierDeps = {
      channels: options.channels ?? [
        { id: 'ml-alerts', type: 'slack', secretArn: ARN.ml, projects: ['vision'], states: ['FAILED', 'EXPIRED'] },
        { id: 'audio', type: 'teams', secretArn: ARN.audio, projects: ['audio'] },
      ],
      ledger: new DynamoDedup(dynamo.doc, tables.idempotency),
      webhooks: new SecretsWebhooks(secrets, clock ? { now: () => clock.now } : {}),
      poster: new WebhookPoster(log, { retries: 0, timeoutMs: options.timeoutMs ?? 2000 }),
      log,
    };
    const handler = createNotifierHandler(() => deps);
    return {
      lines,
      invoke: (records: SQSRecord[]) => handler({ Records: records }, {} as Context),
      ledgerItem: async (channel: string, eventId: string) =>
        (
          await dynamo.doc.send(
            new GetCommand({
              TableName: tables.idempotency,
              Key: { key: `notify|${channel}|${eventId}` },
              ConsistentRead: true,
            }),
          )
        ).Item,
      ledger: deps.ledger as DynamoDedup,
      tables,
    };
  }

  it('posts a routed event to the channel webhook, user text escaped, and marks it sent for a few days', async () => {
    const { invoke, ledgerItem } = await notifier();
    const before = Math.floor(Date.now() / 1000);
    const result = await invoke(fixture('notifier-job-failed').Records);
    assert.deepEqual(result, { batchItemFailures: [] });
    assert.deepEqual(
      secretsMock.commandCalls(GetSecretValueCommand).map((c) => c.args[0].input),
      [{ SecretId: ARN.ml }],
    );
    assert.equal(slack.received.length, 1);
    const [post] = slack.received;
    assert.equal(post.path, `/services/T000/B000/${SLACK_TOKEN}`);
    assert.match(post.body.text, /Job sweep &lt;!channel&gt; is now \*FAILED\*/);
    assert.doesNotMatch(JSON.stringify(post.body), /<!channel>/);
    assert.match(post.body.text, /node i-0bbb exited with code 3/);
    const item = await ledgerItem('ml-alerts', '6f1c0b7e2a9d4e3f8a1b2c3d4e5f6a7b');
    assert.equal(item?.status, 'sent');
    const days = (Number(item?.expiresAtEpoch) - before) / 86_400;
    assert.ok(days > 2.9 && days < 3.1, `kept ${days} days`);
  });

  it('posts a duplicate delivery of one eventId once: in one batch, and redelivered later', async () => {
    const { invoke } = await notifier();
    assert.deepEqual(await invoke(fixture('notifier-duplicate').Records), { batchItemFailures: [] });
    assert.deepEqual(await invoke(fixture('notifier-job-failed').Records), { batchItemFailures: [] });
    assert.equal(slack.received.length, 1);
  });

  it('reads a secret once for two messages, and again after five minutes (rotation)', async () => {
    const clock = { now: Date.parse('2025-02-03T10:00:00Z') };
    const { invoke } = await notifier({ clock });
    await invoke([
      message({ messageId: 'm-1', detail: { eventId: 'e-1', jobId: 'j-1' } }),
      message({ messageId: 'm-2', detail: { eventId: 'e-2', jobId: 'j-2' } }),
    ]);
    assert.equal(secretsMock.commandCalls(GetSecretValueCommand).length, 1);
    assert.equal(slack.received.length, 2);

    // Rotated to a new URL: not seen while cached, seen after the cache time.
    secretsMock
      .on(GetSecretValueCommand, { SecretId: ARN.ml })
      .resolves({ ARN: ARN.ml, SecretString: JSON.stringify({ url: `${slack.url}/rotated/${SLACK_TOKEN}` }) });
    clock.now += WEBHOOK_URL_CACHE_MS - 1000;
    await invoke([message({ messageId: 'm-3', detail: { eventId: 'e-3' } })]);
    clock.now += 2000;
    await invoke([message({ messageId: 'm-4', detail: { eventId: 'e-4' } })]);
    assert.deepEqual(
      secretsMock.commandCalls(GetSecretValueCommand).map((c) => c.args[0].input),
      [{ SecretId: ARN.ml }, { SecretId: ARN.ml }],
    );
    assert.deepEqual(
      slack.received.map((r) => r.path.split('/')[1]),
      ['services', 'services', 'services', 'rotated'],
    );
  });

  it('reports a message whose webhook answered 500 or 404 as failed, leaves it unsent, and posts it when SQS redelivers it', async () => {
    const { invoke, ledgerItem } = await notifier();
    slack.script = [500, 404];
    const failing = message({ messageId: 'm-fail', detail: { eventId: 'e-fail' } });
    const failing4xx = message({ messageId: 'm-fail-4xx', detail: { eventId: 'e-fail-4xx' } });
    const fine = message({ messageId: 'm-ok', channel: 'audio', detail: { eventId: 'e-ok', project: 'audio' } });
    const result = await invoke([failing, fine, failing4xx]);
    assert.deepEqual(result, { batchItemFailures: [{ itemIdentifier: 'm-fail' }, { itemIdentifier: 'm-fail-4xx' }] });
    assert.equal(teams.received.length, 1);
    assert.equal(await ledgerItem('ml-alerts', 'e-fail'), undefined, 'not marked sent, claim given up');
    assert.equal((await ledgerItem('audio', 'e-ok'))?.status, 'sent');

    assert.deepEqual(await invoke([failing, failing4xx]), { batchItemFailures: [] });
    assert.equal((await ledgerItem('ml-alerts', 'e-fail'))?.status, 'sent');
    assert.equal(slack.received.length, 4);
  });

  it('reports a message whose webhook timed out as failed', async () => {
    const { invoke, ledgerItem } = await notifier({ timeoutMs: 100 });
    slack.delayMs = 500;
    assert.deepEqual(await invoke([message({ messageId: 'm-slow', detail: { eventId: 'e-slow' } })]), {
      batchItemFailures: [{ itemIdentifier: 'm-slow' }],
    });
    assert.equal(await ledgerItem('ml-alerts', 'e-slow'), undefined);
  });

  it('routes by project and state: a message the channel does not take is done without a post', async () => {
    const { invoke, ledgerItem } = await notifier();
    const result = await invoke([
      message({ messageId: 'm-other-project', detail: { eventId: 'e-a', project: 'audio' } }),
      message({
        messageId: 'm-other-state',
        detail: { eventId: 'e-b', state: 'SUCCEEDED', previousState: 'STOPPING' },
      }),
      message({ messageId: 'm-expired', detail: { eventId: 'e-c', state: 'EXPIRED' } }),
      message({
        messageId: 'm-teams',
        channel: 'audio',
        detail: { eventId: 'e-d', project: 'audio', state: 'RUNNING', previousState: 'LAUNCHING' },
      }),
    ]);
    assert.deepEqual(result, { batchItemFailures: [] });
    assert.equal(slack.received.length, 1);
    assert.match(slack.received[0].body.text, /\*EXPIRED\*/);
    assert.equal(teams.received.length, 1, 'a JSON {"url"} secret works too');
    assert.equal(teams.received[0].path, '/webhookb2/teams-secret');
    assert.equal(teams.received[0].body.attachments[0].content.body[0].text, 'Job sweep \\<!channel\\> is now RUNNING');
    assert.equal(await ledgerItem('ml-alerts', 'e-a'), undefined);
  });

  it('leaves a delivery another notifier is making to it, and takes over a claim that lapsed', async () => {
    const { invoke, ledger, tables } = await notifier();
    const other = new DynamoDedup(dynamo.doc, tables.idempotency, { now: () => new Date(Date.now() - 61_000) });
    assert.equal(await other.claim('notify|ml-alerts|e-held'), 'claimed');
    const held = message({ messageId: 'm-held', detail: { eventId: 'e-held' } });
    // A lease of 60 s from a minute ago has lapsed: a notifier that died mid-post does not block the event for ever.
    assert.deepEqual(await invoke([held]), { batchItemFailures: [] });
    assert.equal(slack.received.length, 1);

    const live = new DynamoDedup(dynamo.doc, tables.idempotency);
    assert.equal(await live.claim('notify|ml-alerts|e-busy'), 'claimed');
    assert.deepEqual(await invoke([message({ messageId: 'm-busy', detail: { eventId: 'e-busy' } })]), {
      batchItemFailures: [{ itemIdentifier: 'm-busy' }],
    });
    assert.equal(slack.received.length, 1, 'not posted while another holds it');
    assert.equal(await ledger.claim('notify|ml-alerts|e-held'), 'sent');
  });

  it('fails messages it cannot handle: an unknown channel, a body that is not the contract, a secret that holds no URL', async () => {
    const { invoke } = await notifier({
      channels: [{ id: 'broken', type: 'slack', secretArn: ARN.broken }],
      secretValues: { [ARN.broken]: `{ "url": ${slackUrl()} }` },
    });
    const notJson = { ...message({ messageId: 'm-garbage' }), body: 'hello' };
    const wrongSource = message({ messageId: 'm-wrong' });
    wrongSource.body = wrongSource.body.replace('"source":"flare"', '"source":"aws.ec2"');
    const result = await invoke([
      message({ messageId: 'm-unknown', channel: 'nowhere' }),
      notJson,
      wrongSource,
      message({ messageId: 'm-broken', channel: 'broken' }),
    ]);
    assert.deepEqual(
      result.batchItemFailures.map((f) => f.itemIdentifier),
      ['m-unknown', 'm-garbage', 'm-wrong', 'm-broken'],
    );
    assert.equal(slack.received.length, 0);
  });

  it('never logs a webhook URL, whatever happens to the post', async () => {
    const clock = { now: Date.parse('2025-02-03T10:00:00Z') };
    const { invoke, lines } = await notifier({
      channels: [
        { id: 'ml-alerts', type: 'slack', secretArn: ARN.ml },
        { id: 'broken', type: 'slack', secretArn: ARN.broken },
      ],
      secretValues: { [ARN.ml]: slackUrl(), [ARN.broken]: `{ "url": ${slackUrl()} }` },
      timeoutMs: 100,
      clock,
    });
    slack.script = [503];
    await invoke([message({ messageId: 'm-1', detail: { eventId: 'e-1' } })]);
    slack.delayMs = 300;
    await invoke([message({ messageId: 'm-2', detail: { eventId: 'e-2' } })]);
    slack.delayMs = 0;
    await invoke([message({ messageId: 'm-3', detail: { eventId: 'e-3' } })]);
    await invoke([message({ messageId: 'm-4', channel: 'broken', detail: { eventId: 'e-4' } })]);
    // Later: the webhook host is gone, the broken secret deleted.
    const closed = new WebhookReceiver();
    await closed.start();
    await closed.stop();
    secretsMock
      .on(GetSecretValueCommand, { SecretId: ARN.ml })
      .resolves({ SecretString: `${closed.url}/services/T000/B000/${SLACK_TOKEN}` });
    secretsMock
      .on(GetSecretValueCommand, { SecretId: ARN.broken })
      .rejects(
        new ResourceNotFoundException({ $metadata: {}, message: "Secrets Manager can't find the specified secret." }),
      );
    clock.now += WEBHOOK_URL_CACHE_MS + 1;
    await invoke([
      message({ messageId: 'm-5', detail: { eventId: 'e-5' } }),
      message({ messageId: 'm-6', channel: 'broken', detail: { eventId: 'e-6' } }),
    ]);

    const all = lines.join('\n');
    for (const seen of [
      '"status":503',
      '"error":"timeout"',
      '"outcome":"posted"',
      'WebhookSecretInvalid',
      '"error":"ECONNREFUSED"',
      'ResourceNotFoundException',
    ]) {
      assert.ok(all.includes(seen), `the log tells of ${seen}:\n${all}`);
    }
    for (const line of lines) {
      assert.doesNotMatch(line, new RegExp(SLACK_TOKEN), line);
      assert.doesNotMatch(line, /\/services\/T000/, line);
    }
  });

  it('reads its configuration once from the environment, failing fast with the variable named', () => {
    assert.throws(
      () => awsNotifierDeps({}),
      (error: Error) => /NOTIFY_CHANNELS/.test(error.message) && /IDEMPOTENCY_TABLE/.test(error.message),
    );
    assert.throws(
      () => awsNotifierDeps({ NOTIFY_CHANNELS: 'slack', IDEMPOTENCY_TABLE: 't' }),
      /NOTIFY_CHANNELS: must be a JSON array of channels/,
    );
    const twice = JSON.stringify([
      { id: 'a', type: 'slack', secretArn: ARN.ml },
      { id: 'a', type: 'teams', secretArn: ARN.audio },
    ]);
    assert.throws(
      () => awsNotifierDeps({ NOTIFY_CHANNELS: twice, IDEMPOTENCY_TABLE: 't' }),
      /channel ids must be unique/,
    );
    assert.throws(
      () =>
        awsNotifierDeps({
          NOTIFY_CHANNELS: JSON.stringify([{ id: 'a', type: 'email', secretArn: ARN.ml }]),
          IDEMPOTENCY_TABLE: 't',
        }),
      /NOTIFY_CHANNELS\.0\.type/,
    );
  });
});
