/**
 * The clients and adapters every Lambda uses on AWS, built once per process from
 * its validated environment (aws-env.ts). Nothing is created until the first
 * invocation asks for it, so the local runner can import handlers without AWS
 * settings.
 *
 * Each handler names what it calls (`awsDeps({ compute: awsCompute })`,
 * `awsNotifierDeps`); the factories it does not name are tree-shaken out of its
 * bundle with their SDK clients (the @aws-sdk clients are `sideEffects: false`),
 * so the workflow functions carry no CloudWatch Logs client. The S3 client (outputs
 * and their upload) is in aws-outputs.ts, imported by the API and the tasks function
 * only. Keep the factories plain functions over module-level caches: a
 * top-level call would keep its client in every bundle. @aws-sdk/lib-dynamodb is
 * not `sideEffects: false`, so whatever imports this module carries the DynamoDB
 * client: the stream publisher, which uses none, gets its deps from aws-events.ts.
 */
import { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EC2Client } from '@aws-sdk/client-ec2';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SSMClient } from '@aws-sdk/client-ssm';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoCatalog } from '../adapters/dynamo/dynamo-catalog.js';
import { DynamoDedup } from '../adapters/dynamo/dynamo-dedup.js';
import { dynamoStores } from '../adapters/dynamo/dynamo-stores.js';
import { countTransactionConflicts } from '../adapters/dynamo/conflict-metrics.js';
import { DynamoReconcileStore } from '../adapters/dynamo/dynamo-reconcile-store.js';
import type { TableNames } from '../adapters/dynamo/table-names.js';
import { Ec2SsmCompute, type Ec2SsmComputeProps } from '../adapters/ec2-ssm-compute.js';
import { CapacityFailsFast } from '../adapters/ec2-retry.js';
import { EventBridgePublisher } from '../adapters/eventbridge-publisher.js';
import { newJobId } from '../adapters/ids.js';
import { SfnWorkflows } from '../adapters/sfn-workflows.js';
import { OUTPUTS_WAIT_SECONDS } from '../adapters/ssm-outputs.js';
import { JobSecretCopies } from '../adapters/job-secret-copies.js';
import { SecretsManagerSecrets } from '../adapters/secrets-manager-secrets.js';
import { SecretsWebhooks } from '../adapters/secrets-webhooks.js';
import { reportUnavailable } from '../adapters/unavailable.js';
import { WebhookPoster } from '../adapters/webhook-notifier.js';
import { CloudWatchJobLogs } from '../adapters/cloudwatch-job-logs.js';
import type { Deps } from '../core/deps.js';
import { FlareError, SecretsUnavailable, StoreUnavailable, WorkflowsUnavailable } from '../core/errors.js';
import { computeChecksFor } from '../core/policy.js';
import type { Compute } from '../ports/compute.js';
import type { JobLogs } from '../ports/job-logs.js';
import type { JobOutputs } from '../ports/job-outputs.js';
import type { ReconcileStore } from '../ports/reconcile-store.js';
import type { SecretStore } from '../ports/secrets.js';
import { ApiClaimsEnv, AwsEnv, NotifierEnv, readEnv } from './aws-env.js';
import { eventBridgeClient } from './aws-events.js';
import { awsLogger, awsMetrics, NOTIFIER_SERVICE } from './aws-observability.js';
import type { NotifierDeps } from './events/notifier.js';
import type { ApiOptions } from './http/api.js';

let config: AwsEnv | undefined;
let doc: DynamoDBDocumentClient | undefined;
let notifier: NotifierDeps | undefined;
let compute: Ec2SsmCompute | undefined;
let jobLogs: CloudWatchJobLogs | undefined;
let reconcileStore: DynamoReconcileStore | undefined;
let secretStore: SecretStore | undefined;

