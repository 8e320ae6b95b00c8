/** `flare image add|list|show`, `flare quota create|list|show|update|delete`, `flare pool list|update`. */
import { pathOf } from '../client.js';
import { LIMIT_OPTION, limitOf, numberOf, stringOf, usageOf, type Command } from '../command.js';
import { UsageError } from '../errors.js';
import { fields, table } from '../output.js';
import type { ImageVersionView, ImageView, PoolView, QuotaView } from '../views.js';

const QUOTA_HELP = `RESOURCE is gpus (GPUs held at once), jobs (jobs not yet finished),
templates (templates owned) or gpuHours (a budget of GPU-hours per day, week
or month, UTC; give it --period). A project without a quota for a resource is
unlimited for it.`;

/** A quota as the API shows it; a gpuHours budget adds its period and GPU-hours spent and reserved. */
type BudgetQuotaView = QuotaView & {
  period?: string;
  periodStart?: string;
  periodEnd?: string;
  spent?: number;
  reserved?: number;
};

export const imageCommands: Command[] = [
  {
    name: 'image add',
    summary: 'Add an image, or a new version of one, to the catalog (admins)',
    usage: 'NAME --reference REF --digest sha256:HEX',
    description:
      'Versions are only ever appended: jobs run reference@digest, so a moved tag\nchanges nothing. Only catalog images may run.',
    arity: [1, 1],
    options: {
      reference: { type: 'string', value: 'REF', help: 'registry/repository[:tag], without the digest (required)' },
      digest: { type: 'string', value: 'DIGEST', help: "'sha256:' and 64 hex digits (required)" },
    },
    examples: [
      'flare image add tools --reference docker.io/library/busybox:1.37 --digest sha256:2919d0172f7524b2d8df9e50066a682669e6d170ac0f6a49676d54358fe970b5',
    ],
    async run(ctx, input) {
      const usage = usageOf(this);
      const reference = stringOf(input.values, 'reference');
      const digest = stringOf(input.values, 'digest');
      const missing = [reference === undefined && '--reference', digest === undefined && '--digest'].filter(Boolean);
      if (missing.length) throw new UsageError(`missing ${missing.join(' and ')}`, usage);
      ctx.show(
        await ctx.api().post<ImageView>('/v1/images', { name: input.positionals[0], reference, digest }),
        imageView,
      );
      return 0;
    },
  },
  {
    name: 'image list',
    summary: 'List the image catalog with each image’s latest version',
    usage: '[--limit N]',
    options: { limit: LIMIT_OPTION },
    examples: ['flare image list'],
    async run(ctx, input) {
      const page = await ctx.api().list<ImageView>('/v1/images', {}, limitOf(input.values, usageOf(this)));
      ctx.show(page, ({ items }) =>
        table(
          ['NAME', 'VERSION', 'REFERENCE', 'DIGEST', 'VERSIONS'],
          items.map((i) => {
            const latest = i.versions?.at(-1);
            return [i.name, latest?.version, latest?.reference, shortDigest(latest), i.versions?.length];
          }),
        ),
      );
      return 0;
    },
  },
  {
    name: 'image show',
    summary: 'Show an image and every version of it',
    usage: 'NAME',
    arity: [1, 1],
    options: {},
    examples: ['flare image show tools'],
    async run(ctx, input) {
      ctx.show(await ctx.api().get<ImageView>(pathOf('/v1/images', input.positionals[0])), imageView);
      return 0;
    },
  },
];

function shortDigest(version: ImageVersionView | undefined): string | undefined {
  return version?.digest && version.digest.length > 19 ? `${version.digest.slice(0, 19)}…` : version?.digest;
}

function imageView(image: ImageView): string {
  const head = fields([
    ['Name', image.name],
    ['Created', image.createdAt],
  ]);
  const versions = table(
    ['VERSION', 'REFERENCE', 'DIGEST', 'ADDED', 'BY'],
    (image.versions ?? []).map((v) => [v.version, v.reference, v.digest, v.addedAt, v.addedBy]),
  );
  return `${head}\n\n${versions}`;
}

const hardLimitOption = {
  type: 'string',
  value: 'N',
  help: 'the limit (a whole number, 0 blocks everything new)',
} as const;

