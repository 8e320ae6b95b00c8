/** `POST /v1/jobs/{id}/exec`: one command inside a running job (core/exec.ts). */
import { z } from 'zod';
import type { Deps } from '../../../core/deps.js';
import {
  EXEC_MAX_OUTPUT_BYTES,
  EXEC_TIMEOUT_SECONDS,
  ExecInput,
  execInJob,
  openSession,
  SessionInput,
} from '../../../core/exec.js';
import { json, type Route } from '../middleware.js';
import { JobParams } from './jobs.js';
import { route } from './route.js';

export const ExecOutput = z
  .strictObject({
    exitCode: z.number().int().meta({
      description: "The command's exit code; 124 when it was killed at the time bound, 127 when it was not found",
    }),
    stdout: z.string().meta({ description: `At most ${EXEC_MAX_OUTPUT_BYTES} bytes of its standard output` }),
    stderr: z.string().meta({ description: `At most ${EXEC_MAX_OUTPUT_BYTES} bytes of its standard error` }),
    truncated: z.boolean().meta({ description: 'True when stdout or stderr was cut at the bound' }),
    timedOut: z.boolean().meta({ description: 'True when the command ran past the time bound and was killed' }),
  })
  .meta({ id: 'ExecResult', description: 'How a command run inside a job ended, and its output' });

const LocalShell = z.strictObject({
  runtime: z.literal('local'),
  kind: z.literal('shell'),
  command: z.string().meta({ description: "The program to spawn on the plane's machine: docker, or the shell itself" }),
  args: z.array(z.string()),
  env: z.record(z.string(), z.string()).meta({ description: "Its environment: the job's, or docker's" }),
  cwd: z.string().meta({ description: "The job's scratch directory" }),
});
const LocalPort = z.strictObject({
  runtime: z.literal('local'),
  kind: z.literal('port-forward'),
  host: z.string().meta({ description: "Where the job's port is reached on the plane's machine" }),
  port: z.number().int(),
});
const AwsSession = z.strictObject({
  runtime: z.literal('aws'),
  kind: z.enum(['shell', 'port-forward']),
  region: z.string(),
  target: z.string().meta({ description: "The job's first instance" }),
  documentName: z.string().meta({ description: 'The Session Manager document' }),
  parameters: z.record(z.string(), z.array(z.string())),
});
export const SessionOutput = z.union([LocalShell, LocalPort, AwsSession]).meta({
  id: 'SessionPlan',
  description:
    "How the CLI opens the session: locally a program to spawn or an address to proxy to, on the plane's own machine; on AWS the arguments of `aws ssm start-session`, which the CLI runs with its user's own AWS credentials",
});

export function execRoutes(deps: () => Deps): Route[] {
  return [
    route({
      method: 'POST',
      path: '/v1/jobs/{id}/exec',
      tag: 'jobs',
      errors: [409],
      summary: 'Run a command inside a running job (its owner or an admin)',
      description: `Runs \`command\` (an argv, never through a shell) inside the job: in its container with its environment and devices (on AWS through SSM Run Command on its first instance; locally with docker exec, or a process with the job's environment in its scratch directory). No stdin. Output is bounded (${EXEC_MAX_OUTPUT_BYTES} bytes of each stream locally; on AWS 20000, what SSM returns) and so is time (${EXEC_TIMEOUT_SECONDS} s locally; 10 s on AWS, under the API's own time limit): past it the command is killed, exitCode 124 and timedOut. Another member of the job's project gets 403; a job that is not RUNNING, 409. Each call is logged with the caller, the job and the number of arguments, never the arguments.`,
      access: 'member',
      params: JobParams,
      body: ExecInput,
      responses: { 200: { description: 'The command ran (whatever its exit code)', schema: ExecOutput } },
      handle: async ({ identity, params, body }) => json(200, await execInJob(deps(), identity, params.id, body)),
    }),
    route({
      method: 'POST',
      path: '/v1/jobs/{id}/session',
      tag: 'jobs',
      errors: [409],
      summary: 'Authorize a shell or a port forward into a running job (its owner or an admin)',
      description:
        "What `flare job shell` and `flare job port-forward` ask before they open one; the same rule as exec (another member of the project 403, not RUNNING 409), and logged with the caller, the job, the kind and the port. The answer says how to open it: on the local plane a program to spawn or an address to proxy to (the CLI must run on the plane's machine); on AWS the target, document and parameters of an SSM Session Manager session, which the CLI starts with its user's own AWS credentials (IAM decides whether they may: see docs/operations.md).",
      access: 'member',
      params: JobParams,
      body: SessionInput,
      responses: { 200: { description: 'How to open the session', schema: SessionOutput } },
      handle: async ({ identity, params, body }) => json(200, await openSession(deps(), identity, params.id, body)),
    }),
  ];
}
