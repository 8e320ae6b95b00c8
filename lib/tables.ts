/**
 * Flare's DynamoDB tables, built from schema/tables.json: the same file the
 * local runner hands to DynamoDB Local, so AWS and local get the same keys
 * and indexes. This construct only maps CreateTable's terms to CDK's.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { REPO_ROOT } from './lambda-defaults.js';
import type { TableAccess } from './table-access.js';

export const TABLE_KEYS = ['jobs', 'quotas', 'pools', 'idempotency', 'catalog'] as const;
export type TableKey = (typeof TABLE_KEYS)[number];

/** One table in CreateTable's own terms (the subset schema/tables.json uses). */
export interface TableSchema {
  readonly KeySchema: readonly { AttributeName: string; KeyType: 'HASH' | 'RANGE' }[];
  readonly AttributeDefinitions: readonly { AttributeName: string; AttributeType: 'S' | 'N' | 'B' }[];
  readonly GlobalSecondaryIndexes?: readonly {
    IndexName: string;
    KeySchema: readonly { AttributeName: string; KeyType: 'HASH' | 'RANGE' }[];
    Projection: { ProjectionType: 'ALL' | 'KEYS_ONLY' | 'INCLUDE'; NonKeyAttributes?: string[] };
  }[];
  readonly TimeToLiveAttribute?: string;
  readonly StreamSpecification?: {
    StreamEnabled: boolean;
    StreamViewType: 'NEW_IMAGE' | 'OLD_IMAGE' | 'NEW_AND_OLD_IMAGES' | 'KEYS_ONLY';
  };
}

export interface FlareTablesProps {
  /** @default schema/tables.json in the repository */
  readonly schemaPath?: string;
  /**
   * Tables kept when the stack is deleted. Jobs, quotas and the catalog are
   * records people made; pools are re-seeded from context and idempotency
   * keys expire anyway.
   * @default ['jobs', 'quotas', 'catalog']
   */
  readonly retain?: readonly TableKey[];
  /**
   * Tables with a DynamoDB stream, and what it carries. The jobs stream is
   * the outbox for `Job State Change` events (./job-event-stream.ts), on AWS
   * and locally alike, so it is declared in schema/tables.json.
   * @default each table's StreamSpecification in schema/tables.json
   */
  readonly streams?: Partial<Record<TableKey, dynamodb.StreamViewType>>;
}

export class FlareTables extends Construct {
  public readonly jobs: dynamodb.Table;
  public readonly quotas: dynamodb.Table;
  public readonly pools: dynamodb.Table;
  public readonly idempotency: dynamodb.Table;
  public readonly catalog: dynamodb.Table;
  /** Every table by its schema key. */
  public readonly byKey: Readonly<Record<TableKey, dynamodb.Table>>;
  private readonly indexNames: Readonly<Record<TableKey, readonly string[]>>;

  constructor(scope: Construct, id: string, props: FlareTablesProps = {}) {
    super(scope, id);
    const schemaPath = props.schemaPath ?? path.join(REPO_ROOT, 'schema', 'tables.json');
    const schemas = readSchemas(schemaPath);
    const retain = new Set<TableKey>(props.retain ?? ['jobs', 'quotas', 'catalog']);
    const streams = props.streams ?? schemaStreams(schemas);

    const tables = {} as Record<TableKey, dynamodb.Table>;
    const indexNames = {} as Record<TableKey, string[]>;
    for (const key of TABLE_KEYS) {
      const schema = schemas[key];
      tables[key] = buildTable(
        this,
        key,
        schema,
        retain.has(key) ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
        streams[key],
      );
      indexNames[key] = (schema.GlobalSecondaryIndexes ?? []).map((g) => g.IndexName);
    }
    this.byKey = tables;
    this.indexNames = indexNames;
    ({
      jobs: this.jobs,
      quotas: this.quotas,
      pools: this.pools,
      idempotency: this.idempotency,
      catalog: this.catalog,
    } = tables);
  }

  /** The environment variables the Lambdas read the table names from. */
  public environment(): Record<string, string> {
    return {
      JOBS_TABLE: this.jobs.tableName,
      QUOTAS_TABLE: this.quotas.tableName,
      POOLS_TABLE: this.pools.tableName,
      IDEMPOTENCY_TABLE: this.idempotency.tableName,
      CATALOG_TABLE: this.catalog.tableName,
    };
  }

  /**
   * Exactly `access` (lib/table-access.ts): each table's actions on the table, and Query on the indexes
   * it names (which must exist). No `index/*` wildcard, no table or index it does not name.
   */
  public grantAccess(grantee: iam.IGrantable, access: TableAccess): iam.Grant[] {
    return TABLE_KEYS.flatMap((key) => {
      const granted = access[key];
      if (!granted) return [];
      const arn = this.byKey[key].tableArn;
      const unknown = (granted.queries ?? []).filter((index) => !this.indexNames[key].includes(index));
      if (unknown.length > 0) throw new Error(`table ${key} has no index ${unknown.join(', ')}`);
      const onTable = iam.Grant.addToPrincipal({
        grantee,
        actions: granted.actions.map((a) => `dynamodb:${a}`),
        resourceArns: [arn],
      });
      const queries = (granted.queries ?? []).map((index) => `${arn}/index/${index}`);
      return queries.length > 0
        ? [onTable, iam.Grant.addToPrincipal({ grantee, actions: ['dynamodb:Query'], resourceArns: queries })]
        : [onTable];
    });
  }
}

