/** Start a submit-worker.ts thread (TypeScript, through tsx's loader) and wait for its result. */
import { Worker } from 'node:worker_threads';
import type { SubmitLoad, SubmitLoadResult } from './submit-worker.js';

const WORKER = new URL('./submit-worker.ts', import.meta.url).href;

export function runSubmitLoad(load: SubmitLoad): Promise<SubmitLoadResult> {
  // A worker does not inherit `--import tsx`; register tsx's loader in it first.
  const bootstrap = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(WORKER)}); })`;
  return new Promise((resolve, reject) => {
    const worker = new Worker(bootstrap, { eval: true, workerData: load });
    worker.once('message', (message: { ok: boolean; result?: SubmitLoadResult; error?: string }) => {
      void worker.terminate();
      if (message.ok && message.result) resolve(message.result);
      else reject(new Error(`submit worker failed: ${message.error}`));
    });
    worker.once('error', reject);
  });
}
