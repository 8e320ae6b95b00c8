/** Reading a Query or Scan to its end: DynamoDB returns at most 1 MB a page and a key to go on from. */
import {
  QueryCommand,
  ScanCommand,
  type DynamoDBDocumentClient,
  type QueryCommandInput,
  type QueryCommandOutput,
  type ScanCommandInput,
  type ScanCommandOutput,
} from '@aws-sdk/lib-dynamodb';

type Item = Record<string, unknown>;

/** One Query or Scan, shaped as `conditionalWrite`'s writes are. */
export type Read = { Query: QueryCommandInput } | { Scan: ScanCommandInput };

/** Every page of `read`, in order. */
export async function* pages(
  doc: DynamoDBDocumentClient,
  read: Read,
): AsyncGenerator<QueryCommandOutput | ScanCommandOutput> {
  let start: Item | undefined;
  do {
    const page =
      'Query' in read
        ? await doc.send(new QueryCommand({ ...read.Query, ExclusiveStartKey: start }))
        : await doc.send(new ScanCommand({ ...read.Scan, ExclusiveStartKey: start }));
    yield page;
    start = page.LastEvaluatedKey;
  } while (start);
}

/** Every item of `read`, from all its pages. */
export async function readAll(doc: DynamoDBDocumentClient, read: Read): Promise<Item[]> {
  const items: Item[] = [];
  for await (const page of pages(doc, read)) items.push(...(page.Items ?? []));
  return items;
}
