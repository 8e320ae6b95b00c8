/**
 * Counts the DynamoDB transactions that lost to another transaction on the same items
 * (TransactionConflict), as seen by every caller of the client: each is one retry in
 * transactWithRetry, and a rising count means admissions or releases fight over a pool row.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Metrics } from '../../core/deps.js';
import { METRIC } from '../../core/metrics.js';
import { cancellationCodes } from './transactions.js';

export function countTransactionConflicts<C extends Pick<DynamoDBClient, 'middlewareStack'>>(
  client: C,
  metrics: Metrics,
): C {
  client.middlewareStack.add(
    (next) => async (args) => {
      try {
        return await next(args);
      } catch (error) {
        if (cancellationCodes(error)?.includes('TransactionConflict')) metrics.count(METRIC.transactionConflicts);
        throw error;
      }
    },
    { step: 'initialize', name: 'flareTransactionConflicts' },
  );
  return client;
}
