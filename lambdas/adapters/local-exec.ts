/**
 * `Compute.exec` of the local driver: one command run in a running job's
 * environment, read from the spec the job was started with
 * (local-supervisor/jobs.ts RunnerSpec). Docker mode: `docker exec` into the
 * job's container, which has its env, devices, user and working directory.
 * Process mode: a child process with the job's environment (its env,
 * CUDA_VISIBLE_DEVICES, FLARE_JOB_ID, FLARE_OUTPUT_DIR) in its scratch
 * directory. Either way the argv is spawned directly, never through a shell.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { join } from 'node:path';
import { containerName } from '../core/container-command.js';
import { Conflict } from '../core/errors.js';
import {
  BoundedOutput,
  EXEC_TIMED_OUT_EXIT_CODE,
  type ExecLimits,
  type ExecResult,
  type SessionInput,
  type SessionPlan,
} from '../core/exec.js';
import type { RunnerSpec } from './local-supervisor/jobs.js';

/** How a command reaches a job: the program, its arguments, environment and directory. */
export interface ExecTarget {
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  /** `docker`: inside the job's container; `process`: beside the job's processes. */
  mode: 'docker' | 'process';
}

/**
 * What `argv` becomes to run inside the job whose directory is `jobDir`, with
 * a TTY for an interactive shell (docker exec --interactive --tty).
 */
export async function execTarget(
  jobDir: string,
  jobId: string,
  argv: readonly string[],
  tty = false,
): Promise<ExecTarget> {
  return targetOf(await runnerSpecOf(jobDir, jobId), jobId, argv, tty);
}

/**
 * `flare job shell` and `port-forward` on this machine: the shell to spawn in
 * the job's container or environment, or where the job's port is reached (the
 * container's address on docker's network; a process listens on this host).
 */
export async function localSession(jobDir: string, jobId: string, request: SessionInput): Promise<SessionPlan> {
  const spec = await runnerSpecOf(jobDir, jobId);
  const container = isContainer(spec);
  if (request.kind === 'port-forward') {
    const address = container ? await containerAddress(jobId, spec.env) : '';
    return { runtime: 'local', kind: 'port-forward', host: address || '127.0.0.1', port: request.port! };
  }
  // Fixed text: bash where the image or host has it, else sh.
  const shell = container
    ? ['sh', '-c', 'if command -v bash > /dev/null; then exec bash; else exec sh; fi']
    : [existsSync('/bin/bash') ? '/bin/bash' : '/bin/sh'];
  const { command, args, env, cwd } = targetOf(spec, jobId, shell, true);
  return { runtime: 'local', kind: 'shell', command, args, env, cwd };
}

async function runnerSpecOf(jobDir: string, jobId: string): Promise<RunnerSpec> {
  try {
    return JSON.parse(await readFile(join(jobDir, 'spec.json'), 'utf8')) as RunnerSpec;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      throw new Conflict(`job ${jobId} has not been started on this machine`);
    throw error;
  }
}

/** A job run as a container is stopped by `docker stop` (local-docker.ts dockerCommand). */
function isContainer(spec: RunnerSpec): boolean {
  return spec.stopArgv?.[0] === 'docker';
}

function targetOf(spec: RunnerSpec, jobId: string, argv: readonly string[], tty: boolean): ExecTarget {
  if (isContainer(spec))
    return {
      command: 'docker',
      args: ['exec', ...(tty ? ['--interactive', '--tty'] : []), containerName(jobId), ...argv],
      env: spec.env,
      cwd: spec.cwd,
      mode: 'docker',
    };
  return { command: argv[0]!, args: argv.slice(1), env: spec.env, cwd: spec.cwd, mode: 'process' };
}

/** The container's address on its docker network; empty on the host's network. */
async function containerAddress(jobId: string, env: Record<string, string>): Promise<string> {
  const format = '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}';
  const inspect = await execInLocalTarget(
    { command: 'docker', args: ['inspect', '--format', format, containerName(jobId)], env, cwd: '/', mode: 'docker' },
    { timeoutSeconds: 10, maxOutputBytes: 4096 },
  );
  if (inspect.exitCode !== 0) throw new Conflict(`cannot find the container of job ${jobId}: ${inspect.stderr.trim()}`);
  return inspect.stdout.trim().split(/\s+/)[0] ?? '';
}

/**
 * Run it with no stdin, keeping at most `maxOutputBytes` of each stream; at
 * `timeoutSeconds` its process group is killed (in docker mode that is the
 * docker client: a process it started in the container may run on until the
 * job ends, which removes the container).
 */
export async function execInLocalJob(
  jobDir: string,
  jobId: string,
  argv: readonly string[],
  limits: ExecLimits,
  /** A process job's secret values (env name -> value), asked for only in process mode. */
  secretEnv: () => Promise<Record<string, string>> = async () => ({}),
): Promise<ExecResult> {
  const target = await execTarget(jobDir, jobId, argv);
  if (target.mode === 'process') target.env = { ...target.env, ...(await secretEnv()) };
  return execInLocalTarget(target, limits);
}

async function execInLocalTarget(target: ExecTarget, limits: ExecLimits): Promise<ExecResult> {
  const stdout = new BoundedOutput(limits.maxOutputBytes);
  const stderr = new BoundedOutput(limits.maxOutputBytes);
  let timedOut = false;
  const exitCode = await new Promise<number>((resolve) => {
    const child = spawn(target.command, target.args, {
      env: target.env,
      cwd: target.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, so that the time bound ends whatever it started.
      detached: true,
    });
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // Ended meanwhile.
      }
    }, limits.timeoutSeconds * 1000);
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      stderr.push(Buffer.from(`flare: cannot run ${target.command}: ${error.message}\n`));
      resolve(error.code === 'ENOENT' ? 127 : 126);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? 128 + signalNumber(signal));
    });
  });
  return {
    exitCode: timedOut ? EXEC_TIMED_OUT_EXIT_CODE : exitCode,
    stdout: stdout.text(),
    stderr: stderr.text(),
    truncated: stdout.truncated || stderr.truncated,
    timedOut,
  };
}

function signalNumber(signal: NodeJS.Signals | null): number {
  return signal ? (constants.signals[signal] ?? 0) : 0;
}
