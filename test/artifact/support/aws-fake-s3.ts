/**
 * S3 in the local AWS fake (REST, path-style, as the SDK addresses an IP
 * endpoint): what the bundles call on the outputs bucket (ListObjectsV2,
 * HeadObject, DeleteObjects) and the browser-based upload a job's instance
 * posts with a presigned form (POST Object), checked as S3 checks it
 * (s3-post-policy.ts) and recorded as the signer's PutObject of the key.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AwsError } from './aws-fake-wire.js';
import { postPolicyRefusal } from './s3-post-policy.js';

/** The secret key the harness gives every function (lambdas.ts): what forms are signed with. */
const SIGNING_SECRET = 'artifact-test-secret';
const NAMESPACE = 'http://s3.amazonaws.com/doc/2006-03-01/';

export interface S3Object {
  key: string;
  body: Buffer;
  lastModified: Date;
}

/** A request as the recorder sees it: the action and params in the SDK's names. */
export interface S3Request {
  action: string;
  params: Record<string, unknown>;
  /** Who signed it (a form: its x-amz-credential) and where. */
  signer?: { accessKeyId: string; region: string };
  /** Why S3 refuses it before any IAM check (a form its policy does not allow). */
  refusal?: AwsError;
  /** A form's file. */
  upload?: Buffer;
}

export class S3Model {
  private readonly buckets = new Map<string, Map<string, S3Object>>();

  /** The objects under `prefix`, as a test reads what was uploaded. */
  objects(bucket: string, prefix = ''): S3Object[] {
    return [...(this.buckets.get(bucket)?.values() ?? [])]
      .filter((o) => o.key.startsWith(prefix))
      .sort((a, b) => (a.key < b.key ? -1 : 1));
  }

  /** The REST request's action and params; a multipart POST is a form upload, checked against its policy. */
  parse(req: IncomingMessage, body: Buffer): S3Request {
    const url = new URL(req.url ?? '/', 'http://fake');
    const [, bucket = '', ...rest] = url.pathname.split('/');
    const key = rest.map(decodeURIComponent).join('/');
    const q = url.searchParams;
    const type = String(req.headers['content-type'] ?? '');
    if (req.method === 'POST' && type.startsWith('multipart/form-data')) return this.parseForm(bucket, type, body);
    if (req.method === 'GET' && !key && q.get('list-type') === '2')
      return {
        action: 'ListObjectsV2',
        params: {
          Bucket: bucket,
          Prefix: q.get('prefix') ?? '',
          ...(q.get('continuation-token') ? { ContinuationToken: q.get('continuation-token') } : {}),
        },
      };
    if (req.method === 'HEAD' && key) return { action: 'HeadObject', params: { Bucket: bucket, Key: key } };
    if (req.method === 'POST' && q.has('delete')) {
      const keys = [...body.toString('utf8').matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => unescapeXml(m[1]!));
      return { action: 'DeleteObjects', params: { Bucket: bucket, Delete: { Objects: keys.map((Key) => ({ Key })) } } };
    }
    return {
      action: `${req.method} ${url.pathname}`,
      params: {},
      refusal: new AwsError('NotImplemented', `aws-fake models no S3 ${req.method} ${url.pathname}${url.search}`),
    };
  }

  /** The ARNs a request names, for the IAM check. */
  resources(request: S3Request): string[] {
    const { Bucket, Key, Delete } = request.params as {
      Bucket?: string;
      Key?: string;
      Delete?: { Objects: { Key: string }[] };
    };
    if (Key !== undefined) return [`arn:aws:s3:::${Bucket}/${Key}`];
    if (Delete) return Delete.Objects.map((o) => `arn:aws:s3:::${Bucket}/${o.Key}`);
    return Bucket ? [`arn:aws:s3:::${Bucket}`] : ['*'];
  }

