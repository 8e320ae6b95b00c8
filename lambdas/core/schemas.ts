/**
 * Every input Flare accepts, as one zod schema each; the TypeScript types are
 * inferred from them so the check and the type cannot drift apart.
 */
import { z } from 'zod';
import { ValidationError, type FieldIssue } from './errors.js';
import { JOB_STATES } from './job.js';

export const NAME_PATTERN = /^[a-z0-9]([a-z0-9._-]{0,62})$/;
const name = (what: string) =>
  z.string().regex(NAME_PATTERN, `${what} must be 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit`);

/** An argv element: no NUL (it cannot cross exec), bounded. */
const argvElement = z.string().min(1, 'must not be empty').max(4096).refine((s) => !s.includes('\0'), 'must not contain NUL');
export const argv = z.array(argvElement).min(1, 'must have at least one element').max(256);

const envName = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const envMap = z
  .record(z.string().regex(envName, 'environment variable names are letters, digits and _'), z.string().max(4096).refine((s) => !s.includes('\0'), 'must not contain NUL'))
  .refine((env) => Object.keys(env).length <= 64, 'at most 64 variables');

export const positiveGpus = z.number().int('must be a whole number').positive('must be at least 1').max(1024);
export const liveTimeoutMinutes = z.number().finite('must be a finite number').positive('must be greater than 0').max(60 * 24 * 30, 'must be at most 30 days');

export const SubmitJobInput = z.strictObject({
  template: name('template'),
  name: z.string().min(1).max(128).refine((s) => !/[\u0000-\u001f\u007f]/.test(s), 'must not contain control characters').optional(),
  project: name('project').optional(),
  command: argv.optional(),
  gpus: positiveGpus.optional(),
  liveTimeoutMinutes: liveTimeoutMinutes.optional(),
  env: envMap.optional(),
  sshPublicKey: z.string().max(16384).regex(/^(ssh|ecdsa)-[a-z0-9-]+ [A-Za-z0-9+/=]+( [^\n\r]*)?$/, 'must be one OpenSSH public key line').optional(),
});
export type SubmitJobInput = z.infer<typeof SubmitJobInput>;

export const ListJobsQuery = z.strictObject({
  project: name('project').optional(),
  state: z.enum(JOB_STATES).optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  nextToken: z.string().max(2048).optional(),
});
export type ListJobsQuery = z.infer<typeof ListJobsQuery>;

/** The most lines `GET /v1/jobs/{id}/logs` returns: CloudWatch's own page limit. */
export const MAX_LOG_TAIL = 10_000;
export const JobLogsQuery = z.strictObject({
  tail: z.coerce
    .number({ error: `must be a whole number from 1 to ${MAX_LOG_TAIL}` })
    .int(`must be a whole number from 1 to ${MAX_LOG_TAIL}`)
    .min(1, 'must be at least 1')
    .max(MAX_LOG_TAIL, `must be at most ${MAX_LOG_TAIL}`)
    .optional(),
});
export type JobLogsQuery = z.infer<typeof JobLogsQuery>;

export const QUOTA_RESOURCES = ['gpus', 'jobs', 'templates'] as const;
export type QuotaResource = (typeof QUOTA_RESOURCES)[number];

export const PoolSpec = z.strictObject({
  name: name('pool'),
  gpus: positiveGpus,
  instanceType: z.string().min(1).max(64).optional(),
  gpusPerInstance: positiveGpus.optional(),
});
export const QuotaSpec = z.strictObject({
  project: name('project'),
  resource: z.enum(QUOTA_RESOURCES),
  hardLimit: z.number().int('must be a whole number').min(0, 'must not be negative'),
});
export const DIGEST_PATTERN = /^sha256:[a-f0-9]{64}$/;
/** An image reference as docker understands it; never starting with '-', no whitespace. */
export const IMAGE_REFERENCE_PATTERN = /^[a-z0-9][a-z0-9._\-/:]{0,254}$/;
export const ImageSpec = z.strictObject({
  name: name('image'),
  reference: z.string().regex(IMAGE_REFERENCE_PATTERN, 'must be a registry/repository[:tag] reference'),
  digest: z.string().regex(DIGEST_PATTERN, "must be 'sha256:' and 64 hex digits"),
});
export const TemplateSpec = z.strictObject({
  name: name('template'),
  project: name('project').optional(),
  public: z.boolean().optional(),
  pool: name('pool'),
  gpus: positiveGpus.default(1),
  nodeCount: positiveGpus.default(1),
  image: name('image'),
  command: argv,
  env: envMap.default({}),
  volumeSizeGb: z.number().int().min(8).max(16384).optional(),
  sshPublicKey: z.string().max(16384).optional(),
  maxLiveTimeoutMinutes: liveTimeoutMinutes.default(60 * 24),
  defaultLiveTimeoutMinutes: liveTimeoutMinutes.optional(),
  /**
   * Run as the image's own user (often root, still with every capability dropped and
   * no new privileges) instead of an unprivileged uid. Single-node only: multi-node
   * jobs share the instance's network, where only a uid rule keeps them from the
   * instance metadata service.
   */
  allowRoot: z.boolean().optional(),
}).superRefine((t, ctx) => {
  if (t.allowRoot && t.nodeCount > 1) {
    ctx.addIssue({ code: 'custom', path: ['allowRoot'], message: 'multi-node jobs share the host network and must run as a non-root user' });
  }
});
export type PoolSpec = z.infer<typeof PoolSpec>;
export type QuotaSpec = z.infer<typeof QuotaSpec>;
export type ImageSpec = z.infer<typeof ImageSpec>;
export type TemplateSpec = z.infer<typeof TemplateSpec>;

