/**
 * Outputs on AWS: the deployment's outputs bucket keeps a job's files under
 * `<project>/<jobId>/` (the instance uploads them when the job ends). Listed
 * with ListObjectsV2, served as a short-lived presigned GET (the API answers
 * 307 to it: the bytes never pass through the Lambda), removed with the job.
 */
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { JOB_ID_PATTERN } from '../core/container-command.js';
import type { Job } from '../core/job.js';
import { outputPathIssue } from '../core/outputs.js';
import { NAME_PATTERN } from '../core/schemas.js';
import type { JobOutputs, OutputDownload, OutputFile } from '../ports/job-outputs.js';

/** How long a download URL works: long enough to start a large download, short enough not to be shared. */
export const OUTPUT_URL_SECONDS = 300;
/** DeleteObjects takes at most this many keys. */
const DELETE_BATCH = 1000;

/** The key prefix of a job's outputs; both parts are checked, so a prefix never reaches another job's. */
export function outputPrefix(job: Pick<Job, 'id' | 'project'>): string {
  if (!NAME_PATTERN.test(job.project) || !JOB_ID_PATTERN.test(job.id))
    throw new Error(`job ${JSON.stringify(job.id)} of project ${JSON.stringify(job.project)} cannot name a key prefix`);
  return `${job.project}/${job.id}/`;
}

/**
 * A browser that follows the URL saves the file under its own name (RFC 6266's
 * `filename*`: UTF-8, every byte outside RFC 5987's attr-char percent-encoded).
 */
export function attachment(path: string): string {
  const name = path.split('/').at(-1) ?? path;
  const encoded = encodeURIComponent(name).replace(/['()*!]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename*=UTF-8''${encoded}`;
}

type Presign = (client: S3Client, command: GetObjectCommand, options: { expiresIn: number }) => Promise<string>;

export class S3Outputs implements JobOutputs {
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
    private readonly presign: Presign = getSignedUrl,
  ) {}

  async list(job: Job): Promise<OutputFile[]> {
    const prefix = outputPrefix(job);
    const files: OutputFile[] = [];
    for await (const object of this.objects(prefix)) {
      const path = object.Key.slice(prefix.length);
      // A key no path can name (a folder marker `sub/`, `a//b`) is not a file of the job's directory.
      if (outputPathIssue(path) !== undefined) continue;
      files.push({ path, size: object.Size ?? 0, modifiedAt: (object.LastModified ?? new Date(0)).toISOString() });
    }
    return files.sort((a, b) => (a.path < b.path ? -1 : 1));
  }

  async download(job: Job, path: string): Promise<OutputDownload | undefined> {
    const Key = `${outputPrefix(job)}${path}`;
    try {
      await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
    } catch (error) {
      const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (e.name === 'NotFound' || e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404) return undefined;
      throw error;
    }
    const expiresAt = new Date(Date.now() + OUTPUT_URL_SECONDS * 1000).toISOString();
    const url = await this.presign(
      this.s3,
      new GetObjectCommand({
        Bucket: this.bucket,
        Key,
        ResponseContentType: 'application/octet-stream',
        ResponseContentDisposition: attachment(path),
      }),
      { expiresIn: OUTPUT_URL_SECONDS },
    );
    return { kind: 'redirect', url, expiresAt };
  }

  async remove(job: Job): Promise<void> {
    const keys: string[] = [];
    for await (const object of this.objects(outputPrefix(job))) keys.push(object.Key);
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const answer = await this.s3.send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: keys.slice(i, i + DELETE_BATCH).map((Key) => ({ Key })), Quiet: true },
        }),
      );
      // DeleteObjects answers 200 with the keys it could not delete: the job stays, to be removed again.
      if (answer.Errors?.length) {
        const first = answer.Errors[0]!;
        throw new Error(
          `could not delete ${answer.Errors.length} outputs of job ${job.id}: ${first.Key}: ${first.Code}`,
        );
      }
    }
  }

  private async *objects(prefix: string): AsyncGenerator<{ Key: string; Size?: number; LastModified?: Date }> {
    let ContinuationToken: string | undefined;
    do {
      const page = await this.s3.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: prefix,
          ...(ContinuationToken ? { ContinuationToken } : {}),
        }),
      );
      for (const object of page.Contents ?? []) if (object.Key) yield { ...object, Key: object.Key };
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
  }
}
