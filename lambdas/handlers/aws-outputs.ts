/**
 * The outputs bucket on AWS: the S3 client and what is built on it, apart from
 * aws-deps.ts so that only the functions that use S3 bundle its client (about
 * 100 KiB and tens of ms of cold start): the API (list, download, remove) and the
 * tasks function (signs the presigned POST a stopping job's instance uploads
 * with). The rest read the upload's report through SSM, or never touch outputs.
 */
import { S3Client } from '@aws-sdk/client-s3';
import type { Ec2SsmCompute } from '../adapters/ec2-ssm-compute.js';
import { S3Outputs } from '../adapters/s3-outputs.js';
import { S3OutputsUpload } from '../adapters/s3-outputs-upload.js';
import { reportUnavailable } from '../adapters/unavailable.js';
import { OutputsUnavailable } from '../core/errors.js';
import { DEFAULT_MAX_OUTPUT_BYTES } from '../core/outputs.js';
import type { JobOutputs } from '../ports/job-outputs.js';
import { AWS_REQUEST_HANDLER, awsEnv, ec2SsmCompute } from './aws-deps.js';

let s3: S3Client | undefined;
let jobOutputs: S3Outputs | undefined;
let uploadingCompute: Ec2SsmCompute | undefined;

/** The outputs bucket's client: throttling (SlowDown) or an outage is a 503 to the API's callers, not a 500. */
function s3Client(): S3Client {
  return (s3 ??= reportUnavailable(new S3Client({ requestHandler: AWS_REQUEST_HANDLER }), 'S3', OutputsUnavailable));
}

/** The outputs bucket, for the API that lists and presigns it; undefined when the stack has none (OUTPUTS_BUCKET unset). */
export function awsOutputs(): JobOutputs | undefined {
  const bucket = awsEnv().OUTPUTS_BUCKET;
  if (!bucket) return undefined;
  return (jobOutputs ??= new S3Outputs(s3Client(), bucket));
}

/**
 * The tasks function's EC2+SSM compute: Stop has a started job's instance upload its output directory
 * with a presigned POST signed by this function's role. Without OUTPUTS_BUCKET, the plain compute.
 */
export function awsUploadingCompute(): Ec2SsmCompute {
  if (uploadingCompute) return uploadingCompute;
  const { OUTPUTS_BUCKET: bucket, OUTPUTS_MAX_BYTES: maxBytes = DEFAULT_MAX_OUTPUT_BYTES } = awsEnv();
  const outputs = bucket ? { upload: new S3OutputsUpload(s3Client(), bucket, maxBytes), maxBytes } : undefined;
  return (uploadingCompute = ec2SsmCompute(outputs ? { outputs } : {}));
}
