/**
 * Creates Flare's tables from schema/tables.json (the same file the CDK stack
 * reads), so DynamoDB Local gets exactly the keys and indexes AWS gets.
 */
import { readFileSync } from 'node:fs';
import {
  CreateTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  DynamoDBClient,
  ResourceInUseException,
  type DynamoDBClientConfig,
  UpdateTableCommand,
  UpdateTimeToLiveCommand,
  type TableDescription,
} from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import type { TableNames } from '../adapters/dynamo/table-names.js';
import { reportUnavailable } from '../adapters/unavailable.js';
import { StoreUnavailable } from '../core/errors.js';

export type { TableNames };

const TABLE_KEYS = ['jobs', 'quotas', 'pools', 'idempotency', 'catalog'] as const;
type TableKey = (typeof TABLE_KEYS)[number];

const KeySchema = z
  .array(z.object({ AttributeName: z.string().min(1), KeyType: z.enum(['HASH', 'RANGE']) }).strict())
  .min(1)
  .max(2);

const TableSpec = z
  .object({
    KeySchema,
    AttributeDefinitions: z
      .array(z.object({ AttributeName: z.string().min(1), AttributeType: z.enum(['S', 'N', 'B']) }).strict())
      .min(1),
    GlobalSecondaryIndexes: z
      .array(
        z
          .object({
            IndexName: z.string().min(1),
            KeySchema,
            Projection: z
              .object({
                ProjectionType: z.enum(['ALL', 'KEYS_ONLY', 'INCLUDE']),
                NonKeyAttributes: z.array(z.string()).optional(),
              })
              .strict(),
          })
          .strict(),
      )
      .optional(),
    TimeToLiveAttribute: z.string().min(1).optional(),
    StreamSpecification: z
      .object({
        StreamEnabled: z.literal(true),
        StreamViewType: z.enum(['NEW_IMAGE', 'OLD_IMAGE', 'NEW_AND_OLD_IMAGES', 'KEYS_ONLY']),
      })
      .strict()
      .optional(),
  })
  .strict();
export type TableSpec = z.infer<typeof TableSpec>;

const TablesFile = z
  .object({
    $comment: z.string().optional(),
    jobs: TableSpec,
    quotas: TableSpec,
    pools: TableSpec,
    idempotency: TableSpec,
    catalog: TableSpec,
  })
  .strict();

const SCHEMA_URL = new URL('../../schema/tables.json', import.meta.url);
const ACTIVE_TIMEOUT_MS = 60_000;

export class TableSchemaMismatch extends Error {
  constructor(
    readonly table: string,
    detail: string,
  ) {
    super(`table ${table} exists with a different shape than schema/tables.json: ${detail}`);
    this.name = 'TableSchemaMismatch';
  }
}

/** schema/tables.json, validated. */
export function loadTableSpecs(): Record<TableKey, TableSpec> {
  const parsed = TablesFile.parse(JSON.parse(readFileSync(SCHEMA_URL, 'utf8')));
  const { $comment: _comment, ...tables } = parsed;
  return tables;
}

export function defaultTableNames(prefix = 'flare'): TableNames {
  return {
    jobs: `${prefix}-jobs`,
    quotas: `${prefix}-quotas`,
    pools: `${prefix}-pools`,
    idempotency: `${prefix}-idempotency`,
    catalog: `${prefix}-catalog`,
  };
}

export interface CreateTablesResult {
  created: string[];
  existing: string[];
  /**
   * Per table with a TimeToLiveAttribute: `enabled`, or `unsupported` when the
   * endpoint rejects the TTL API as unknown (the table itself is fine; items
   * simply never expire there).
   */
  ttl: Record<string, 'enabled' | 'unsupported'>;
}

/**
 * Creates every table (PAY_PER_REQUEST) that does not exist yet, enables TTL
 * where the schema names an attribute, and waits until tables and indexes are
 * ACTIVE. Safe to run again: an existing table is checked against the schema
 * (keys and index names) and otherwise left alone.
 */
