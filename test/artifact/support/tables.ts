/**
 * The template's DynamoDB tables on DynamoDB Local, created from their own
 * AWS::DynamoDB::Table definitions (keys, indexes, stream, TTL), and a reader of
 * a table's real stream through the DynamoDB Streams API, as Lambda's event
 * source mapping reads it.
 */
import { CreateTableCommand, DescribeTableCommand, UpdateTimeToLiveCommand, type CreateTableCommandInput, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { getAtt, physicalName, type CfnTemplate } from './cfn-resolve.js';
import { ARTIFACT_REGION } from './types.js';

export interface TemplateTable {
  logicalId: string;
  name: string;
  /** The stream ARN the template gives (what a Lambda sees as eventSourceARN). */
  streamArn?: string;
  /** The stream ARN DynamoDB Local gave it (what the reader reads). */
  localStreamArn?: string;
}

/** Creates every table of the template; CloudFormation's properties map onto CreateTable one to one. */
export async function createTemplateTables(client: DynamoDBClient, template: CfnTemplate): Promise<Record<string, TemplateTable>> {
  const tables: Record<string, TemplateTable> = {};
  for (const [logicalId, resource] of Object.entries(template.Resources)) {
    if (resource.Type !== 'AWS::DynamoDB::Table') continue;
    const p = resource.Properties ?? {};
    const name = physicalName(template, logicalId);
    const input: CreateTableCommandInput = {
      TableName: name,
      AttributeDefinitions: p.AttributeDefinitions,
      KeySchema: p.KeySchema,
      BillingMode: p.BillingMode ?? 'PROVISIONED',
      ...(p.ProvisionedThroughput ? { ProvisionedThroughput: p.ProvisionedThroughput } : {}),
      ...(p.GlobalSecondaryIndexes ? { GlobalSecondaryIndexes: p.GlobalSecondaryIndexes } : {}),
      ...(p.LocalSecondaryIndexes ? { LocalSecondaryIndexes: p.LocalSecondaryIndexes } : {}),
      ...(p.StreamSpecification ? { StreamSpecification: { StreamEnabled: true, StreamViewType: p.StreamSpecification.StreamViewType } } : {}),
    };
    await client.send(new CreateTableCommand(input));
    if (p.TimeToLiveSpecification?.Enabled) {
      await client.send(new UpdateTimeToLiveCommand({ TableName: name, TimeToLiveSpecification: p.TimeToLiveSpecification }));
    }
    const described = await client.send(new DescribeTableCommand({ TableName: name }));
    tables[logicalId] = {
      logicalId,
      name,
      ...(p.StreamSpecification ? { streamArn: getAtt(template, logicalId, 'StreamArn'), localStreamArn: described.Table?.LatestStreamArn } : {}),
    };
  }
  return tables;
}

/** A stream record as GetRecords returns it (the `dynamodb` part is what a Lambda sees). */
export interface StreamRecord {
  eventID: string;
  eventName: 'INSERT' | 'MODIFY' | 'REMOVE';
  eventVersion: string;
  eventSource: string;
  awsRegion: string;
  dynamodb: { SequenceNumber: string; [key: string]: unknown };
}

/**
 * Reads a stream from the oldest record on (TRIM_HORIZON), every shard in
 * order, over the Streams API's own JSON protocol (the SDK's Streams client is
 * not a dependency; DynamoDB Local accepts any signature).
 */
export class StreamReader {
  /** The last sequence number read per shard: each read takes a fresh iterator after it. */
  private readonly last = new Map<string, string>();
  /** Reads that DynamoDB Local refused as trimmed and that were served from the shard's start instead. */
  trimmedRereads = 0;

  constructor(
    private readonly endpoint: string,
    private readonly streamArn: string,
  ) {}

  /** Records written since the last read. */
  async read(): Promise<StreamRecord[]> {
    const stream = (await this.call('DescribeStream', { StreamArn: this.streamArn })) as { StreamDescription: { Shards: Array<{ ShardId: string }> } };
    const records: StreamRecord[] = [];
    for (const { ShardId } of stream.StreamDescription.Shards) {
      try {
        records.push(...(await this.readShard(ShardId, this.last.get(ShardId))));
      } catch (error) {
        // DynamoDB Local now and then refuses an iterator after a record it has as TrimmedDataAccessException;
        // the shard's start is always readable, and what was read already is skipped by sequence number.
        if (!String(error).includes('TrimmedDataAccessException')) throw error;
        this.trimmedRereads += 1;
        const after = BigInt(this.last.get(ShardId) ?? '0');
        records.push(...(await this.readShard(ShardId, undefined)).filter((r) => BigInt(r.dynamodb.SequenceNumber) > after));
      }
    }
    return records;
  }

  private async readShard(shardId: string, after: string | undefined): Promise<StreamRecord[]> {
    const records: StreamRecord[] = [];
    const start = (await this.call('GetShardIterator', {
      StreamArn: this.streamArn,
      ShardId: shardId,
      ...(after ? { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', SequenceNumber: after } : { ShardIteratorType: 'TRIM_HORIZON' }),
    })) as { ShardIterator?: string };
    let iterator = start.ShardIterator;
    while (iterator) {
      const page = (await this.call('GetRecords', { ShardIterator: iterator, Limit: 1000 })) as { Records: StreamRecord[]; NextShardIterator?: string };
      records.push(...page.Records);
      if (page.Records.length === 0) break;
      iterator = page.NextShardIterator;
    }
    const newest = records.at(-1)?.dynamodb.SequenceNumber;
    if (newest && (!this.last.has(shardId) || BigInt(newest) > BigInt(this.last.get(shardId)!))) this.last.set(shardId, newest);
    return records;
  }

  private async call(action: string, body: unknown): Promise<unknown> {
    const response = await fetch(this.endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-amz-json-1.0',
        'x-amz-target': `DynamoDBStreams_20120810.${action}`,
        authorization: `AWS4-HMAC-SHA256 Credential=LambdaStreamPoller/20300101/${ARTIFACT_REGION}/dynamodb/aws4_request, SignedHeaders=host, Signature=0`,
      },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`DynamoDB Streams ${action}: ${response.status} ${text}`);
    return JSON.parse(text);
  }
}
