/**
 * `PATCH /v1/jobs/{id}` through the API handler, over DynamoDB Local, the real
 * ASL in aws-local-stepfunctions and real processes: renames, live-timeout
 * changes before and during a run, the workflow's timer and the local
 * runner's dead-man deadline following them, and the refusals.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { deleteJob, submitJob } from '../../lambdas/core/jobs.js';
import { WorkflowsUnavailable } from '../../lambdas/core/errors.js';
import { JobState, type Job } from '../../lambdas/core/job.js';
import { awaitOutcomeStep, expiryFor, rearmStep } from '../../lambdas/core/lifecycle.js';
import { WorkflowState } from '../../lambdas/core/workflow.js';
import { createApiHandler } from '../../lambdas/handlers/http/api.js';
import type { Workflows } from '../../lambdas/ports/workflows.js';
import {
  executionsOf,
  gpusHeld,
  template,
  waitFor,
  waitForEnd,
  waitForState,
  worldPerTest,
  wrapCompute,
  type World,
} from '../support/harness.js';
import { alice } from '../support/identities.js';
import { apiEvent, invokeApi, type ApiResponse, type Claims } from '../support/api-calls.js';
import { fieldsOf } from '../support/api-errors.js';

const ALICE: Claims = { sub: 'alice', 'cognito:groups': '[vision]' };
const BOB: Claims = { sub: 'bob', 'cognito:groups': '[audio]' };
const MAX_MINUTES = 30;

const TEMPLATES = [
  template({ name: 'sleep', command: ['sleep', '60'], maxLiveTimeoutMinutes: MAX_MINUTES }),
  template({ name: 'nap', command: ['sleep', '3'], maxLiveTimeoutMinutes: MAX_MINUTES }),
  template({ name: 'ok', command: ['true'] }),
  template({ name: 'big', command: ['sleep', '60'], gpus: 2 }),
];

const setup = worldPerTest({ pools: [{ name: 'local', gpus: 2 }], templates: TEMPLATES });

/** The API Lambda over the world's deps, as `claims` (default alice). */
const call = (world: World, method: string, path: string, body?: unknown, claims: Claims = ALICE) =>
  invokeApi(
    createApiHandler(() => world.deps),
    apiEvent(method, path, { body, as: claims }),
  );

const patch = (world: World, id: string, body: unknown, claims?: Claims) =>
  call(world, 'PATCH', `/v1/jobs/${id}`, body, claims);

function assertStatus(response: ApiResponse, status: number): void {
  assert.equal(response.status, status, JSON.stringify(response.body));
}

async function submitRunning(world: World, templateName: string, liveTimeoutMinutes?: number): Promise<Job> {
  const { job } = await submitJob(world.deps, alice, {
    template: templateName,
    ...(liveTimeoutMinutes !== undefined ? { liveTimeoutMinutes } : {}),
  });
  return waitForState(world.store, job.id, [JobState.RUNNING]);
}

/** The expiry the local runner's own dead-man switch enforces. */
async function runnerExpiry(world: World, jobId: string): Promise<string | undefined> {
  const spec = JSON.parse(await readFile(join(world.dataDir, 'jobs', jobId, 'spec.json'), 'utf8')) as {
    expiresAt?: string;
  };
  return spec.expiresAt;
}

const statesOf = (world: World, jobId: string): string[] => executionsOf(world, jobId).flatMap((e) => e.states);
const REARM_LOOP = [WorkflowState.RunEnded, WorkflowState.Rearm, WorkflowState.Rearmed, WorkflowState.Run];

