/**
 * Workflows on this machine: the real ASL file executed by aws-local-stepfunctions,
 * its Lambda tasks bound in-process to the same task handler that runs on AWS.
 *
 * The library has no `.waitForTaskToken`; the binding emulates it: it hands the
 * task handler a token and then waits until `sendTaskSuccess(token)` is called
 * (or the state's own timeout fires). As on Step Functions, every wait gets its
 * own token (the context's, numbered), so a token that ended one wait is stale
 * for the next one: a late SendTaskSuccess cannot end a later wait by mistake.
 */
import './polyfills.js';
import { StateMachine } from 'aws-local-stepfunctions';
import type { Logger } from '../core/deps.js';
import type { WorkflowInput } from '../core/workflow.js';
import type { Workflows } from '../ports/workflows.js';
import { JOB_LIFECYCLE_ASL, loadDefinition } from './asl.js';

export const LOCAL_TASKS_ARN = 'arn:aws:lambda:us-east-1:000000000000:function:flare-local-tasks';
const CALLBACK_SUFFIX = '.waitForTaskToken';

type Json = Parameters<StateMachine['run']>[0];
type EventLogs = ReturnType<StateMachine['run']>['eventLogs'];
type RunOverrides = NonNullable<NonNullable<Parameters<StateMachine['run']>[1]>['overrides']>;
export type TaskRunner = (event: unknown) => Promise<unknown>;

interface TaskState {
  Type: string;
  Resource?: string;
  Parameters?: { FunctionName?: string };
}

/**
 * A definition already filled in (the artifact tests take a synthesized
 * template's DefinitionString), with a runner per Lambda function ARN for the
 * Task states naming that function, and the library's wait and retry overrides.
 */
export interface WorkflowDefinition {
  definition: Record<string, unknown>;
  runners: Record<string, TaskRunner>;
  overrides?: Pick<RunOverrides, 'waitTimeOverrides' | 'retryIntervalOverrides'>;
}

export interface ExecutionRecord {
  name: string;
  jobId: string;
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'ABORTED';
  /** States entered: what Step Functions bills as state transitions. */
  transitions: number;
  states: string[];
  error?: string;
}

export class LocalWorkflows implements Workflows {
  private readonly machine: StateMachine;
  private readonly handlers: Record<string, (input: Json) => Promise<Json>> = {};
  private readonly waiting = new Map<string, { resolve(output: Json): void; reject(error: Error): void }>();
  private readonly executions = new Map<string, { record: ExecutionRecord; abort: () => void; done: Promise<void> }>();
  private closed = false;
  private waits = 0;

  private readonly overrides: WorkflowDefinition['overrides'];

  constructor(
    runTask: TaskRunner,
    private readonly log: Logger,
    source: string | WorkflowDefinition = JOB_LIFECYCLE_ASL,
  ) {
    const definition =
      typeof source === 'string' ? loadDefinition(source, { TasksFunctionArn: LOCAL_TASKS_ARN }) : source.definition;
    this.overrides = typeof source === 'string' ? undefined : source.overrides;
    this.machine = new StateMachine(definition as never);
    const states = definition.States as Record<string, TaskState>;
    for (const [name, state] of Object.entries(states)) {
      if (state.Type !== 'Task') continue;
      const callback = state.Resource?.endsWith(CALLBACK_SUFFIX) ?? false;
      const run =
        typeof source === 'string'
          ? runTask
          : runnerFor(name, callback ? state.Parameters?.FunctionName : state.Resource, source.runners);
      this.handlers[name] = callback
        ? (input) => this.callback(input, run)
        : async (input) => (await run(input)) as Json;
    }
  }

