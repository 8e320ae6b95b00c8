/**
 * Every input Flare accepts, as one zod schema each; the TypeScript types are
 * inferred from them so the check and the type cannot drift apart. Here: pools,
 * quotas, images, templates, users, chat channels and the local config file, and
 * `parse`, which turns any schema's failure into a ValidationError naming each
 * field. The job API's inputs are in job-schemas.ts, the field rules all of
 * them share in schema-fields.ts.
 */
import { z } from 'zod';
import { MIN_VOLUME_SIZE_GB, NAME_PATTERN } from '../../contract/vocabulary.js';
import { ValidationError, type FieldIssue } from './errors.js';
import { BUDGET_PERIODS } from './budgets.js';
import { JOB_STATES } from './job.js';
import { DEFAULT_MAX_OUTPUT_BYTES } from './outputs.js';
import { argv, envMap, jsonNumber, liveTimeoutMinutes, name, positiveGpus } from './schema-fields.js';
import { secretsMap } from './secrets.js';

export { MIN_VOLUME_SIZE_GB, NAME_PATTERN };

export const QUOTA_RESOURCES = ['gpus', 'jobs', 'templates', 'gpuHours'] as const;
export type QuotaResource = (typeof QUOTA_RESOURCES)[number];
/** Resources counted in units (not a budget over a period): the ones a deployment may give defaults for. */
export type CountedQuotaResource = Exclude<QuotaResource, 'gpuHours'>;

export const PoolSpec = z.strictObject({
  name: name('pool'),
  gpus: positiveGpus,
  instanceType: z.string().min(1).max(64).optional(),
  gpusPerInstance: positiveGpus.optional(),
  backfill: z
    .boolean()
    .optional()
    .describe(
      "Let a younger job start ahead of a blocked head when its live timeout proves it ends before the head's latest start (default false: strict FIFO)",
    ),
});
/** The largest limit or cap accepted: far beyond any deployment, small enough that arithmetic on it stays exact. */
export const MAX_LIMIT = 1_000_000;
const wholeLimit = jsonNumber()
  .int('must be a whole number')
  .min(0, 'must not be negative')
  .max(MAX_LIMIT, `must be at most ${MAX_LIMIT}`);
const hardLimit = wholeLimit.describe(
  'The most the project may have at once: GPUs held (gpus), active jobs (jobs) or templates owned (templates); for gpuHours, the GPU-hours it may spend per period. May be below what is in use: that blocks new admissions only.',
);
export const QuotaSpec = z
  .strictObject({
    project: name('project'),
    resource: z
      .enum(QUOTA_RESOURCES)
      .describe(
        'gpus: GPUs held at once; jobs: jobs not yet finished; templates: templates owned; gpuHours: GPU-hours per period (a budget)',
      ),
    hardLimit,
    period: z
      .enum(BUDGET_PERIODS)
      .optional()
      .describe(
        'gpuHours only, and required there: the calendar period (UTC) the budget renews every: day, week (from Monday) or month',
      ),
  })
  .superRefine((q, ctx) => {
    if (q.resource === 'gpuHours' && q.period === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['period'],
        message: 'a gpuHours budget needs a period: day, week or month',
      });
    if (q.resource !== 'gpuHours' && q.period !== undefined)
      ctx.addIssue({ code: 'custom', path: ['period'], message: 'only a gpuHours budget has a period' });
  });
/** `PATCH /v1/quotas/{project}/{resource}`. */
export const QuotaLimitInput = z.strictObject({ hardLimit });
export type QuotaLimitInput = z.infer<typeof QuotaLimitInput>;
/** `PATCH /v1/pools/{name}`. */
export const PoolCapInput = z
  .strictObject({
    maxGpus: wholeLimit
      .describe(
        'The most GPUs Flare may hold in this pool at once. May be below what is held: that blocks new admissions only.',
      )
      .optional(),
    backfill: z
      .boolean()
      .optional()
      .describe(
        "true: a younger job may start ahead of a blocked head when its live timeout proves it ends before the head's latest start; false: strict FIFO (the default)",
      ),
  })
  .refine((b) => b.maxGpus !== undefined || b.backfill !== undefined, {
    path: ['maxGpus'],
    message: 'give maxGpus, backfill or both',
  })
  .meta({ minProperties: 1 });
