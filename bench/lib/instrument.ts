/**
 * Counting what the control plane does, without touching lambdas/: every
 * DynamoDB call (a middleware on the SDK client, which also asks DynamoDB
 * Local for the capacity each call consumed), every workflow task (the tasks
 * Lambda's invocations), the JobStore and Compute ports (wrapped in counting
 * proxies), and every event on the bus.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { ControlPlane } from '../../lambdas/local/control-plane.js';

export interface CallStats {
  calls: number;
  ms: number;
}

export interface DynamoStats extends CallStats {
  readUnits: number;
  writeUnits: number;
  failed: number;
}

/** Plain data, so that two snapshots can be subtracted. */
export interface MeterSnapshot {
  dynamo: Record<string, DynamoStats>;
  /** Successful INSERT/MODIFY writes of the jobs table: what its stream carries to the event publisher on AWS. */
  jobsTableWrites: number;
  tasks: Record<string, CallStats>;
  store: Record<string, number>;
  compute: Record<string, number>;
  events: number;
}

const READS = new Set([
  'GetItemCommand',
  'QueryCommand',
  'ScanCommand',
  'BatchGetItemCommand',
  'TransactGetItemsCommand',
]);

/** Whether a key of MeterSnapshot.dynamo (`<operation> <table>...`) names a read. */
export function isRead(key: string): boolean {
  return READS.has(`${key.split(' ')[0]}Command`);
}

export class Meter {
  private data: MeterSnapshot = { dynamo: {}, jobsTableWrites: 0, tasks: {}, store: {}, compute: {}, events: 0 };

  constructor(private readonly jobsTable: string) {}

  snapshot(): MeterSnapshot {
    return structuredClone(this.data);
  }

  recordDynamo(
    command: string,
    input: Record<string, any>,
    ms: number,
    output: Record<string, any> | undefined,
    error: unknown,
  ): void {
    const key = dynamoKey(command, input);
    const stats = (this.data.dynamo[key] ??= { calls: 0, ms: 0, readUnits: 0, writeUnits: 0, failed: 0 });
    stats.calls += 1;
    stats.ms += ms;
    const read = READS.has(command);
    if (output) {
      const consumed = ([] as Record<string, any>[]).concat(output.ConsumedCapacity ?? []);
      for (const c of consumed) {
        if (read) stats.readUnits += Number(c.ReadCapacityUnits ?? c.CapacityUnits ?? 0);
        else stats.writeUnits += Number(c.WriteCapacityUnits ?? c.CapacityUnits ?? 0);
      }
      this.data.jobsTableWrites += jobsWrites(command, input, this.jobsTable);
    } else if (error) {
      stats.failed += 1;
      // A write that fails its condition is still billed; DynamoDB Local reports nothing for it, so
      // count the minimum: one unit per item, two for each item of a transaction.
      const name = (error as { name?: string }).name;
      if (name === 'ConditionalCheckFailedException') stats.writeUnits += 1;
      if (name === 'TransactionCanceledException') stats.writeUnits += 2 * (input.TransactItems?.length ?? 1);
    }
  }

  recordTask(task: string, ms: number): void {
    const stats = (this.data.tasks[task] ??= { calls: 0, ms: 0 });
    stats.calls += 1;
    stats.ms += ms;
  }

  count(group: 'store' | 'compute', method: string): void {
    this.data[group][method] = (this.data[group][method] ?? 0) + 1;
  }

  recordEvent(): void {
    this.data.events += 1;
  }
}

function dynamoKey(command: string, input: Record<string, any>): string {
  const op = command.replace(/Command$/, '');
  if (input.TransactItems) {
    const tables = (input.TransactItems as Record<string, any>[]).map((item) => {
      const [kind, body] = Object.entries(item)[0] ?? ['?', {}];
      return `${kind} ${shortTable(body?.TableName)}`;
    });
    return `${op} [${tables.join(', ')}]`;
  }
  if (input.RequestItems)
    return `${op} ${Object.keys(input.RequestItems as object)
      .map(shortTable)
      .join('+')}`;
  return `${op} ${shortTable(input.TableName)}${input.IndexName ? `/${input.IndexName}` : ''}`;
}

function shortTable(name: unknown): string {
  return String(name ?? '?').replace(/^flare-/, '');
}

function jobsWrites(command: string, input: Record<string, any>, jobsTable: string): number {
  if ((command === 'PutItemCommand' || command === 'UpdateItemCommand') && input.TableName === jobsTable) return 1;
  if (command === 'TransactWriteItemsCommand') {
    return (input.TransactItems as Record<string, any>[]).filter(
      (item) => (item.Put ?? item.Update)?.TableName === jobsTable,
    ).length;
  }
  return 0;
}

export function subtract(after: MeterSnapshot, before: MeterSnapshot): MeterSnapshot {
  const minusStats = <T extends CallStats>(a: Record<string, T>, b: Record<string, T>): Record<string, T> => {
    const out: Record<string, T> = {};
    for (const [key, value] of Object.entries(a)) {
      const prev = b[key];
      const base = prev as unknown as Record<string, number> | undefined;
      const diff = Object.fromEntries(
        Object.entries(value).map(([k, v]) => [k, (v as number) - (base?.[k] ?? 0)]),
      ) as unknown as T;
      if (diff.calls > 0) out[key] = diff;
    }
    return out;
  };
  const minusCounts = (a: Record<string, number>, b: Record<string, number>) =>
    Object.fromEntries(
      Object.entries(a)
        .map(([k, v]) => [k, v - (b[k] ?? 0)])
        .filter(([, v]) => (v as number) > 0),
    );
  return {
    dynamo: minusStats(after.dynamo, before.dynamo),
    jobsTableWrites: after.jobsTableWrites - before.jobsTableWrites,
    tasks: minusStats(after.tasks, before.tasks),
    store: minusCounts(after.store, before.store),
    compute: minusCounts(after.compute, before.compute),
    events: after.events - before.events,
  };
}

