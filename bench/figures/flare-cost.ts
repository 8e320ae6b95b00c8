/** Figure 6 on Flare: the states a job's executions entered, and what a job's usage costs on AWS. */
import { US_EAST_1_PRICES, costPerJob, type LambdaUsage } from '../lib/cost.js';
import type { MeterSnapshot } from '../lib/instrument.js';
import type { BenchPlane } from '../lib/plane.js';
import type { CostFigure, TransitionsJob } from '../lib/results.js';

/** Memory of every Flare function (FlareFunction's default, lib/lambda-defaults.ts). */
const LAMBDA_MEMORY_MB = 512;

export function transitionsOf(bench: BenchPlane, jobId: string, runSeconds: number): TransitionsJob {
  const executions = bench.plane.workflows.list().filter((e) => e.jobId === jobId);
  const states: string[] = [];
  executions.forEach((e, i) => {
    if (i > 0) states.push('(new execution)');
    states.push(...e.states);
  });
  return {
    runSeconds,
    jobId,
    state: bench.events.terminal(jobId)?.state ?? 'not ended',
    transitions: executions.reduce((sum, e) => sum + e.transitions, 0),
    executions: executions.length,
    states,
  };
}

/** One scenario's usage per job, priced. */
export function costFigure(
  scenario: string,
  jobIds: readonly string[],
  usage: MeterSnapshot,
  bench: BenchPlane,
  apiLatencies: number[],
): CostFigure {
  const jobs = jobIds.length;
  const per = (x: number) => x / jobs;
  const ids = new Set(jobIds);
  const transitions = bench.plane.workflows
    .list()
    .filter((e) => ids.has(e.jobId))
    .reduce((sum, e) => sum + e.transitions, 0);
  const taskCalls = Object.values(usage.tasks).reduce((sum, t) => sum + t.calls, 0);
  const taskMs = Object.values(usage.tasks).reduce((sum, t) => sum + t.ms, 0);
  const taskMean = taskCalls ? taskMs / taskCalls : 0;
  const apiMean = apiLatencies.length ? apiLatencies.reduce((a, b) => a + b, 0) / apiLatencies.length : 0;
  // Every container started is one Run Command whose final status is an event; every instance stopped, two EC2 state changes.
  const started = usage.compute.start ?? 0;
  const stops = usage.compute.stop ?? 0;
  const lambdas: LambdaUsage[] = [
    {
      name: 'api',
      invocations: per(apiLatencies.length),
      meanDurationMs: apiMean,
      memoryMb: LAMBDA_MEMORY_MB,
      measured: true,
      note: 'POST /v1/jobs only (no polling); duration is the HTTP round trip on loopback, an upper bound of the handler time',
    },
    {
      name: 'tasks',
      invocations: per(taskCalls),
      meanDurationMs: taskMean,
      memoryMb: LAMBDA_MEMORY_MB,
      measured: true,
    },
    {
      name: 'computeEvents',
      invocations: per(started + 2 * stops),
      meanDurationMs: taskMean,
      memoryMb: LAMBDA_MEMORY_MB,
      measured: false,
      note: "one Run Command completion per container started plus two EC2 state changes (shutting-down, terminated) per instance stopped, counted from the local run's starts and stops; duration assumed equal to a tasks invocation",
    },
    {
      name: 'streamPublisher',
      invocations: per(usage.jobsTableWrites),
      meanDurationMs: taskMean,
      memoryMb: LAMBDA_MEMORY_MB,
      measured: false,
      note: 'one invocation per jobs-table INSERT/MODIFY (its stream record): the upper bound, a busy stream batches up to 100 records; duration assumed equal to a tasks invocation',
    },
  ];
  const dynamo = Object.entries(usage.dynamo);
  const sum = (pick: (s: (typeof dynamo)[number][1]) => number) => dynamo.reduce((total, [, s]) => total + pick(s), 0);
  const perJob = {
    transitions: per(transitions),
    lambdas,
    dynamoWriteUnits: per(sum((s) => s.writeUnits)),
    dynamoReadUnits: per(sum((s) => s.readUnits)),
    eventBridgeEvents: per(bench.events.eventCount(ids)),
    apiRequests: per(apiLatencies.length),
  };
  return {
    scenario,
    jobs,
    usage: perJob,
    breakdown: costPerJob(perJob, US_EAST_1_PRICES),
    dynamoCalls: dynamo
      .map(([operation, s]) => ({
        operation,
        perJob: per(s.calls),
        failedPerJob: per(s.failed),
        meanMs: s.ms / s.calls,
      }))
      .sort((a, b) => b.perJob - a.perJob),
    tasks: Object.entries(usage.tasks)
      .map(([task, s]) => ({ task, perJob: per(s.calls), meanMs: s.ms / s.calls }))
      .sort((a, b) => b.perJob - a.perJob),
  };
}