export const quotaCommands: Command[] = [
  {
    name: 'quota create',
    summary: "Set a project's limit for a resource (admins)",
    usage: 'PROJECT RESOURCE --hard-limit N [--period day|week|month]',
    description: `${QUOTA_HELP}\n\nA gpuHours budget reserves each job's worst case (GPUs x live timeout) when it\nis admitted and gives back what it did not use when it ends; jobs that do not\nfit wait, jobs that never could are refused.`,
    arity: [2, 2],
    options: {
      'hard-limit': hardLimitOption,
      period: { type: 'string', value: 'PERIOD', help: 'gpuHours only (and required there): day, week or month' },
    },
    examples: [
      'flare quota create vision gpus --hard-limit 8',
      'flare quota create vision jobs --hard-limit 20',
      'flare quota create vision gpuHours --hard-limit 500 --period month',
    ],
    async run(ctx, input) {
      const hardLimit = requiredLimit(input.values, usageOf(this));
      const [project, resource] = input.positionals;
      const period = stringOf(input.values, 'period');
      const quota = await ctx
        .api()
        .post<QuotaView>('/v1/quotas', { project, resource, hardLimit, ...(period !== undefined ? { period } : {}) });
      ctx.show(quota, quotaView);
      return 0;
    },
  },
  {
    name: 'quota list',
    summary: "List quotas and what is in use: your projects' (admins: all)",
    usage: '[--project P] [--limit N]',
    description: QUOTA_HELP,
    options: { project: { type: 'string', value: 'P', help: 'only this project' }, limit: LIMIT_OPTION },
    examples: ['flare quota list', 'flare quota list --project vision'],
    async run(ctx, input) {
      const page = await ctx
        .api()
        .list<QuotaView>(
          '/v1/quotas',
          { project: stringOf(input.values, 'project') },
          limitOf(input.values, usageOf(this)),
        );
      ctx.show(page, ({ items }) => quotaTable(items));
      return 0;
    },
  },
  {
    name: 'quota show',
    summary: 'Show one limit and its live use',
    usage: 'PROJECT RESOURCE',
    description: QUOTA_HELP,
    arity: [2, 2],
    options: {},
    examples: ['flare quota show vision gpus', 'flare quota show vision gpuHours'],
    async run(ctx, input) {
      const [project, resource] = input.positionals;
      ctx.show(await ctx.api().get<QuotaView>(pathOf('/v1/quotas', project, resource)), quotaView);
      return 0;
    },
  },
  {
    name: 'quota update',
    summary: 'Change a limit (admins); raising it admits waiting jobs at once',
    usage: 'PROJECT RESOURCE --hard-limit N',
    description: `${QUOTA_HELP}\n\nA limit below what is in use is allowed: it only blocks new admissions.`,
    arity: [2, 2],
    options: { 'hard-limit': hardLimitOption },
    examples: ['flare quota update vision gpus --hard-limit 16'],
    async run(ctx, input) {
      const hardLimit = requiredLimit(input.values, usageOf(this));
      const [project, resource] = input.positionals;
      ctx.show(await ctx.api().patch<QuotaView>(pathOf('/v1/quotas', project, resource), { hardLimit }), quotaView);
      return 0;
    },
  },
  {
    name: 'quota delete',
    summary: 'Remove a limit (admins): the project becomes unlimited for the resource',
    usage: 'PROJECT RESOURCE',
    description: QUOTA_HELP,
    arity: [2, 2],
    options: {},
    examples: ['flare quota delete vision jobs'],
    async run(ctx, input) {
      const [project, resource] = input.positionals;
      const answer = await ctx.api().delete<QuotaView>(pathOf('/v1/quotas', project, resource));
      ctx.showDone(answer, `removed the ${resource} quota of ${project}`);
      return 0;
    },
  },
];

function requiredLimit(values: Parameters<typeof stringOf>[0], usage: string): number {
  const n = numberOf(values, 'hard-limit', usage);
  if (n === undefined) throw new UsageError('missing --hard-limit N', usage);
  return n;
}

