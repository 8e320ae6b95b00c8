/**
 * `POST /v1/jobs/{id}/exec`: run one command inside a running job (its
 * container, environment and devices) and answer its exit code and output,
 * both bounded. Who may, and when, is decided here; how the command reaches
 * the job is the Compute adapter's (`Compute.exec`).
 */
import { z } from 'zod';
import type { Deps } from './deps.js';
import { Conflict, Forbidden, JobNotFound } from './errors.js';
import { canAccessProject, type Identity } from './identity.js';
import type { Job } from './job.js';
import { argv } from './schema-fields.js';
import { maskableValues, maskLine } from './secrets.js';

/** Bytes of each stream (stdout, stderr) kept; what comes after is dropped and `truncated` says so. */
export const EXEC_MAX_OUTPUT_BYTES = 64 * 1024;
/** How long a command may run before it is killed; the answer then says `timedOut`. */
export const EXEC_TIMEOUT_SECONDS = 60;
/** The exit code of a command killed at the time bound, as `timeout(1)` reports it. */
export const EXEC_TIMED_OUT_EXIT_CODE = 124;

export const ExecInput = z.strictObject({
  command: argv.describe(
    'argv, never a shell string: run it with ["sh", "-c", "..."] when you want a shell (the image must have one)',
  ),
});
export type ExecInput = z.infer<typeof ExecInput>;

export interface ExecLimits {
  timeoutSeconds: number;
  maxOutputBytes: number;
}

export interface ExecResult {
  /** The command's exit code; 124 when it was killed at the time bound, 127 when it was not found. */
  exitCode: number;
  /** At most maxOutputBytes of each, decoded as UTF-8. */
  stdout: string;
  stderr: string;
  /** True when either stream was cut at maxOutputBytes. */
  truncated: boolean;
  /** True when the command ran past the time bound and was killed. */
  timedOut: boolean;
}

/**
 * The job's owner or an admin; another member of the project sees the job but
 * may not act inside it (403), another project's job does not exist (404).
 * Logged: who, which job, how many arguments and how it ended. The argv itself
 * is not logged: it may carry credentials (`curl -H "Authorization: ..."`).
 * The output is masked as the job's logs are: its secrets' values read `***`.
 */
export async function execInJob(deps: Deps, identity: Identity, id: string, input: ExecInput): Promise<ExecResult> {
  const job = await runningJobOf(deps, identity, id);
  if (!deps.compute.exec) throw new Conflict('this deployment cannot run commands inside jobs');
  const limits = { timeoutSeconds: EXEC_TIMEOUT_SECONDS, maxOutputBytes: EXEC_MAX_OUTPUT_BYTES };
  deps.log.info('exec in job', { jobId: id, caller: identity.name, owner: job.owner, argc: input.command.length });
  const ran = await deps.compute.exec(job, input.command, limits);
  // Served by the API like the job's logs: its secrets' values read as ***.
  const secrets = await maskableValues(deps, job);
  const result = secrets.length
    ? { ...ran, stdout: maskLine(ran.stdout, secrets), stderr: maskLine(ran.stderr, secrets) }
    : ran;
  deps.log.info('exec in job ended', {
    jobId: id,
    caller: identity.name,
    exitCode: result.exitCode,
    timedOut: result.timedOut,
    truncated: result.truncated,
  });
  return result;
}

export const SessionInput = z
  .strictObject({
    kind: z.enum(['shell', 'port-forward']).describe('An interactive shell in the job, or a TCP port of the job'),
    port: z
      .number()
      .int('must be a whole number')
      .min(1, 'must be a TCP port, 1 to 65535')
      .max(65535, 'must be a TCP port, 1 to 65535')
      .optional()
      .describe("port-forward: the job's port"),
  })
  .refine((s) => s.kind !== 'port-forward' || s.port !== undefined, {
    path: ['port'],
    message: 'is required for a port-forward',
  });
export type SessionInput = z.infer<typeof SessionInput>;

/**
 * How the CLI opens a shell or a forwarded port. `local`: the plane runs the
 * job on its own machine, where the CLI must be too: it spawns `command` (a
 * shell in the job's container or environment) or proxies to `host:port`.
 * `aws`: an SSM Session Manager session the CLI starts with its user's own
 * AWS credentials (`aws ssm start-session --target --document-name --parameters`).
 */
export type SessionPlan =
  | { runtime: 'local'; kind: 'shell'; command: string; args: string[]; env: Record<string, string>; cwd: string }
  | { runtime: 'local'; kind: 'port-forward'; host: string; port: number }
  | {
      runtime: 'aws';
      kind: 'shell' | 'port-forward';
      /** The deployment's region, where the instance is. */
      region: string;
      target: string;
      documentName: string;
      parameters: Record<string, string[]>;
    };

/**
 * A shell or port forward into a running job: the same rule as exec (owner or
 * admin, RUNNING), logged with who, which job, what and which port.
 */
export async function openSession(
  deps: Pick<Deps, 'jobs' | 'compute' | 'log'>,
  identity: Identity,
  id: string,
  input: SessionInput,
): Promise<SessionPlan> {
  const job = await runningJobOf(deps, identity, id);
  if (!deps.compute.session) throw new Conflict('this deployment cannot open sessions into jobs');
  deps.log.info('session into job', { jobId: id, caller: identity.name, owner: job.owner, ...input });
  return deps.compute.session(job, input);
}

async function runningJobOf(deps: Pick<Deps, 'jobs'>, identity: Identity, id: string): Promise<Job> {
  const job = await deps.jobs.getJob(id);
  if (!job || !canAccessProject(identity, job.project)) throw new JobNotFound(id);
  if (!identity.admin && identity.name !== job.owner)
    throw new Forbidden(`only the job's owner (${job.owner}) or an admin may act inside job ${id}`);
  if (job.state !== 'RUNNING') throw new Conflict(`job ${id} is ${job.state}: only a RUNNING job can be entered`);
  return job;
}

/**
 * Keep at most `max` bytes of a stream, counting what was dropped: both
 * adapters bound their output with it.
 */
export class BoundedOutput {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  truncated = false;

  constructor(private readonly max: number) {}

  push(chunk: Buffer): void {
    const room = this.max - this.kept;
    if (chunk.length > room) this.truncated = true;
    if (room <= 0) return;
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    this.chunks.push(part);
    this.kept += part.length;
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}
