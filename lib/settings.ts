/**
 * The deployment's settings, read once from CDK context (`cdk.json`,
 * `cdk.context.json` or `-c key=value`) and checked before any resource is
 * built, so a bad value fails `cdk synth` with a message naming its key.
 * One zod schema per group of keys (network, compute, auth, quotas,
 * notifications, operations), each turning its keys into its part of FlareSettings. Every key is documented in lib/README.md.
 */
import type { Construct } from 'constructs';
import { z } from 'zod';
import {
  DEFAULT_MAX_OUTPUT_BYTES,
  JOB_STATES,
  MIN_VOLUME_SIZE_GB,
  NAME_PATTERN,
  NAME_RULE,
} from '../contract/vocabulary.js';
import { gpusOfInstanceType } from './instance-gpus.js';
import { DEFAULT_OUTPUTS_RETENTION_DAYS } from './outputs-bucket.js';

/** The largest per-job outputs cap a deployment may set. */
const MAX_OUTPUTS_MAX_BYTES = 10 * 2 ** 40;
import {
  both,
  closedObject,
  count,
  fromJson,
  InvalidSetting,
  list,
  parseContext,
  requiredTogether,
  show,
  text,
  unique,
  uniqueBy,
  wholeNumber,
} from './settings-schema.js';

export { InvalidSetting };

/** The AWS Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04), x86_64. */
export const DEFAULT_GPU_AMI_PARAMETER =
  '/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id';
export const DEFAULT_GROUPS_CLAIM = 'cognito:groups';
export const DEFAULT_ADMIN_GROUP = 'admin';
export const DEFAULT_RECONCILE_PERIOD_MINUTES = 5;
export const DEFAULT_AGENT_TIMEOUT_MINUTES = 10;

const VPC_ID = /^vpc-[0-9a-f]{8,17}$/;
const SUBNET_ID = /^subnet-[0-9a-f]{8,17}$/;
const INSTANCE_TYPE = /^[a-z][a-z0-9-]*\.[a-z0-9-]+$/;
const SSM_PARAMETER = /^\/[A-Za-z0-9_.\-/]{1,2047}$/;
const DOCKER_MEMORY = /^[1-9][0-9]{0,6}[bkmg]$/;
const CHANNEL_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** Secrets Manager's own rule for names. */
const SECRET_NAME = /^[A-Za-z0-9/_+=.@-]{1,512}$/;
/** A KMS key's ARN (a key id or a multi-Region `mrk-` id; IAM authorizes on the key, never on an alias). */
const KMS_KEY_ARN =
  /^arn:aws(-[a-z]+)*:kms:[a-z]{2}(-[a-z]+)+-[0-9]+:[0-9]{12}:key\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$/;
/** A JWT claim name: printable, no spaces (`cognito:groups`, `groups`, `https://example.com/groups`). */
const CLAIM_NAME = /^[\x21-\x7e]{1,256}$/;
/** Cognito group names allow more, but this one also travels in env vars, logs and URLs. */
const GROUP_NAME = /^[A-Za-z0-9_.@+=,:-]{1,128}$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
/** An ECR repository name (ECR's own rule), or one ending in `*` to name a prefix. */
const ECR_REPOSITORY =
  /^(?:(?:[a-z0-9]+(?:[._-][a-z0-9]+)*\/)*[a-z0-9]+(?:[._-][a-z0-9]+)*|(?:[a-z0-9]+(?:[._-][a-z0-9]+)*\/)*[a-z0-9._-]*\*)$/;
const ECR_REPOSITORY_ARN =
  /^arn:aws(?:-cn|-us-gov|-iso[a-z-]*)?:ecr:[a-z]{2}(?:-[a-z]+)+-\d{1,2}:\d{12}:repository\/(?<name>.+)$/;

