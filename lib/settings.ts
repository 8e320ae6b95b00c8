/**
 * The deployment's settings, read once from CDK context (`cdk.json`,
 * `cdk.context.json` or `-c key=value`) and checked before any resource is
 * built, so a bad value fails `cdk synth` with a message naming its key.
 * Every key is documented in lib/README.md.
 */
import type { Construct } from 'constructs';
import { gpusOfInstanceType } from './instance-gpus.js';

/** The AWS Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04), x86_64. */
export const DEFAULT_GPU_AMI_PARAMETER = '/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id';

export interface PoolSetting {
  readonly name: string;
  readonly instanceType: string;
  readonly fallbackInstanceTypes: readonly string[];
  readonly gpusPerInstance: number;
  readonly maxGpus: number;
  /** docker `--memory` for job containers on this pool's instances, e.g. '14g'. */
  readonly containerMemory?: string;
}

export const DEFAULT_POOLS: readonly PoolSetting[] = [
  // g5.xlarge has 16 GiB; leave 2 GiB to the OS, the SSM agent and docker.
  { name: 'a10g', instanceType: 'g5.xlarge', fallbackInstanceTypes: [], gpusPerInstance: 1, maxGpus: 4, containerMemory: '14g' },
];

export interface NetworkSetting {
  readonly vpcId: string;
  readonly subnetIds: readonly string[];
}

export interface AuthSetting {
  readonly issuer: string;
  readonly audience: readonly string[];
}

/** Deployment-wide hard limits for projects with no quota row of their own. */
export interface DefaultQuotas {
  readonly gpus?: number;
  readonly jobs?: number;
  readonly templates?: number;
}

/** Flare's job states (DESIGN.md); the ones a notification channel may filter on. */
export const JOB_STATES = ['PENDING', 'WAITING', 'LAUNCHING', 'RUNNING', 'STOPPING', 'SUCCEEDED', 'FAILED', 'EXPIRED', 'CANCELLED'] as const;
export type JobStateName = (typeof JOB_STATES)[number];

/** One chat channel: a webhook URL kept in Secrets Manager, routed by project and state. */
export interface NotificationChannelSetting {
  /** Stable id: names the channel's rule and goes into every message as `channel`. */
  readonly id: string;
  readonly type: 'slack' | 'teams';
  /** Secrets Manager secret (by name) whose value is the webhook URL. */
  readonly secretName: string;
  /** Only these projects; absent: every project. */
  readonly projects?: readonly string[];
  /** Only these states; absent: every state change. */
  readonly states?: readonly JobStateName[];
}

export const DEFAULT_GROUPS_CLAIM = 'cognito:groups';
/** The default GPU AMI's root snapshot in GB; lambdas/core/schemas.ts MIN_VOLUME_SIZE_GB is the same floor for templates. */
export const DEFAULT_MIN_VOLUME_SIZE_GB = 75;
export const DEFAULT_ADMIN_GROUP = 'admin';
export const DEFAULT_RECONCILE_PERIOD_MINUTES = 5;
export const DEFAULT_AGENT_TIMEOUT_MINUTES = 10;

export interface FlareSettings {
  /** Existing VPC and private subnets; undefined: the stack creates a VPC. */
  readonly network?: NetworkSetting;
  /** Interface endpoints (SSM, SSM messages, EC2 messages, Logs) in the job subnets, created or given. */
  readonly vpcEndpoints: boolean;
  readonly pools: readonly PoolSetting[];
  readonly gpuAmiParameter: string;
  /** The GPU AMI's root snapshot in GB: the least root volume of an instance, a template's volumeSizeGb included. */
  readonly minVolumeSizeGb: number;
  /** External OIDC issuer; undefined: the stack creates a Cognito user pool. */
  readonly auth?: AuthSetting;
  /** The JWT claim listing the caller's groups (projects and the admin group). */
  readonly groupsClaim: string;
  /** The group whose members are Flare admins (created in the Cognito pool when the stack makes one). */
  readonly adminGroup: string;
  /** Limits for projects without their own quota row; an absent resource is unlimited. */
  readonly defaultQuotas: DefaultQuotas;
  /** Chat channels; empty: no notifier is deployed. */
  readonly notifications: readonly NotificationChannelSetting[];
  readonly reconcilePeriodMinutes: number;
  /** How long a launched instance may take to come online in SSM before the job fails. */
  readonly agentTimeoutMinutes: number;
  /** Subscribed to the alarm topic when set. */
  readonly alarmEmail?: string;
  /** ECR repositories (names or ARNs, `*` wildcards) job instances may pull from; undefined: every repository of the account in the stack's region. */
  readonly ecrRepositories?: readonly string[];
}

