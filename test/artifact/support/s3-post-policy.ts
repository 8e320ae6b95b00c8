/**
 * What S3 checks before it accepts a browser-based upload (a presigned POST):
 * the SigV4 signature over the base64 policy with the signer's secret key, the
 * policy's expiration, every condition (exact match, `starts-with`,
 * `content-length-range`), and that every form field is covered by a condition
 * (`x-amz-signature`, `policy`, `file` and `x-ignore-*` excepted). The upload
 * is then authorized as the signer's s3:PutObject on the key: the IAM check's part.
 */
import { createHmac } from 'node:crypto';

export interface PostUpload {
  /** The bucket the form was posted to (from its URL). */
  bucket: string;
  /** Every form field but the file, `key` included. */
  fields: Record<string, string>;
  /** The file's size in bytes. */
  size: number;
  at: Date;
}

/** Why S3 would refuse the upload, or undefined when the form lets it through to the signer's IAM check. */
export function postPolicyRefusal(upload: PostUpload, secretAccessKey: string): string | undefined {
  const fields = Object.fromEntries(Object.entries(upload.fields).map(([k, v]) => [k.toLowerCase(), v]));
  const encoded = fields.policy;
  if (!encoded) return 'no policy';
  const [, day, region, service] = (fields['x-amz-credential'] ?? '').split('/');
  if (!day || !region || service !== 's3') return 'no valid x-amz-credential';
  const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data, 'utf8').digest();
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${secretAccessKey}`, day), region), 's3'), 'aws4_request');
  if (hmac(signingKey, encoded).toString('hex') !== fields['x-amz-signature'])
    return 'SignatureDoesNotMatch: the policy is not signed with the credential it names';
  const policy = JSON.parse(Buffer.from(encoded, 'base64').toString('utf8')) as {
    expiration: string;
    conditions: unknown[];
  };
  if (!(upload.at.getTime() < Date.parse(policy.expiration))) return 'Invalid according to Policy: Policy expired';
  const values: Record<string, string> = { ...fields, bucket: upload.bucket };
  const covered = new Set<string>();
  for (const condition of policy.conditions) {
    if (Array.isArray(condition) && condition[0] === 'content-length-range') {
      const [, min, max] = condition as [string, number, number];
      if (upload.size < min || upload.size > max)
        return `EntityTooLarge or EntityTooSmall: ${upload.size} bytes is outside [${min}, ${max}]`;
      continue;
    }
    const [op, rawName, expected] = Array.isArray(condition)
      ? (condition as [string, string, string])
      : ['eq', `$${Object.keys(condition as object)[0]}`, Object.values(condition as object)[0] as string];
    const name = rawName.replace(/^\$/, '').toLowerCase();
    covered.add(name);
    const actual = values[name] ?? '';
    const holds = op === 'starts-with' ? actual.startsWith(expected) : op === 'eq' && actual === expected;
    if (!holds) return `Invalid according to Policy: Policy Condition failed: ["${op}", "$${name}", "${expected}"]`;
  }
  for (const name of Object.keys(fields)) {
    if (['policy', 'x-amz-signature', 'file'].includes(name) || name.startsWith('x-ignore-')) continue;
    if (!covered.has(name)) return `Invalid according to Policy: Extra input fields: ${name}`;
  }
  return undefined;
}
