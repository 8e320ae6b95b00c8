/**
 * The presigned POST a job's instance uploads its outputs with (core/outputs-upload.ts):
 * signed here, by the tasks function's role (s3:PutObject on the outputs bucket), so
 * that the instance role needs no S3 permission at all. The POST policy is what
 * scopes the instance: S3 refuses a key outside `<project>/<jobId>/`, a file larger
 * than `maxFileBytes`, another bucket, or a form posted after `expiration`.
 */
import { createHmac } from 'node:crypto';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { Job } from '../core/job.js';
import { OUTPUTS_UPLOAD_SECONDS, type OutputsUploadRequest } from '../core/outputs-upload.js';
import { outputPrefix } from './s3-outputs.js';

/** S3 takes at most 5 GiB in one POST. */
export const MAX_POST_OBJECT_BYTES = 5 * 2 ** 30;
/** The form works a little longer than the upload may run, never much longer. */
export const UPLOAD_FORM_SECONDS = OUTPUTS_UPLOAD_SECONDS + 60;

type Presign = (client: S3Client, command: PutObjectCommand, options: { expiresIn: number }) => Promise<string>;

/** The policy a form is signed with, as S3 reads it: every condition must hold for a POST to be accepted. */
export interface PostPolicy {
  expiration: string;
  conditions: (Record<string, string> | [string, string, string | number] | [string, number, number])[];
}

export class S3OutputsUpload {
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    /** The per-job cap (core/outputs.ts DEFAULT_MAX_OUTPUT_BYTES unless the deployment sets one). */
    private readonly maxBytes: number,
    private readonly now: () => Date = () => new Date(),
    /** Resolves the bucket's URL the way the SDK does (endpoint overrides, path or virtual-host style). */
    private readonly presign: Presign = getSignedUrl,
  ) {}

  async request(job: Pick<Job, 'id' | 'project'>): Promise<OutputsUploadRequest> {
    const prefix = outputPrefix(job);
    const maxFileBytes = Math.min(this.maxBytes, MAX_POST_OBJECT_BYTES);
    const credentials = await this.s3.config.credentials();
    const region = await this.s3.config.region();
    const now = this.now();
    const amzDate = now
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d{3}/, '');
    const day = amzDate.slice(0, 8);
    const credential = `${credentials.accessKeyId}/${day}/${region}/s3/aws4_request`;
    const signed: Record<string, string> = {
      'x-amz-algorithm': 'AWS4-HMAC-SHA256',
      'x-amz-credential': credential,
      'x-amz-date': amzDate,
      ...(credentials.sessionToken ? { 'x-amz-security-token': credentials.sessionToken } : {}),
    };
    const policy: PostPolicy = {
      expiration: new Date(now.getTime() + UPLOAD_FORM_SECONDS * 1000).toISOString(),
      conditions: [
        { bucket: this.bucket },
        ['starts-with', '$key', prefix],
        ['content-length-range', 0, maxFileBytes],
        ...Object.entries(signed).map(([name, value]) => ({ [name]: value })),
      ],
    };
    const encoded = Buffer.from(JSON.stringify(policy), 'utf8').toString('base64');
    const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data, 'utf8').digest();
    const signingKey = hmac(hmac(hmac(hmac(`AWS4${credentials.secretAccessKey}`, day), region), 's3'), 'aws4_request');
    return {
      url: await this.bucketUrl(),
      fields: { ...signed, policy: encoded, 'x-amz-signature': hmac(signingKey, encoded).toString('hex') },
      prefix,
      maxBytes: this.maxBytes,
      maxFileBytes,
    };
  }

  /** The URL of an object without its key: the bucket's, as the SDK addresses it. */
  private async bucketUrl(): Promise<string> {
    const marker = 'flare-upload-form';
    const url = new URL(
      await this.presign(this.s3, new PutObjectCommand({ Bucket: this.bucket, Key: marker }), { expiresIn: 60 }),
    );
    if (!url.pathname.endsWith(`/${marker}`)) throw new Error(`cannot tell the URL of bucket ${this.bucket}`);
    return `${url.origin}${url.pathname.slice(0, -marker.length)}`;
  }
}

/** The policy of a form made by S3OutputsUpload, decoded (what S3 checks a POST against). */
export function postPolicyOf(fields: Record<string, string>): PostPolicy {
  return JSON.parse(Buffer.from(fields.policy ?? '', 'base64').toString('utf8')) as PostPolicy;
}