export const CONTEXT_KEYS = [
  'flare:vpcId',
  'flare:subnetIds',
  'flare:vpcEndpoints',
  'flare:pools',
  'flare:gpuAmiParameter',
  'flare:minVolumeSizeGb',
  'flare:authIssuer',
  'flare:authAudience',
  'flare:authGroupsClaim',
  'flare:adminGroup',
  'flare:defaultQuotas',
  'flare:notifications',
  'flare:reconcilePeriodMinutes',
  'flare:agentTimeoutMinutes',
  'flare:alarmEmail',
  'flare:ecrRepositories',
] as const;
type ContextKey = (typeof CONTEXT_KEYS)[number];

/** Thrown for a bad or missing setting; the message starts with the key. */
export class InvalidSetting extends Error {
  constructor(
    readonly key: string,
    reason: string,
  ) {
    super(`context ${key}: ${reason}`);
    this.name = 'InvalidSetting';
  }
}

const POOL_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const INSTANCE_TYPE = /^[a-z][a-z0-9-]*\.[a-z0-9-]+$/;
const VPC_ID = /^vpc-[0-9a-f]{8,17}$/;
const SUBNET_ID = /^subnet-[0-9a-f]{8,17}$/;
const SSM_PARAMETER = /^\/[A-Za-z0-9_.\-/]{1,2047}$/;
const POOL_KEYS = new Set(['name', 'instanceType', 'fallbackInstanceTypes', 'gpusPerInstance', 'maxGpus', 'containerMemory']);
const DOCKER_MEMORY = /^[1-9][0-9]{0,6}[bkmg]$/;
/** Project names as the API accepts them (DESIGN.md; lambdas/core/schemas.ts NAME_PATTERN). */
const PROJECT_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const CHANNEL_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** Secrets Manager's own rule for names. */
const SECRET_NAME = /^[A-Za-z0-9/_+=.@-]{1,512}$/;
/** A JWT claim name: printable, no spaces (`cognito:groups`, `groups`, `https://example.com/groups`). */
const CLAIM_NAME = /^[\x21-\x7e]{1,256}$/;
/** Cognito group names allow more, but this one also travels in env vars, logs and URLs. */
const GROUP_NAME = /^[A-Za-z0-9_.@+=,:-]{1,128}$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const QUOTA_KEYS = ['gpus', 'jobs', 'templates'] as const;
const CHANNEL_KEYS = new Set(['id', 'type', 'secretName', 'projects', 'states']);

/** Reads and validates every `flare:*` context key. */
export function readSettings(scope: Construct): FlareSettings {
  const context = scope.node.getAllContext();
  const unknown = Object.keys(context).filter((k) => k.startsWith('flare:') && !(CONTEXT_KEYS as readonly string[]).includes(k));
  if (unknown.length > 0) {
    throw new InvalidSetting(unknown[0], `unknown key; the known keys are ${CONTEXT_KEYS.join(', ')}`);
  }
  const get = (key: ContextKey): unknown => scope.node.tryGetContext(key);

  const network = readNetwork(get('flare:vpcId'), get('flare:subnetIds'));
  const vpcEndpoints = readBoolean('flare:vpcEndpoints', get('flare:vpcEndpoints'), false);
  const auth = readAuth(get('flare:authIssuer'), get('flare:authAudience'));
  const alarmEmail = readAlarmEmail(get('flare:alarmEmail'));
  return {
    network,
    vpcEndpoints,
    pools: readPools(get('flare:pools')),
    gpuAmiParameter: readAmiParameter(get('flare:gpuAmiParameter')),
    minVolumeSizeGb: readMinVolumeSize(get('flare:minVolumeSizeGb')),
    auth,
    groupsClaim: readGroupsClaim(get('flare:authGroupsClaim'), auth),
    adminGroup: readAdminGroup(get('flare:adminGroup')),
    defaultQuotas: readDefaultQuotas(get('flare:defaultQuotas')),
    notifications: readNotifications(get('flare:notifications')),
    reconcilePeriodMinutes: integerInRange('flare:reconcilePeriodMinutes', get('flare:reconcilePeriodMinutes'), 1, 60, DEFAULT_RECONCILE_PERIOD_MINUTES),
    agentTimeoutMinutes: integerInRange('flare:agentTimeoutMinutes', get('flare:agentTimeoutMinutes'), 1, 60, DEFAULT_AGENT_TIMEOUT_MINUTES),
    ...(alarmEmail !== undefined ? { alarmEmail } : {}),
    ...readEcrRepositories(get('flare:ecrRepositories')),
  };
}

