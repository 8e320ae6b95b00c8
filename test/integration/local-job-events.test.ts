/**
 * One event path: the local control plane's `Job State Change` events come
 * from DynamoDB Local's stream of the jobs table, through the stream publisher
 * AWS runs, onto the local bus. Every state change is published once per
 * change, and a plane restarted mid-job resumes from its checkpoint: what was
 * stored while no reader ran is published after the restart, and what was
 * published before it is not published again. DynamoDB Local killed mid-job
 * (data on disk) comes back, and the stream reader goes on where it was.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Identity } from '../../lambdas/core/identity.js';
import { submitJob } from '../../lambdas/core/jobs.js';
import { JobState } from '../../lambdas/core/job.js';
import { LocalConfig, parse } from '../../lambdas/core/schemas.js';
import { startControlPlane, type ControlPlane, type ControlPlaneOptions } from '../../lambdas/local/control-plane.js';
import type { JobStateChange } from '../../lambdas/ports/events.js';
import { quietLog, waitFor, waitForState } from '../support/harness.js';
import { localPlaneConfig, localTemplate } from '../support/local-plane.js';

const alice: Identity = { name: 'alice', projects: ['vision'], admin: false };
const LIFE = [JobState.PENDING, JobState.LAUNCHING, JobState.RUNNING, JobState.STOPPING, JobState.SUCCEEDED];

describe('local job events from the jobs table stream', () => {
  let dir: string;
  const planes: ControlPlane[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flare-job-events-'));
  });
  afterEach(async () => {
    for (const plane of planes.splice(0)) await plane.stop();
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  });

  const config = (dataDir: string) =>
    parse(
      LocalConfig,
      localPlaneConfig({
        dataDir,
        users: [{ name: 'root', token: 'root-token-0123456789abcdefg', admin: true }],
        pools: [{ name: 'local', gpus: 1 }],
        templates: [localTemplate('short', ['sh', '-c', 'sleep 2'])],
      }),
    );
  const start = async (dataDir: string, options: ControlPlaneOptions = {}) => {
    // Subscribed before the plane starts: what it publishes during start-up (changes stored while it was down) counts.
    const seen: JobStateChange[] = [];
    const plane = await startControlPlane(config(dataDir), {
      log: quietLog,
      compute: { pollMs: 100, stopGraceMs: 1000 },
      onEvent: (event) => void seen.push(event),
      ...options,
    });
    planes.push(plane);
    return { plane, seen };
  };
  const statesOf = (events: JobStateChange[], jobId: string) =>
    events.filter((e) => e.jobId === jobId).map((e) => e.state);

  it('publishes every state change of a job once, in order, from the stream', async () => {
    const { plane, seen } = await start(join(dir, 'once'), { inMemory: true });
    const submitted = Date.now();
    const { job } = await submitJob(plane.deps, alice, { template: 'short' });
    await waitForState(plane.deps.jobs, job.id, [JobState.SUCCEEDED]);
    await plane.jobEvents.drained();
    assert.deepEqual(statesOf(seen, job.id), LIFE);
    // Dated to the second of the change, as AWS dates stream records (DynamoDB Local dates them to the minute).
    for (const e of seen.filter((e) => e.jobId === job.id))
      assert.ok(
        Date.parse(e.at) >= Math.floor(submitted / 1000) * 1000 && Date.parse(e.at) <= Date.now(),
        `${e.state} at ${e.at}`,
      );
    const mine = seen.filter((e) => e.jobId === job.id);
    assert.deepEqual(
      mine.map((e) => e.previousState),
      [null, ...LIFE.slice(0, -1)],
    );
    assert.equal(new Set(mine.map((e) => e.eventId)).size, LIFE.length, 'one event id per change');
  });

  it('resumes from its checkpoint after a restart mid-job: nothing lost, nothing published twice', async () => {
    const dataDir = join(dir, 'restart');
    const first = await start(dataDir);
    const { job } = await submitJob(first.plane.deps, alice, { template: 'short' });
    await waitFor('the RUNNING event', async () => statesOf(first.seen, job.id).includes(JobState.RUNNING));
    await first.plane.stop();
    planes.length = 0;

    const second = await start(dataDir);
    await waitForState(second.plane.deps.jobs, job.id, [JobState.SUCCEEDED]);
    await second.plane.jobEvents.drained();
    assert.deepEqual(statesOf(first.seen, job.id), LIFE.slice(0, 3));
    assert.deepEqual(
      statesOf(second.seen, job.id),
      LIFE.slice(3),
      'the restarted plane starts after the last change published',
    );
  });

  it('goes on reading after DynamoDB Local is killed mid-job and restarted by the plane', async () => {
    const { plane, seen } = await start(join(dir, 'killed'));
    const { job } = await submitJob(plane.deps, alice, { template: 'short' });
    await waitFor('the RUNNING event', async () => statesOf(seen, job.id).includes(JobState.RUNNING));
    process.kill(plane.dynamodb.pid()!, 'SIGKILL');
    await waitForState(plane.deps.jobs, job.id, [JobState.SUCCEEDED], 60_000);
    await plane.jobEvents.drained(60_000);
    // At least once: a repeat carries the same eventId and is dropped as the notifier drops it.
    const once = [...new Map(seen.filter((e) => e.jobId === job.id).map((e) => [e.eventId, e.state])).values()];
    assert.deepEqual(once, LIFE);
  });

  it('publishes after a restart the changes stored while no reader ran', async () => {
    const dataDir = join(dir, 'unread');
    // A reader that reads once at start and then not for the rest of the test: the job's changes stay unpublished.
    const first = await start(dataDir, { eventPollMs: 3_600_000 });
    await first.plane.jobEvents.drained();
    const { job } = await submitJob(first.plane.deps, alice, { template: 'short' });
    await waitForState(first.plane.deps.jobs, job.id, [JobState.RUNNING]);
    await first.plane.stop();
    planes.length = 0;
    assert.deepEqual(statesOf(first.seen, job.id), []);

    const second = await start(dataDir);
    await waitForState(second.plane.deps.jobs, job.id, [JobState.SUCCEEDED]);
    await second.plane.jobEvents.drained();
    assert.deepEqual(statesOf(second.seen, job.id), LIFE);
  });
});
