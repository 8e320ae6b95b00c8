/**
 * What each Flare Lambda's environment must hold (lib/ sets it), and the one
 * reader of it: aws-deps.ts reads each function's variables once per process
 * through `readEnv`, which fails fast naming every variable that is missing or
 * malformed.
 */
import { z } from 'zod';
import { FlareError } from '../core/errors.js';
import { NotifyChannelSpec, toFieldIssues } from '../core/schemas.js';

/** A function's environment is not what its stack sets: a deployment bug, never retried into health. */
export class LambdaMisconfigured extends FlareError {}

/**
 * `schema` over `env`, or LambdaMisconfigured naming each bad variable and why
 * ("JOBS_TABLE: is not set; POOLS: must be JSON ...").
 */
export function readEnv<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  const issues = toFieldIssues(result.error).map(({ field, reason }) =>
    // The top-level name of a nested issue (NOTIFY_CHANNELS.0.type) is the variable.
    env[field.split('.')[0]!] === undefined ? `${field}: is not set` : `${field}: ${reason}`,
  );
  throw new LambdaMisconfigured(`Flare Lambda misconfigured: environment variable ${issues.join('; ')}`);
}

const required = z.string().min(1);
const count = z.number().int().min(0).optional();

/** A variable holding JSON that `schema` takes; what is wrong inside is named by its path (POOLS.a10g.instanceTypes). */
function jsonVariable<S extends z.ZodType>(schema: S, shape: string) {
  return z
    .string()
    .transform((text, ctx) => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: `must be ${shape}` });
        return z.NEVER;
      }
    })
    .pipe(schema);
}

/** The same for a variable the stack may leave unset or empty. */
function optionalJsonVariable<S extends z.ZodType>(schema: S, shape: string) {
  return z
    .string()
    .optional()
    .transform((text) => text || undefined)
    .pipe(jsonVariable(schema, shape).optional());
}

/** The stack name: tagged on instances so the reconciler only sees its own deployment's, and a metrics dimension. */
const deploymentName = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9-]{0,127}$/)
  .optional();

/** An SSM document name (not one of AWS's own, which log nothing by themselves). */
const sessionDocument = z
  .string()
  .regex(/^[A-Za-z0-9_.-]{3,128}$/, 'must be an SSM document name')
  .refine((name) => !/^(aws|amazon|amzn)/i.test(name), "must be the stack's own document, not AWS's")
  .optional();

/** The API, tasks, compute events and the reconciler: the functions that share Deps. */
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
  POOLS: jsonVariable(
    z.record(
      z.string(),
      z.object({
        instanceTypes: z.array(z.string()).min(1),
        memory: z.string().optional(),
        gpusPerInstance: z.number().int().positive().optional(),
      }),
    ),
    'JSON {"<pool>":{"instanceTypes":[...]}}',
  ),
  LOG_GROUP_NAME: required,
  /** The outputs bucket (lib/outputs-bucket.ts): the API lists and presigns it, the tasks function signs uploads to it; absent: no outputs are kept on AWS. */
  OUTPUTS_BUCKET: z
    .string()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name')
    .optional(),
  /** The per-job outputs cap in bytes (flare:outputsMaxBytes): files past it are not uploaded. */
  OUTPUTS_MAX_BYTES: z.coerce.number().int().min(1).optional(),
  DEPLOYMENT_NAME: deploymentName,
  DEFAULT_QUOTAS: optionalJsonVariable(
    z.object({ gpus: count, jobs: count, templates: count }).strict(),
    'JSON {"gpus"?:n,"jobs"?:n,"templates"?:n}',
  ),
  AGENT_TIMEOUT_SECONDS: z.coerce.number().int().min(5).max(3600).optional(),
  /** JSON array of the ECR repository ARNs the instance role may pull from (flare:ecrRepositories). */
  ECR_REPOSITORIES: optionalJsonVariable(z.array(z.string().startsWith('arn:')), 'a JSON array of ECR repository ARNs'),
  ROOT_DEVICE_NAME: z
    .string()
    .regex(/^\/dev\/[a-z0-9]+$/)
    .optional(),
  /** The launch template's AMI: its root snapshot is the floor of a job's volumeSizeGb. */
  GPU_IMAGE_ID: z.string().min(1).optional(),
  /** The AMI's root snapshot in GB: the API's floor for a template's volumeSizeGb. */
  MIN_VOLUME_SIZE_GB: z.coerce.number().int().min(1).optional(),
  /** The API's: the stack's Session Manager documents (lib/session-documents.ts) that shells and port forwards start with. */
  SESSION_SHELL_DOCUMENT: sessionDocument,
  SESSION_PORT_DOCUMENT: sessionDocument,
});
export type AwsEnv = z.infer<typeof AwsEnv>;

/** The chat notifier (lib/notifier.ts). */
export const NotifierEnv = z.object({
  NOTIFY_CHANNELS: jsonVariable(
    z
      .array(NotifyChannelSpec)
      .refine((channels) => new Set(channels.map((c) => c.id)).size === channels.length, 'channel ids must be unique'),
    'a JSON array of channels',
  ),
  IDEMPOTENCY_TABLE: required,
});
export type NotifierEnv = z.infer<typeof NotifierEnv>;

/** The jobs table's stream publisher (lib/job-event-stream.ts). */
export const StreamPublisherEnv = z.object({ EVENT_BUS_NAME: required });

/** The API's claim names (CDK sets them from flare:authGroupsClaim and flare:adminGroup); empty means the default. */
export const ApiClaimsEnv = z.object({
  AUTH_ADMIN_GROUP: z.string().optional(),
  AUTH_GROUPS_CLAIM: z.string().optional(),
});

/** What every function's logs and metrics read (aws-observability.ts). */
export const ObservabilityEnv = z.object({ DEPLOYMENT_NAME: deploymentName });
