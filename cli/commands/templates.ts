/** `flare template create|list|show|update|delete`. */
import { pathOf } from '../client.js';
import {
  commandOf,
  defined,
  envOf,
  flagOf,
  jsonFileOf,
  LIMIT_OPTION,
  limitOf,
  numberOf,
  stringOf,
  usageOf,
  type Command,
  type Input,
  type OptionSpec,
} from '../command.js';
import { UsageError } from '../errors.js';
import { envNames, fields, gpuCount, gpusPerNode, minutes, table } from '../output.js';
import type { TemplateView } from '../views.js';

const REF_HELP = `A template is named by its id (tpl-...) or its name; a name is looked up among
your projects' templates, then the public ones (--project narrows it to one
project's).`;

const project = { type: 'string', value: 'P', help: 'the project whose template NAME is meant' } as const;

/** The fields both create and update take as flags; --file gives any field of the API's JSON. */
const fieldOptions: Record<string, OptionSpec> = {
  name: { type: 'string', value: 'N', help: "the template's name" },
  pool: { type: 'string', value: 'POOL', help: 'the GPU pool its jobs run in' },
  gpus: { type: 'string', value: 'N', help: 'GPUs per node (default 1)' },
  nodes: { type: 'string', value: 'N', help: 'instances per job (default 1)' },
  image: { type: 'string', value: 'IMAGE', help: 'an image of the catalog (flare image list)' },
  'image-version': {
    type: 'string',
    value: 'N',
    help: 'pin this version of the image (default: the latest at each submit)',
  },
  command: { type: 'string', value: 'JSON', help: 'the argv as a JSON array (or put it after --)' },
  env: { type: 'string', multiple: true, value: 'KEY=VALUE', help: 'an environment variable for its jobs' },
  'max-live-timeout': {
    type: 'string',
    value: 'MIN',
    help: 'the longest live timeout its jobs may have, in minutes (default 1440)',
  },
  'default-live-timeout': {
    type: 'string',
    value: 'MIN',
    help: 'the live timeout of a job that names none (default 60)',
  },
  'volume-size': { type: 'string', value: 'GB', help: 'root volume of each instance (AWS)' },
  'allow-root': { type: 'boolean', help: "run as the image's own user instead of an unprivileged uid (single node)" },
  file: {
    type: 'string',
    value: 'FILE',
    help: "the template as JSON (the API's fields; '-' reads stdin); flags override it",
  },
};

/** The body from --file with the flags given laid over it. */
function templateBody(input: Input, usage: string): Record<string, unknown> {
  const v = input.values;
  return {
    ...jsonFileOf(v, usage),
    ...defined({
      name: stringOf(v, 'name'),
      pool: stringOf(v, 'pool'),
      gpus: numberOf(v, 'gpus', usage),
      nodeCount: numberOf(v, 'nodes', usage),
      image: stringOf(v, 'image'),
      imageVersion: numberOf(v, 'image-version', usage),
      command: commandOf(input, usage),
      env: envOf(v, usage),
      maxLiveTimeoutMinutes: numberOf(v, 'max-live-timeout', usage),
      defaultLiveTimeoutMinutes: numberOf(v, 'default-live-timeout', usage),
      volumeSizeGb: numberOf(v, 'volume-size', usage),
      allowRoot: flagOf(v, 'allow-root') ? true : undefined,
    }),
  };
}

