/** When a starting DynamoDB Local is ready: the first ListTables it answers, within a bound. */
import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDbLocalStartError } from './dynamodb-local-errors.js';

const READY_TIMEOUT_MS = 30_000;

/** Resolves once DynamoDB Local at `endpoint` answers; never settles once `gaveUp()` (the JVM exited, which its caller reports). */
export async function waitUntilAnswering(endpoint: string, gaveUp: () => boolean): Promise<void> {
  const client = new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 1,
    // A JVM still warming up may accept and then sit on a request; give up on it and ask again.
    requestHandler: { connectionTimeout: 1_000, requestTimeout: 5_000, throwOnRequestTimeout: true },
  });
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastError: unknown;
  try {
    while (Date.now() < deadline && !gaveUp()) {
      try {
        await client.send(new ListTablesCommand({ Limit: 1 }));
        return;
      } catch (error) {
        lastError = error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } finally {
    client.destroy();
  }
  // The JVM has exited: the early-exit promise reports why, so this one must not settle first.
  if (gaveUp()) return new Promise<never>(() => {});
  throw new DynamoDbLocalStartError(`DynamoDB Local did not answer at ${endpoint} within ${READY_TIMEOUT_MS} ms`, {
    cause: lastError,
  });
}