export type PoolCapInput = z.infer<typeof PoolCapInput>;
export const DIGEST_PATTERN = /^sha256:[a-f0-9]{64}$/;
/** An image reference as docker understands it; never starting with '-', no whitespace. */
export const IMAGE_REFERENCE_PATTERN = /^[a-z0-9][a-z0-9._\-/:]{0,254}$/;
export const ImageSpec = z.strictObject({
  name: name('image'),
  reference: z
    .string()
    .regex(IMAGE_REFERENCE_PATTERN, 'must be a registry/repository[:tag] reference')
    .describe('registry/repository[:tag], without the digest'),
  digest: z
    .string()
    .regex(DIGEST_PATTERN, "must be 'sha256:' and 64 hex digits")
    .describe('The content digest; jobs run `reference@digest`, so a moved tag changes nothing'),
});
/** Template ids are this prefix and a generated suffix; no template name starts with it, so a path's `{id}` is never both. */
export const TEMPLATE_ID_PREFIX = 'tpl-';
const templateName = name('template').refine(
  (s) => !s.startsWith(TEMPLATE_ID_PREFIX),
  `must not start with '${TEMPLATE_ID_PREFIX}', which marks template ids`,
);
/** Every template field but its owner, as checked on create and on change (PATCH). */
const templateFields = {
  name: templateName,
  pool: name('pool').describe('The GPU pool its jobs run in (GET /v1/pools)'),
  gpus: positiveGpus.describe(
    "GPUs per node. In a pool that runs on instances (instanceType other than `local`) it must be the pool's gpusPerInstance, else 400: each node is one whole instance, never shared",
  ),
  nodeCount: positiveGpus.describe('Instances per job, each with `gpus` GPUs'),
  image: name('image').describe('An image of the catalog (GET /v1/images)'),
  imageVersion: jsonNumber()
    .int('must be a whole number')
    .positive('must be at least 1')
    .describe("Runs this version of the image; absent: each job runs the image's latest version at submit"),
  command: argv.describe('argv, never a shell string'),
  env: envMap,
  secrets: secretsMap,
  volumeSizeGb: jsonNumber()
    .int('must be a whole number')
    .min(
      MIN_VOLUME_SIZE_GB,
      `must be at least ${MIN_VOLUME_SIZE_GB}: the root snapshot of the default GPU AMI, which a root volume cannot be smaller than`,
    )
    .max(16384, 'must be at most 16384')
    .describe(
      `Root volume of each instance (AWS), in GB: at least ${MIN_VOLUME_SIZE_GB}, the root snapshot of the default GPU AMI (Deep Learning Base OSS Nvidia Driver GPU AMI, Ubuntu 22.04). A deployment whose AMI has a larger snapshot refuses less than it too (400), and fails a job of a smaller volume at launch, with the reason`,
    ),
  maxLiveTimeoutMinutes: liveTimeoutMinutes.describe(
    'The longest live timeout a job of this template may have, now or by a later change',
  ),
  defaultLiveTimeoutMinutes: liveTimeoutMinutes.describe(
    "A job's live timeout when it names none (at most maxLiveTimeoutMinutes); absent: 60",
  ),
  /**
   * Run as the image's own user (often root, still with every capability dropped and
   * no new privileges) instead of an unprivileged uid. Single-node only: multi-node
   * jobs share the instance's network, where only a uid rule keeps them from the
   * instance metadata service.
   */
  allowRoot: z.boolean().describe("Run as the image's own user instead of an unprivileged uid (single-node only)"),
};
export const TemplateSpec = z
  .strictObject({
    name: templateFields.name,
    project: name('project').optional().describe("The owning project; absent: the caller's only project"),
    public: z
      .boolean()
      .optional()
      .describe('A public template (admins write it): anyone signed in may read and run it. Not with project'),
    pool: templateFields.pool,
    gpus: templateFields.gpus.default(1),
    nodeCount: templateFields.nodeCount.default(1),
    image: templateFields.image,
    imageVersion: templateFields.imageVersion.optional(),
    command: templateFields.command,
    env: templateFields.env.default({}),
    secrets: templateFields.secrets.optional(),
    volumeSizeGb: templateFields.volumeSizeGb.optional(),
    maxLiveTimeoutMinutes: templateFields.maxLiveTimeoutMinutes.default(60 * 24),
    defaultLiveTimeoutMinutes: templateFields.defaultLiveTimeoutMinutes.optional(),
    allowRoot: templateFields.allowRoot.optional(),
  })
  .superRefine(templateRules);
