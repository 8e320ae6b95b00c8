/**
 * The figures core reports (lambdas/core/metrics.ts), where the events happen: admissions and queue
 * wait at every admission the store commits, drain latency per drain pass, expiries and launch
 * failures at the workflow's Release and Requeue. The real ASL over DynamoDB Local, with a recording
 * Metrics port in the plane's Deps (on AWS it is Powertools' EMF, test/unit/powertools.test.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Metrics } from '../../lambdas/core/deps.js';
import { NoCapacity } from '../../lambdas/core/errors.js';
import { JobState } from '../../lambdas/core/job.js';
import { submitJob } from '../../lambdas/core/jobs.js';
import { METRIC } from '../../lambdas/core/metrics.js';
import { template, waitForState, worldPerTest, wrapCompute, type World } from '../support/harness.js';
import { alice } from '../support/identities.js';

const TEMPLATES = [
  template({ name: 'short', command: ['sleep', '1'], gpus: 2 }),
  template({ name: 'sleep', command: ['sleep', '30'] }),
];
const setup = worldPerTest({
  pools: [{ name: 'local', gpus: 2 }],
  templates: TEMPLATES,
  policy: { launchBackoffSeconds: 1, maxLaunchBackoffSeconds: 2 },
});

interface Recorded {
  name: string;
  value: number;
  dimensions?: Record<string, string>;
}

/** The plane's Deps, measured: what every step and the API see from now on. */
function measure(world: World): Recorded[] {
  const recorded: Recorded[] = [];
  const metrics: Metrics = {
    count: (name, value = 1, dimensions) => void recorded.push({ name, value, ...(dimensions ? { dimensions } : {}) }),
    milliseconds: (name, value) => void recorded.push({ name, value }),
  };
  world.deps.metrics = metrics;
  return recorded;
}

const named = (recorded: Recorded[], name: string) => recorded.filter((r) => r.name === name);

describe('metrics core reports (real ASL, DynamoDB Local)', () => {
  it('counts each admission once, with its queue wait, and times the drain that admitted the second job', async () => {
    const world = await setup();
    const recorded = measure(world);
    const first = (await submitJob(world.deps, alice, { template: 'short' })).job;
    assert.equal(first.state, JobState.LAUNCHING, 'admitted at its submit');
    const second = (await submitJob(world.deps, alice, { template: 'short' })).job;
    assert.equal(second.state, JobState.WAITING);
    await waitForState(world.store, second.id, [JobState.SUCCEEDED], 30_000);
    await waitForState(world.store, first.id, [JobState.SUCCEEDED]);

    assert.equal(named(recorded, METRIC.admissions).length, 2);
    const waits = named(recorded, METRIC.queueWait).map((r) => r.value);
    assert.equal(waits.length, 2);
    assert.equal(waits[0], 0, 'the first job never queued');
    assert.ok(waits[1] > 0, 'the second waited for the first');
    assert.ok(named(recorded, METRIC.drainLatency).length >= 1, 'the release drained the pool');
    assert.deepEqual(named(recorded, METRIC.expiries), []);
    assert.deepEqual(named(recorded, METRIC.launchFailures), []);
  });

  it('a launch that found no capacity is a launch failure by its error name; the job is admitted again', async () => {
    let refusals = 1;
    const world = await setup({
      wrapCompute: (real) =>
        wrapCompute(real, {
          launch: async (job) => {
            if (refusals-- > 0) throw new NoCapacity('no capacity for pool local');
            return real.launch(job);
          },
        }),
    });
    const recorded = measure(world);
    const { job } = await submitJob(world.deps, alice, { template: 'short' });
    await waitForState(world.store, job.id, [JobState.SUCCEEDED], 30_000);
    assert.deepEqual(named(recorded, METRIC.launchFailures), [
      { name: METRIC.launchFailures, value: 1, dimensions: { reason: 'NoCapacity' } },
    ]);
    assert.equal(named(recorded, METRIC.admissions).length, 2, 'admitted at submit, and again after the backoff');
  });

  it('a job whose live timeout ran out is an expiry', async () => {
    const world = await setup();
    const recorded = measure(world);
    const { job } = await submitJob(world.deps, alice, { template: 'sleep', liveTimeoutMinutes: 0.03 });
    await waitForState(world.store, job.id, [JobState.EXPIRED], 15_000);
    // Release counts the expiry just after the write that made the job EXPIRED: wait for it, bounded.
    await settled(() => named(recorded, METRIC.expiries).length > 0, 5_000);
    assert.equal(named(recorded, METRIC.expiries).length, 1);
    assert.deepEqual(named(recorded, METRIC.launchFailures), []);
  });
});

async function settled(done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
}