export async function createTables(client: DynamoDBClient, names: TableNames): Promise<CreateTablesResult> {
  const specs = loadTableSpecs();
  const result: CreateTablesResult = { created: [], existing: [], ttl: {} };
  await Promise.all(
    TABLE_KEYS.map(async (key) => {
      const spec = specs[key];
      const tableName = names[key];
      const created = await createTable(client, tableName, spec);
      (created ? result.created : result.existing).push(tableName);
      let table = await waitUntilActive(client, tableName);
      if (!created) table = await addMissingIndexes(client, tableName, spec, table);
      if (!created) assertSameShape(tableName, spec, table);
      if (!created) await enableStream(client, tableName, spec, table);
      if (spec.TimeToLiveAttribute !== undefined) {
        result.ttl[tableName] = await enableTimeToLive(client, tableName, spec.TimeToLiveAttribute);
      }
    }),
  );
  return result;
}

async function createTable(client: DynamoDBClient, tableName: string, spec: TableSpec): Promise<boolean> {
  try {
    await client.send(
      new CreateTableCommand({
        TableName: tableName,
        BillingMode: 'PAY_PER_REQUEST',
        KeySchema: spec.KeySchema,
        AttributeDefinitions: spec.AttributeDefinitions,
        GlobalSecondaryIndexes: spec.GlobalSecondaryIndexes,
        StreamSpecification: spec.StreamSpecification,
      }),
    );
    return true;
  } catch (error) {
    if (error instanceof ResourceInUseException) return false;
    throw error;
  }
}

