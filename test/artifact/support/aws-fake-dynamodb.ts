/**
 * DynamoDB in the local AWS fake: every request is forwarded unchanged to
 * DynamoDB Local and its answer streamed back, so the tables behave exactly as
 * DynamoDB Local does; the fake only notes the tables a request names and the
 * error code it was answered with.
 */
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import { AwsError, sendJsonError } from './aws-fake-wire.js';
import { ARTIFACT_ACCOUNT, ARTIFACT_PARTITION, type RecordedCall } from './types.js';

/** Resolves once the answer has been sent, with `call.error` set when DynamoDB answered with one. */
export function forwardToDynamo(
  upstream: string | undefined,
  req: IncomingMessage,
  res: ServerResponse,
  body: Buffer,
  call: RecordedCall,
): Promise<void> {
  if (!upstream) {
    call.error = 'AwsFakeNotConfigured';
    sendJsonError(
      res,
      'dynamodb',
      new AwsError(
        call.error,
        `aws-fake: dynamodb:${call.action} was called but no DynamoDB upstream was given (startAwsFake({ dynamodbUpstream }))`,
      ),
    );
    return Promise.resolve();
  }
  const target = new URL(upstream);
  return new Promise((resolve) => {
    const forward = request(
      { hostname: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        const status = answer.statusCode ?? 500;
        res.writeHead(status, answer.headers);
        const chunks: Buffer[] = [];
        answer.on('data', (chunk: Buffer) => {
          if (status >= 300) chunks.push(chunk);
          res.write(chunk);
        });
        answer.on('end', () => {
          res.end();
          if (status >= 300) call.error = errorCode(Buffer.concat(chunks).toString('utf8'), status);
          resolve();
        });
        answer.on('error', () => {
          res.destroy();
          resolve();
        });
      },
    );
    forward.on('error', (error) => {
      call.error = 'InternalServerError';
      sendJsonError(
        res,
        'dynamodb',
        new AwsError(call.error, `aws-fake: DynamoDB upstream ${upstream} failed: ${error.message}`),
      );
      resolve();
    });
    forward.end(body);
  });
}

/** DynamoDB's `__type` is `com.amazonaws.dynamodb.v20120810#Code`: the code is what follows the `#`. */
function errorCode(body: string, status: number): string {
  try {
    const type = (JSON.parse(body) as { __type?: string }).__type;
    if (type) return type.slice(type.lastIndexOf('#') + 1);
  } catch {
    // Not JSON: only the status is known.
  }
  return `HTTP${status}`;
}

/** The table (or index) ARNs a DynamoDB request names: TableName (IndexName), batch RequestItems, transaction items. */
export function dynamoResources(params: Record<string, unknown>, region: string): string[] {
  const arns = new Set<string>();
  const table = (name: unknown, index?: unknown) => {
    if (typeof name !== 'string') return;
    const base = `arn:${ARTIFACT_PARTITION}:dynamodb:${region}:${ARTIFACT_ACCOUNT}:table/${name}`;
    arns.add(typeof index === 'string' ? `${base}/index/${index}` : base);
  };
  table(params.TableName, params.IndexName);
  if (params.RequestItems && typeof params.RequestItems === 'object')
    for (const name of Object.keys(params.RequestItems)) table(name);
  for (const item of (Array.isArray(params.TransactItems) ? params.TransactItems : []) as Array<
    Record<string, { TableName?: unknown }>
  >) {
    for (const operation of Object.values(item)) table(operation?.TableName);
  }
  return arns.size > 0 ? [...arns] : ['*'];
}