/** `PATCH /v1/templates/{id}`: any field but the owner (project, public); null removes an optional field. */
export const TemplatePatch = z.strictObject({
  name: templateFields.name.optional(),
  pool: templateFields.pool.optional(),
  gpus: templateFields.gpus.optional(),
  nodeCount: templateFields.nodeCount.optional(),
  image: templateFields.image.optional(),
  imageVersion: templateFields.imageVersion.nullable().optional(),
  command: templateFields.command.optional(),
  env: templateFields.env.optional(),
  secrets: templateFields.secrets.nullable().optional(),
  volumeSizeGb: templateFields.volumeSizeGb.nullable().optional(),
  maxLiveTimeoutMinutes: templateFields.maxLiveTimeoutMinutes.optional(),
  defaultLiveTimeoutMinutes: templateFields.defaultLiveTimeoutMinutes.nullable().optional(),
  allowRoot: templateFields.allowRoot.nullable().optional(),
});
export type TemplatePatch = z.infer<typeof TemplatePatch>;

/** What a whole template must satisfy, checked again on every change. */
function templateRules(
  t: {
    allowRoot?: boolean;
    nodeCount: number;
    project?: string;
    public?: boolean;
    maxLiveTimeoutMinutes: number;
    defaultLiveTimeoutMinutes?: number;
    env?: Record<string, string>;
    secrets?: Record<string, string>;
  },
  ctx: z.RefinementCtx,
): void {
  for (const name of Object.keys(t.secrets ?? {}))
    if (Object.hasOwn(t.env ?? {}, name))
      ctx.addIssue({ code: 'custom', path: ['secrets', name], message: 'is also set in env: give it one source' });
  if (t.allowRoot && t.nodeCount > 1) {
    ctx.addIssue({
      code: 'custom',
      path: ['allowRoot'],
      message: 'multi-node jobs share the host network and must run as a non-root user',
    });
  }
  if (t.public && t.project)
    ctx.addIssue({
      code: 'custom',
      path: ['public'],
      message: 'a template belongs to a project or is public, not both',
    });
  if (t.defaultLiveTimeoutMinutes !== undefined && t.defaultLiveTimeoutMinutes > t.maxLiveTimeoutMinutes) {
    ctx.addIssue({
      code: 'custom',
      path: ['defaultLiveTimeoutMinutes'],
      message: `must be at most maxLiveTimeoutMinutes (${t.maxLiveTimeoutMinutes})`,
    });
  }
}
export type PoolSpec = z.infer<typeof PoolSpec>;
export type QuotaSpec = z.infer<typeof QuotaSpec>;
export type ImageSpec = z.infer<typeof ImageSpec>;
export type TemplateSpec = z.infer<typeof TemplateSpec>;

export const UserSpec = z.strictObject({
  name: name('user'),
  // What a client can send in `Authorization: Bearer <token>`: any other token could never be presented.
  token: z
    .string()
    .min(16, 'must be at least 16 characters')
    .max(4096)
    .regex(/^[\x21-\x7e]+$/, 'must be visible ASCII characters, no spaces'),
  admin: z.boolean().default(false),
  projects: z.array(name('project')).default([]),
  expiresAt: z.iso
    .datetime({ error: 'must be an ISO 8601 UTC time such as 2030-01-31T00:00:00Z' })
    .optional()
    .describe('From then on the token is refused (401), like an expired JWT'),
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
  secretArn: z
    .string()
    .regex(
      /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$/,
      'must be a Secrets Manager secret ARN',
    ),
  ...notificationRoute,
});
export type NotifyChannelSpec = z.infer<typeof NotifyChannelSpec>;