function readNetwork(vpcId: unknown, subnetIdsRaw: unknown): NetworkSetting | undefined {
  if (vpcId === undefined && subnetIdsRaw === undefined) return undefined;
  if (vpcId === undefined) throw new InvalidSetting('flare:vpcId', 'required when flare:subnetIds is set');
  if (subnetIdsRaw === undefined) throw new InvalidSetting('flare:subnetIds', 'required when flare:vpcId is set');
  if (typeof vpcId !== 'string' || !VPC_ID.test(vpcId)) throw new InvalidSetting('flare:vpcId', `must be a VPC id like vpc-0123456789abcdef0, got ${show(vpcId)}`);
  const subnetIds = stringList('flare:subnetIds', subnetIdsRaw);
  if (subnetIds.length === 0) throw new InvalidSetting('flare:subnetIds', 'must name at least one private subnet');
  subnetIds.forEach((id, i) => {
    if (!SUBNET_ID.test(id)) throw new InvalidSetting(`flare:subnetIds[${i}]`, `must be a subnet id like subnet-0123456789abcdef0, got ${show(id)}`);
  });
  if (new Set(subnetIds).size !== subnetIds.length) throw new InvalidSetting('flare:subnetIds', 'lists a subnet twice');
  return { vpcId, subnetIds };
}

function readPools(raw: unknown): readonly PoolSetting[] {
  const key = 'flare:pools';
  if (raw === undefined) return DEFAULT_POOLS;
  const value = typeof raw === 'string' ? parseJson(key, raw) : raw;
  if (!Array.isArray(value) || value.length === 0) throw new InvalidSetting(key, 'must be a non-empty array of { name, instanceType, fallbackInstanceTypes?, gpusPerInstance, maxGpus, containerMemory? }');
  const pools = value.map((item: unknown, i) => readPool(`${key}[${i}]`, item));
  const seen = new Set<string>();
  pools.forEach((p, i) => {
    if (seen.has(p.name)) throw new InvalidSetting(`${key}[${i}].name`, `pool '${p.name}' is defined twice`);
    seen.add(p.name);
  });
  return pools;
}

