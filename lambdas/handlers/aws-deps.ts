/**
 * The adapters a Lambda uses on AWS, built once per process from one validated
 * environment. Nothing is created until the first invocation asks for it, so the
 * local runner can import handlers without AWS settings.
 *
 * Each handler names the AWS-only ports it calls (`awsDeps({ compute: awsCompute })`);
 * the factories it does not name are tree-shaken out of its bundle with their SDK
 * clients (every @aws-sdk package is `sideEffects: false`), so the API carries no
 * EC2 or SSM client and the workflow functions no CloudWatch Logs client. Keep the
 * factories plain functions over module-level caches: a top-level call would keep
 * its client in every bundle.
 */
import { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EC2Client } from '@aws-sdk/client-ec2';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SSMClient } from '@aws-sdk/client-ssm';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import { DynamoCatalog } from '../adapters/dynamo/dynamo-catalog.js';
import { DynamoJobStore } from '../adapters/dynamo/dynamo-job-store.js';
import { countTransactionConflicts } from '../adapters/dynamo/conflict-metrics.js';
import { DynamoReconcileStore } from '../adapters/dynamo/dynamo-reconcile-store.js';
import type { TableNames } from '../adapters/dynamo/table-names.js';
import { Ec2SsmCompute } from '../adapters/ec2-ssm-compute.js';
import { CapacityFailsFast } from '../adapters/ec2-retry.js';
import { EventBridgePublisher } from '../adapters/eventbridge-publisher.js';
import { newJobId } from '../adapters/ids.js';
import { SfnWorkflows } from '../adapters/sfn-workflows.js';
import { reportUnavailable } from '../adapters/unavailable.js';
import { CloudWatchJobLogs } from '../adapters/cloudwatch-job-logs.js';
import type { Deps } from '../core/deps.js';
import { FlareError, StoreUnavailable, WorkflowsUnavailable } from '../core/errors.js';
import { meteredStore } from '../core/metrics.js';
import { computeChecksFor } from '../core/policy.js';
import type { Compute } from '../ports/compute.js';
import type { JobLogs } from '../ports/job-logs.js';
import type { ReconcileStore } from '../ports/reconcile-store.js';
import { awsLogger, awsMetrics } from './aws-observability.js';

const required = z.string().min(1);
const count = z.number().int().min(0).optional();
export const AwsEnv = z.object({
  JOBS_TABLE: required,
  QUOTAS_TABLE: required,
  POOLS_TABLE: required,
  IDEMPOTENCY_TABLE: required,
  CATALOG_TABLE: required,
  EVENT_BUS_NAME: required,
  STATE_MACHINE_ARN: required,
  LAUNCH_TEMPLATE_ID: required,
  SUBNET_IDS: required.transform((s) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
  ),
  POOLS: required.transform((s, ctx) => {
    try {
      return z
        .record(
          z.string(),
          z.object({
            instanceTypes: z.array(z.string()).min(1),
            memory: z.string().optional(),
            gpusPerInstance: z.number().int().positive().optional(),
          }),
        )
        .parse(JSON.parse(s));
    } catch (error) {
      ctx.addIssue({
        code: 'custom',
        message: `POOLS must be JSON {"<pool>":{"instanceTypes":[...]}}: ${String(error)}`,
      });
      return z.NEVER;
    }
  }),
  LOG_GROUP_NAME: required,
  /** The stack name: tagged on instances so the reconciler only sees its own deployment's. */
  DEPLOYMENT_NAME: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9-]{0,127}$/)
    .optional(),
  DEFAULT_QUOTAS: z
    .string()
    .optional()
    .transform((s, ctx) => {
      if (!s) return undefined;
      try {
        return z.object({ gpus: count, jobs: count, templates: count }).strict().parse(JSON.parse(s));
      } catch (error) {
        ctx.addIssue({
          code: 'custom',
          message: `DEFAULT_QUOTAS must be JSON {"gpus"?:n,"jobs"?:n,"templates"?:n}: ${String(error)}`,
        });
        return z.NEVER;
      }
    }),
  AGENT_TIMEOUT_SECONDS: z.coerce.number().int().min(5).max(3600).optional(),
  /** JSON array of the ECR repository ARNs the instance role may pull from (flare:ecrRepositories). */
  ECR_REPOSITORIES: z
    .string()
    .optional()
    .transform((s, ctx) => {
      if (!s) return undefined;
      try {
        return z.array(z.string().startsWith('arn:')).parse(JSON.parse(s));
      } catch (error) {
        ctx.addIssue({
          code: 'custom',
          message: `ECR_REPOSITORIES must be a JSON array of ECR repository ARNs: ${String(error)}`,
        });
        return z.NEVER;
      }
    }),
  ROOT_DEVICE_NAME: z
    .string()
    .regex(/^\/dev\/[a-z0-9]+$/)
    .optional(),
  /** The launch template's AMI: its root snapshot is the floor of a job's volumeSizeGb. */
  GPU_IMAGE_ID: z.string().min(1).optional(),
  /** The AMI's root snapshot in GB: the API's floor for a template's volumeSizeGb. */
  MIN_VOLUME_SIZE_GB: z.coerce.number().int().min(1).optional(),
});
export type AwsEnv = z.infer<typeof AwsEnv>;

