/** What every DynamoDB adapter needs about writes that can lose: transactions retried on conflict, and reading why a write was refused. */
import { type CancellationReason, TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  PutCommand,
  TransactWriteCommand,
  UpdateCommand,
  type DeleteCommandInput,
  type DynamoDBDocumentClient,
  type PutCommandInput,
  type UpdateCommandInput,
} from '@aws-sdk/lib-dynamodb';

type Item = Record<string, unknown>;

export type TransactItems = NonNullable<ConstructorParameters<typeof TransactWriteCommand>[0]['TransactItems']>;

/** Tries of a transaction that only lost a race with another transaction (no condition said no). */
const TRANSACTION_ATTEMPTS = 12;

/** TransactWriteItems, retried with jittered backoff while it only conflicts with other transactions. */
export async function transactWithRetry(doc: DynamoDBDocumentClient, items: TransactItems): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await doc.send(new TransactWriteCommand({ TransactItems: items }));
      return;
    } catch (error) {
      const codes = cancellationCodes(error);
      const conflictOnly =
        codes?.some((c) => c === 'TransactionConflict') && !codes.some((c) => c === 'ConditionalCheckFailed');
      if (!conflictOnly || attempt >= TRANSACTION_ATTEMPTS) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * 2 ** Math.min(attempt, 6)));
    }
  }
}

/** Each item's cancellation code, in item order, when `error` is a cancelled transaction. */
export function cancellationCodes(error: unknown): (string | undefined)[] | undefined {
  if (
    error instanceof TransactionCanceledException ||
    (error as { name?: string })?.name === 'TransactionCanceledException'
  ) {
    return ((error as TransactionCanceledException).CancellationReasons ?? []).map((r: CancellationReason) => r.Code);
  }
  return undefined;
}

/** One write of a single item, shaped as a transaction's item is. */
export type ConditionalWrite =
  | { Update: UpdateCommandInput }
  | { Put: PutCommandInput }
  | { Delete: DeleteCommandInput };

/**
 * A conditional write. Resolves to the item as the write left it (its `Attributes`: empty unless it asked for
 * `ReturnValues`), or, when its condition did not hold, to undefined, or throws `onConflict()` when given.
 * Any other error is thrown as it came.
 */
export async function conditionalWrite(
  doc: DynamoDBDocumentClient,
  write: ConditionalWrite,
  onConflict: () => Error,
): Promise<Item>;
export async function conditionalWrite(doc: DynamoDBDocumentClient, write: ConditionalWrite): Promise<Item | undefined>;
export async function conditionalWrite(
  doc: DynamoDBDocumentClient,
  write: ConditionalWrite,
  onConflict?: () => Error,
): Promise<Item | undefined> {
  try {
    const { Attributes } =
      'Update' in write
        ? await doc.send(new UpdateCommand(write.Update))
        : 'Put' in write
          ? await doc.send(new PutCommand(write.Put))
          : await doc.send(new DeleteCommand(write.Delete));
    return Attributes ?? {};
  } catch (error) {
    if ((error as { name?: string })?.name !== 'ConditionalCheckFailedException') throw error;
    if (onConflict) throw onConflict();
    return undefined;
  }
}