function buildTable(
  scope: Construct,
  key: TableKey,
  schema: TableSchema,
  removalPolicy: RemovalPolicy,
  stream?: dynamodb.StreamViewType,
): dynamodb.Table {
  const attribute = (name: string, where: string): dynamodb.Attribute => {
    const def = schema.AttributeDefinitions.find((a) => a.AttributeName === name);
    if (!def)
      throw new Error(`schema/tables.json ${key}: ${where} uses '${name}', which AttributeDefinitions does not define`);
    return { name, type: attributeType(def.AttributeType, `${key}.AttributeDefinitions.${name}`) };
  };
  const keys = (keySchema: TableSchema['KeySchema'], where: string) => {
    const hash = keySchema.filter((k) => k.KeyType === 'HASH');
    const range = keySchema.filter((k) => k.KeyType === 'RANGE');
    if (hash.length !== 1 || range.length > 1 || keySchema.length !== hash.length + range.length) {
      throw new Error(`schema/tables.json ${key}: ${where} must have one HASH key and at most one RANGE key`);
    }
    return {
      partitionKey: attribute(hash[0].AttributeName, where),
      sortKey: range[0] ? attribute(range[0].AttributeName, where) : undefined,
    };
  };

  // Key attributes only: DynamoDB refuses definitions that no key uses.
  const used = new Set(
    [...schema.KeySchema, ...(schema.GlobalSecondaryIndexes ?? []).flatMap((g) => g.KeySchema)].map(
      (k) => k.AttributeName,
    ),
  );
  const unused = schema.AttributeDefinitions.filter((a) => !used.has(a.AttributeName)).map((a) => a.AttributeName);
  if (unused.length > 0)
    throw new Error(`schema/tables.json ${key}: AttributeDefinitions ${unused.join(', ')} are not used by any key`);

  const table = new dynamodb.Table(scope, pascal(key), {
    ...keys(schema.KeySchema, 'KeySchema'),
    billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
    pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
    encryption: dynamodb.TableEncryption.AWS_MANAGED,
    timeToLiveAttribute: schema.TimeToLiveAttribute,
    stream,
    deletionProtection: removalPolicy === RemovalPolicy.RETAIN,
    removalPolicy,
  });
  for (const gsi of schema.GlobalSecondaryIndexes ?? []) {
    const projection = gsi.Projection.ProjectionType;
    table.addGlobalSecondaryIndex({
      indexName: gsi.IndexName,
      ...keys(gsi.KeySchema, `GlobalSecondaryIndexes.${gsi.IndexName}`),
      projectionType:
        projection === 'ALL'
          ? dynamodb.ProjectionType.ALL
          : projection === 'KEYS_ONLY'
            ? dynamodb.ProjectionType.KEYS_ONLY
            : dynamodb.ProjectionType.INCLUDE,
      nonKeyAttributes: gsi.Projection.NonKeyAttributes,
    });
  }
  return table;
}

function schemaStreams(schemas: Record<TableKey, TableSchema>): Partial<Record<TableKey, dynamodb.StreamViewType>> {
  const enabled = TABLE_KEYS.filter((key) => schemas[key].StreamSpecification?.StreamEnabled);
  return Object.fromEntries(
    enabled.map((key) => [key, schemas[key].StreamSpecification!.StreamViewType as dynamodb.StreamViewType]),
  );
}

function readSchemas(file: string): Record<TableKey, TableSchema> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (cause) {
    throw new Error(`cannot read table schemas from ${file}: ${(cause as Error).message}`, { cause });
  }
  if (typeof parsed !== 'object' || parsed === null) throw new Error(`${file}: must be a JSON object`);
  const doc = parsed as Record<string, unknown>;
  const extra = Object.keys(doc).filter((k) => k !== '$comment' && !(TABLE_KEYS as readonly string[]).includes(k));
  if (extra.length > 0)
    throw new Error(`${file}: unknown table(s) ${extra.join(', ')}; the stack knows ${TABLE_KEYS.join(', ')}`);
  for (const key of TABLE_KEYS) {
    const t = doc[key] as Partial<TableSchema> | undefined;
    if (!t || !Array.isArray(t.KeySchema) || !Array.isArray(t.AttributeDefinitions)) {
      throw new Error(`${file}: table '${key}' needs KeySchema and AttributeDefinitions`);
    }
  }
  return doc as unknown as Record<TableKey, TableSchema>;
}

function attributeType(t: string, where: string): dynamodb.AttributeType {
  switch (t) {
    case 'S':
      return dynamodb.AttributeType.STRING;
    case 'N':
      return dynamodb.AttributeType.NUMBER;
    case 'B':
      return dynamodb.AttributeType.BINARY;
    default:
      throw new Error(`schema/tables.json ${where}: AttributeType must be S, N or B, got ${t}`);
  }
}

function pascal(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