  /** Answers a request the IAM side let through. */
  answer(request: S3Request, res: ServerResponse): void {
    const p = request.params as Record<string, any>;
    const bucket = this.buckets.get(p.Bucket) ?? new Map<string, S3Object>();
    this.buckets.set(p.Bucket, bucket);
    switch (request.action) {
      case 'PutObject':
        bucket.set(p.Key, { key: p.Key, body: request.upload ?? Buffer.alloc(0), lastModified: new Date() });
        send(res, 204, '');
        return;
      case 'ListObjectsV2': {
        const contents = this.objects(p.Bucket, p.Prefix)
          .map(
            (o) =>
              `<Contents><Key>${escapeXml(o.key)}</Key><LastModified>${o.lastModified.toISOString()}</LastModified><ETag>"${o.body.length}"</ETag><Size>${o.body.length}</Size><StorageClass>STANDARD</StorageClass></Contents>`,
          )
          .join('');
        const count = this.objects(p.Bucket, p.Prefix).length;
        send(
          res,
          200,
          `<ListBucketResult xmlns="${NAMESPACE}"><Name>${p.Bucket}</Name><Prefix>${escapeXml(p.Prefix)}</Prefix><KeyCount>${count}</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>${contents}</ListBucketResult>`,
        );
        return;
      }
      case 'HeadObject': {
        const found = bucket.get(p.Key);
        if (!found) {
          send(res, 404, '');
          return;
        }
        res.writeHead(200, { 'content-length': found.body.length, 'last-modified': found.lastModified.toUTCString() });
        return void res.end();
      }
      case 'DeleteObjects': {
        for (const { Key } of p.Delete.Objects as { Key: string }[]) bucket.delete(Key);
        send(res, 200, `<DeleteResult xmlns="${NAMESPACE}"></DeleteResult>`);
        return;
      }
    }
  }

  private parseForm(bucket: string, type: string, body: Buffer): S3Request {
    const boundary = /boundary=(.+)$/.exec(type)?.[1] ?? '';
    const fields: Record<string, string> = {};
    let file = Buffer.alloc(0);
    const sep = Buffer.from(`--${boundary}`);
    let at = body.indexOf(sep) + sep.length;
    while (boundary && body.subarray(at, at + 2).toString() === '\r\n') {
      const next = body.indexOf(Buffer.from(`\r\n--${boundary}`), at);
      const part = body.subarray(at + 2, next);
      const split = part.indexOf('\r\n\r\n');
      const name = /name="([^"]+)"/.exec(part.subarray(0, split).toString())?.[1] ?? '';
      if (name === 'file') file = Buffer.from(part.subarray(split + 4));
      else fields[name.toLowerCase()] = part.subarray(split + 4).toString('utf8');
      at = next + 2 + sep.length;
    }
    const [accessKeyId = '', , region = ''] = (fields['x-amz-credential'] ?? '').split('/');
    const refusal = postPolicyRefusal({ bucket, fields, size: file.length, at: new Date() }, SIGNING_SECRET);
    return {
      action: 'PutObject',
      params: { Bucket: bucket, Key: fields.key ?? '', ContentLength: file.length, form: true },
      signer: { accessKeyId, region },
      upload: file,
      ...(refusal ? { refusal: new AwsError('AccessDenied', refusal) } : {}),
    };
  }
}

export function sendS3Error(res: ServerResponse, error: AwsError, method: string | undefined): void {
  // A HEAD answer has no body: the SDK names the error by its status.
  if (method === 'HEAD') return void res.writeHead(error.status).end();
  send(
    res,
    error.status,
    `<Error><Code>${error.code}</Code><Message>${escapeXml(error.message)}</Message><RequestId>${randomUUID()}</RequestId></Error>`,
  );
}

function send(res: ServerResponse, status: number, xml: string): void {
  const body = xml ? `<?xml version="1.0" encoding="UTF-8"?>\n${xml}` : '';
  res.writeHead(status, {
    ...(body ? { 'content-type': 'application/xml' } : {}),
    'content-length': Buffer.byteLength(body),
    'x-amz-request-id': randomUUID(),
  });
  res.end(body);
}

function escapeXml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!,
  );
}

function unescapeXml(text: string): string {
  return text.replace(
    /&(amp|lt|gt|quot|apos);/g,
    (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" })[e]!,
  );
}