describe('PATCH /v1/jobs/{id} (API handler, DynamoDB Local, real ASL and processes)', () => {
  it('extends a running job: it runs past its first expiry, the timer and the runner follow, and it expires at the new time', async () => {
    const world = await setup();
    const running = await submitRunning(world, 'sleep', 0.05); // 3 s
    const firstExpiry = running.expiresAt!;

    const response = await patch(world, running.id, { liveTimeoutMinutes: 0.15 }); // 9 s from its start

    assertStatus(response, 200);
    const expected = expiryFor(running.startedAt!, 0.15);
    assert.equal(response.body.liveTimeoutMinutes, 0.15);
    assert.equal(response.body.expiresAt, expected);
    assert.equal(response.body.state, JobState.RUNNING);
    assert.equal(response.body.taskToken, undefined, 'bookkeeping stays inside');
    assert.equal((await call(world, 'GET', `/v1/jobs/${running.id}`)).body.expiresAt, expected);
    await waitFor(
      'the runner to carry the new expiry',
      async () => (await runnerExpiry(world, running.id)) === expected,
    );

    const done = await waitForEnd(world.store, running.id, 30_000);
    assert.equal(done.state, JobState.EXPIRED);
    assert.equal(done.stateReason, 'live timeout reached');
    assert.ok(
      Date.parse(done.finishedAt!) >= Date.parse(expected),
      `finished ${done.finishedAt}, not before the new expiry ${expected} (first expiry ${firstExpiry})`,
    );
    // The event follows the stored state: wait for it before reading the whole list.
    await waitFor('the EXPIRED event', async () => world.events.statesOf(running.id).includes('EXPIRED'));
    assert.deepEqual(
      world.events.statesOf(running.id),
      ['PENDING', 'LAUNCHING', 'RUNNING', 'STOPPING', 'EXPIRED'],
      'a timeout change publishes no state change',
    );
  });

  it('shortens a running job: it expires at the new time, long before the old one', async () => {
    const world = await setup();
    const running = await submitRunning(world, 'sleep', 20);

    const minutes = (Date.now() - Date.parse(running.startedAt!) + 2000) / 60_000;
    const response = await patch(world, running.id, { liveTimeoutMinutes: minutes });

    assertStatus(response, 200);
    const expected = expiryFor(running.startedAt!, minutes);
    assert.equal(response.body.expiresAt, expected);
    const done = await waitForEnd(world.store, running.id, 20_000);
    assert.equal(done.state, JobState.EXPIRED);
    assert.ok(Date.parse(done.finishedAt!) >= Date.parse(expected), 'not stopped before the new expiry');
    assert.ok(Date.parse(done.finishedAt!) < Date.parse(running.expiresAt!), 'stopped before the old expiry');
    assert.deepEqual(await gpusHeld(world), { pool: 0, project: 0 });
  });

  it('a shortening answered 503 because the wake-up was refused takes effect when the client repeats it', async () => {
    const world = await setup();
    const running = await submitRunning(world, 'sleep', 20);
    await waitFor('the run to wait on its token', async () => !!(await world.store.getJob(running.id))?.taskToken);
    const send = world.deps.workflows.sendTaskSuccess.bind(world.deps.workflows);
    let refuse = true;
    world.deps.workflows.sendTaskSuccess = async (token, output) => {
      if (refuse) {
        refuse = false;
        throw new WorkflowsUnavailable('Step Functions is throttled (ThrottlingException); try again later');
      }
      return send(token, output);
    };
    const minutes = (Date.now() - Date.parse(running.startedAt!) + 2000) / 60_000;

    assertStatus(await patch(world, running.id, { liveTimeoutMinutes: minutes }), 503);
    const expected = expiryFor(running.startedAt!, minutes);
    assert.equal((await world.store.getJob(running.id))?.expiresAt, expected, 'the change itself was stored');
    assertStatus(await patch(world, running.id, { liveTimeoutMinutes: minutes }), 200);

    await waitFor(
      'the runner to carry the new expiry',
      async () => (await runnerExpiry(world, running.id)) === expected,
    );
    const done = await waitForEnd(world.store, running.id, 20_000);
    assert.equal(done.state, JobState.EXPIRED);
    assert.ok(Date.parse(done.finishedAt!) < Date.parse(running.expiresAt!), 'stopped long before the old expiry');
  });

  it('shortened into the past, a running job expires at once', async () => {
    const world = await setup();
    const running = await submitRunning(world, 'sleep', 20);
    await waitFor('the job to have run a little', async () => Date.now() - Date.parse(running.startedAt!) > 500);

    const response = await patch(world, running.id, { liveTimeoutMinutes: 0.001 }); // 60 ms after its start

    assertStatus(response, 200);
    assert.ok(Date.parse(response.body.expiresAt) < Date.now(), 'the new expiry has passed');
    const done = await waitForEnd(world.store, running.id, 15_000);
    assert.equal(done.state, JobState.EXPIRED);
    assert.equal(done.stateReason, 'live timeout reached');
    assert.deepEqual(await gpusHeld(world), { pool: 0, project: 0 });
  });

  it("a queued job's new live timeout is the one its run counts from", async () => {
    const world = await setup();
    const blocker = await submitRunning(world, 'big');
    const { job } = await submitJob(world.deps, alice, { template: 'sleep', liveTimeoutMinutes: 20 });
    await waitForState(world.store, job.id, [JobState.WAITING]);

    const response = await patch(world, job.id, { liveTimeoutMinutes: 0.05 });

    assertStatus(response, 200);
    assert.equal(response.body.state, JobState.WAITING);
    assert.equal(response.body.liveTimeoutMinutes, 0.05);
    assert.equal(response.body.expiresAt, undefined, 'no expiry before it starts');
    assert.equal(response.body.queuePosition, 0);
    await deleteJob(world.deps, alice, blocker.id);
    const running = await waitForState(world.store, job.id, [JobState.RUNNING], 20_000);
    assert.equal(running.expiresAt, expiryFor(running.startedAt!, 0.05));
    const done = await waitForEnd(world.store, job.id, 20_000);
    assert.equal(done.state, JobState.EXPIRED);
  });

  it('a change costs one constant rearm loop of transitions, nothing per unit of run time', async () => {
    const world = await setup();
    const baseline = await submitRunning(world, 'nap', 10);
    const changed = await submitRunning(world, 'nap', 10);

    assertStatus(await patch(world, changed.id, { liveTimeoutMinutes: 20 }), 200);

    await waitForState(world.store, baseline.id, [JobState.SUCCEEDED], 20_000);
    await waitForState(world.store, changed.id, [JobState.SUCCEEDED], 20_000);
    await world.workflows.idle();
    const plain = statesOf(world, baseline.id);
    const run = plain.indexOf(WorkflowState.Run);
    assert.ok(run > 0, plain.join(' '));
    assert.deepEqual(statesOf(world, changed.id), [...plain.slice(0, run + 1), ...REARM_LOOP, ...plain.slice(run + 1)]);
  });

  it('renames a job, running or finished, and the new name shows in GET', async () => {
    const world = await setup();
    const running = await submitRunning(world, 'sleep');

    const response = await patch(world, running.id, { name: 'resnet 50, second try' });

    assertStatus(response, 200);
    assert.equal(response.body.name, 'resnet 50, second try');
    assert.equal(response.body.expiresAt, running.expiresAt, 'a rename leaves the expiry alone');
    assert.equal((await call(world, 'GET', `/v1/jobs/${running.id}`)).body.name, 'resnet 50, second try');

    const { job } = await submitJob(world.deps, alice, { template: 'ok' });
    await waitForState(world.store, job.id, [JobState.SUCCEEDED]);
    const renamed = await patch(world, job.id, { name: 'done' });
    assertStatus(renamed, 200);
    assert.equal((await world.store.getJob(job.id))?.name, 'done');
    assert.equal(renamed.body.state, JobState.SUCCEEDED);
  });

  it("a job stored before its max was recorded is held to its template's, found by name", async () => {
    const world = await setup();
    // As older versions stored it: no maxLiveTimeoutMinutes, no templateId; queued (no workflow drives it here).
    const { job: current } = await submitJob(world.deps, alice, { template: 'big' });
    const legacy: Job = {
      ...current,
      id: 'j-0000000000000old',
      state: JobState.PENDING,
      template: 'sleep',
      createdAt: new Date().toISOString(),
    };
    delete legacy.maxLiveTimeoutMinutes;
    delete legacy.templateId;
    for (const key of ['admittedAt', 'heldGpus', 'reservedGpuMs'] as const) delete legacy[key];
    await world.store.createJob(legacy);

    const over = await patch(world, legacy.id, { liveTimeoutMinutes: MAX_MINUTES + 1 });
    assertStatus(over, 400);
    assert.match(over.body.error.details[0].reason, new RegExp(`at most ${MAX_MINUTES}\\b`));
    assertStatus(await patch(world, legacy.id, { liveTimeoutMinutes: MAX_MINUTES }), 200);
    assert.equal((await world.store.getJob(legacy.id))?.liveTimeoutMinutes, MAX_MINUTES);
  });

  it("over the template's max is a 400 naming liveTimeoutMinutes and the max, and changes nothing; the max itself is accepted", async () => {
    const world = await setup();
    const running = await submitRunning(world, 'sleep', 10);

    const over = await patch(world, running.id, { liveTimeoutMinutes: MAX_MINUTES + 0.5, name: 'renamed' });

    assertStatus(over, 400);
    assert.deepEqual(fieldsOf(over), ['liveTimeoutMinutes']);
    assert.match(over.body.error.details[0].reason, new RegExp(`at most ${MAX_MINUTES}\\b`));
    const unchanged = await world.store.getJob(running.id);
    assert.equal(unchanged?.name, running.name);
    assert.equal(unchanged?.liveTimeoutMinutes, 10);
    assert.equal(unchanged?.expiresAt, running.expiresAt);

    const atMax = await patch(world, running.id, { liveTimeoutMinutes: MAX_MINUTES });
    assertStatus(atMax, 200);
    assert.equal(atMax.body.liveTimeoutMinutes, MAX_MINUTES);
    assert.equal(atMax.body.expiresAt, expiryFor(running.startedAt!, MAX_MINUTES));
  });

  it('refuses a body that changes nothing, unknown fields and bad values, naming each; nothing stored', async () => {
    const world = await setup();
    const running = await submitRunning(world, 'sleep', 10);

    const empty = await patch(world, running.id, {});
    assertStatus(empty, 400);
    assert.deepEqual(fieldsOf(empty), ['(body)']);
    const unknown = await patch(world, running.id, { liveTimeoutMinutes: 20, privileged: true });
    assertStatus(unknown, 400);
    assert.deepEqual(fieldsOf(unknown), ['privileged']);
    for (const liveTimeoutMinutes of [0, -1, '5', null, Infinity /* JSON: null */]) {
      const bad = await patch(world, running.id, { liveTimeoutMinutes });
      assertStatus(bad, 400);
      assert.deepEqual(fieldsOf(bad), ['liveTimeoutMinutes']);
    }
    const badName = await patch(world, running.id, { name: 'a\u0000b\nc' });
    assertStatus(badName, 400);
    assert.deepEqual(fieldsOf(badName), ['name']);
    const stored = await world.store.getJob(running.id);
    assert.equal(stored?.liveTimeoutMinutes, 10);
    assert.equal(stored?.expiresAt, running.expiresAt);
    assert.equal(stored?.name, running.name);
  });

  it("another project's job is a 404, as if it did not exist", async () => {
    const world = await setup();
    const running = await submitRunning(world, 'sleep', 10);

    const response = await patch(world, running.id, { liveTimeoutMinutes: 20, name: 'mine now' }, BOB);

    assertStatus(response, 404);
    assert.equal(response.body.error.code, 'not_found');
    assertStatus(await patch(world, 'no-such-job', { name: 'x' }), 404);
    const stored = await world.store.getJob(running.id);
    assert.equal(stored?.liveTimeoutMinutes, 10);
    assert.equal(stored?.name, running.name);
  });

  it("a finished job's live timeout cannot change: 409", async () => {
    const world = await setup();
    const { job } = await submitJob(world.deps, alice, { template: 'ok' });
    await waitForState(world.store, job.id, [JobState.SUCCEEDED]);

    const response = await patch(world, job.id, { liveTimeoutMinutes: 20, name: 'also renamed?' });

    assertStatus(response, 409);
    assert.match(response.body.error.message, /SUCCEEDED/);
    assert.equal(
      (await world.store.getJob(job.id))?.name,
      job.name,
      'a refused request changes nothing, the rename included',
    );
  });

  it("a stopping job's live timeout cannot change: 409", async () => {
    let letStop!: () => void;
    const stopping = new Promise<void>((resolve) => (letStop = resolve));
    const world = await setup({
      wrapCompute: (real) =>
        wrapCompute(real, {
          stop: async (job) => {
            await stopping;
            return real.stop(job);
          },
        }),
    });
    const running = await submitRunning(world, 'sleep', 10);
    await deleteJob(world.deps, alice, running.id);
    await waitForState(world.store, running.id, [JobState.STOPPING]);

    const response = await patch(world, running.id, { liveTimeoutMinutes: 20 });

    letStop();
    assertStatus(response, 409);
    assert.match(response.body.error.message, /stopping/);
    const done = await waitForEnd(world.store, running.id, 15_000);
    assert.equal(done.state, JobState.CANCELLED);
    assert.equal(done.liveTimeoutMinutes, 10);
  });
});