function readPool(key: string, item: unknown): PoolSetting {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new InvalidSetting(key, 'must be an object');
  const pool = item as Record<string, unknown>;
  const extra = Object.keys(pool).find((k) => !POOL_KEYS.has(k));
  if (extra !== undefined) throw new InvalidSetting(`${key}.${extra}`, `unknown field; a pool has ${[...POOL_KEYS].join(', ')}`);
  const { name, instanceType, fallbackInstanceTypes = [], gpusPerInstance, maxGpus, containerMemory } = pool;
  if (typeof name !== 'string' || !POOL_NAME.test(name)) {
    throw new InvalidSetting(`${key}.name`, "must be 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit");
  }
  if (!Array.isArray(fallbackInstanceTypes)) throw new InvalidSetting(`${key}.fallbackInstanceTypes`, 'must be an array of instance types');
  const types: unknown[] = [instanceType, ...fallbackInstanceTypes];
  types.forEach((t, i) => {
    const field = i === 0 ? `${key}.instanceType` : `${key}.fallbackInstanceTypes[${i - 1}]`;
    if (typeof t !== 'string' || !INSTANCE_TYPE.test(t)) throw new InvalidSetting(field, `must be an EC2 instance type like g5.xlarge, got ${show(t)}`);
  });
  if (new Set(types).size !== types.length) throw new InvalidSetting(`${key}.fallbackInstanceTypes`, 'repeats an instance type');
  const perInstance = positiveInteger(`${key}.gpusPerInstance`, gpusPerInstance);
  // Every instance of the pool is charged perInstance GPUs, whichever type it is: a type with more or fewer breaks the accounting.
  types.forEach((t, i) => {
    const gpus = gpusOfInstanceType(t as string);
    if (gpus === undefined || gpus === perInstance) return;
    const field = i === 0 ? `${key}.instanceType` : `${key}.fallbackInstanceTypes[${i - 1}]`;
    throw new InvalidSetting(field, `${show(t)} has ${gpus} GPU${gpus === 1 ? '' : 's'} per instance, but the pool's gpusPerInstance is ${perInstance}: every instance type of a pool must have gpusPerInstance GPUs`);
  });
  const max = positiveInteger(`${key}.maxGpus`, maxGpus);
  if (max < perInstance) throw new InvalidSetting(`${key}.maxGpus`, `must be at least gpusPerInstance (${perInstance}), or no instance could ever start`);
  if (containerMemory !== undefined && (typeof containerMemory !== 'string' || !DOCKER_MEMORY.test(containerMemory))) {
    throw new InvalidSetting(`${key}.containerMemory`, `must be a docker --memory value like 14g or 60000m, got ${show(containerMemory)}`);
  }
  return {
    name,
    instanceType: types[0] as string,
    fallbackInstanceTypes: types.slice(1) as string[],
    gpusPerInstance: perInstance,
    maxGpus: max,
    ...(containerMemory !== undefined ? { containerMemory } : {}),
  };
}

function readAmiParameter(raw: unknown): string {
  if (raw === undefined) return DEFAULT_GPU_AMI_PARAMETER;
  if (typeof raw !== 'string' || !SSM_PARAMETER.test(raw)) throw new InvalidSetting('flare:gpuAmiParameter', `must be an SSM parameter name starting with '/', got ${show(raw)}`);
  return raw;
}

/** Never below the default AMI's snapshot: the API's own floor for volumeSizeGb. */
function readMinVolumeSize(raw: unknown): number {
  if (raw === undefined) return DEFAULT_MIN_VOLUME_SIZE_GB;
  const value = typeof raw === 'string' && /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : raw;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < DEFAULT_MIN_VOLUME_SIZE_GB || value > 16384) {
    throw new InvalidSetting('flare:minVolumeSizeGb', `must be the GPU AMI's root snapshot size, a whole number of GB from ${DEFAULT_MIN_VOLUME_SIZE_GB} to 16384, got ${show(raw)}`);
  }
  return value;
}

function readAuth(issuer: unknown, audienceRaw: unknown): AuthSetting | undefined {
  if (issuer === undefined && audienceRaw === undefined) return undefined;
  if (issuer === undefined) throw new InvalidSetting('flare:authIssuer', 'required when flare:authAudience is set');
  if (audienceRaw === undefined) throw new InvalidSetting('flare:authAudience', 'required when flare:authIssuer is set');
  if (typeof issuer !== 'string' || !isHttpsUrl(issuer)) throw new InvalidSetting('flare:authIssuer', `must be the issuer's https:// URL (the token's iss claim), got ${show(issuer)}`);
  const audience = stringList('flare:authAudience', audienceRaw);
  if (audience.length === 0 || audience.some((a) => a.length === 0)) throw new InvalidSetting('flare:authAudience', 'must name at least one non-empty audience');
  return { issuer, audience };
}