export const templateCommands: Command[] = [
  {
    name: 'template create',
    summary: 'Create a job template of a project, or a public one (admins)',
    usage: '--name N --pool POOL --image IMAGE [options] [-- COMMAND [ARG...]]',
    description: `The command is an argv, never a shell string: its words after '--', or
--command with a JSON array. With --file, the file gives the template and
the flags given override its fields.`,
    options: {
      ...fieldOptions,
      project: { type: 'string', value: 'P', help: 'the owning project (default: your only project)' },
      public: { type: 'boolean', help: 'a public template, readable and runnable by everyone (admins only)' },
    },
    trailing: true,
    examples: [
      'flare template create --name train --project vision --pool a10g --gpus 2 --image pytorch --max-live-timeout 480 -- python train.py',
      'flare template create --file train.json',
      `flare template create --name hello --public --pool local --image cuda --command '["nvidia-smi"]'`,
    ],
    async run(ctx, input) {
      const usage = usageOf(this);
      const body: Record<string, unknown> = {
        ...templateBody(input, usage),
        ...defined({
          project: stringOf(input.values, 'project'),
          public: flagOf(input.values, 'public') ? true : undefined,
        }),
      };
      const missing = (['name', 'pool', 'image', 'command'] as const).filter((k) => body[k] === undefined);
      if (missing.length)
        throw new UsageError(
          `missing ${missing.map((k) => (k === 'command' ? "the command (after '--' or --command)" : `--${k}`)).join(', ')}`,
          usage,
        );
      ctx.show(await ctx.api().post<TemplateView>('/v1/templates', body), templateFields);
      return 0;
    },
  },
  {
    name: 'template list',
    summary: "List templates: your projects' and the public ones (admins: all)",
    usage: '[--project P] [--limit N]',
    options: {
      project: { type: 'string', value: 'P', help: "only this project's templates" },
      limit: LIMIT_OPTION,
    },
    examples: ['flare template list', 'flare template list --project vision --output json'],
    async run(ctx, input) {
      const page = await ctx
        .api()
        .list<TemplateView>(
          '/v1/templates',
          { project: stringOf(input.values, 'project') },
          limitOf(input.values, usageOf(this)),
        );
      ctx.show(page, ({ items }) =>
        table(
          ['ID', 'NAME', 'PROJECT', 'POOL', 'GPUS', 'IMAGE', 'MAX TIMEOUT', 'COMMAND'],
          items.map((t) => [
            t.id,
            t.name,
            ownerOf(t),
            t.pool,
            gpuCount(t),
            imageOf(t),
            minutes(t.maxLiveTimeoutMinutes),
            t.command,
          ]),
        ),
      );
      return 0;
    },
  },
  {
    name: 'template show',
    summary: 'Show one template',
    usage: 'ID|NAME [--project P]',
    description: REF_HELP,
    arity: [1, 1],
    options: { project },
    examples: [
      'flare template show train',
      'flare template show train --project vision',
      'flare template show tpl-4kq9x2',
    ],
    async run(ctx, input) {
      const template = await ctx.api().get<TemplateView>(pathOf('/v1/templates', input.positionals[0]), {
        project: stringOf(input.values, 'project'),
      });
      ctx.show(template, templateFields);
      return 0;
    },
  },
  {
    name: 'template update',
    summary: 'Change a template (any field but its owner)',
    usage: 'ID|NAME [--project P] [options] [-- COMMAND [ARG...]]',
    description: `${REF_HELP}\n\nOnly the fields given change. --file gives them as JSON (null there removes\nan optional field); flags override it. Jobs already submitted keep what they\nwere submitted with.`,
    arity: [1, 1],
    trailing: true,
    options: { ...fieldOptions, project },
    examples: [
      'flare template update train --max-live-timeout 720',
      'flare template update train -- python train.py --epochs 5',
      'flare template update tpl-4kq9x2 --file changes.json',
    ],
    async run(ctx, input) {
      const usage = usageOf(this);
      const body = templateBody(input, usage);
      if (!Object.keys(body).length)
        throw new UsageError('nothing to change: give the fields as flags or with --file', usage);
      const template = await ctx.api().patch<TemplateView>(pathOf('/v1/templates', input.positionals[0]), body, {
        project: stringOf(input.values, 'project'),
      });
      ctx.show(template, templateFields);
      return 0;
    },
  },
  {
    name: 'template delete',
    summary: 'Delete a template (refused while active jobs use it)',
    usage: 'ID|NAME [--project P]',
    description: REF_HELP,
    arity: [1, 1],
    options: { project },
    examples: ['flare template delete train --project vision'],
    async run(ctx, input) {
      const ref = input.positionals[0];
      const answer = await ctx
        .api()
        .delete<unknown>(pathOf('/v1/templates', ref), { project: stringOf(input.values, 'project') });
      ctx.showDone(answer, `deleted template ${ref}`);
      return 0;
    },
  },
];

function ownerOf(t: TemplateView): string | undefined {
  return t.public ? '(public)' : t.project;
}

function imageOf(t: TemplateView): string | undefined {
  return t.image && t.imageVersion !== undefined ? `${t.image}:v${t.imageVersion}` : t.image;
}

function templateFields(t: TemplateView): string {
  return fields([
    ['ID', t.id],
    ['Name', t.name],
    ['Owner', ownerOf(t)],
    ['Pool', t.pool],
    ['GPUs', gpusPerNode(t)],
    ['Image', imageOf(t)],
    ['Command', t.command],
    ['Env', envNames(t.env)],
    ['Max live timeout', minutes(t.maxLiveTimeoutMinutes)],
    ['Default timeout', minutes(t.defaultLiveTimeoutMinutes)],
    ['Volume', t.volumeSizeGb === undefined ? undefined : `${t.volumeSizeGb} GB`],
    ['Allow root', t.allowRoot],
    ['Created', t.createdAt && `${t.createdAt}${t.createdBy ? ` by ${t.createdBy}` : ''}`],
    ['Updated', t.updatedAt && t.revision !== undefined ? `${t.updatedAt} (revision ${t.revision})` : t.updatedAt],
  ]);
}
