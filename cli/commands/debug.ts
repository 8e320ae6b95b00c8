/** `flare job exec`: into a running job (its owner or an admin). */
import { pathOf } from '../client.js';
import { usageOf, type Command } from '../command.js';
import { UsageError } from '../errors.js';

interface ExecView {
  exitCode: number;
  stdout: string;
  stderr: string;
  truncated?: boolean;
  timedOut?: boolean;
}

export const debugCommands: Command[] = [
  {
    name: 'job exec',
    summary: "Run a command inside a running job (its container, env and GPUs); exit with the command's code",
    usage: 'ID -- COMMAND [ARG...]',
    description: `The command is an argv, never a shell string: put its words after '--' (use
'sh -c "..."' for a shell). It runs with no stdin, for at most 60 s locally
and 10 s on AWS (then it is killed and the exit code is 124), and at most
64 KiB of each of stdout and stderr come back (20000 bytes on AWS); a note on
stderr says when either bound was hit. Only the job's owner and admins may.
For an interactive shell use 'flare job shell ID'.`,
    arity: [1, 1],
    trailing: true,
    options: {},
    examples: [
      'flare job exec j-20250203-abc123 -- nvidia-smi',
      "flare job exec j-20250203-abc123 -- sh -c 'ls -l $FLARE_OUTPUT_DIR'",
    ],
    async run(ctx, input) {
      const command = input.trailing;
      if (!command?.length) throw new UsageError("missing the command: put it after '--'", usageOf(this));
      const result = await ctx.api().post<ExecView>(pathOf('/v1/jobs', input.positionals[0], 'exec'), { command });
      if (ctx.json) {
        ctx.printJson(result);
        return result.exitCode;
      }
      if (result.stdout) ctx.io.stdout(result.stdout);
      if (result.stderr) ctx.io.stderr(result.stderr);
      if (result.timedOut) ctx.io.stderr('flare: the command ran past the time bound and was killed (exit code 124)\n');
      if (result.truncated) ctx.io.stderr('flare: its output was longer than the bound and was cut\n');
      return result.exitCode;
    },
  },
];