// flare:vpcId, flare:subnetIds, flare:vpcEndpoints
const Network = z
  .object({
    'flare:vpcId': text(VPC_ID, (got) => `must be a VPC id like vpc-0123456789abcdef0, got ${got}`).optional(),
    'flare:subnetIds': list(text(SUBNET_ID, (got) => `must be a subnet id like subnet-0123456789abcdef0, got ${got}`))
      .refine((ids) => ids.length > 0, 'must name at least one private subnet')
      .refine(unique, 'lists a subnet twice')
      .optional(),
    'flare:vpcEndpoints': z
      .preprocess(
        (v) => (v === 'true' ? true : v === 'false' ? false : v),
        z.boolean({ error: (issue) => `must be true or false, got ${show(issue.input)}` }),
      )
      .default(false),
  })
  .superRefine(requiredTogether('flare:vpcId', 'flare:subnetIds'))
  .transform((c) => ({
    /** Existing VPC and private subnets; undefined: the stack creates a VPC. */
    network: both(c['flare:vpcId'], c['flare:subnetIds'], (vpcId, subnetIds) => ({ vpcId, subnetIds })),
    /** Interface endpoints (SSM, SSM messages, EC2 messages, Logs) in the job subnets, created or given. */
    vpcEndpoints: c['flare:vpcEndpoints'],
  }));
export type NetworkSetting = NonNullable<z.output<typeof Network>['network']>;

const instanceType = text(INSTANCE_TYPE, (got) => `must be an EC2 instance type like g5.xlarge, got ${got}`);
const gpuCount = count(1, (got) => `must be a positive integer, got ${got}`);
const poolFields = {
  name: text(NAME_PATTERN, () => `must be ${NAME_RULE}`),
  instanceType,
  fallbackInstanceTypes: z.array(instanceType, { error: 'must be an array of instance types' }).default([]),
  gpusPerInstance: gpuCount,
  maxGpus: gpuCount,
  /** docker `--memory` for job containers on this pool's instances, e.g. '14g'. */
  containerMemory: text(
    DOCKER_MEMORY,
    (got) => `must be a docker --memory value like 14g or 60000m, got ${got}`,
  ).optional(),
};
const Pool = closedObject(poolFields, (known) => `unknown field; a pool has ${known}`).superRefine((pool, ctx) => {
  const types = [pool.instanceType, ...pool.fallbackInstanceTypes];
  const field = (i: number) => (i === 0 ? ['instanceType'] : ['fallbackInstanceTypes', i - 1]);
  if (!unique(types)) {
    return ctx.addIssue({ code: 'custom', path: ['fallbackInstanceTypes'], message: 'repeats an instance type' });
  }
  // Every instance of the pool is charged gpusPerInstance GPUs, whichever its type:
  // a type with more or fewer breaks the accounting.
  const mismatch = types.findIndex((t) => (gpusOfInstanceType(t) ?? pool.gpusPerInstance) !== pool.gpusPerInstance);
  if (mismatch >= 0) {
    const gpus = gpusOfInstanceType(types[mismatch]);
    const message = `${show(types[mismatch])} has ${gpus} GPU${gpus === 1 ? '' : 's'} per instance, but the pool's gpusPerInstance is ${pool.gpusPerInstance}: every instance type of a pool must have gpusPerInstance GPUs`;
    return ctx.addIssue({ code: 'custom', path: field(mismatch), message });
  }
  if (pool.maxGpus < pool.gpusPerInstance) {
    ctx.addIssue({
      code: 'custom',
      path: ['maxGpus'],
      message: `must be at least gpusPerInstance (${pool.gpusPerInstance}), or no instance could ever start`,
    });
  }
});
export type PoolSetting = z.output<typeof Pool>;

export const DEFAULT_POOLS: readonly PoolSetting[] = [
  // g5.xlarge has 16 GiB; leave 2 GiB to the OS, the SSM agent and docker.
  {
    name: 'a10g',
    instanceType: 'g5.xlarge',
    fallbackInstanceTypes: [],
    gpusPerInstance: 1,
    maxGpus: 4,
    containerMemory: '14g',
  },
];

