/**
 * One Lambda execution environment: loads a bundle the way the Node.js runtime
 * does (`_HANDLER` = `<module>.<export>` under LAMBDA_TASK_ROOT; .mjs is an ES
 * module), with the environment the worker was given and nothing else, and runs
 * one invocation at a time. Errors are reported as the runtime reports them:
 * errorType is the thrown error's `name`.
 *
 * Plain JavaScript, run without tsx: what runs here is the bundle alone.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parentPort } from 'node:worker_threads';

if (/--enable-source-maps/.test(process.env.NODE_OPTIONS ?? '')) process.setSourceMapsEnabled(true);

let handler;

async function load() {
  const spec = process.env._HANDLER;
  const dot = spec.lastIndexOf('.');
  const modulePath = join(process.env.LAMBDA_TASK_ROOT, spec.slice(0, dot));
  const file = ['.mjs', '.js', '.cjs'].map((ext) => modulePath + ext).find((f) => existsSync(f));
  if (!file) throw named('Runtime.ImportModuleError', `Error: Cannot find module '${spec.slice(0, dot)}'`);
  const module = await import(pathToFileURL(file).href);
  const fn = module[spec.slice(dot + 1)];
  if (typeof fn !== 'function') throw named('Runtime.HandlerNotFound', `${spec} is undefined or not exported`);
  return fn;
}

function named(name, message) {
  const error = new Error(message);
  error.name = name;
  return error;
}

function context(data) {
  const { deadline, ...fields } = data;
  return {
    ...fields,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done() {},
    fail() {},
    succeed() {},
  };
}

function invoke(fn, event, ctx) {
  return new Promise((resolve, reject) => {
    const callback = (error, result) => (error ? reject(error) : resolve(result));
    try {
      const returned = fn(event, ctx, callback);
      if (returned && typeof returned.then === 'function') returned.then(resolve, reject);
    } catch (error) {
      reject(error);
    }
  });
}

function report(error) {
  if (error instanceof Error)
    return { errorType: error.name, errorMessage: error.message, trace: String(error.stack ?? '').split('\n') };
  return { errorType: typeof error, errorMessage: String(error), trace: [] };
}

parentPort.on('message', async ({ id, event, context: data }) => {
  process.env._X_AMZN_TRACE_ID = data.traceId;
  try {
    handler ??= await load();
    const result = await invoke(handler, event, context(data.fields));
    parentPort.postMessage({ id, result: result === undefined ? null : JSON.parse(JSON.stringify(result)) });
  } catch (error) {
    parentPort.postMessage({ id, error: report(error) });
  }
});