function readGroupsClaim(raw: unknown, auth: AuthSetting | undefined): string {
  const key = 'flare:authGroupsClaim';
  if (raw === undefined) return DEFAULT_GROUPS_CLAIM;
  if (typeof raw !== 'string' || !CLAIM_NAME.test(raw)) throw new InvalidSetting(key, `must be a JWT claim name (printable, no spaces), got ${show(raw)}`);
  // The pool the stack creates only ever puts groups in cognito:groups.
  if (!auth && raw !== DEFAULT_GROUPS_CLAIM) {
    throw new InvalidSetting(key, `the Cognito user pool this stack creates puts groups in '${DEFAULT_GROUPS_CLAIM}'; another claim needs flare:authIssuer`);
  }
  return raw;
}

function readAdminGroup(raw: unknown): string {
  if (raw === undefined) return DEFAULT_ADMIN_GROUP;
  if (typeof raw !== 'string' || !GROUP_NAME.test(raw)) {
    throw new InvalidSetting('flare:adminGroup', `must be a group name of 1-128 letters, digits or _ . @ + = , : -, got ${show(raw)}`);
  }
  return raw;
}

function readDefaultQuotas(raw: unknown): DefaultQuotas {
  const key = 'flare:defaultQuotas';
  if (raw === undefined) return {};
  const value = typeof raw === 'string' ? parseJson(key, raw) : raw;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidSetting(key, 'must be an object like { "gpus": 8, "jobs": 20, "templates": 50 }');
  const quotas: Record<string, number> = {};
  for (const [resource, limit] of Object.entries(value)) {
    if (!(QUOTA_KEYS as readonly string[]).includes(resource)) throw new InvalidSetting(`${key}.${resource}`, `unknown resource; quotas are ${QUOTA_KEYS.join(', ')}`);
    if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 0) throw new InvalidSetting(`${key}.${resource}`, `must be a non-negative integer, got ${show(limit)}`);
    quotas[resource] = limit;
  }
  return quotas;
}

function readNotifications(raw: unknown): readonly NotificationChannelSetting[] {
  const key = 'flare:notifications';
  if (raw === undefined) return [];
  const value = typeof raw === 'string' ? parseJson(key, raw) : raw;
  if (!Array.isArray(value)) throw new InvalidSetting(key, 'must be an array of { id, type, secretName, projects?, states? }');
  const channels = value.map((item: unknown, i) => readChannel(`${key}[${i}]`, item));
  const seen = new Set<string>();
  channels.forEach((c, i) => {
    if (seen.has(c.id)) throw new InvalidSetting(`${key}[${i}].id`, `channel '${c.id}' is defined twice`);
    seen.add(c.id);
  });
  return channels;
}

function readChannel(key: string, item: unknown): NotificationChannelSetting {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new InvalidSetting(key, 'must be an object');
  const channel = item as Record<string, unknown>;
  const extra = Object.keys(channel).find((k) => !CHANNEL_KEYS.has(k));
  if (extra !== undefined) throw new InvalidSetting(`${key}.${extra}`, `unknown field; a channel has ${[...CHANNEL_KEYS].join(', ')}`);
  const { id, type, secretName, projects, states } = channel;
  if (typeof id !== 'string' || !CHANNEL_ID.test(id)) throw new InvalidSetting(`${key}.id`, `must be 1-63 lowercase letters, digits or '-', starting with a letter or digit, got ${show(id)}`);
  if (type !== 'slack' && type !== 'teams') throw new InvalidSetting(`${key}.type`, `must be 'slack' or 'teams', got ${show(type)}`);
  if (typeof secretName !== 'string' || !SECRET_NAME.test(secretName)) {
    throw new InvalidSetting(`${key}.secretName`, `must be the name (not the ARN) of a Secrets Manager secret holding the webhook URL, got ${show(secretName)}`);
  }
  const result: { -readonly [K in keyof NotificationChannelSetting]: NotificationChannelSetting[K] } = { id, type, secretName };
  if (projects !== undefined) {
    result.projects = nonEmptyUniqueList(`${key}.projects`, projects, (p) => PROJECT_NAME.test(p), 'a project name (1-63 lowercase letters, digits, . _ -)');
  }
  if (states !== undefined) {
    result.states = nonEmptyUniqueList(`${key}.states`, states, (s) => (JOB_STATES as readonly string[]).includes(s), `a job state (${JOB_STATES.join(' ')})`) as JobStateName[];
  }
  return result;
}

