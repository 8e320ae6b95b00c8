/**
 * The AWS entry point's logs and metrics (lambdas/handlers/aws-observability.ts over the Powertools
 * adapters): what a handler wrapped by `observed` writes to stdout, parsed as CloudWatch would read it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Context } from 'aws-lambda';
import { METRIC } from '../../lambdas/core/metrics.js';

// As Lambda sets them for an on-demand function of a stack named FlareTest.
process.env.AWS_LAMBDA_INITIALIZATION_TYPE = 'on-demand';
process.env.DEPLOYMENT_NAME = 'FlareTest';
delete process.env.POWERTOOLS_METRICS_NAMESPACE;
const { awsLogger, awsMetrics, jobIdOfTask, observed } = await import('../../lambdas/handlers/aws-observability.js');
const { jobIdOfPath } = await import('../../lambdas/handlers/http/api.js');

const context = (requestId: string): Context =>
  ({
    functionName: 'flare-tasks',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:flare-tasks',
    memoryLimitInMB: '512',
    awsRequestId: requestId,
    logGroupName: '/aws/lambda/flare-tasks',
    logStreamName: 'stream',
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => 10_000,
  }) as unknown as Context;

/** Every JSON line written to stdout while `run` runs. */
async function stdoutOf(run: () => Promise<unknown>): Promise<Record<string, any>[]> {
  const lines: string[] = [];
  const write = process.stdout.write;
  process.stdout.write = ((chunk: string | Uint8Array) => {
    lines.push(...String(chunk).split('\n').filter(Boolean));
    return true;
  }) as typeof process.stdout.write;
  try {
    await run();
  } finally {
    process.stdout.write = write;
  }
  return lines.flatMap((line) => {
    try {
      return [JSON.parse(line)];
    } catch {
      return [];
    }
  });
}

describe('the AWS entry point: Powertools logs and metrics', () => {
  const log = awsLogger();
  const metrics = awsMetrics();
  const handler = observed(
    async (event: { jobId?: string; measure?: boolean }) => {
      log.info('step ran', { task: 'launch' });
      if (event.measure) {
        metrics.count(METRIC.admissions);
        metrics.milliseconds(METRIC.queueWait, 1500);
        metrics.count(METRIC.launchFailures, 1, { reason: 'InsufficientCapacity' });
      }
      return 'done';
    },
    { metrics: true, correlationId: jobIdOfTask },
  );
  let first: Record<string, any>[];
  let second: Record<string, any>[];
  before(async () => {
    first = await stdoutOf(() => handler({ jobId: 'job-123', measure: true }, context('req-1')));
    second = await stdoutOf(() => handler({}, context('req-2')));
  });
  after(() => {
    delete process.env.DEPLOYMENT_NAME;
  });

  it('logs JSON with the Lambda context, the cold start and the job id as correlation id', () => {
    const entry = first.find((l) => l.message === 'step ran');
    assert.ok(entry, `no log line in ${JSON.stringify(first)}`);
    assert.equal(entry.level, 'INFO');
    assert.equal(entry.service, 'flare');
    assert.equal(entry.task, 'launch');
    assert.equal(entry.cold_start, true);
    assert.equal(entry.function_name, 'flare-tasks');
    assert.equal(entry.function_request_id, 'req-1');
    assert.equal(entry.correlation_id, 'job-123');
  });

  it('the next invocation is warm and carries no job id of the one before', () => {
    const entry = second.find((l) => l.message === 'step ran');
    assert.ok(entry);
    assert.equal(entry.cold_start, false);
    assert.equal(entry.function_request_id, 'req-2');
    assert.equal(entry.correlation_id, undefined);
  });

  it('writes EMF: the named metrics in the Flare namespace, by service and deployment', () => {
    const emf = first.filter((l) => l._aws?.CloudWatchMetrics);
    const directives = (line: Record<string, any>) => line._aws.CloudWatchMetrics[0];
    const buffered = emf.find((l) => directives(l).Metrics.some((m: { Name: string }) => m.Name === METRIC.admissions));
    assert.ok(buffered, `no EMF line with ${METRIC.admissions} in ${JSON.stringify(emf)}`);
    assert.equal(directives(buffered).Namespace, 'Flare');
    assert.deepEqual(directives(buffered).Dimensions, [['service', 'deployment']]);
    assert.deepEqual(
      directives(buffered)
        .Metrics.map((m: { Name: string; Unit: string }) => [m.Name, m.Unit])
        .sort(),
      [
        [METRIC.admissions, 'Count'],
        [METRIC.queueWait, 'Milliseconds'],
      ],
    );
    assert.equal(buffered.service, 'flare');
    assert.equal(buffered.deployment, 'FlareTest');
    assert.equal(buffered[METRIC.admissions], 1);
    assert.equal(buffered[METRIC.queueWait], 1500);

    const byReason = emf.find((l) => l[METRIC.launchFailures] !== undefined);
    assert.ok(byReason, 'no EMF line with LaunchFailures');
    assert.equal(directives(byReason).Namespace, 'Flare');
    assert.deepEqual([...directives(byReason).Dimensions[0]].sort(), ['deployment', 'reason', 'service']);
    assert.equal(byReason.reason, 'InsufficientCapacity');

    const coldStart = emf.find((l) => l.ColdStart !== undefined);
    assert.ok(coldStart, 'no ColdStart metric on the first invocation');
    assert.equal(coldStart.function_name, 'flare-tasks');
  });

  it('an invocation that measured nothing writes no metrics line and no warning', () => {
    assert.deepEqual(
      second.filter((l) => l._aws),
      [],
    );
    assert.equal(second.filter((l) => l.level === 'WARN').length, 0);
  });

  it('the API correlates the requests that name a job in their path', () => {
    assert.equal(jobIdOfPath({ rawPath: '/v1/jobs/j-0123456789abcdef' }), 'j-0123456789abcdef');
    assert.equal(jobIdOfPath({ rawPath: '/v1/jobs/j-0123456789abcdef/logs' }), 'j-0123456789abcdef');
    assert.equal(jobIdOfPath({ rawPath: '/v1/jobs' }), undefined);
    assert.equal(jobIdOfPath({ rawPath: '/v1/templates/train' }), undefined);
  });
});