export function readAwsEnv(env: NodeJS.ProcessEnv = process.env): AwsEnv {
  const result = AwsEnv.safeParse(env);
  if (!result.success) {
    const names = result.error.issues.map((i) => `${i.path.join('.')} (${i.message})`).join(', ');
    throw new Error(`Flare Lambda misconfigured: environment variable ${names}`);
  }
  return result.data;
}

let config: AwsEnv | undefined;
let doc: DynamoDBDocumentClient | undefined;
let compute: Ec2SsmCompute | undefined;
let jobLogs: CloudWatchJobLogs | undefined;
let reconcileStore: DynamoReconcileStore | undefined;

function awsEnv(): AwsEnv {
  return (config ??= readAwsEnv());
}

function tableNames(env: AwsEnv): TableNames {
  return {
    jobs: env.JOBS_TABLE,
    quotas: env.QUOTAS_TABLE,
    pools: env.POOLS_TABLE,
    idempotency: env.IDEMPOTENCY_TABLE,
    catalog: env.CATALOG_TABLE,
  };
}

/**
 * Bounds on one attempt of a DynamoDB or Step Functions call. Both answer in milliseconds; a call
 * that hangs must fail as Unavailable (503) with its retries well inside the API function's 15 s,
 * not run into the function's timeout (a 500 from API Gateway).
 */
const AWS_REQUEST_HANDLER = { connectionTimeout: 2_000, requestTimeout: 3_000, throwOnRequestTimeout: true };

/** One DynamoDB client per process, shared by the store, the catalog and the reconcile store; throttling and outages throw StoreUnavailable. */
function documentClient(): DynamoDBDocumentClient {
  if (doc) return doc;
  const client = countTransactionConflicts(new DynamoDBClient({ requestHandler: AWS_REQUEST_HANDLER }), awsMetrics());
  return (doc = reportUnavailable(
    DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } }),
    'DynamoDB',
    StoreUnavailable,
  ));
}