/** A gpuHours budget with its period and what is left; any other quota as a row of the table. */
function quotaView(quota: BudgetQuotaView): string {
  if (quota.period === undefined) return quotaTable([quota]);
  return fields([
    ['Project', quota.project],
    ['Resource', quota.resource],
    ['Limit', `${quota.hardLimit} GPU-hours per ${quota.period}`],
    ['Period', `${quota.periodStart} to ${quota.periodEnd}`],
    ['Spent', quota.spent],
    ['Reserved', quota.reserved],
    [
      'Left',
      quota.hardLimit === null
        ? undefined
        : Math.max(0, Math.round((quota.hardLimit - (quota.used ?? 0)) * 10_000) / 10_000),
    ],
  ]);
}

/** A PERIOD column only when a gpuHours budget is listed: `month: 3.5 spent, 8 reserved`. */
function quotaTable(quotas: BudgetQuotaView[]): string {
  const budgets = quotas.some((q) => q.period !== undefined);
  return table(
    ['PROJECT', 'RESOURCE', 'LIMIT', 'USED', ...(budgets ? ['PERIOD'] : [])],
    quotas.map((q) => [
      q.project,
      q.resource,
      q.hardLimit === null ? 'unlimited' : q.hardLimit,
      q.used,
      ...(budgets ? [q.period === undefined ? '' : `${q.period}: ${q.spent} spent, ${q.reserved} reserved`] : []),
    ]),
  );
}

export const poolCommands: Command[] = [
  {
    name: 'pool list',
    summary: 'List GPU pools: cap, GPUs held and free, jobs waiting',
    usage: '',
    options: {},
    examples: ['flare pool list', 'flare pool list --output json'],
    async run(ctx) {
      ctx.show(await ctx.api().list<PoolView>('/v1/pools'), ({ items }) => poolTable(items));
      return 0;
    },
  },
  {
    name: 'pool update',
    summary: "Change a pool's GPU cap or backfill (admins); raising the cap admits waiting jobs at once",
    usage: 'NAME [--max-gpus N] [--backfill on|off]',
    description:
      "A cap below what is held is allowed: it only blocks new admissions.\nWith backfill on, a younger job may start ahead of a blocked head when its live\ntimeout proves it ends before the head's latest start; off (the default) is strict FIFO.",
    arity: [1, 1],
    options: {
      'max-gpus': { type: 'string', value: 'N', help: 'the most GPUs Flare may hold in the pool at once' },
      backfill: {
        type: 'string',
        value: 'on|off',
        help: 'let provably short jobs start ahead of a blocked head (on) or keep strict FIFO (off)',
      },
    },
    examples: ['flare pool update a10g --max-gpus 16', 'flare pool update a10g --backfill on'],
    async run(ctx, input) {
      const usage = usageOf(this);
      const maxGpus = numberOf(input.values, 'max-gpus', usage);
      const backfillFlag = stringOf(input.values, 'backfill');
      if (backfillFlag !== undefined && backfillFlag !== 'on' && backfillFlag !== 'off')
        throw new UsageError(`--backfill takes on or off, not '${backfillFlag}'`, usage);
      if (maxGpus === undefined && backfillFlag === undefined)
        throw new UsageError('give --max-gpus N, --backfill on|off or both', usage);
      const body = {
        ...(maxGpus !== undefined ? { maxGpus } : {}),
        ...(backfillFlag !== undefined ? { backfill: backfillFlag === 'on' } : {}),
      };
      const pool = await ctx.api().patch<PoolView>(pathOf('/v1/pools', input.positionals[0]), body);
      ctx.show(pool, (p) => poolTable([p]));
      return 0;
    },
  },
];

function poolTable(pools: PoolView[]): string {
  return table(
    ['NAME', 'INSTANCE TYPE', 'GPUS/INSTANCE', 'MAX GPUS', 'USED', 'FREE', 'WAITING', 'BACKFILL'],
    pools.map((p) => [
      p.name,
      p.instanceType,
      p.gpusPerInstance,
      p.maxGpus,
      p.usedGpus,
      p.availableGpus,
      p.waitingJobs,
      p.backfill === undefined ? undefined : p.backfill ? 'on' : 'off',
    ]),
  );
}