// flare:pools, flare:gpuAmiParameter, flare:minVolumeSizeGb
const POOLS_WANTED =
  'must be a non-empty array of { name, instanceType, fallbackInstanceTypes?, gpusPerInstance, maxGpus, containerMemory? }';
const Compute = z
  .object({
    'flare:pools': fromJson(
      z
        .array(Pool, { error: POOLS_WANTED })
        .min(1, POOLS_WANTED)
        .superRefine(
          uniqueBy(
            (p) => p.name,
            'name',
            (name) => `pool '${name}' is defined twice`,
          ),
        ),
    ).optional(),
    'flare:gpuAmiParameter': text(
      SSM_PARAMETER,
      (got) => `must be an SSM parameter name starting with '/', got ${got}`,
    ).default(DEFAULT_GPU_AMI_PARAMETER),
    // Never below the default AMI's snapshot: the API's own floor for volumeSizeGb.
    'flare:minVolumeSizeGb': wholeNumber(
      MIN_VOLUME_SIZE_GB,
      16384,
      (got) =>
        `must be the GPU AMI's root snapshot size, a whole number of GB from ${MIN_VOLUME_SIZE_GB} to 16384, got ${got}`,
    ).default(MIN_VOLUME_SIZE_GB),
  })
  .transform((c) => ({
    pools: c['flare:pools'] ?? DEFAULT_POOLS,
    gpuAmiParameter: c['flare:gpuAmiParameter'],
    /** The GPU AMI's root snapshot in GB: the least root volume of an instance, a template's volumeSizeGb included. */
    minVolumeSizeGb: c['flare:minVolumeSizeGb'],
  }));

// flare:authIssuer, flare:authAudience, flare:authGroupsClaim, flare:adminGroup
const Auth = z
  .object({
    'flare:authIssuer': text(
      isHttpsUrl,
      (got) => `must be the issuer's https:// URL (the token's iss claim), got ${got}`,
    ).optional(),
    'flare:authAudience': list(
      z.string({ error: (issue) => `must be a list of audiences (strings), got ${show(issue.input)}` }),
    )
      .refine((a) => a.length > 0 && a.every((s) => s.length > 0), 'must name at least one non-empty audience')
      .optional(),
    'flare:authGroupsClaim': text(
      CLAIM_NAME,
      (got) => `must be a JWT claim name (printable, no spaces), got ${got}`,
    ).default(DEFAULT_GROUPS_CLAIM),
    'flare:adminGroup': text(
      GROUP_NAME,
      (got) => `must be a group name of 1-128 letters, digits or _ . @ + = , : -, got ${got}`,
    ).default(DEFAULT_ADMIN_GROUP),
  })
  .superRefine(requiredTogether('flare:authIssuer', 'flare:authAudience'))
  .superRefine((c, ctx) => {
    // The pool the stack creates only ever puts groups in cognito:groups.
    if (c['flare:authIssuer'] === undefined && c['flare:authGroupsClaim'] !== DEFAULT_GROUPS_CLAIM) {
      const message = `the Cognito user pool this stack creates puts groups in '${DEFAULT_GROUPS_CLAIM}'; another claim needs flare:authIssuer`;
      ctx.addIssue({ code: 'custom', path: ['flare:authGroupsClaim'], message });
    }
  })
  .transform((c) => ({
    /** External OIDC issuer; undefined: the stack creates a Cognito user pool. */
    auth: both(c['flare:authIssuer'], c['flare:authAudience'], (issuer, audience) => ({ issuer, audience })),
    /** The JWT claim listing the caller's groups (projects and the admin group). */
    groupsClaim: c['flare:authGroupsClaim'],
    /** The group whose members are Flare admins (created in the Cognito pool when the stack makes one). */
    adminGroup: c['flare:adminGroup'],
  }));
