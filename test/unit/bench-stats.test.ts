/**
 * The benchmark harness's arithmetic (bench/lib/stats.ts, bench/lib/cost.ts):
 * percentiles as the Slurm peer's bench.py defines them, summaries, rates, and
 * what a job's usage costs. Timings themselves are never asserted.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { costPerJob, gbSeconds, US_EAST_1_PRICES, type PriceTable, type UsagePerJob } from '../../bench/lib/cost.js';
import { percentile, ratePerSecond, ratio, summarize } from '../../bench/lib/stats.js';

describe('percentile', () => {
  it('interpolates linearly between the closest ranks, like bench.py', () => {
    const xs = [10, 20, 30, 40];
    assert.equal(percentile(xs, 0), 10);
    assert.equal(percentile(xs, 100), 40);
    assert.equal(percentile(xs, 50), 25);
    // rank (4 - 1) * 0.99 = 2.97: 30 + 0.97 * (40 - 30)
    assert.ok(Math.abs(percentile(xs, 99) - 39.7) < 1e-9);
  });

  it('does not depend on the order of the samples and does not reorder them', () => {
    const xs = [5, 1, 4, 2, 3];
    assert.equal(percentile(xs, 50), 3);
    assert.deepEqual(xs, [5, 1, 4, 2, 3]);
  });

  it('is NaN without samples and refuses a percentile outside 0..100', () => {
    assert.ok(Number.isNaN(percentile([], 50)));
    assert.throws(() => percentile([1], 101), RangeError);
    assert.throws(() => percentile([1], -1), RangeError);
  });
});

describe('summarize', () => {
  it('gives count, extremes, median, tail and mean, ignoring samples that are not numbers', () => {
    const s = summarize([3, 1, 2, Number.NaN, 4]);
    assert.deepEqual(
      { n: s.n, min: s.min, max: s.max, p50: s.p50, mean: s.mean },
      { n: 4, min: 1, max: 4, p50: 2.5, mean: 2.5 },
    );
    assert.ok(s.p99 > s.p90 && s.p90 > s.p50);
  });

  it('is all NaN for no samples, so a missing figure never reads as zero', () => {
    const s = summarize([]);
    assert.equal(s.n, 0);
    assert.ok([s.min, s.p50, s.p99, s.max, s.mean].every(Number.isNaN));
  });
});

describe('rates and ratios', () => {
  it('counts per second over a window in milliseconds', () => {
    assert.equal(ratePerSecond(500, 2000), 250);
    assert.ok(Number.isNaN(ratePerSecond(1, 0)));
  });

  it('divides only finite numbers by a non-zero one', () => {
    assert.equal(ratio(3, 2), 1.5);
    assert.ok(Number.isNaN(ratio(1, 0)));
    assert.ok(Number.isNaN(ratio(undefined, 2)));
    assert.ok(Number.isNaN(ratio(Number.NaN, 2)));
  });
});

describe('cost per job', () => {
  const prices: PriceTable = {
    region: 'test',
    asOf: 'test',
    stepFunctionsPerTransition: 0.000025,
    lambdaPerRequest: 0.0000002,
    lambdaPerGbSecond: 0.00001,
    dynamoPerWriteUnit: 0.000001,
    dynamoPerReadUnit: 0.0000001,
    eventBridgePerEvent: 0.000001,
    apiGatewayPerRequest: 0.000001,
  };

  it('bills each invocation in whole milliseconds at its memory size', () => {
    // 4 invocations of 10.2 ms -> 11 ms each, at 512 MB: 4 * 0.011 s * 0.5 GB
    assert.ok(Math.abs(gbSeconds({ invocations: 4, meanDurationMs: 10.2, memoryMb: 512 }) - 0.022) < 1e-12);
    // an invocation is never billed less than 1 ms
    assert.ok(Math.abs(gbSeconds({ invocations: 1, meanDurationMs: 0.1, memoryMb: 1024 }) - 0.001) < 1e-12);
  });

  it('adds every line: transitions, Lambda requests and GB-s, DynamoDB units, events, API requests', () => {
    const usage: UsagePerJob = {
      transitions: 13,
      lambdas: [
        { name: 'tasks', invocations: 8, meanDurationMs: 20, memoryMb: 1024, measured: true },
        { name: 'api', invocations: 1, meanDurationMs: 5, memoryMb: 1024, measured: true },
      ],
      dynamoWriteUnits: 100,
      dynamoReadUnits: 20,
      eventBridgeEvents: 5,
      apiRequests: 1,
    };
    const cost = costPerJob(usage, prices);
    const line = (item: string) => cost.lines.find((l) => l.item === item)!;
    assert.equal(line('Step Functions state transitions').usd, 13 * 0.000025);
    assert.equal(line('Lambda requests').quantity, 9);
    assert.ok(Math.abs(line('Lambda duration').quantity - (8 * 0.02 + 0.005)) < 1e-12);
    assert.ok(Math.abs(line('DynamoDB writes').usd - 0.0001) < 1e-15);
    assert.ok(Math.abs(line('DynamoDB reads').usd - 0.000002) < 1e-15);
    const expected =
      13 * 0.000025 + 9 * 0.0000002 + (8 * 0.02 + 0.005) * 0.00001 + 0.0001 + 0.000002 + 0.000005 + 0.000001;
    assert.ok(Math.abs(cost.totalUsd - expected) < 1e-12, `${cost.totalUsd} != ${expected}`);
  });

  it('prices Step Functions Standard at $0.025 per 1,000 transitions and DynamoDB on-demand after the 2024 cut', () => {
    assert.equal(US_EAST_1_PRICES.stepFunctionsPerTransition * 1000, 0.025);
    assert.equal(US_EAST_1_PRICES.dynamoPerWriteUnit * 1e6, 0.625);
    assert.equal(US_EAST_1_PRICES.dynamoPerReadUnit * 1e6, 0.125);
  });
});