function nonEmptyUniqueList(key: string, raw: unknown, valid: (s: string) => boolean, what: string): string[] {
  if (!Array.isArray(raw) || raw.length === 0) throw new InvalidSetting(key, `must be a non-empty array; leave it out to match everything`);
  raw.forEach((v, i) => {
    if (typeof v !== 'string' || !valid(v)) throw new InvalidSetting(`${key}[${i}]`, `must be ${what}, got ${show(v)}`);
  });
  if (new Set(raw).size !== raw.length) throw new InvalidSetting(key, 'lists a value twice');
  return raw as string[];
}

/** An ECR repository name (ECR's own rule), or one ending in `*` to name a prefix. */
const ECR_REPOSITORY = /^(?:(?:[a-z0-9]+(?:[._-][a-z0-9]+)*\/)*[a-z0-9]+(?:[._-][a-z0-9]+)*|(?:[a-z0-9]+(?:[._-][a-z0-9]+)*\/)*[a-z0-9._-]*\*)$/;
const ECR_REPOSITORY_ARN = /^arn:aws(?:-cn|-us-gov|-iso[a-z-]*)?:ecr:[a-z]{2}(?:-[a-z]+)+-\d{1,2}:\d{12}:repository\/(?<name>.+)$/;

function readEcrRepositories(raw: unknown): { ecrRepositories?: readonly string[] } {
  const key = 'flare:ecrRepositories';
  if (raw === undefined) return {};
  const list = stringList(key, raw);
  list.forEach((r, i) => {
    const name = ECR_REPOSITORY_ARN.exec(r)?.groups?.name ?? (r.startsWith('arn:') ? undefined : r);
    if (name === undefined || name.length > 256 || !ECR_REPOSITORY.test(name)) {
      throw new InvalidSetting(`${key}[${i}]`, `must be an ECR repository name (team/trainer, or team/* for a prefix) or its ARN (arn:aws:ecr:<region>:<account>:repository/<name>), got ${show(r)}`);
    }
  });
  if (new Set(list).size !== list.length) throw new InvalidSetting(key, 'lists a repository twice');
  return { ecrRepositories: list };
}

function readAlarmEmail(raw: unknown): string | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || raw.length > 254 || !EMAIL.test(raw)) throw new InvalidSetting('flare:alarmEmail', `must be an email address, got ${show(raw)}`);
  return raw;
}

/** An integer from `min` to `max`; `-c key=5` gives the string '5', which is accepted too. */
function integerInRange(key: string, raw: unknown, min: number, max: number, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = typeof raw === 'string' && /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : raw;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidSetting(key, `must be a whole number of minutes from ${min} to ${max}, got ${show(raw)}`);
  }
  return value;
}

function readBoolean(key: string, raw: unknown, fallback: boolean): boolean {
  if (raw === undefined) return fallback;
  if (raw === true || raw === 'true') return true;
  if (raw === false || raw === 'false') return false;
  throw new InvalidSetting(key, `must be true or false, got ${show(raw)}`);
}

/** An array, a JSON array string or a comma-separated string (what `-c key=a,b` gives). */
function stringList(key: string, raw: unknown): string[] {
  let value = raw;
  if (typeof raw === 'string') value = raw.trim().startsWith('[') ? parseJson(key, raw) : raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw new InvalidSetting(key, 'must be a list of strings (an array or comma-separated)');
  return value as string[];
}

function positiveInteger(key: string, raw: unknown): number {
  if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < 1) throw new InvalidSetting(key, `must be a positive integer, got ${show(raw)}`);
  return raw;
}

function parseJson(key: string, raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch (cause) {
    throw new InvalidSetting(key, `is not valid JSON (${(cause as Error).message})`);
  }
}

function isHttpsUrl(s: string): boolean {
  try {
    return new URL(s).protocol === 'https:';
  } catch {
    return false;
  }
}

function show(v: unknown): string {
  return v === undefined ? 'nothing' : JSON.stringify(v);
}
