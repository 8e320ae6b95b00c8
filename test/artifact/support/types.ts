/**
 * The contract between the artifact layer's pieces: the local AWS fake records
 * every call it answers as a RecordedCall, the harness drives the bundled
 * handlers, and the IAM check evaluates each call against the synthesized
 * policies of the role that made it.
 */

/** The SigV4 signing names of the services the fake answers (dynamodb is proxied to DynamoDB Local; s3 speaks REST). */
export type AwsService = 'ec2' | 'ssm' | 'states' | 'events' | 'secretsmanager' | 'logs' | 'dynamodb' | 's3';

export interface RecordedCall {
  service: AwsService;
  /** The API action, as in the SDK command name without `Command`: `RunInstances`, `SendCommand`. */
  action: string;
  /**
   * The request's parameters. JSON services: the body as sent. EC2 (query
   * protocol): decoded into nested objects with the wire names, numbered members
   * as arrays (`TagSpecification.1.Tag.2.Key` → `TagSpecification[0].Tag[1].Key`),
   * without `Action` and `Version`.
   */
  params: Record<string, unknown>;
  /**
   * The ARNs of the resources the request names, as the fake resolves them
   * (instance ids to instance ARNs, a document name to its ARN, a bus name to its
   * ARN...). The IAM check owns the full authorization model and may add more
   * (RunInstances also authorizes its subnet, volume and network interface).
   */
  resources: string[];
  /** The access key id the request was signed with: the harness gives each function its role's logical id. */
  principal: string;
  /** The region of the SigV4 credential scope. */
  region: string;
  /** Date.now() when the fake received it. */
  at: number;
  /** The AWS error code the fake answered with, if it answered with one (injected or modelled). */
  error?: string;
}

/** Tags of a resource the fake knows (instances by their ARN), for IAM conditions on resource tags. */
export type TagLookup = (arn: string) => Record<string, string> | undefined;

/** The partition, account and region every synthesized ARN resolves to in the artifact tests. */
export const ARTIFACT_ACCOUNT = '123456789012';
export const ARTIFACT_REGION = 'us-east-1';
export const ARTIFACT_PARTITION = 'aws';