export const UserSpec = z.strictObject({
  name: name('user'),
  token: z.string().min(16, 'must be at least 16 characters'),
  admin: z.boolean().default(false),
  projects: z.array(name('project')).default([]),
});
/** Which events a chat channel hears: every filter given must match (core/notification.ts). */
const notificationRoute = {
  projects: z.array(name('project')).min(1).optional(),
  states: z.array(z.enum(JOB_STATES)).min(1).optional(),
};
export const NotificationSpec = z.strictObject({
  type: z.enum(['slack', 'teams']),
  url: z.url({ protocol: /^https?$/ }),
  ...notificationRoute,
});
export type NotificationSpec = z.infer<typeof NotificationSpec>;

/** A channel of the AWS notifier (`NOTIFY_CHANNELS`): like a local one, but its webhook URL stays in Secrets Manager. */
export const NotifyChannelSpec = z.strictObject({
  id: name('channel id'),
  type: z.enum(['slack', 'teams']),
  secretArn: z.string().regex(/^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$/, 'must be a Secrets Manager secret ARN'),
  ...notificationRoute,
});
export type NotifyChannelSpec = z.infer<typeof NotifyChannelSpec>;

export const LocalConfig = z
  .strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(8080),
    dataDir: z.string().min(1).default('.flare'),
    users: z.array(UserSpec).default([]),
    pools: z.array(PoolSpec).min(1).default([{ name: 'local', gpus: 1 }]),
    quotas: z.array(QuotaSpec).default([]),
    images: z.array(ImageSpec).default([]),
    templates: z.array(TemplateSpec).default([]),
    compute: z.strictObject({ driver: z.enum(['auto', 'docker', 'process']).default('auto') }).default({ driver: 'auto' }),
    notifications: z.array(NotificationSpec).default([]),
    /** Seconds between reconciler runs (orphans, stuck jobs, usage drift, drain); the local twin of the scheduled Lambda. */
    reconcileSeconds: z.number().int().min(5).max(3600).default(60),
  })
  .superRefine((config, ctx) => {
    const pools = new Set(config.pools.map((p) => p.name));
    const images = new Set(config.images.map((i) => i.name));
    unique(config.pools.map((p) => p.name), 'pools', ctx);
    unique(config.templates.map((t) => t.name), 'templates', ctx);
    unique(config.users.map((u) => u.token), 'users', ctx, 'token');
    config.templates.forEach((t, i) => {
      if (!pools.has(t.pool)) ctx.addIssue({ code: 'custom', path: ['templates', i, 'pool'], message: `unknown pool '${t.pool}'` });
      if (!images.has(t.image)) ctx.addIssue({ code: 'custom', path: ['templates', i, 'image'], message: `unknown image '${t.image}'` });
      if (!t.project && !t.public) ctx.addIssue({ code: 'custom', path: ['templates', i], message: "needs 'project' or 'public': true" });
    });
  });
export type LocalConfig = z.infer<typeof LocalConfig>;

function unique(values: string[], field: string, ctx: z.RefinementCtx, key = 'name'): void {
  const seen = new Set<string>();
  values.forEach((v, i) => {
    if (seen.has(v)) ctx.addIssue({ code: 'custom', path: [field, i, key], message: `duplicate ${key}` });
    seen.add(v);
  });
}

/** Parse or throw a ValidationError that names every bad field. */
export function parse<S extends z.ZodType>(schema: S, value: unknown, prefix = ''): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new ValidationError(toFieldIssues(result.error, prefix));
}

export function toFieldIssues(error: z.ZodError, prefix = ''): FieldIssue[] {
  return error.issues.flatMap((issue): FieldIssue[] => {
    const base = [prefix, ...issue.path.map(String)].filter(Boolean).join('.');
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((k) => ({ field: base ? `${base}.${k}` : k, reason: 'unknown field' }));
    }
    return [{ field: base || '(body)', reason: issue.message }];
  });
}
