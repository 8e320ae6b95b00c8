/**
 * The notifier's delivery ledger in the idempotency table (the table the API's
 * `Idempotency-Key`s live in: keys here start with `notify|`, which no project
 * name can, so the two never meet; `expiresAtEpoch` is the table's TTL).
 *
 * A delivery is claimed with a conditional put before it is posted, so two
 * copies of one event handled at once (SQS delivers at least once, and on AWS
 * an event may reach the bus twice) post once. A claim is a lease: a notifier
 * that died mid-post leaves a claim that lapses after `leaseSeconds`, and a
 * later redelivery takes it over. After a successful post the item becomes a
 * `sent` marker kept for `ttlSeconds`.
 */
import { randomUUID } from 'node:crypto';
import { GetCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { DeliveryLedger } from '../../core/notification.js';
import { conditionalWrite } from './transactions.js';

export interface DynamoDedupOptions {
  /** How long a `sent` marker is kept. @default 3 days (SQS keeps a message at most 14 days, the DLQ aside; redrives come sooner) */
  ttlSeconds?: number;
  /** How long a claim holds; longer than one delivery takes, retries included. @default 60 */
  leaseSeconds?: number;
  /** @default () => new Date() */
  now?: () => Date;
}

const CLAIMED = 'claimed';
const SENT = 'sent';

export class DynamoDedup implements DeliveryLedger {
  private readonly ttlSeconds: number;
  private readonly leaseSeconds: number;
  private readonly now: () => Date;
  /** The claims this process holds, by key: a release gives up only its own claim, never one that lapsed and was taken over. */
  private readonly held = new Map<string, string>();

  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
    options: DynamoDedupOptions = {},
  ) {
    this.ttlSeconds = options.ttlSeconds ?? 3 * 24 * 3600;
    this.leaseSeconds = options.leaseSeconds ?? 60;
    this.now = options.now ?? (() => new Date());
  }

  async claim(key: string): Promise<'claimed' | 'sent' | 'busy'> {
    const now = this.epoch();
    const holder = randomUUID();
    const claimed = await conditionalWrite(this.doc, {
      Put: {
        TableName: this.tableName,
        Item: {
          key,
          status: CLAIMED,
          holder,
          leaseUntil: now + this.leaseSeconds,
          expiresAtEpoch: now + this.ttlSeconds,
        },
        ConditionExpression: 'attribute_not_exists(#key) OR (#status = :claimed AND leaseUntil < :now)',
        ExpressionAttributeNames: { '#key': 'key', '#status': 'status' },
        ExpressionAttributeValues: { ':claimed': CLAIMED, ':now': now },
      },
    });
    if (claimed) {
      this.held.set(key, holder);
      return 'claimed';
    }
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { key }, ConsistentRead: true }),
    );
    // Gone again in between: its holder released it after a failed post; this copy comes back later.
    return Item?.status === SENT ? 'sent' : 'busy';
  }

  async markSent(key: string): Promise<void> {
    this.held.delete(key);
    const now = this.epoch();
    await this.doc.send(
      new PutCommand({
        TableName: this.tableName,
        Item: { key, status: SENT, sentAt: this.now().toISOString(), expiresAtEpoch: now + this.ttlSeconds },
      }),
    );
  }

  async release(key: string): Promise<void> {
    const holder = this.held.get(key);
    if (!holder) return;
    this.held.delete(key);
    // A condition that fails means it lapsed and was taken over, or was sent by another copy: not ours to give up.
    await conditionalWrite(this.doc, {
      Delete: {
        TableName: this.tableName,
        Key: { key },
        ConditionExpression: '#status = :claimed AND holder = :holder',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: { ':claimed': CLAIMED, ':holder': holder },
      },
    });
  }

  private epoch(): number {
    return Math.floor(this.now().getTime() / 1000);
  }
}
