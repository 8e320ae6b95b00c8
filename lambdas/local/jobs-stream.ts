/**
 * The jobs table's DynamoDB stream, read locally as Lambda's event source
 * mapping reads it on AWS: every shard in order, records handed over in the
 * Lambda `DynamoDBStreamEvent` shape to the same stream publisher
 * (handlers/events/stream-publisher.ts), a partial batch failure retried from
 * the failed record, and the last delivered sequence number per shard kept as
 * a checkpoint, so a restarted plane resumes where it stopped (at least once).
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { DescribeTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DescribeStreamCommand,
  ExpiredIteratorException,
  GetRecordsCommand,
  GetShardIteratorCommand,
  TrimmedDataAccessException,
  type _Record,
  type DynamoDBStreamsClient,
  type Shard,
} from '@aws-sdk/client-dynamodb-streams';
import type { DynamoDBBatchResponse, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import type { Logger } from '../core/deps.js';
import { publishJobChanges, type StreamPublisherDeps } from '../handlers/events/stream-publisher.js';

/** The last delivered sequence number per shard of one stream. */
export interface Checkpoint {
  streamArn: string;
  shards: Record<string, string>;
}

export interface Checkpoints {
  load(): Promise<Checkpoint | undefined>;
  save(checkpoint: Checkpoint): Promise<void>;
}

/** Checkpoints in a JSON file, replaced whole on each save so a crash leaves the old one or the new one. */
export function fileCheckpoints(file: string): Checkpoints {
  return {
    async load() {
      try {
        return JSON.parse(await readFile(file, 'utf8')) as Checkpoint;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw error;
      }
    },
    async save(checkpoint) {
      await writeFile(`${file}.tmp`, JSON.stringify(checkpoint), { mode: 0o600 });
      await rename(`${file}.tmp`, file);
    },
  };
}

export function memoryCheckpoints(): Checkpoints {
  let kept: Checkpoint | undefined;
  return { load: async () => kept && structuredClone(kept), save: async (c) => void (kept = structuredClone(c)) };
}

interface ShardPosition {
  parent?: string;
  /** The last sequence number read; records at or before it are never returned again. */
  last?: string;
  iterator?: string;
  /** Closed and read to its end. */
  done: boolean;
}

/**
 * Reads new records from every shard of a stream, parents before children.
 * Iterators are kept between reads, so a quiet stream costs one GetRecords a
 * shard. DynamoDB Local now and then refuses an iterator after a record it
 * holds (TrimmedDataAccessException): the shard is reread from its start and
 * what was read already is skipped by sequence number.
 */
export class StreamReader {
  private readonly shards = new Map<string, ShardPosition>();
  private describedAt = 0;
  /** A shard was read to its end: its children may be new. */
  private resharded = false;
  private readonly shardIds = new WeakMap<DynamoDBRecord, string>();
  /** Reads served from a shard's start after DynamoDB Local refused an iterator as trimmed. */
  trimmedRereads = 0;

  constructor(
    private readonly client: DynamoDBStreamsClient,
    readonly streamArn: string,
    after: Record<string, string> = {},
    private readonly describeEveryMs = 5_000,
  ) {
    for (const [shardId, last] of Object.entries(after)) this.shards.set(shardId, { last, done: false });
  }

  /** The last sequence number read per shard. */
  positions(): Record<string, string> {
    return Object.fromEntries([...this.shards].filter(([, p]) => p.last).map(([id, p]) => [id, p.last!]));
  }

  /** Records written since the last read, in the Lambda event's shape. */
  async read(limit = 1000): Promise<DynamoDBRecord[]> {
    // A new stream has no shard until its first write, and a closed shard's children appear after it.
    const open = [...this.shards.values()].some((p) => !p.done);
    if (!open || this.resharded || Date.now() - this.describedAt >= this.describeEveryMs) await this.describe();
    const records: DynamoDBRecord[] = [];
    for (const [shardId, position] of this.shards) {
      const parent = position.parent && this.shards.get(position.parent);
      if (position.done || (parent && !parent.done)) continue;
      const read = await this.readShard(shardId, position, limit);
      const readAt = Date.now();
      for (const record of read.map((r) => lambdaRecord(r, readAt))) {
        this.shardIds.set(record, shardId);
        records.push(record);
      }
    }
    return records;
  }

  /** The shard a record returned by `read` came from (Lambda's record does not say). */
  shardOf(record: DynamoDBRecord): string {
    const shardId = this.shardIds.get(record);
    if (!shardId) throw new Error('a record this reader did not return');
    return shardId;
  }

