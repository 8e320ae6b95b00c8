/** Arrays (sweeps) in the job commands: `job create --array N`, `job delete --array ID`. */
import { pathOf, type ApiClient } from '../client.js';
import { arrayEnvOf, numberOf, type Values } from '../command.js';
import type { Context } from '../context.js';
import { CliError, ExitCode, UsageError } from '../errors.js';
import { oneLine } from '../output.js';
import { isTerminal, type JobView } from '../views.js';

/** `--array N [--array-env FILE]`: the body's `array`, or undefined without --array. */
export function arrayOf(values: Values, usage: string): { size: number; env?: Record<string, string>[] } | undefined {
  const size = numberOf(values, 'array', usage);
  const env = arrayEnvOf(values, usage);
  if (size === undefined) {
    if (env) throw new UsageError('--array-env needs --array N', usage);
    return undefined;
  }
  if (!Number.isInteger(size) || size < 1) throw new UsageError('--array must be a whole number of at least 1', usage);
  return env ? { size, env } : { size };
}

/** Submit an array: one line for the array, one per job (or the API's answer with --output json). */
export async function submitArray(
  ctx: Context,
  client: ApiClient,
  body: Record<string, unknown>,
  key: string | undefined,
): Promise<number> {
  const answer = await client.post<{ arrayId: string; items: JobView[] }>(
    '/v1/jobs',
    body,
    key ? { 'idempotency-key': key } : undefined,
  );
  if (ctx.json) {
    ctx.printJson(answer);
    return 0;
  }
  const count = (state: string) => answer.items.filter((j) => j.state === state).length;
  ctx.print(
    `submitted array ${answer.arrayId}: ${answer.items.length} jobs (${count('LAUNCHING')} LAUNCHING, ${count('WAITING')} WAITING)`,
  );
  for (const job of answer.items) ctx.print(`  [${job.arrayIndex}] ${job.id} ${job.state}`);
  ctx.print(`follow it with: flare job list --array ${answer.arrayId}`);
  return 0;
}

/** The jobs of an array, by index; an array with no job visible to the caller is not found (exit 3). */
export async function arrayMembers(
  client: ApiClient,
  arrayId: string,
): Promise<Array<JobView & { arrayIndex: number }>> {
  const { items } = await client.list<JobView>('/v1/jobs', { array: arrayId });
  if (items.length === 0)
    throw new CliError(`no jobs of array ${oneLine(arrayId)} (or none you may see)`, ExitCode.NOT_FOUND);
  return items.map((job) => ({ ...job, arrayIndex: job.arrayIndex ?? 0 })).sort((a, b) => a.arrayIndex - b.arrayIndex);
}

/** Cancel every active job of an array; finished ones are left. */
export async function cancelArray(ctx: Context, arrayId: string): Promise<number> {
  const client = ctx.api();
  const items = await arrayMembers(client, arrayId);
  const cancelled: JobView[] = [];
  for (const job of items.filter((j) => !isTerminal(j.state))) {
    const answer = await client.delete<JobView>(pathOf('/v1/jobs', job.id));
    if (answer) cancelled.push(answer);
  }
  if (ctx.json) ctx.printJson({ arrayId, cancelled });
  else ctx.print(`cancelling ${cancelled.length} of ${items.length} jobs of array ${arrayId}`);
  return 0;
}