let current: Meter | undefined;
let installed = false;

/**
 * Meter every DynamoDB document client created from now on. The SDK's own
 * factory is wrapped: the control plane builds its client with
 * DynamoDBDocumentClient.from, which shares the base client's middleware stack.
 */
export function meterDynamoDb(meter: Meter): void {
  current = meter;
  if (installed) return;
  installed = true;
  const from = DynamoDBDocumentClient.from.bind(DynamoDBDocumentClient);
  (DynamoDBDocumentClient as { from: typeof from }).from = (client, options) => {
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as Record<string, any>;
        const command = String((context as { commandName?: string }).commandName ?? 'Unknown');
        if (!input.ReturnConsumedCapacity) input.ReturnConsumedCapacity = 'TOTAL';
        const started = performance.now();
        try {
          const result = await next(args);
          current?.recordDynamo(
            command,
            input,
            performance.now() - started,
            result.output as Record<string, any>,
            undefined,
          );
          return result;
        } catch (error) {
          current?.recordDynamo(command, input, performance.now() - started, undefined, error);
          throw error;
        }
      },
      { step: 'initialize', name: 'flareBenchMeter', override: true },
    );
    return from(client, options);
  };
}

type TaskRunner = (event: unknown) => Promise<unknown>;

/** Count and time every task invocation, every JobStore and Compute call, and every event of a running plane. */
export function meterPlane(plane: ControlPlane, meter: Meter): void {
  // LocalWorkflows keeps the tasks Lambda's entry as its `runTask` field and calls it for every Task
  // state, callbacks included: wrapping that one field times exactly what Lambda would bill.
  const workflows = plane.workflows as unknown as { runTask: TaskRunner };
  const runTask = workflows.runTask;
  workflows.runTask = async (event) => {
    const started = performance.now();
    try {
      return await runTask(event);
    } finally {
      meter.recordTask(String((event as { task?: string })?.task ?? 'unknown'), performance.now() - started);
    }
  };
  // Core reaches its ports through this one Deps object (handlers, workflow tasks, completion reports).
  plane.deps.jobs = countingProxy(plane.deps.jobs, (method) => meter.count('store', method));
  plane.deps.queue = countingProxy(plane.deps.queue, (method) => meter.count('store', method));
  plane.deps.limits = countingProxy(plane.deps.limits, (method) => meter.count('store', method));
  plane.deps.compute = countingProxy(plane.deps.compute, (method) => meter.count('compute', method));
  plane.events.subscribe(() => meter.recordEvent());
}

function countingProxy<T extends object>(target: T, count: (method: string) => void): T {
  return new Proxy(target, {
    get(obj, property, receiver) {
      const value = Reflect.get(obj, property, receiver);
      if (typeof value !== 'function' || typeof property !== 'string') return value;
      return (...args: unknown[]) => {
        count(property);
        return (value as (...a: unknown[]) => unknown).apply(obj, args);
      };
    },
  });
}

/** CPU time, in ms, of the parts of a local run (Linux /proc; zeros elsewhere). */
export interface CpuSnapshot {
  /** The harness process's main thread: the control plane's JavaScript (the submit worker is another thread). */
  planeMs: number;
  /** DynamoDB Local's JVM. */
  dynamoMs: number;
  /**
   * The job processes: the local job supervisor while it lives (its own CPU and its
   * reaped jobs'), plus this process's reaped children (a supervisor that ended).
   */
  endedChildrenMs: number;
}

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** utime, stime, cutime, cstime of a /proc stat line, in ms. */
function statTimes(path: string): [number, number, number, number] | undefined {
  try {
    const text = readFileSync(path, 'utf8');
    // Fields after the command's closing parenthesis: state is field 3, utime field 14.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const ms = (i: number) => (Number(fields[i - 3]) * 1000) / clockTicks();
    return [ms(14), ms(15), ms(16), ms(17)];
  } catch {
    return undefined;
  }
}

/** Pids of this process's children whose command is `name`. */
export function childPids(name: string): number[] {
  try {
    return readdirSync('/proc')
      .filter((entry) => /^\d+$/.test(entry))
      .filter((pid) => {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        return comm === name && ppid === process.pid;
      })
      .map(Number);
  } catch {
    return [];
  }
}

export function cpuSnapshot(dynamoPids: readonly number[], supervisorPid?: number): CpuSnapshot {
  const main = statTimes(`/proc/${process.pid}/task/${process.pid}/stat`);
  const whole = statTimes(`/proc/${process.pid}/stat`);
  const supervisor = supervisorPid ? statTimes(`/proc/${supervisorPid}/stat`) : undefined;
  const dynamo = dynamoPids
    .map((pid) => statTimes(`/proc/${pid}/stat`))
    .filter((t): t is [number, number, number, number] => !!t);
  return {
    planeMs: main ? main[0] + main[1] : 0,
    dynamoMs: dynamo.reduce((sum, t) => sum + t[0] + t[1], 0),
    endedChildrenMs: (whole ? whole[2] + whole[3] : 0) + (supervisor ? supervisor.reduce((a, b) => a + b, 0) : 0),
  };
}