  private async describe(): Promise<void> {
    const listed: Shard[] = [];
    let start: string | undefined;
    do {
      const { StreamDescription: d } = await this.client.send(
        new DescribeStreamCommand({ StreamArn: this.streamArn, ExclusiveStartShardId: start }),
      );
      listed.push(...(d?.Shards ?? []));
      start = d?.LastEvaluatedShardId;
    } while (start);
    const live = new Set(listed.map((s) => s.ShardId!));
    // A shard gone from the description has been trimmed away whole; a done one is kept while listed, so it is not read again.
    for (const id of this.shards.keys()) if (!live.has(id)) this.shards.delete(id);
    for (const shard of listed) {
      const known = this.shards.get(shard.ShardId!);
      const parent = shard.ParentShardId && live.has(shard.ParentShardId) ? shard.ParentShardId : undefined;
      if (known) known.parent = parent;
      else this.shards.set(shard.ShardId!, { parent, done: false });
    }
    this.describedAt = Date.now();
    this.resharded = false;
  }

  private async readShard(shardId: string, position: ShardPosition, limit: number): Promise<_Record[]> {
    const records: _Record[] = [];
    for (let attempt = 1; ; attempt++) {
      try {
        position.iterator ??= await this.iterator(shardId, position.last);
        while (position.iterator) {
          const page = await this.client.send(
            new GetRecordsCommand({ ShardIterator: position.iterator, Limit: limit }),
          );
          const fresh = (page.Records ?? []).filter((r) => after(r.dynamodb?.SequenceNumber, position.last));
          records.push(...fresh);
          if (fresh.length) position.last = fresh.at(-1)!.dynamodb!.SequenceNumber;
          position.iterator = page.NextShardIterator;
          if (!position.iterator) position.done = this.resharded = true;
          if (!page.Records?.length) break;
        }
        return records;
      } catch (error) {
        if (
          !(error instanceof TrimmedDataAccessException || error instanceof ExpiredIteratorException) ||
          attempt === 3
        )
          throw error;
        // Read on at once (a read that stopped here would look caught up): a trimmed shard from its
        // start, `last` skipping what was read; an expired iterator anew after `last`.
        position.iterator = undefined;
        if (error instanceof TrimmedDataAccessException) {
          this.trimmedRereads += 1;
          position.iterator = await this.iterator(shardId, undefined);
        }
      }
    }
  }

  private async iterator(shardId: string, last: string | undefined): Promise<string | undefined> {
    const at = last
      ? { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER' as const, SequenceNumber: last }
      : { ShardIteratorType: 'TRIM_HORIZON' as const };
    try {
      return (
        await this.client.send(new GetShardIteratorCommand({ StreamArn: this.streamArn, ShardId: shardId, ...at }))
      ).ShardIterator;
    } catch (error) {
      if (!(error instanceof TrimmedDataAccessException) || !last) throw error;
      this.trimmedRereads += 1;
      return this.iterator(shardId, undefined);
    }
  }
}

function after(sequenceNumber: string | undefined, last: string | undefined): boolean {
  return sequenceNumber !== undefined && (last === undefined || BigInt(sequenceNumber) > BigInt(last));
}

/** The SDK's record as Lambda delivers it: the creation time in whole seconds since the epoch. */
function lambdaRecord(record: _Record, readAt: number): DynamoDBRecord {
  const { ApproximateCreationDateTime: created, ...rest } = record.dynamodb ?? {};
  return {
    ...(record as DynamoDBRecord),
    dynamodb: {
      ...(rest as DynamoDBRecord['dynamodb']),
      ...(created ? { ApproximateCreationDateTime: toSecond(created, readAt) } : {}),
    },
  };
}

/**
 * DynamoDB Local dates a record to the minute, AWS to the second. A record read
 * within its minute was written at most a poll before the read: that second is
 * the closer one. A record read later (after a restart) keeps the minute.
 */
function toSecond(created: Date, readAt: number): number {
  const minute = Math.floor(created.getTime() / 1000);
  const read = Math.floor(readAt / 1000);
  return read >= minute && read < minute + 60 ? read : minute;
}

export type StreamHandler = (event: DynamoDBStreamEvent) => Promise<DynamoDBBatchResponse | void>;

export interface StreamPollerOptions {
  /** The plane's DynamoDB client: the stream's ARN is read from the table's description, anew after an error. */
  dynamodb: DynamoDBClient;
  streams: DynamoDBStreamsClient;
  tableName: string;
  handler: StreamHandler;
  checkpoints: Checkpoints;
  log: Logger;
  /** @default 100 */
  pollMs?: number;
  /** @default 100, the event source mapping's default */
  batchSize?: number;
}

/**
 * Polls the stream and delivers its records in order, in batches, to the
 * handler; a batch's failed record and those after it are delivered again on
 * the next poll. The checkpoint moves only past delivered records.
 */
export class StreamPoller {
  private reader: StreamReader | undefined;
  private pending: DynamoDBRecord[] = [];
  private delivered: Record<string, string> = {};
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  private stopped = false;
  private lastPassFailed = false;
  /** Passes failed in a row: the next waits longer, and only the first of a streak is logged. */
  private failures = 0;

