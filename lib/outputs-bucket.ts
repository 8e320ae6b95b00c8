/**
 * The deployment's outputs bucket: what jobs write under $FLARE_OUTPUT_DIR,
 * kept under `<project>/<jobId>/` after they end (docs/concepts.md, Outputs).
 * Private (every public access blocked, objects owned by the bucket), encrypted
 * at rest (S3-managed keys), TLS only, and expired by a lifecycle rule.
 */
import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

/** How long outputs are kept unless `flare:outputsRetentionDays` says otherwise. */
export const DEFAULT_OUTPUTS_RETENTION_DAYS = 30;

export interface OutputsBucketProps {
  /** Days after which an output is deleted, whether or not its job was removed. @default DEFAULT_OUTPUTS_RETENTION_DAYS (30) */
  readonly retentionDays?: number;
  /** @default RemovalPolicy.RETAIN: deleting the stack does not delete researchers' results */
  readonly removalPolicy?: RemovalPolicy;
}

export class OutputsBucket extends Construct {
  public readonly bucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: OutputsBucketProps = {}) {
    super(scope, id);
    const retentionDays = props.retentionDays ?? DEFAULT_OUTPUTS_RETENTION_DAYS;
    if (!Number.isInteger(retentionDays) || retentionDays < 1)
      throw new Error(
        `${this.node.path}: retentionDays must be a whole number of days, at least 1, got ${retentionDays}`,
      );
    this.bucket = new s3.Bucket(this, 'Bucket', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      versioned: false,
      lifecycleRules: [
        {
          id: 'expire-outputs',
          expiration: Duration.days(retentionDays),
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
      ],
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    Validations.of(this.bucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason:
        'Job outputs are written by presigned or prefix-scoped requests the control plane issues per job and read through the API, whose calls are logged; server access logs would need a second bucket and record nothing the API log does not.',
    });
  }

  /**
   * List the bucket, read and delete its objects: the API's part (the presigned GETs it hands out are signed
   * with its role). Its own policy, so that its acknowledgement covers nothing else; never a write.
   */
  grantReadAndRemove(role: iam.IRole, id = 'OutputsApiPolicy'): iam.Policy {
    const policy = new iam.Policy(this, id, {
      roles: [role],
      statements: [
        new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [this.bucket.bucketArn] }),
        new iam.PolicyStatement({
          actions: ['s3:GetObject', 's3:DeleteObject'],
          resources: [this.bucket.arnForObjects('*')],
        }),
      ],
    });
    Validations.of(policy).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${this.bucketLogicalId()}.Arn>/*]`,
      reason:
        "The API serves and removes the outputs of any job its caller may see (core/outputs.ts checks the project): every object of this bucket is some job's output.",
    });
    return policy;
  }

  /**
   * Put objects: only so that `role` can sign the presigned POST a stopping job's instance uploads its outputs
   * with (lambdas/adapters/s3-outputs-upload.ts), whose policy pins the key prefix `<project>/<jobId>/` and the
   * size. The instance role gets no S3 permission at all. Its own policy, never a read or a delete.
   */
  grantSignUploads(role: iam.IRole, id = 'OutputsUploadPolicy'): iam.Policy {
    const policy = new iam.Policy(this, id, {
      roles: [role],
      statements: [new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: [this.bucket.arnForObjects('*')] })],
    });
    Validations.of(policy).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${this.bucketLogicalId()}.Arn>/*]`,
      reason:
        "The tasks function signs each stopping job's upload form; the form's own policy (not this role's) limits it to the job's <project>/<jobId>/ prefix, which is known only per job.",
    });
    return policy;
  }

  private bucketLogicalId(): string {
    return Stack.of(this).resolve((this.bucket.node.defaultChild as s3.CfnBucket).logicalId) as string;
  }
}