  async start(name: string, input: WorkflowInput): Promise<void> {
    if (this.closed) throw new Error('local workflows are closed');
    const existing = this.executions.get(name);
    if (existing && existing.record.status === 'RUNNING') return;
    if (existing) return; // a finished execution of that name: the start already happened
    const record: ExecutionRecord = { name, jobId: input.jobId, status: 'RUNNING', transitions: 0, states: [] };
    const execution = this.machine.run(input as Json, {
      overrides: { ...this.overrides, taskResourceLocalHandlers: this.handlers },
      context: {
        Execution: {
          Id: `local:${name}`,
          Name: name,
          Input: input,
          StartTime: new Date().toISOString(),
          RoleArn: 'local',
        },
        StateMachine: { Id: 'local:job-lifecycle', Name: 'job-lifecycle' },
        Task: { Token: `local-token:${name}` },
      } as never,
    });
    const done = (async () => {
      const counting = this.count(record, execution.eventLogs);
      try {
        await execution.result;
        record.status = 'SUCCEEDED';
      } catch (error) {
        record.status = this.closed ? 'ABORTED' : 'FAILED';
        record.error = String((error as Error)?.message ?? error);
        if (!this.closed)
          this.log.error('workflow execution failed', { execution: name, jobId: input.jobId, error: record.error });
      }
      await counting.catch(() => undefined);
    })();
    this.executions.set(name, { record, abort: execution.abort, done });
  }

  async sendTaskSuccess(token: string, output: unknown): Promise<void> {
    const waiter = this.waiting.get(token);
    if (!waiter) return; // nobody waits on it any more (timed out or already ended)
    this.waiting.delete(token);
    waiter.resolve((output ?? {}) as Json);
  }

  /** The emulated `.waitForTaskToken`: invoke the handler with the Payload, then wait for the token. */
  private async callback(input: Json, runTask: TaskRunner): Promise<Json> {
    const payload = (input as { Payload?: { taskToken?: string; timeoutSeconds?: number } }).Payload;
    if (!payload?.taskToken) throw new Error('callback task without Payload.taskToken');
    const token = `${payload.taskToken}:${++this.waits}`;
    const result = new Promise<Json>((resolve, reject) => this.waiting.set(token, { resolve, reject }));
    result.catch(() => undefined); // close() may reject it while the handler still runs; it is awaited below
    // The state's timeout (States.Timeout) wins the race inside the library; forget the token then.
    const forget = setTimeout(() => this.waiting.delete(token), ((payload.timeoutSeconds ?? 0) + 1) * 1000);
    forget.unref();
    try {
      await runTask({ ...payload, taskToken: token });
    } catch (error) {
      this.waiting.delete(token);
      clearTimeout(forget);
      throw error;
    }
    return result.finally(() => clearTimeout(forget));
  }

  private async count(record: ExecutionRecord, logs: EventLogs): Promise<void> {
    for await (const event of logs) {
      if (event.type === 'StateEntered') {
        record.transitions += 1;
        record.states.push(event.state.name);
      }
    }
  }

  /** Executions so far (tests, benchmarks). */
  list(): ExecutionRecord[] {
    return [...this.executions.values()].map((e) => e.record);
  }

  async runningJobIds(): Promise<Set<string>> {
    return new Set(
      [...this.executions.values()].filter((e) => e.record.status === 'RUNNING').map((e) => e.record.jobId),
    );
  }

  running(): number {
    return [...this.executions.values()].filter((e) => e.record.status === 'RUNNING').length;
  }

  /** Resolves when no execution is running. */
  async idle(): Promise<void> {
    for (;;) {
      const running = [...this.executions.values()].filter((e) => e.record.status === 'RUNNING');
      if (!running.length) return;
      await Promise.all(running.map((e) => e.done));
    }
  }

  /** Abort every execution (the local control plane stops; recovery re-drives on start). */
  async close(): Promise<void> {
    this.closed = true;
    const running = [...this.executions.values()].filter((e) => e.record.status === 'RUNNING');
    for (const e of running) e.abort();
    // An aborted execution leaves its task waiting, and the library's timer of that
    // task's TimeoutSeconds with it (it would hold the process for up to the live timeout).
    for (const waiter of this.waiting.values()) waiter.reject(new Error('local workflows are closed'));
    this.waiting.clear();
    await Promise.all(running.map((e) => e.done));
  }
}

function runnerFor(state: string, functionArn: string | undefined, runners: Record<string, TaskRunner>): TaskRunner {
  const run = functionArn === undefined ? undefined : runners[functionArn];
  if (!run) throw new Error(`Task state ${state} names ${functionArn ?? 'no function'}, which has no runner`);
  return run;
}
