/**
 * `flare job exec`, `job shell`, `job port-forward`: into a running job (its
 * owner or an admin). Shell and port forward ask the API first
 * (`POST /v1/jobs/{id}/session`, which checks and logs), then open the session
 * from this machine: locally by spawning the shell or proxying the port (the
 * CLI must run where the plane runs its jobs), on AWS with
 * `aws ssm start-session` and the user's own AWS credentials.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { delimiter, join } from 'node:path';
import { pathOf, type ApiClient } from '../client.js';
import { usageOf, type Command } from '../command.js';
import type { Context } from '../context.js';
import { CliError, ExitCode, UsageError } from '../errors.js';

interface ExecView {
  exitCode: number;
  stdout: string;
  stderr: string;
  truncated?: boolean;
  timedOut?: boolean;
}

/** POST /v1/jobs/{id}/session's answer (lambdas/core/exec.ts SessionPlan). */
type SessionView =
  | { runtime: 'local'; kind: 'shell'; command: string; args: string[]; env: Record<string, string>; cwd: string }
  | { runtime: 'local'; kind: 'port-forward'; host: string; port: number }
  | {
      runtime: 'aws';
      kind: string;
      region: string;
      target: string;
      documentName: string;
      parameters: Record<string, string[]>;
    };

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
      'flare job exec j-0123456789abcdef -- nvidia-smi',
      "flare job exec j-0123456789abcdef -- sh -c 'ls -l $FLARE_OUTPUT_DIR'",
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
  {
    name: 'job shell',
    summary: 'An interactive shell inside a running job (its container, env and GPUs)',
    usage: 'ID',
    description: `Against a local plane ('flare local') run this on the plane's machine: the
shell is 'docker exec -it' into the job's container, or (jobs run as
processes) a shell with the job's environment in its scratch directory.
Against AWS it starts an SSM Session Manager session on the job's instance
('docker exec -it' into its container) with your own AWS credentials: it needs
the AWS CLI and its Session Manager plugin, and IAM must let you start the
session (ask your infrastructure engineer); when they are missing it prints
the exact command. Only the job's owner and admins may; each session is logged.`,
    arity: [1, 1],
    options: {},
    examples: ['flare job shell j-0123456789abcdef'],
    async run(ctx, input) {
      const client = ctx.api();
      const plan = await client.post<SessionView>(pathOf('/v1/jobs', input.positionals[0], 'session'), {
        kind: 'shell',
      });
      if (plan.runtime === 'aws') return startSsmSession(ctx, plan, {});
      if (plan.kind !== 'shell') throw new CliError(`unexpected session answer: ${JSON.stringify(plan)}`);
      onThisMachine(client);
      return spawnAttached(plan.command, plan.args, { env: plan.env, cwd: plan.cwd });
    },
  },
  {
    name: 'job port-forward',
    summary: "Forward a local TCP port to a running job's port (Jupyter, TensorBoard)",
    usage: 'ID LOCAL[:REMOTE]',
    description: `Listens on 127.0.0.1:LOCAL and forwards each connection to the job's port
REMOTE (default: LOCAL) until interrupted (Ctrl-C). Against a local plane run
it on the plane's machine: a job run as a process listens on this host already
(with LOCAL equal to REMOTE there is nothing to forward, and it says so), a
container is reached at its address on docker's network. Against AWS it starts
an SSM Session Manager port forwarding session to the container's address on
the job's instance, with your own AWS credentials (the AWS CLI and its Session
Manager plugin are needed; without them it prints the exact command). The job
must listen on all its interfaces (0.0.0.0), not only on 127.0.0.1 inside its
container. Only the job's owner and admins may; each session is logged.`,
    arity: [2, 2],
    options: {},
    examples: [
      'flare job port-forward j-0123456789abcdef 8888',
      'flare job port-forward j-0123456789abcdef 16006:6006',
    ],
    async run(ctx, input) {
      const [id, ports] = input.positionals as [string, string];
      const [local, remote] = portsOf(ports, usageOf(this));
      const client = ctx.api();
      const plan = await client.post<SessionView>(pathOf('/v1/jobs', id, 'session'), {
        kind: 'port-forward',
        port: remote,
      });
      if (plan.runtime === 'aws') return startSsmSession(ctx, plan, { localPortNumber: [String(local)] });
      if (plan.kind !== 'port-forward') throw new CliError(`unexpected session answer: ${JSON.stringify(plan)}`);
      onThisMachine(client);
      if (local === remote && plan.host === '127.0.0.1') {
        ctx.print(`job ${id} runs on this machine: its port ${remote} is already reachable at 127.0.0.1:${remote}`);
        return 0;
      }
      return forward(ctx, local, plan.host, plan.port, id);
    },
  },
];