/** EC2+SSM, for the functions that launch, watch or reap instances; also more than the Compute port (event lookups). */
export function awsCompute(): Ec2SsmCompute {
  if (compute) return compute;
  const env = awsEnv();
  return (compute = new Ec2SsmCompute({
    ec2: new EC2Client({ retryStrategy: new CapacityFailsFast() }),
    ssm: new SSMClient({}),
    launchTemplateId: env.LAUNCH_TEMPLATE_ID,
    subnetIds: env.SUBNET_IDS,
    pools: env.POOLS,
    logGroupName: env.LOG_GROUP_NAME,
    ...(env.DEPLOYMENT_NAME ? { deployment: env.DEPLOYMENT_NAME } : {}),
    ...(env.AGENT_TIMEOUT_SECONDS ? { agentTimeoutSeconds: env.AGENT_TIMEOUT_SECONDS } : {}),
    ...(env.ROOT_DEVICE_NAME ? { rootDeviceName: env.ROOT_DEVICE_NAME } : {}),
    ...(env.GPU_IMAGE_ID ? { imageId: env.GPU_IMAGE_ID } : {}),
  }));
}

/** Container output from CloudWatch Logs, for the API that serves it. */
export function awsJobLogs(): JobLogs {
  return (jobLogs ??= new CloudWatchJobLogs(new CloudWatchLogsClient({}), awsEnv().LOG_GROUP_NAME));
}

/** The reconciler's marks and counter repairs, on the same tables and client as the store. */
export function awsReconcileStore(): ReconcileStore {
  return (reconcileStore ??= new DynamoReconcileStore(documentClient(), tableNames(awsEnv())));
}

/** The ports only some functions call; the ones a handler leaves out stay out of its bundle. */
export interface AwsPorts {
  compute?: () => Compute;
  logs?: () => JobLogs;
}

/** A function called a port its handler did not pass to `awsDeps`: a wiring bug, not a transient error. */
export class PortNotWired extends FlareError {}

/** The handler's Deps: DynamoDB, Step Functions and EventBridge for all, plus the ports it names; built on first call. */
export function awsDeps(ports: AwsPorts): () => Deps {
  let deps: Deps | undefined;
  return () => {
    if (deps) return deps;
    const env = awsEnv();
    const tables = tableNames(env);
    deps = {
      store: meteredStore(new DynamoJobStore(documentClient(), tables), awsMetrics()),
      catalog: new DynamoCatalog(documentClient(), tables),
      compute: ports.compute ? ports.compute() : notWired<Compute>('compute'),
      workflows: new SfnWorkflows(
        reportUnavailable(
          new SFNClient({ requestHandler: AWS_REQUEST_HANDLER }),
          'Step Functions',
          WorkflowsUnavailable,
        ),
        env.STATE_MACHINE_ARN,
      ),
      // Job State Change events leave through the jobs table's stream (stream-publisher); only operator events are put here.
      events: new EventBridgePublisher(new EventBridgeClient({}), env.EVENT_BUS_NAME),
      logs: ports.logs ? ports.logs() : notWired<JobLogs>('logs'),
      policy: {
        ...(env.DEFAULT_QUOTAS ? { defaultQuotas: env.DEFAULT_QUOTAS } : {}),
        ...(env.MIN_VOLUME_SIZE_GB ? { minVolumeSizeGb: env.MIN_VOLUME_SIZE_GB } : {}),
        ...(env.AGENT_TIMEOUT_SECONDS ? { maxComputeChecks: computeChecksFor(env.AGENT_TIMEOUT_SECONDS) } : {}),
        ...(env.ECR_REPOSITORIES ? { ecrRepositories: env.ECR_REPOSITORIES } : {}),
      },
      log: awsLogger(),
      metrics: awsMetrics(),
      now: () => new Date(),
      newId: newJobId,
    };
    return deps;
  };
}

/** Stands in for a port the handler left out: any method call throws PortNotWired naming the port and method. */
function notWired<T extends object>(port: keyof AwsPorts): T {
  return new Proxy({} as T, {
    get(_target, member) {
      // Not a thenable, and nothing for symbol lookups (inspection, coercion).
      if (typeof member !== 'string' || member === 'then') return undefined;
      return () => {
        throw new PortNotWired(
          `${port}.${member} called, but this function's handler did not wire ${port} (lambdas/handlers/aws-deps.ts awsDeps)`,
        );
      };
    },
  });
}