/** This function's validated environment, read once per process. */
export function awsEnv(): AwsEnv {
  return (config ??= readEnv(AwsEnv));
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
export const AWS_REQUEST_HANDLER = { connectionTimeout: 2_000, requestTimeout: 3_000, throwOnRequestTimeout: true };

/** One DynamoDB client per process, shared by every adapter on a table; throttling and outages throw StoreUnavailable. */
export function awsDocumentClient(): DynamoDBDocumentClient {
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
  return (compute ??= ec2SsmCompute({}));
}

/**
 * The EC2+SSM compute from this function's environment, plus what the caller adds: the outputs
 * upload, which only the tasks function signs (aws-outputs.ts), so the others carry no S3 client.
 */
export function ec2SsmCompute(extra: Pick<Ec2SsmComputeProps, 'outputs'>): Ec2SsmCompute {
  const env = awsEnv();
  return new Ec2SsmCompute({
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
    ...(env.DEPLOYMENT_NAME ? { secretCopies: jobSecretCopies(env, env.DEPLOYMENT_NAME) } : {}),
    ...(env.SESSION_SHELL_DOCUMENT && env.SESSION_PORT_DOCUMENT
      ? { sessionDocuments: { shell: env.SESSION_SHELL_DOCUMENT, portForward: env.SESSION_PORT_DOCUMENT } }
      : {}),
    ...extra,
  });
}

/**
 * The per-instance copies of a starting job's secret values. The instances' ARNs share the partition,
 * region and account of the deployment's state machine, whose ARN every such function has.
 */
function jobSecretCopies(env: AwsEnv, deployment: string): JobSecretCopies {
  const [, partition, , region, account] = env.STATE_MACHINE_ARN.split(':');
  return new JobSecretCopies({
    client: secretsClient(),
    projectSecrets: awsSecrets(),
    deployment,
    instanceArnPrefix: `arn:${partition}:ec2:${region}:${account}:instance/`,
    region: region!,
  });
}

function secretsClient(): SecretsManagerClient {
  return reportUnavailable(
    new SecretsManagerClient({ requestHandler: AWS_REQUEST_HANDLER }),
    'Secrets Manager',
    SecretsUnavailable,
  );
}

/** Container output from CloudWatch Logs, for the API that serves it. */
export function awsJobLogs(): JobLogs {
  return (jobLogs ??= new CloudWatchJobLogs(new CloudWatchLogsClient({}), awsEnv().LOG_GROUP_NAME));
}

/** Project secrets in Secrets Manager, under this deployment's prefix: for the API, which writes them and masks their values in logs. */
export function awsSecrets(): SecretStore {
  const env = awsEnv();
  if (!env.DEPLOYMENT_NAME)
    throw new PortNotWired('secrets need DEPLOYMENT_NAME, the prefix of every secret name (contract/secrets.ts)');
  return (secretStore ??= new SecretsManagerSecrets(secretsClient(), env.DEPLOYMENT_NAME));
}

/** The reconciler's marks and counter repairs, on the same tables and client as the store. */
export function awsReconcileStore(): ReconcileStore {
  return (reconcileStore ??= new DynamoReconcileStore(awsDocumentClient(), tableNames(awsEnv())));
}

/** The chat notifier's: channels, the delivery ledger in the idempotency table, webhook URLs from Secrets Manager. */
export function awsNotifierDeps(env: NodeJS.ProcessEnv = process.env): NotifierDeps {
  if (notifier) return notifier;
  const config = readEnv(NotifierEnv, env);
  const log = awsLogger(NOTIFIER_SERVICE);
  return (notifier = {
    channels: config.NOTIFY_CHANNELS,
    ledger: new DynamoDedup(awsDocumentClient(), config.IDEMPOTENCY_TABLE),
    webhooks: new SecretsWebhooks(new SecretsManagerClient({})),
    // SQS is the retry loop (visibility timeout, then the DLQ); one quick retry covers a blip.
    poster: new WebhookPoster(log, { timeoutMs: 5000, retries: 1, backoffMs: 200 }),
    log,
  });
}

/** The API's claim names; read when the API's module loads (both optional, so the local runner can import it). */
export function awsApiOptions(env: NodeJS.ProcessEnv = process.env): Pick<ApiOptions, 'adminGroup' | 'groupsClaim'> {
  const { AUTH_ADMIN_GROUP, AUTH_GROUPS_CLAIM } = readEnv(ApiClaimsEnv, env);
  return {
    ...(AUTH_ADMIN_GROUP ? { adminGroup: AUTH_ADMIN_GROUP } : {}),
    ...(AUTH_GROUPS_CLAIM ? { groupsClaim: AUTH_GROUPS_CLAIM } : {}),
  };
}

/** The ports only some functions call; the ones a handler leaves out stay out of its bundle. */
export interface AwsPorts {
  compute?: () => Compute;
  logs?: () => JobLogs;
  /** Undefined: this deployment keeps no outputs. */
  outputs?: () => JobOutputs | undefined;
  secrets?: () => SecretStore;
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
      ...dynamoStores(awsDocumentClient(), tables),
      catalog: new DynamoCatalog(awsDocumentClient(), tables),
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
      events: new EventBridgePublisher(eventBridgeClient(), env.EVENT_BUS_NAME),
      logs: ports.logs ? ports.logs() : notWired<JobLogs>('logs'),
      ...outputsOf(ports),
      ...(ports.secrets ? { secrets: ports.secrets() } : {}),
      policy: {
        ...(env.DEFAULT_QUOTAS ? { defaultQuotas: env.DEFAULT_QUOTAS } : {}),
        ...(env.MIN_VOLUME_SIZE_GB ? { minVolumeSizeGb: env.MIN_VOLUME_SIZE_GB } : {}),
        ...(env.AGENT_TIMEOUT_SECONDS ? { maxComputeChecks: computeChecksFor(env.AGENT_TIMEOUT_SECONDS) } : {}),
        ...(env.ECR_REPOSITORIES ? { ecrRepositories: env.ECR_REPOSITORIES } : {}),
        ...(env.OUTPUTS_BUCKET ? { outputsWaitSeconds: OUTPUTS_WAIT_SECONDS } : {}),
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

function outputsOf(ports: AwsPorts): Pick<Deps, 'outputs'> {
  const outputs = ports.outputs?.();
  return outputs ? { outputs } : {};
}
