/** `POST /v1/jobs/{id}/exec`: one command inside a running job (core/exec.ts). */
import { z } from 'zod';
import type { Deps } from '../../../core/deps.js';
import { EXEC_MAX_OUTPUT_BYTES, EXEC_TIMEOUT_SECONDS, ExecInput, execInJob } from '../../../core/exec.js';
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
  ];
}