/** `LOCAL[:REMOTE]`, each a TCP port. */
function portsOf(text: string, usage: string): [number, number] {
  const match = /^(\d{1,5})(?::(\d{1,5}))?$/.exec(text);
  const ports = match ? [Number(match[1]), Number(match[2] ?? match[1])] : [];
  if (ports.length !== 2 || ports.some((p) => p < 1 || p > 65535))
    throw new UsageError(`'${text}' is not LOCAL[:REMOTE] with TCP ports 1 to 65535`, usage);
  return ports as [number, number];
}

/** A local plane's jobs run on its own machine: a shell or proxy can only be opened there. */
function onThisMachine(client: ApiClient): void {
  const host = new URL(client.baseUrl).hostname.replace(/^\[|\]$/g, '');
  if (!['127.0.0.1', 'localhost', '::1'].includes(host))
    throw new CliError(
      `the plane at ${client.baseUrl} runs its jobs on its own machine: run this command there (it reaches the API at 127.0.0.1)`,
    );
}

/** Run a program on this terminal (stdin, stdout, stderr its own) and exit with its code. */
function spawnAttached(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: 'inherit', ...options });
    child.on('error', (error) => reject(new CliError(`cannot run ${command}: ${error.message}`)));
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/**
 * `aws ssm start-session` with the API's target, document and parameters; when
 * the AWS CLI or its Session Manager plugin is missing, the exact command to run.
 */
function startSsmSession(
  ctx: Context,
  plan: Extract<SessionView, { runtime: 'aws' }>,
  overrides: Record<string, string[]>,
): Promise<number> {
  const parameters = { ...plan.parameters, ...overrides };
  // The deployment's own document (lib/session-documents.ts): the only one IAM lets researchers start, and logged.
  const args = ['ssm', 'start-session', '--region', plan.region, '--target', plan.target];
  args.push('--document-name', plan.documentName);
  if (Object.keys(parameters).length) args.push('--parameters', JSON.stringify(parameters));
  const missing = ['aws', 'session-manager-plugin'].filter((program) => !onPath(program, ctx.io.env.PATH));
  if (missing.length) {
    ctx.io.stderr(
      `flare: ${missing.join(' and ')} not found on PATH: install the AWS CLI and its Session Manager plugin, then run:\n  ${['aws', ...args].map(shellQuote).join(' ')}\n`,
    );
    return Promise.resolve(ExitCode.API);
  }
  return spawnAttached('aws', args);
}

function onPath(program: string, path = ''): boolean {
  return path.split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, program), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** For printing a command to copy: single quotes, where needed. */
function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}

/** A TCP proxy from 127.0.0.1:local to host:port until SIGINT or SIGTERM. */
function forward(ctx: Context, local: number, host: string, port: number, id: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const open = new Set<Socket>();
    const server = createServer((client) => {
      const upstream = createConnection({ host, port });
      for (const socket of [client, upstream]) {
        open.add(socket);
        socket.on('close', () => open.delete(socket));
      }
      client.pipe(upstream).pipe(client);
      const close = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', close);
      upstream.on('error', (error) => {
        ctx.io.stderr(`flare: job ${id} port ${port}: ${error.message}\n`);
        close();
      });
    });
    server.on('error', (error) => reject(new CliError(`cannot listen on 127.0.0.1:${local}: ${error.message}`)));
    server.listen(local, '127.0.0.1', () => {
      ctx.print(`forwarding 127.0.0.1:${local} -> job ${id} port ${port} (${host}:${port}); Ctrl-C to stop`);
    });
    const stop = () => {
      server.close(() => resolve(0));
      for (const socket of open) socket.destroy();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
