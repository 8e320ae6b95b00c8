/** The three DynamoDB stores core works through (ports/jobs.ts, queue.ts, limits.ts), on one set of tables. */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoJobs } from './dynamo-jobs.js';
import { DynamoLimits } from './dynamo-limits.js';
import { DynamoQueue } from './dynamo-queue.js';
import type { TableNames } from './table-names.js';

export interface DynamoStores {
  jobs: DynamoJobs;
  queue: DynamoQueue;
  limits: DynamoLimits;
}

export function dynamoStores(doc: DynamoDBDocumentClient, tables: TableNames): DynamoStores {
  const limits = new DynamoLimits(doc, tables);
  return { jobs: new DynamoJobs(doc, tables, limits), queue: new DynamoQueue(doc, tables, limits), limits };
}