  constructor(private readonly options: StreamPollerOptions) {}

  start(): void {
    this.stopped = false;
    const tick = async () => {
      await this.poll();
      const pollMs = this.options.pollMs ?? 100;
      if (!this.stopped)
        this.timer = setTimeout(tick, this.failures ? Math.min(pollMs * 2 ** this.failures, 5_000) : pollMs);
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One pass: new records read and delivered. Returns how many records were delivered; never throws. */
  poll(): Promise<number> {
    this.running ??= this.pass().finally(() => (this.running = undefined));
    return this.running;
  }

  /** Resolves once a pass begun after the call finds nothing left to deliver: every change stored before the call is published. */
  async drained(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      // A pass already under way may have read before the caller's last write.
      await this.running;
      const delivered = await this.poll();
      if (delivered === 0 && this.pending.length === 0 && !this.lastPassFailed) return;
      if (Date.now() > deadline)
        throw new Error(
          `the jobs stream is not drained after ${timeoutMs} ms (${this.pending.length} records pending)`,
        );
      if (this.lastPassFailed || this.pending.length > 0)
        await new Promise((resolve) => setTimeout(resolve, this.options.pollMs ?? 100));
    }
  }

  private async pass(): Promise<number> {
    try {
      const reader = this.reader ?? (this.reader = await this.open());
      this.pending.push(...(await reader.read()));
      const delivered = await this.deliver(reader);
      this.lastPassFailed = this.pending.length > 0;
      this.failures = 0;
      return delivered;
    } catch (error) {
      this.lastPassFailed = true;
      // DynamoDB Local restarting (a new table, a new stream) or busy: start over from the checkpoint.
      if (this.failures++ === 0)
        this.options.log.warn('jobs stream read failed; retrying', {
          error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
        });
      this.reader = undefined;
      this.pending = [];
      return 0;
    }
  }

  private async open(): Promise<StreamReader> {
    const { Table } = await this.options.dynamodb.send(new DescribeTableCommand({ TableName: this.options.tableName }));
    const streamArn = Table?.LatestStreamArn;
    if (!streamArn) throw new Error(`table ${this.options.tableName} has no stream`);
    const saved = await this.options.checkpoints.load();
    this.delivered = saved?.streamArn === streamArn ? saved.shards : {};
    return new StreamReader(this.options.streams, streamArn, this.delivered);
  }

  private async deliver(reader: StreamReader): Promise<number> {
    let count = 0;
    while (this.pending.length > 0) {
      const batch = this.pending.slice(0, this.options.batchSize ?? 100);
      const failed = await this.invoke(batch);
      const done =
        failed === undefined
          ? batch.length
          : Math.max(
              0,
              batch.findIndex((r) => r.dynamodb?.SequenceNumber === failed),
            );
      for (const record of batch.slice(0, done))
        this.delivered[reader.shardOf(record)] = record.dynamodb!.SequenceNumber!;
      this.pending.splice(0, done);
      count += done;
      if (done > 0) await this.options.checkpoints.save({ streamArn: reader.streamArn, shards: { ...this.delivered } });
      if (done < batch.length) break; // retried from the failed record on the next poll
    }
    return count;
  }

  /** The first failed record's sequence number, if any; a handler that throws failed the whole batch. */
  private async invoke(batch: DynamoDBRecord[]): Promise<string | undefined> {
    try {
      const response = await this.options.handler({ Records: batch });
      return response?.batchItemFailures[0]?.itemIdentifier;
    } catch (error) {
      this.options.log.error('jobs stream handler failed; the batch is retried', {
        error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      });
      return batch[0].dynamodb!.SequenceNumber;
    }
  }
}

export type JobEventsOptions = Omit<StreamPollerOptions, 'handler'> & { publisher: StreamPublisherDeps['publisher'] };

/** `Job State Change` events from the jobs stream, by the stream publisher AWS runs, onto `publisher` (the local bus). */
export function startJobEvents(options: JobEventsOptions): StreamPoller {
  const deps: StreamPublisherDeps = { publisher: options.publisher, log: options.log, now: () => new Date() };
  const poller = new StreamPoller({ ...options, handler: (event) => publishJobChanges(deps, event) });
  poller.start();
  return poller;
}
