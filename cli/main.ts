/**
 * `flare <command>`: finds the command, parses its flags, runs it, and turns
 * every error into `flare: <message>` and an exit code. `flare local` is
 * dispatched by bin/flare.ts before this module is loaded.
 */
import { helpText, parseInput, type Command } from './command.js';
import { Context, type Io } from './context.js';
import { CliError, ExitCode, UsageError } from './errors.js';
import { imageCommands, poolCommands, quotaCommands } from './commands/catalog.js';
import { debugCommands } from './commands/debug.js';
import { jobCommands } from './commands/jobs.js';
import { outputCommands } from './commands/outputs.js';
import { secretCommands } from './commands/secrets.js';
import { serviceCommands } from './commands/service.js';
import { templateCommands } from './commands/templates.js';

export const COMMANDS: Command[] = [
  ...jobCommands,
  ...outputCommands,
  ...debugCommands,
  ...templateCommands,
  ...imageCommands,
  ...quotaCommands,
  ...poolCommands,
  ...secretCommands,
  ...serviceCommands,
];

const GROUPS: Record<string, string> = {
  job: 'GPU jobs: submit, list, follow, change, cancel',
  template: 'job templates',
  image: 'the image catalog',
  quota: 'per-project limits',
  pool: 'GPU pools and their caps',
  secret: "a project's write-only values for jobs' environments",
};

const LOCAL_LINE = [
  'local',
  'Run the whole control plane on this machine (what `npm start` runs); see flare local --help',
] as const;

export function topHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length), LOCAL_LINE[0].length);
  const line = (name: string, summary: string) => `  ${name.padEnd(width)}  ${summary}`;
  return [
    'usage: flare <command> [options]',
    '',
    'Flare hands out GPUs for a bounded time. This command talks to its HTTP API.',
    '',
    'commands:',
    ...COMMANDS.map((c) => line(c.name, c.summary)),
    line(...LOCAL_LINE),
    '',
    'connection (every command):',
    '  --api URL, else $FLARE_API_URL, else "apiUrl" in the profile',
    '  --token TOKEN, else $FLARE_TOKEN, else "token" in the profile',
    '  the profile: $FLARE_CONFIG or ~/.config/flare/config.json, {"apiUrl": "...", "token": "..."};',
    '  one holding a token must be private to you (chmod 600)',
    '',
    "output: tables by default; --output json prints the API's JSON.",
    '',
    'exit codes:',
    '  0 ok   1 API or server error, API unreachable   2 usage error (also: no API URL or token)',
    '  3 not found   4 not authorized (401/403)',
    `  job wait, job create --wait: 0 SUCCEEDED, ${ExitCode.JOB_FAILED} FAILED, ${ExitCode.JOB_EXPIRED} EXPIRED, ${ExitCode.JOB_CANCELLED} CANCELLED`,
    '',
    'examples:',
    '  export FLARE_API_URL=http://127.0.0.1:8080 FLARE_TOKEN=$(cat .flare/admin-token)',
    '  flare job create --template train --wait -- python train.py --lr 0.1',
    '  flare job list --state WAITING',
    '  flare job logs j-0123456789abcdef --follow',
    '',
    "Run 'flare <command> --help' (e.g. 'flare job create --help') for a command's options.",
  ].join('\n');
}

function groupHelp(group: string): string {
  const commands = COMMANDS.filter((c) => c.name.startsWith(`${group} `));
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    `usage: flare ${group} <${commands.map((c) => c.name.split(' ')[1]).join('|')}> [options]`,
    '',
    `${group}: ${GROUPS[group]}`,
    '',
    'commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'examples:',
    ...commands.map((c) => `  ${c.examples[0]}`),
    '',
    `Run 'flare ${group} <command> --help' for its options.`,
  ].join('\n');
}

/** Global flags may come before the command: `flare --api URL job list`. */
const LEADING = /^(--(api|token|output)|-o)(=.*)?$/;

/** Run the CLI; resolves to the exit code. */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  try {
    return await dispatch([...argv], io);
  } catch (error) {
    return report(error, io);
  }
}

async function dispatch(argv: string[], io: Io): Promise<number> {
  const leading: string[] = [];
  let i = 0;
  for (; i < argv.length && argv[i].startsWith('-'); i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      io.stdout(`${topHelp()}\n`);
      return ExitCode.OK;
    }
    const match = LEADING.exec(arg);
    if (!match) throw new UsageError(`unknown option '${arg}'`, topUsage());
    leading.push(arg);
    if (match[3] === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`option ${arg} needs a value`, topUsage());
      leading.push(argv[++i]);
    }
  }
  const word = argv[i];
  if (word === undefined) {
    io.stderr(`${topHelp()}\n`);
    return ExitCode.USAGE;
  }
  const rest = argv.slice(i + 1);
  let command = COMMANDS.find((c) => c.name === word);
  let args = rest;
  if (!command) {
    if (!(word in GROUPS)) throw new UsageError(`unknown command '${word}'`, topUsage());
    const sub = rest[0];
    if (sub === undefined || sub === '--help' || sub === '-h') {
      if (sub === undefined) {
        io.stderr(`${groupHelp(word)}\n`);
        return ExitCode.USAGE;
      }
      io.stdout(`${groupHelp(word)}\n`);
      return ExitCode.OK;
    }
    command = COMMANDS.find((c) => c.name === `${word} ${sub}`);
    if (!command) throw new UsageError(`unknown command '${word} ${sub}'`, groupHelp(word));
    args = rest.slice(1);
  }
  const input = parseInput(command, [...leading, ...args]);
  if (input.values.help) {
    io.stdout(`${helpText(command)}\n`);
    return ExitCode.OK;
  }
  return command.run(new Context(io, input.values), input);
}

function topUsage(): string {
  return "usage: flare <command> [options]\nRun 'flare --help' for the commands.";
}

function report(error: unknown, io: Io): number {
  if (error instanceof CliError) {
    const lines = [`flare: ${error.message}`, ...error.details.map((d) => `  ${d}`)];
    if (error instanceof UsageError && error.usage) lines.push('', error.usage);
    io.stderr(`${lines.join('\n')}\n`);
    return error.exitCode;
  }
  // A bug in the CLI itself: say so in one line; FLARE_DEBUG=1 shows where.
  const e = error as Error;
  io.stderr(
    `flare: internal error: ${e?.message ?? String(error)}${io.env.FLARE_DEBUG ? `\n${e?.stack}` : ' (FLARE_DEBUG=1 shows the stack)'}\n`,
  );
  return ExitCode.API;
}
