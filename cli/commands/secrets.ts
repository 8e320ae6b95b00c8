/** `flare secret put|list|delete`: a project's write-only values, which jobs map into their environment. */
import { readFileSync } from 'node:fs';
import { pathOf } from '../client.js';
import { stringOf, usageOf, type Command, type Values } from '../command.js';
import type { Context } from '../context.js';
import { UsageError } from '../errors.js';
import { table, when } from '../output.js';

const PROJECT_HELP = `A project's secrets: put, list (names only) and delete. A job takes one
into its environment with 'flare job create --secret ENV_NAME=SECRET_NAME'
(or "secrets": {"ENV_NAME": "SECRET_NAME"} in the API); the job records only
the names, and the logs the API serves show the value as ***. Plain --env
values are readable by every member of the project: keep credentials here.`;

const project = {
  type: 'string',
  value: 'P',
  help: 'the project (default: $FLARE_PROJECT; required when that is unset)',
} as const;

interface SecretView {
  name: string;
  updatedAt: string;
}

function projectOf(ctx: Context, values: Values, usage: string): string {
  const chosen = stringOf(values, 'project') ?? ctx.io.env.FLARE_PROJECT;
  if (!chosen) throw new UsageError('missing --project P (or set FLARE_PROJECT)', usage);
  return chosen;
}

const secretsPath = (projectName: string, ...rest: string[]) => pathOf('/v1/projects', projectName, 'secrets', ...rest);

export const secretCommands: Command[] = [
  {
    name: 'secret put',
    summary: "Create or replace a project's secret; the value is read from stdin",
    usage: 'NAME [--project P] < FILE',
    description: `${PROJECT_HELP}

The value is read from stdin, never from a flag (flags end up in shell
history and in ps): pipe it in, or type it at the prompt (not echoed). One
trailing newline is dropped (echo adds one). An empty value is refused.`,
    arity: [1, 1],
    options: { project },
    examples: [
      'flare secret put openai-key --project vision < ~/.openai-key',
      'printf %s "$WANDB_API_KEY" | flare secret put wandb --project vision',
      'flare job create --template train --secret OPENAI_API_KEY=openai-key',
    ],
    async run(ctx, input) {
      const usage = usageOf(this);
      const projectName = projectOf(ctx, input.values, usage);
      const value = await readValue(ctx);
      if (value === '')
        throw new UsageError(
          'no value on stdin: pipe the value in (flare secret put NAME < FILE), or run it in a terminal to type it',
          usage,
        );
      await ctx.api().send('PUT', secretsPath(projectName, input.positionals[0]!), { body: { value } });
      ctx.show(
        { name: input.positionals[0], project: projectName },
        () => `secret ${input.positionals[0]} of project ${projectName} stored`,
      );
      return 0;
    },
  },
  {
    name: 'secret list',
    summary: "List a project's secrets: names and when each was last put, never values",
    usage: '[--project P]',
    options: { project },
    examples: ['flare secret list --project vision'],
    async run(ctx, input) {
      const projectName = projectOf(ctx, input.values, usageOf(this));
      const answer = await ctx.api().get<{ items: SecretView[] }>(secretsPath(projectName));
      ctx.show(answer, ({ items }) =>
        table(
          ['NAME', 'UPDATED'],
          items.map((s) => [s.name, when(s.updatedAt, ctx.io.now())]),
        ),
      );
      return 0;
    },
  },
  {
    name: 'secret delete',
    summary: 'Delete a secret: jobs naming it can no longer be submitted',
    usage: 'NAME [--project P]',
    arity: [1, 1],
    options: { project },
    examples: ['flare secret delete openai-key --project vision'],
    async run(ctx, input) {
      const projectName = projectOf(ctx, input.values, usageOf(this));
      await ctx.api().delete(secretsPath(projectName, input.positionals[0]!));
      if (!ctx.json) ctx.print(`secret ${input.positionals[0]} of project ${projectName} deleted`);
      return 0;
    },
  },
];

/** Stdin whole (a pipe or a file), or one line typed at a terminal without echo; one trailing newline dropped. */
async function readValue(ctx: Context): Promise<string> {
  const text = process.stdin.isTTY ? await readHidden(ctx) : readFileSync(0, 'utf8');
  return text.replace(/\r?\n$/, '');
}

function readHidden(ctx: Context): Promise<string> {
  const stdin = process.stdin;
  ctx.io.stderr('value (not shown; Enter ends it): ');
  return new Promise((resolve, reject) => {
    let value = '';
    const done = (error?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      ctx.io.stderr('\n');
      if (error) reject(error);
      else resolve(value);
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return done();
        if (ch === '\u0003') return done(new UsageError('interrupted: nothing stored'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on('data', onData);
  });
}
