/**
 * The template's Lambda functions, each run from its bundle in the synthesized
 * out dir in worker threads (one per concurrent invocation, as Lambda gives each
 * concurrent invocation its own execution environment), each worker with
 * exactly the environment the template gives the function plus what Lambda
 * sets. The access key id is the function's role's logical id, so the AWS fake
 * knows which role made each call.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { ARTIFACT_REGION } from './types.js';
import type { CfnTemplate } from './cfn-resolve.js';

/** CloudFormation value → the value the deployed stack has (cfn-resolve.ts). */
export type Resolver = (value: unknown) => unknown;

export interface LambdaError {
  errorType: string;
  errorMessage: string;
  trace: string[];
}
export type Invocation = { ok: true; result: unknown } | { ok: false; error: LambdaError };

export interface FunctionSpec {
  logicalId: string;
  functionName: string;
  arn: string;
  roleLogicalId: string;
  handler: string;
  assetDir: string;
  timeoutSeconds: number;
  memoryMb: number;
  logGroupName: string;
  /** The template's Environment.Variables, resolved. */
  environment: Record<string, string>;
  /** What the Lambda service adds, credentials and endpoints included. */
  lambdaEnvironment: Record<string, string>;
}

const WORKER = new URL('./lambda-worker.mjs', import.meta.url);

/** Every AWS::Lambda::Function in the template, with its asset directory. */
export function functionSpecs(
  template: CfnTemplate,
  outdir: string,
  resolve: Resolver,
  endpoints: Record<string, string>,
): FunctionSpec[] {
  const manifest = JSON.parse(readFileSync(join(outdir, `${stackNameOf(outdir)}.assets.json`), 'utf8')) as {
    files: Record<string, { source: { path: string; packaging?: string } }>;
  };
  return Object.entries(template.Resources)
    .filter(([, r]) => r.Type === 'AWS::Lambda::Function')
    .map(([logicalId, r]) => {
      const p = r.Properties ?? {};
      const key = String(p.Code?.S3Key ?? '');
      const asset = manifest.files[key.replace(/\.zip$/, '')];
      if (!asset) throw new Error(`${logicalId}: Code.S3Key ${key} names no asset in the out dir's assets manifest`);
      const roleRef = p.Role?.['Fn::GetAtt'];
      if (!Array.isArray(roleRef)) throw new Error(`${logicalId}: Role is not a GetAtt of a role in this template`);
      const functionName = String(resolve({ Ref: logicalId }));
      const logGroupName = p.LoggingConfig?.LogGroup
        ? String(resolve(p.LoggingConfig.LogGroup))
        : `/aws/lambda/${functionName}`;
      const environment = Object.fromEntries(
        Object.entries((p.Environment?.Variables ?? {}) as Record<string, unknown>).map(([k, v]) => [
          k,
          String(resolve(v)),
        ]),
      );
      const spec = {
        logicalId,
        functionName,
        arn: String(resolve({ 'Fn::GetAtt': [logicalId, 'Arn'] })),
        roleLogicalId: String(roleRef[0]),
        handler: String(p.Handler),
        assetDir: join(outdir, asset.source.path),
        timeoutSeconds: Number(p.Timeout ?? 3),
        memoryMb: Number(p.MemorySize ?? 128),
        logGroupName,
        environment,
      };
      return { ...spec, lambdaEnvironment: lambdaEnvironment(spec, String(p.Runtime), endpoints) };
    });
}

function stackNameOf(outdir: string): string {
  const manifest = JSON.parse(readFileSync(join(outdir, 'manifest.json'), 'utf8')) as {
    artifacts: Record<string, { type: string }>;
  };
  const stacks = Object.entries(manifest.artifacts).filter(([, a]) => a.type === 'aws:cloudformation:stack');
  if (stacks.length !== 1) throw new Error(`expected one stack in ${outdir}, found ${stacks.length}`);
  return stacks[0][0];
}

/** The variables the Lambda service sets in every execution environment (reserved names). */
function lambdaEnvironment(
  spec: Omit<FunctionSpec, 'lambdaEnvironment'>,
  runtime: string,
  endpoints: Record<string, string>,
): Record<string, string> {
  return {
    AWS_REGION: ARTIFACT_REGION,
    AWS_DEFAULT_REGION: ARTIFACT_REGION,
    AWS_EXECUTION_ENV: `AWS_Lambda_${runtime}`,
    AWS_LAMBDA_FUNCTION_NAME: spec.functionName,
    AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(spec.memoryMb),
    AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
    AWS_LAMBDA_LOG_GROUP_NAME: spec.logGroupName,
    AWS_LAMBDA_LOG_STREAM_NAME: `2030/01/01/[$LATEST]${randomUUID().replaceAll('-', '')}`,
    AWS_LAMBDA_LOG_FORMAT: 'JSON',
    AWS_ACCESS_KEY_ID: spec.roleLogicalId,
    AWS_SECRET_ACCESS_KEY: 'artifact-test-secret',
    AWS_SESSION_TOKEN: `session-of-${spec.roleLogicalId}`,
    LAMBDA_TASK_ROOT: spec.assetDir,
    LAMBDA_RUNTIME_DIR: '/var/runtime',
    LANG: 'en_US.UTF-8',
    PATH: '/usr/local/bin:/usr/bin/:/bin',
    _HANDLER: spec.handler,
    ...endpoints,
  };
}

