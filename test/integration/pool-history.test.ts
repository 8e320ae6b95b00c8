/**
 * GET /v1/pools/{name}/history over the real API handler and DynamoDB Local:
 * the GPUs each project's jobs held, step by step, from the jobs the store
 * keeps; other projects summed unnamed for a member; the GPUs held now and
 * when they come back (a running job's expiry).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { JobState } from '../../lambdas/core/job.js';
import { OTHER_PROJECTS } from '../../lambdas/core/pool-history.js';
import { apiWorld, caller, startDynamo, type ApiWorld, type Dynamo } from '../support/harness.js';
import { jobRecord } from '../support/jobs.js';

const ALICE = caller('alice', 'vision');
const ROOT = caller('root', 'admin');
const NOW = Date.parse('2030-06-01T12:00:00.000Z');
const at = (minutesFromNow: number) => new Date(NOW + minutesFromNow * 60_000).toISOString();

/** GPU-hours under a series: its mean GPUs per step times the step. */
const gpuHoursOf = (gpus: number[], stepSeconds: number) =>
  Math.round(gpus.reduce((sum, g) => sum + g, 0) * stepSeconds) / 3600;

describe('GET /v1/pools/{name}/history', () => {
  let dynamo: Dynamo;
  let w: ApiWorld;

  before(async () => {
    dynamo = await startDynamo();
    w = await apiWorld(dynamo, {
      pools: [
        { name: 'local', gpus: 4 },
        { name: 'other', gpus: 4 },
      ],
    });
    w.deps.now = () => new Date(NOW);
    const job = (overrides: Parameters<typeof jobRecord>[0]) =>
      w.store.createJob(jobRecord({ pool: 'local', createdAt: at(-200), ...overrides }));
    // vision: 2 GPUs from 2 h ago to 1 h ago.
    await job({
      id: 'job-done',
      gpus: 2,
      state: JobState.SUCCEEDED,
      admittedAt: at(-120),
      startedAt: at(-119),
      finishedAt: at(-60),
    });
    // audio: 1 GPU for the last 30 minutes, running until its expiry in 30 minutes.
    await job({
      id: 'job-run',
      project: 'audio',
      owner: 'bob',
      state: JobState.RUNNING,
      admittedAt: at(-30),
      startedAt: at(-30),
      expiresAt: at(30),
      heldGpus: 1,
    });
    // Never admitted, and another pool's: neither counts.
    await job({ id: 'job-wait', state: JobState.WAITING });
    await job({
      id: 'job-elsewhere',
      pool: 'other',
      state: JobState.SUCCEEDED,
      admittedAt: at(-50),
      finishedAt: at(-10),
    });
  });
  after(() => dynamo.local.stop());

  it('a member sees its projects by name, the rest summed unnamed, and when held GPUs come back', async () => {
    const { status, body } = await w.call('GET', '/v1/pools/local/history', ALICE, { query: { hours: '3' } });
    assert.equal(status, 200);
    assert.equal(body.from, at(-180));
    assert.equal(body.to, at(0));
    assert.equal(body.times.length * body.stepSeconds, 3 * 3600);
    assert.deepEqual(
      body.series.map((s: { project: string }) => s.project),
      ['vision', OTHER_PROJECTS],
    );
    const [vision, others] = body.series;
    assert.equal(gpuHoursOf(vision.gpus, body.stepSeconds), 2);
    assert.equal(gpuHoursOf(others.gpus, body.stepSeconds), 0.5);
    // The step 90 minutes back lies inside the vision job's hold and before the audio job's.
    const mid = body.times.indexOf(at(-90));
    assert.deepEqual([vision.gpus[mid], others.gpus[mid]], [2, 0]);
    assert.equal(others.gpus.at(-1), 1);
    assert.deepEqual(body.releases, [{ at: at(30), gpus: 1 }]);
  });

  it('an admin sees every project by name', async () => {
    const { body } = await w.call('GET', '/v1/pools/local/history', ROOT, { query: { hours: '3' } });
    assert.deepEqual(
      body.series.map((s: { project: string }) => s.project),
      ['audio', 'vision'],
    );
  });

  it('a window out of range is a 400 naming hours; an unknown pool a 404', async () => {
    const bad = await w.call('GET', '/v1/pools/local/history', ALICE, { query: { hours: '0' } });
    assert.equal(bad.status, 400);
    assert.match(JSON.stringify(bad.body.error.details), /hours/);
    assert.equal((await w.call('GET', '/v1/pools/nope/history', ALICE)).status, 404);
  });
});
