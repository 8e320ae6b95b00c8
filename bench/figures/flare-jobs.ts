/**
 * What every Flare figure does with a job: submit it over HTTP, read it back as
 * stored, wait for its workflow executions. Instants are wall-clock ms: the
 * bench and the plane share one process, so their clocks are one.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchPlane } from '../lib/plane.js';

/** The environment variable a job's own timestamps name it by. */
export const ID = 'FLARE_JOB_ID';

export interface Submitted {
  id: string;
  /** The state the answer reports: LAUNCHING when the submit's own write admitted it. */
  state: string;
  /** Request sent -> answer read. */
  ms: number;
  /** Wall clock when the request was sent. */
  sentAt: number;
}

export async function submit(bench: BenchPlane, body: Record<string, unknown>): Promise<Submitted> {
  const sentAt = Date.now();
  const answer = await bench.user.call('POST', '/v1/jobs', body);
  if (answer.status !== 202) throw new Error(`submit answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  return { id: String(answer.body.id), state: String(answer.body.state), ms: answer.ms, sentAt };
}

/** A timestamp the job stores (admittedAt, finishedAt, ...), read over the API, as wall-clock ms. */
export async function storedTime(bench: BenchPlane, jobId: string, field: string): Promise<number> {
  const stored = await bench.user.call('GET', `/v1/jobs/${jobId}`);
  const at = stored.status === 200 ? Date.parse(String(stored.body[field])) : Number.NaN;
  if (Number.isNaN(at))
    throw new Error(`job ${jobId}: GET answered ${stored.status} without ${field}: ${JSON.stringify(stored.body)}`);
  return at;
}

/** Until no workflow execution of these jobs is running (the Drain step after the terminal state included). */
export async function executionsDone(bench: BenchPlane, jobIds: readonly string[], timeoutMs: number): Promise<void> {
  const ids = new Set(jobIds);
  const deadline = Date.now() + timeoutMs;
  while (bench.plane.workflows.list().some((e) => ids.has(e.jobId) && e.status === 'RUNNING')) {
    if (Date.now() > deadline) throw new Error(`workflows of ${ids.size} jobs still running after ${timeoutMs} ms`);
    await sleep(10);
  }
}