async function waitUntilActive(client: DynamoDBClient, tableName: string): Promise<TableDescription> {
  const deadline = Date.now() + ACTIVE_TIMEOUT_MS;
  for (let delay = 50; ; delay = Math.min(delay * 2, 2_000)) {
    const { Table: table } = await client.send(new DescribeTableCommand({ TableName: tableName }));
    const indexesActive = (table?.GlobalSecondaryIndexes ?? []).every((index) => index.IndexStatus === 'ACTIVE');
    if (table?.TableStatus === 'ACTIVE' && indexesActive) return table;
    if (Date.now() > deadline) {
      throw new Error(`table ${tableName} is not ACTIVE after ${ACTIVE_TIMEOUT_MS} ms (status ${table?.TableStatus})`);
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

function assertSameShape(tableName: string, spec: TableSpec, table: TableDescription): void {
  const keys = (schema: { AttributeName?: string; KeyType?: string }[] | undefined) =>
    JSON.stringify((schema ?? []).map((k) => `${k.AttributeName}:${k.KeyType}`));
  if (keys(table.KeySchema) !== keys(spec.KeySchema)) {
    throw new TableSchemaMismatch(tableName, `key ${keys(table.KeySchema)}, expected ${keys(spec.KeySchema)}`);
  }
  const indexes = (
    list: { IndexName?: string; KeySchema?: { AttributeName?: string; KeyType?: string }[] }[] | undefined,
  ) => JSON.stringify((list ?? []).map((i) => `${i.IndexName}=${keys(i.KeySchema)}`).sort());
  if (indexes(table.GlobalSecondaryIndexes) !== indexes(spec.GlobalSecondaryIndexes)) {
    throw new TableSchemaMismatch(
      tableName,
      `indexes ${indexes(table.GlobalSecondaryIndexes)}, expected ${indexes(spec.GlobalSecondaryIndexes)}`,
    );
  }
}

/**
 * A table made before the schema gained an index (a data directory from an earlier version) gets it, one
 * index per UpdateTable as DynamoDB requires, backfilled from the items it holds. An index the schema no
 * longer has is left for assertSameShape to report.
 */
async function addMissingIndexes(
  client: DynamoDBClient,
  tableName: string,
  spec: TableSpec,
  table: TableDescription,
): Promise<TableDescription> {
  const present = new Set((table.GlobalSecondaryIndexes ?? []).map((i) => i.IndexName));
  let current = table;
  for (const index of spec.GlobalSecondaryIndexes ?? []) {
    if (present.has(index.IndexName)) continue;
    const used = new Set(index.KeySchema.map((k) => k.AttributeName));
    await client.send(
      new UpdateTableCommand({
        TableName: tableName,
        AttributeDefinitions: spec.AttributeDefinitions.filter((a) => used.has(a.AttributeName)),
        GlobalSecondaryIndexUpdates: [{ Create: index }],
      }),
    );
    current = await waitUntilActive(client, tableName);
  }
  return current;
}

/** A table made before the schema gave it a stream gets one; a stream of another view type is a mismatch. */
async function enableStream(
  client: DynamoDBClient,
  tableName: string,
  spec: TableSpec,
  table: TableDescription,
): Promise<void> {
  const wanted = spec.StreamSpecification;
  const current = table.StreamSpecification?.StreamEnabled ? table.StreamSpecification.StreamViewType : undefined;
  if (!wanted || current === wanted.StreamViewType) return;
  if (current) throw new TableSchemaMismatch(tableName, `stream ${current}, expected ${wanted.StreamViewType}`);
  await client.send(new UpdateTableCommand({ TableName: tableName, StreamSpecification: wanted }));
  await waitUntilActive(client, tableName);
}

async function enableTimeToLive(
  client: DynamoDBClient,
  tableName: string,
  attribute: string,
): Promise<'enabled' | 'unsupported'> {
  try {
    const { TimeToLiveDescription: current } = await client.send(
      new DescribeTimeToLiveCommand({ TableName: tableName }),
    );
    if (current?.TimeToLiveStatus === 'ENABLED' || current?.TimeToLiveStatus === 'ENABLING') {
      if (current.AttributeName !== attribute) {
        throw new TableSchemaMismatch(tableName, `TTL on ${current.AttributeName}, expected ${attribute}`);
      }
      return 'enabled';
    }
    await client.send(
      new UpdateTimeToLiveCommand({
        TableName: tableName,
        TimeToLiveSpecification: { AttributeName: attribute, Enabled: true },
      }),
    );
    return 'enabled';
  } catch (error) {
    // Emulators that lack the TTL API answer UnknownOperationException; nothing
    // else is treated as "unsupported".
    if (error instanceof Error && error.name === 'UnknownOperationException') return 'unsupported';
    throw error;
  }
}

const LOCAL_KEY_ID = 'flarelocal';
type HttpAuthScheme = NonNullable<DynamoDBClientConfig['httpAuthSchemes']>[number];

/**
 * DynamoDB Local reads the key id from the Authorization header and never
 * checks the signature, so a local request carries a fixed header instead of
 * a SigV4 signature: HMAC-signing every call cost about 0.5 ms of the plane's
 * CPU per request (measured), some 20 ms per job. Only for a loopback
 * emulator with placeholder credentials; AWS clients sign as usual.
 */
const unsignedLocalAuth: HttpAuthScheme = {
  schemeId: 'aws.auth#sigv4',
  identityProvider: () => async () => ({
    accessKeyId: LOCAL_KEY_ID,
    secretAccessKey: LOCAL_KEY_ID,
    expiration: new Date(8.64e15),
  }),
  signer: {
    sign: async (request) => {
      request.headers.authorization = `AWS4-HMAC-SHA256 Credential=${LOCAL_KEY_ID}/20000101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0`;
      return request;
    },
  },
};

/**
 * SDK clients for a local endpoint (DynamoDB Local). The credentials are
 * placeholders: DynamoDB Local checks only that the key id is alphanumeric.
 */
export function makeDynamoClients(endpoint: string): { client: DynamoDBClient; doc: DynamoDBDocumentClient } {
  const client = new DynamoDBClient(localClientConfig(endpoint));
  const doc = reportUnavailable(
    DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } }),
    'DynamoDB',
    StoreUnavailable,
  );
  return { client, doc };
}

/** A DynamoDB Streams client for the same local endpoint, configured as makeDynamoClients' client is. */
export function makeStreamsClient(endpoint: string): DynamoDBStreamsClient {
  return new DynamoDBStreamsClient(localClientConfig(endpoint));
}

/** What both clients of DynamoDB Local are built with. */
function localClientConfig(endpoint: string) {
  return {
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: LOCAL_KEY_ID, secretAccessKey: LOCAL_KEY_ID },
    httpAuthSchemes: [unsignedLocalAuth],
    // A few quick retries cover a busy emulator; transactions that lose a race retry in the job store.
    maxAttempts: 3,
    // A dead emulator refuses at once; a hung one must fail the request (503), not hold it. The bounds
    // leave room for a JVM busy with hundreds of concurrent requests on a 2-core machine, which can
    // take a second or two to accept a connection or answer.
    requestHandler: { connectionTimeout: 3_000, requestTimeout: 10_000, throwOnRequestTimeout: true },
  };
}
