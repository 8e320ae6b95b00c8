/**
 * Submit load in its own thread: `clients` closed loops (each sends its next
 * submit when the previous one is answered) until `n` submits have been sent.
 * A separate event loop, so the client's work never queues behind the control
 * plane's in the main thread, nor the other way round.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ApiClient } from './http.js';

export interface SubmitLoad {
  url: string;
  token: string;
  body: unknown;
  n: number;
  clients: number;
}

export interface SubmitSample {
  /** Wall clock (Date.now()) when the request was sent. */
  sentAt: number;
  ms: number;
  status: number;
  jobId?: string;
  error?: string;
}

export interface SubmitLoadResult {
  samples: SubmitSample[];
  /** First request sent -> last answer read, ms (monotonic clock). */
  windowMs: number;
  firstSentAt: number;
}

async function run(load: SubmitLoad): Promise<SubmitLoadResult> {
  const client = new ApiClient(load.url, load.token);
  const body = JSON.stringify(load.body);
  const samples: SubmitSample[] = [];
  let next = 0;
  const firstSentAt = Date.now();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: load.clients }, async () => {
      while (next < load.n) {
        next++;
        const sentAt = Date.now();
        try {
          const answer = await client.call('POST', '/v1/jobs', body);
          const ok = answer.status === 202;
          samples.push({
            sentAt,
            ms: answer.ms,
            status: answer.status,
            ...(ok ? { jobId: String(answer.body?.id) } : { error: JSON.stringify(answer.body).slice(0, 300) }),
          });
        } catch (error) {
          samples.push({ sentAt, ms: Number.NaN, status: 0, error: String(error) });
        }
      }
    }),
  );
  const windowMs = performance.now() - started;
  client.close();
  return { samples, windowMs, firstSentAt };
}

if (parentPort && workerData) {
  const port = parentPort;
  run(workerData as SubmitLoad).then(
    (result) => port.postMessage({ ok: true, result }),
    (error: unknown) => port.postMessage({ ok: false, error: String(error) }),
  );
}