describe('the timer follows a change that raced the Run wait (AwaitOutcome, Rearm)', () => {
  /** A RUNNING job stored directly, with no workflow of its own. */
  async function runningJob(world: World, overrides: Partial<Job> = {}): Promise<Job> {
    const startedAt = new Date(Date.now() - 1000).toISOString();
    const job: Job = {
      id: world.deps.newId(),
      name: 'direct',
      project: 'vision',
      owner: 'alice',
      template: 'sleep',
      pool: 'local',
      image: 'docker.io/library/busybox:1.36',
      command: ['sleep', '60'],
      env: {},
      gpus: 1,
      nodeCount: 1,
      liveTimeoutMinutes: 10,
      state: JobState.PENDING,
      createdAt: startedAt,
    };
    await world.store.createJob(job);
    return world.store.updateJob(job.id, [JobState.PENDING], {
      state: JobState.RUNNING,
      startedAt,
      expiresAt: expiryFor(startedAt, 10),
      instanceIds: ['local-x'],
      ...overrides,
    });
  }

  function recording(world: World) {
    const sent: Array<{ token: string; output: unknown }> = [];
    const moved: Array<{ jobId: string; expiresAt: string }> = [];
    const workflows: Workflows = {
      ...world.deps.workflows,
      sendTaskSuccess: async (token, output) => void sent.push({ token, output }),
    };
    const compute = wrapCompute(world.deps.compute, {
      updateExpiry: async (job, expiresAt) => void moved.push({ jobId: job.id, expiresAt }),
    });
    return { deps: { ...world.deps, workflows, compute }, sent, moved };
  }

  it('a wait armed for the stored expiry just waits', async () => {
    const world = await setup();
    const job = await runningJob(world);
    const { deps, sent } = recording(world);

    await awaitOutcomeStep(deps, job.id, 'token-1', job.expiresAt);

    assert.deepEqual(sent, []);
    assert.equal((await world.store.getJob(job.id))?.taskToken, 'token-1');
  });

  it('a wait armed for another expiry (the change found no token to end) ends itself with rearm', async () => {
    const world = await setup();
    const job = await runningJob(world);
    const { deps, sent } = recording(world);

    await awaitOutcomeStep(deps, job.id, 'token-1', expiryFor(job.startedAt!, 5));

    assert.deepEqual(sent, [{ token: 'token-1', output: { rearm: true } }]);
  });

  it('an expiry that disagrees with the live timeout (a change raced the start) is rearmed and put right', async () => {
    const world = await setup();
    const job = await runningJob(world, { liveTimeoutMinutes: 20 });
    const { deps, sent, moved } = recording(world);

    await awaitOutcomeStep(deps, job.id, 'token-1', job.expiresAt);
    const timer = await rearmStep(deps, job.id);

    const fixed = expiryFor(job.startedAt!, 20);
    assert.deepEqual(sent, [{ token: 'token-1', output: { rearm: true } }]);
    assert.equal((await world.store.getJob(job.id))?.expiresAt, fixed);
    assert.equal(timer.expiresAt, fixed);
    assert.equal(timer.running, true);
    assert.ok(timer.timeoutSeconds > 18 * 60 && timer.timeoutSeconds <= 20 * 60, String(timer.timeoutSeconds));
    assert.deepEqual(moved, [{ jobId: job.id, expiresAt: fixed }], 'the instances learn the new deadline');
  });

  it('Rearm ends the run when the time is up or the job no longer runs, moving no deadline', async () => {
    const world = await setup();
    const expired = await runningJob(world, {
      liveTimeoutMinutes: 0.001,
      expiresAt: expiryFor(new Date(Date.now() - 1000), 0.001),
      startedAt: new Date(Date.now() - 1000).toISOString(),
    });
    const cancelled = await runningJob(world);
    await world.store.recordOutcome(cancelled.id, { kind: 'cancelled', by: 'alice' });
    const { deps, moved } = recording(world);

    assert.equal((await rearmStep(deps, expired.id)).running, false);
    assert.equal((await rearmStep(deps, cancelled.id)).running, false);
    assert.deepEqual(moved, []);
  });
});