export type AuthSetting = NonNullable<z.output<typeof Auth>['auth']>;

// flare:defaultQuotas: hard limits for projects with no quota row of their own; an absent resource is unlimited.
const quota = count(0, (got) => `must be a non-negative integer, got ${got}`).optional();
const quotaFields = { gpus: quota, jobs: quota, templates: quota };
const DefaultQuotas = closedObject(
  quotaFields,
  (known) => `unknown resource; quotas are ${known}`,
  'must be an object like { "gpus": 8, "jobs": 20, "templates": 50 }',
);
export type DefaultQuotas = z.output<typeof DefaultQuotas>;

/** A channel's projects or states: absent matches everything, so an empty list is a mistake. */
const filter = <T extends z.ZodType<string>>(item: T) =>
  z
    .array(item, { error: 'must be a non-empty array; leave it out to match everything' })
    .min(1, 'must be a non-empty array; leave it out to match everything')
    .refine(unique, 'lists a value twice');
const channelFields = {
  /** Stable id: names the channel's rule and goes into every message as `channel`. */
  id: text(
    CHANNEL_ID,
    (got) => `must be 1-63 lowercase letters, digits or '-', starting with a letter or digit, got ${got}`,
  ),
  type: z.enum(['slack', 'teams'], { error: (issue) => `must be 'slack' or 'teams', got ${show(issue.input)}` }),
  /** Secrets Manager secret (by name) whose value is the webhook URL. */
  secretName: text(
    SECRET_NAME,
    (got) => `must be the name (not the ARN) of a Secrets Manager secret holding the webhook URL, got ${got}`,
  ),
  /** The customer managed key the secret is encrypted with; absent: the AWS managed `aws/secretsmanager` key. */
  kmsKeyArn: text(
    KMS_KEY_ARN,
    (got) => `must be the ARN of a KMS key (arn:aws:kms:<region>:<account>:key/<key id>, not an alias), got ${got}`,
  ).optional(),
  /** Only these projects; absent: every project. */
  projects: filter(text(NAME_PATTERN, (got) => `must be a project name (${NAME_RULE}), got ${got}`)).optional(),
  /** Only these states; absent: every state change. */
  states: filter(
    z.enum(JOB_STATES, { error: (issue) => `must be a job state (${JOB_STATES.join(' ')}), got ${show(issue.input)}` }),
  ).optional(),
};
/** One chat channel: a webhook URL kept in Secrets Manager, routed by project and state. */
const Channel = closedObject(channelFields, (known) => `unknown field; a channel has ${known}`);
export type NotificationChannelSetting = z.output<typeof Channel>;

const Quotas = z
  .object({ 'flare:defaultQuotas': fromJson(DefaultQuotas).default({}) })
  .transform((c) => ({ defaultQuotas: c['flare:defaultQuotas'] }));

const Notifications = z
  .object({
    'flare:notifications': fromJson(
      z
        .array(Channel, { error: 'must be an array of { id, type, secretName, kmsKeyArn?, projects?, states? }' })
        .superRefine(
          uniqueBy(
            (c) => c.id,
            'id',
            (id) => `channel '${id}' is defined twice`,
          ),
        ),
    ).default([]),
  })
  .transform((c) => ({
    /** Chat channels; empty: no notifier is deployed. */
    notifications: c['flare:notifications'],
  }));

// flare:reconcilePeriodMinutes, flare:agentTimeoutMinutes, flare:outputsRetentionDays, flare:outputsMaxBytes, flare:alarmEmail, flare:ecrRepositories
const minutes = (fallback: number) =>
  wholeNumber(1, 60, (got) => `must be a whole number of minutes from 1 to 60, got ${got}`).default(fallback);
