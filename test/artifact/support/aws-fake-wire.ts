/**
 * The wire side of the local AWS fake: who signed a request and for which
 * service (SigV4 credential scope, never the signature), the EC2 query
 * protocol's form decoding and XML answers, and the JSON protocols' bodies and
 * errors, in the shapes the SDK v3 deserializers read.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AwsService } from './types.js';

/** An AWS error the fake answers with: `code` becomes the SDK exception's `name`. */
export class AwsError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = defaultStatus(code),
  ) {
    super(message);
    this.name = code;
  }
}

/**
 * HTTP status per error code where AWS documents one other than 400. The SDK
 * retries 5xx and throttling codes on its own, as it does against AWS: EC2 lists
 * its capacity errors among its server errors (500).
 */
const STATUS_BY_CODE: Record<string, number> = {
  InsufficientInstanceCapacity: 500,
  InsufficientCapacity: 500,
  InsufficientAddressCapacity: 500,
  InternalError: 500,
  InternalFailure: 500,
  InternalServerError: 500,
  InternalServerErrorException: 500,
  RequestLimitExceeded: 503,
  ServiceUnavailable: 503,
  ServiceUnavailableException: 503,
  Unavailable: 503,
  AccessDenied: 403,
  AccessDeniedException: 403,
  UnauthorizedOperation: 403,
  MissingAuthenticationToken: 403,
};

export function defaultStatus(code: string): number {
  return STATUS_BY_CODE[code] ?? 400;
}

/** The services that speak a JSON protocol (EC2 speaks query, S3 REST). */
export type JsonService = Exclude<AwsService, 'ec2' | 's3'>;

/** The JSON services' X-Amz-Target prefixes, by SigV4 signing name. */
export const TARGET_PREFIX: Record<JsonService, string> = {
  ssm: 'AmazonSSM',
  states: 'AWSStepFunctions',
  events: 'AWSEvents',
  secretsmanager: 'secretsmanager',
  logs: 'Logs_20140328',
  dynamodb: 'DynamoDB_20120810',
};

/** awsJson 1.0 or 1.1, as each service's model says. */
const JSON_VERSION: Record<JsonService, '1.0' | '1.1'> = {
  ssm: '1.1',
  states: '1.0',
  events: '1.1',
  secretsmanager: '1.1',
  logs: '1.1',
  dynamodb: '1.0',
};

export const SERVICES: readonly AwsService[] = [
  'ec2',
  'ssm',
  'states',
  'events',
  'secretsmanager',
  'logs',
  'dynamodb',
  's3',
];

export interface Signer {
  accessKeyId: string;
  region: string;
  service: string;
}

const CREDENTIAL = /Credential=([^/,\s]+)\/\d{8}\/([^/,\s]+)\/([^/,\s]+)\/aws4_request/;

/** Who signed the request, for which region and service; undefined when it is not SigV4-signed. */
export function signerOf(req: IncomingMessage): Signer | undefined {
  const match = CREDENTIAL.exec(req.headers.authorization ?? '');
  return match ? { accessKeyId: match[1], region: match[2], service: match[3] } : undefined;
}

export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/**
 * An EC2 query-protocol form as nested objects with the wire names, numbered
 * members as arrays (`Filter.1.Value.2` → `Filter[0].Value[1]`), without
 * `Action` and `Version`. Values stay strings, as on the wire.
 */
export function decodeQuery(form: URLSearchParams): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const [key, value] of form) {
    if (key === 'Action' || key === 'Version') continue;
    const parts = key.split('.');
    let node = root as Record<string | number, unknown>;
    parts.forEach((part, i) => {
      const slot = /^\d+$/.test(part) ? Number(part) - 1 : part;
      if (i === parts.length - 1) {
        node[slot] = value;
        return;
      }
      node[slot] ??= /^\d+$/.test(parts[i + 1]) ? [] : {};
      node = node[slot] as Record<string | number, unknown>;
    });
  }
  return root;
}

/** What an XML answer may hold: arrays become EC2's `<item>` lists, undefined members are left out. */
export type XmlValue = string | number | boolean | Date | undefined | XmlValue[] | { [name: string]: XmlValue };

export function xmlElement(name: string, value: XmlValue): string {
  if (value === undefined) return '';
  if (Array.isArray(value)) return `<${name}>${value.map((item) => xmlElement('item', item)).join('')}</${name}>`;
  if (value instanceof Date) return `<${name}>${value.toISOString()}</${name}>`;
  if (typeof value === 'object') {
    return `<${name}>${Object.entries(value)
      .map(([child, v]) => xmlElement(child, v))
      .join('')}</${name}>`;
  }
  return `<${name}>${escapeXml(String(value))}</${name}>`;
}

function escapeXml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c] ?? c,
  );
}

const EC2_NAMESPACE = 'http://ec2.amazonaws.com/doc/2016-11-15/';

export function sendEc2Result(res: ServerResponse, action: string, members: Record<string, XmlValue>): void {
  const requestId = randomUUID();
  const inner =
    xmlElement('requestId', requestId) +
    Object.entries(members)
      .map(([name, v]) => xmlElement(name, v))
      .join('');
  send(
    res,
    200,
    'text/xml;charset=UTF-8',
    `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${EC2_NAMESPACE}">${inner}</${action}Response>`,
    requestId,
  );
}

export function sendEc2Error(res: ServerResponse, error: AwsError): void {
  const requestId = randomUUID();
  const body =
    '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>' +
    xmlElement('Code', error.code) +
    xmlElement('Message', error.message) +
    `</Error></Errors>${xmlElement('RequestID', requestId)}</Response>`;
  send(res, error.status, 'text/xml;charset=UTF-8', body, requestId);
}

export function sendJson(res: ServerResponse, service: JsonService, body: unknown): void {
  send(
    res,
    200,
    `application/x-amz-json-${JSON_VERSION[service]}`,
    JSON.stringify(epochSeconds(body ?? {})),
    randomUUID(),
  );
}

export function sendJsonError(res: ServerResponse, service: JsonService, error: AwsError): void {
  const requestId = randomUUID();
  res.setHeader('x-amzn-ErrorType', error.code);
  send(
    res,
    error.status,
    `application/x-amz-json-${JSON_VERSION[service]}`,
    JSON.stringify({ __type: error.code, message: error.message }),
    requestId,
  );
}

/** A request the fake cannot even attribute to a service: plain JSON, the SDK shows the message. */
export function sendUnroutable(res: ServerResponse, message: string): void {
  send(res, 400, 'application/json', JSON.stringify({ __type: 'UnrecognizedClientException', message }), randomUUID());
}

function send(res: ServerResponse, status: number, contentType: string, body: string, requestId: string): void {
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'x-amzn-RequestId': requestId,
  });
  res.end(body);
}

/** awsJson timestamps are epoch seconds: Dates in a handler's answer are converted, everything else is kept. */
function epochSeconds(value: unknown): unknown {
  if (value instanceof Date) return value.getTime() / 1000;
  if (Array.isArray(value)) return value.map(epochSeconds);
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, epochSeconds(v)]));
  return value;
}