interface Pending {
  resolve(result: Invocation): void;
  timer: NodeJS.Timeout;
}

/** One function's execution environments. */
export class LambdaFunction {
  private readonly idle: Worker[] = [];
  private readonly all = new Set<Worker>();
  private readonly pending = new Map<Worker, Pending>();
  private next = 0;
  /** Every line the function wrote to stdout or stderr. */
  readonly logs: string[] = [];
  /** Every invocation: its event and what it returned. */
  readonly invocations: Array<{ event: unknown; outcome: Invocation }> = [];

  constructor(readonly spec: FunctionSpec) {}

  /** Invoke and report as Lambda does: a result, or the error's type and message. */
  async invoke(event: unknown): Promise<Invocation> {
    const worker = this.idle.pop() ?? this.spawn();
    const requestId = randomUUID();
    const outcome = await new Promise<Invocation>((resolve) => {
      // Lambda's own timeout: the environment is discarded, as the runtime is killed.
      const timer = setTimeout(() => {
        this.discard(worker);
        resolve({
          ok: false,
          error: {
            errorType: 'Sandbox.Timedout',
            errorMessage: `Task timed out after ${this.spec.timeoutSeconds.toFixed(2)} seconds`,
            trace: [],
          },
        });
      }, this.spec.timeoutSeconds * 1000);
      this.pending.set(worker, { resolve, timer });
      worker.postMessage({
        id: ++this.next,
        event,
        context: {
          traceId: `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-${randomUUID().replaceAll('-', '').slice(0, 24)}`,
          fields: this.contextFields(requestId),
        },
      });
    });
    if (this.all.has(worker) && !this.pending.has(worker)) this.idle.push(worker);
    this.invocations.push({ event, outcome });
    return outcome;
  }

  /** Invoke; a function error is thrown as an Error whose name is the errorType (what Step Functions matches). */
  async invokeOrThrow(event: unknown): Promise<unknown> {
    const outcome = await this.invoke(event);
    if (outcome.ok) return outcome.result;
    const error = new Error(outcome.error.errorMessage);
    error.name = outcome.error.errorType;
    throw error;
  }

  private contextFields(awsRequestId: string) {
    const s = this.spec;
    return {
      functionName: s.functionName,
      functionVersion: '$LATEST',
      invokedFunctionArn: s.arn,
      memoryLimitInMB: String(s.memoryMb),
      awsRequestId,
      logGroupName: s.logGroupName,
      logStreamName: s.lambdaEnvironment.AWS_LAMBDA_LOG_STREAM_NAME,
      deadline: Date.now() + s.timeoutSeconds * 1000,
    };
  }

  private spawn(): Worker {
    const worker = new Worker(WORKER, {
      env: { ...this.spec.environment, ...this.spec.lambdaEnvironment },
      execArgv: [],
      stdout: true,
      stderr: true,
    });
    this.all.add(worker);
    for (const stream of [worker.stdout, worker.stderr]) {
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        for (const line of chunk.split('\n').filter(Boolean)) this.logs.push(line);
        if (process.env.FLARE_ARTIFACT_LOGS) process.stderr.write(`[${this.spec.logicalId}] ${chunk}`);
      });
    }
    worker.on('message', (message: { error?: LambdaError; result?: unknown }) => {
      const pending = this.pending.get(worker);
      if (!pending) return;
      this.pending.delete(worker);
      clearTimeout(pending.timer);
      pending.resolve(message.error ? { ok: false, error: message.error } : { ok: true, result: message.result });
    });
    // An uncaught error ends the environment: Lambda reports Runtime.ExitError and starts a new one.
    const exited = (errorMessage: string) => {
      const pending = this.pending.get(worker);
      this.discard(worker);
      if (pending) pending.resolve({ ok: false, error: { errorType: 'Runtime.ExitError', errorMessage, trace: [] } });
    };
    worker.on('error', (error) => exited(`RequestId: the runtime exited: ${error.message}`));
    worker.on('exit', (code) => exited(`RequestId: Runtime exited with error: exit status ${code}`));
    return worker;
  }

  private discard(worker: Worker): void {
    const pending = this.pending.get(worker);
    if (pending) clearTimeout(pending.timer);
    this.pending.delete(worker);
    this.all.delete(worker);
    const at = this.idle.indexOf(worker);
    if (at >= 0) this.idle.splice(at, 1);
    void worker.terminate();
  }

  async close(): Promise<void> {
    await Promise.all([...this.all].map((w) => w.terminate()));
    this.all.clear();
    this.idle.length = 0;
  }
}