const Operations = z
  .object({
    'flare:reconcilePeriodMinutes': minutes(DEFAULT_RECONCILE_PERIOD_MINUTES),
    'flare:agentTimeoutMinutes': minutes(DEFAULT_AGENT_TIMEOUT_MINUTES),
    'flare:outputsRetentionDays': wholeNumber(
      1,
      3650,
      (got) => `must be a whole number of days from 1 to 3650, got ${got}`,
    ).default(DEFAULT_OUTPUTS_RETENTION_DAYS),
    'flare:outputsMaxBytes': wholeNumber(
      1,
      MAX_OUTPUTS_MAX_BYTES,
      (got) => `must be a whole number of bytes from 1 to ${MAX_OUTPUTS_MAX_BYTES} (10 TiB), got ${got}`,
    ).default(DEFAULT_MAX_OUTPUT_BYTES),
    'flare:alarmEmail': text(
      (s) => s.length <= 254 && EMAIL.test(s),
      (got) => `must be an email address, got ${got}`,
    ).optional(),
    'flare:ecrRepositories': list(
      text(
        isEcrRepository,
        (got) =>
          `must be an ECR repository name (team/trainer, or team/* for a prefix) or its ARN (arn:aws:ecr:<region>:<account>:repository/<name>), got ${got}`,
      ),
    )
      .refine(unique, 'lists a repository twice')
      .optional(),
  })
  .transform((c) => ({
    reconcilePeriodMinutes: c['flare:reconcilePeriodMinutes'],
    /** How long a launched instance may take to come online in SSM before the job fails. */
    agentTimeoutMinutes: c['flare:agentTimeoutMinutes'],
    /** Days the outputs bucket keeps a job's files (its lifecycle rule). */
    outputsRetentionDays: c['flare:outputsRetentionDays'],
    /** Bytes of its output directory a job keeps on AWS (the upload's per-job cap). */
    outputsMaxBytes: c['flare:outputsMaxBytes'],
    /** Subscribed to the alarm topic when set. */
    ...(c['flare:alarmEmail'] !== undefined ? { alarmEmail: c['flare:alarmEmail'] } : {}),
    /** ECR repositories (names or ARNs, `*` wildcards) job instances may pull from; absent: every repository of the account in the stack's region. */
    ...(c['flare:ecrRepositories'] !== undefined ? { ecrRepositories: c['flare:ecrRepositories'] } : {}),
  }));

export type FlareSettings = Readonly<
  z.output<typeof Network> &
    z.output<typeof Compute> &
    z.output<typeof Auth> &
    z.output<typeof Quotas> &
    z.output<typeof Notifications> &
    z.output<typeof Operations>
>;

/** Every key some group reads; any other `flare:*` key is a mistake. */
export const CONTEXT_KEYS = [Network, Compute, Auth, Quotas, Notifications, Operations].flatMap((group) =>
  Object.keys(group.in.shape),
);

/** Reads and validates every `flare:*` context key. */
export function readSettings(scope: Construct): FlareSettings {
  const context = Object.fromEntries(
    Object.entries(scope.node.getAllContext()).filter(([key]) => key.startsWith('flare:')),
  );
  const known = new Set(CONTEXT_KEYS);
  const unknown = Object.keys(context).find((key) => !known.has(key));
  if (unknown !== undefined) {
    throw new InvalidSetting(unknown, `unknown key; the known keys are ${CONTEXT_KEYS.join(', ')}`);
  }
  return {
    ...parseContext(Network, context),
    ...parseContext(Compute, context),
    ...parseContext(Auth, context),
    ...parseContext(Quotas, context),
    ...parseContext(Notifications, context),
    ...parseContext(Operations, context),
  };
}

function isHttpsUrl(s: string): boolean {
  try {
    return new URL(s).protocol === 'https:';
  } catch {
    return false;
  }
}

function isEcrRepository(r: string): boolean {
  const name = ECR_REPOSITORY_ARN.exec(r)?.groups?.name ?? (r.startsWith('arn:') ? undefined : r);
  return name !== undefined && name.length <= 256 && ECR_REPOSITORY.test(name);
}