export const LocalConfig = z
  .strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: jsonNumber().int('must be a whole number').min(0).max(65535).default(8080),
    dataDir: z.string().min(1).default('.flare'),
    users: z.array(UserSpec).default([]),
    pools: z
      .array(PoolSpec)
      .min(1)
      .default([{ name: 'local', gpus: 1 }]),
    quotas: z.array(QuotaSpec).default([]),
    images: z.array(ImageSpec).default([]),
    templates: z.array(TemplateSpec).default([]),
    compute: z
      .strictObject({ driver: z.enum(['auto', 'docker', 'process']).default('auto') })
      .default({ driver: 'auto' }),
    notifications: z.array(NotificationSpec).default([]),
    /** A job's $FLARE_OUTPUT_DIR (core/outputs.ts): files over `maxBytes` are not kept when it ends, and its record says so. */
    outputs: z
      .strictObject({
        maxBytes: jsonNumber()
          .int('must be a whole number')
          .min(0)
          .max(2 ** 50)
          .default(DEFAULT_MAX_OUTPUT_BYTES),
      })
      .default({ maxBytes: DEFAULT_MAX_OUTPUT_BYTES }),
    /** Seconds between reconciler runs (orphans, stuck jobs, usage drift, drain); the local twin of the scheduled Lambda. */
    reconcileSeconds: jsonNumber().int('must be a whole number').min(5).max(3600).default(60),
  })
  .superRefine((config, ctx) => {
    const pools = new Set(config.pools.map((p) => p.name));
    const images = new Set(config.images.map((i) => i.name));
    unique(
      config.pools.map((p) => p.name),
      'pools',
      ctx,
    );
    // Names are unique per owner: a project's templates, or the public ones.
    unique(
      config.templates.map((t) => `${t.public ? '' : t.project}/${t.name}`),
      'templates',
      ctx,
    );
    unique(
      config.users.map((u) => u.token),
      'users',
      ctx,
      'token',
    );
    config.templates.forEach((t, i) => {
      if (!pools.has(t.pool))
        ctx.addIssue({ code: 'custom', path: ['templates', i, 'pool'], message: `unknown pool '${t.pool}'` });
      if (!images.has(t.image))
        ctx.addIssue({ code: 'custom', path: ['templates', i, 'image'], message: `unknown image '${t.image}'` });
      if (!t.project && !t.public)
        ctx.addIssue({ code: 'custom', path: ['templates', i], message: "needs 'project' or 'public': true" });
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

/**
 * Fields Flare once accepted and no longer does: sending one is a 400 that says
 * what to do instead, never a silent drop nor a bare "unknown field".
 */
const REMOVED_FIELDS: Record<string, string> = {
  sshPublicKey:
    'is no longer accepted: no key was ever installed. To get into a running job use `flare job shell ID`, `flare job exec ID -- CMD` or POST /v1/jobs/{id}/exec',
};

export function toFieldIssues(error: z.ZodError, prefix = ''): FieldIssue[] {
  return error.issues.flatMap((issue): FieldIssue[] => {
    const base = [prefix, ...issue.path.map(String)].filter(Boolean).join('.');
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((k) => ({
        field: base ? `${base}.${k}` : k,
        reason: REMOVED_FIELDS[k] ?? 'unknown field',
      }));
    }
    // A bad key of a record (an env name, say): zod's own message is "Invalid key in record"; say why.
    if (issue.code === 'invalid_key' && issue.issues.length > 0) {
      return [{ field: base || '(body)', reason: issue.issues.map((i) => i.message).join('; ') }];
    }
    return [{ field: base || '(body)', reason: issue.message }];
  });
}
