/**
 * The lifecycle paths that exist because compute is EC2: no capacity (requeue
 * with backoff), an agent that never comes online, completion reported by an
 * event (SSM command status), a command SSM never delivered, an instance lost (EC2 state change), multi-node
 * exits. The real ASL runs in aws-local-stepfunctions over DynamoDB Local; the
 * compute is the local driver with the failure injected, or a stand-in for the
 * EC2 adapter when several instances are needed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EC2Client } from '@aws-sdk/client-ec2';
import { GetCommandInvocationCommand, SSMClient } from '@aws-sdk/client-ssm';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { Ec2SsmCompute } from '../../lambdas/adapters/ec2-ssm-compute.js';
import { reportInstanceLost, reportNodeExit } from '../../lambdas/core/completion.js';
import { NoCapacity } from '../../lambdas/core/errors.js';
import { deleteJob, getJob, submitJob } from '../../lambdas/core/jobs.js';
import { JobState, type Job } from '../../lambdas/core/job.js';
import { createComputeEventsHandler } from '../../lambdas/handlers/events/compute-events.js';
import type { Compute, Launched } from '../../lambdas/ports/compute.js';
import {
  gpusHeld,
  template,
  waitFor,
  waitForEnd,
  waitForState,
  worldPerTest,
  wrapCompute,
} from '../support/harness.js';
import { alice, bob } from '../support/identities.js';
import { readFixture } from '../support/fixtures.js';

const TEMPLATES = [
  template({ name: 'ok', command: ['sh', '-c', 'exit 0'] }),
  template({ name: 'sleep', command: ['sleep', '30'] }),
  template({ name: 'audio-sleep', project: 'audio', command: ['sleep', '30'] }),
  template({ name: 'pair', command: ['sleep', '30'], nodeCount: 2 }),
];

const setup = worldPerTest({
  pools: [{ name: 'local', gpus: 2 }],
  templates: TEMPLATES,
  policy: { launchBackoffSeconds: 1, maxLaunchBackoffSeconds: 2 },
});
const wrap = wrapCompute;

describe('EC2 paths of the lifecycle (real ASL, DynamoDB Local)', () => {
  it('no capacity: GPUs go back, the job waits at the head with the reason, then launches when capacity returns', async () => {
    let refusals = 2;
    const launches: Job[] = [];
    const world = await setup({
      wrapCompute: (real) =>
        wrap(real, {
          launch: async (job): Promise<Launched> => {
            launches.push(job);
            if (refusals-- > 0)
              throw new NoCapacity('no capacity for pool local (g5.xlarge in subnet-a: InsufficientInstanceCapacity)');
            return real.launch(job);
          },
        }),
    });
    const { job } = await submitJob(world.deps, alice, { template: 'ok' });
    const waiting = await waitForState(world.store, job.id, [JobState.WAITING]);
    assert.match(
      waiting.stateReason ?? '',
      /^no capacity for pool local \(g5\.xlarge in subnet-a: InsufficientInstanceCapacity\); next launch attempt after \d{4}-/,
    );
    assert.ok(waiting.retryAt, 'retryAt is set');
    assert.equal(waiting.launchAttempt, 1);
    assert.equal(waiting.heldGpus, undefined);
    assert.deepEqual(await gpusHeld(world), { pool: 0, project: 0 });
    assert.equal((await getJob(world.deps, alice, job.id)).queuePosition, 0);

    const done = await waitForEnd(world.store, job.id, 30_000);
    assert.equal(done.state, JobState.SUCCEEDED);
    assert.deepEqual(
      launches.map((j) => j.launchAttempt ?? 0),
      [0, 1, 2],
      'each launch after a requeue is a new attempt (new client tokens)',
    );
    // The event follows the stored state: wait for it before reading the whole list.
    await waitFor('the SUCCEEDED event of job.id', async () => world.events.statesOf(job.id).includes('SUCCEEDED'));
    assert.deepEqual(world.events.statesOf(job.id), [
      'PENDING',
      'LAUNCHING',
      'WAITING',
      'LAUNCHING',
      'WAITING',
      'LAUNCHING',
      'RUNNING',
      'STOPPING',
      'SUCCEEDED',
    ]);
    const ids = world.events.events.filter((e) => e.jobId === job.id).map((e) => e.eventId);
    assert.equal(new Set(ids).size, ids.length, 'every transition has its own event id');
    assert.deepEqual(await gpusHeld(world), { pool: 0, project: 0 });
  });

  it('a job backing off keeps its place: a younger job of the pool does not start first', async () => {
    let refusals = 1;
    const world = await setup({
      policy: { launchBackoffSeconds: 4, maxLaunchBackoffSeconds: 4 },
      wrapCompute: (real) =>
        wrap(real, {
          launch: async (job) => {
            if (job.project === 'vision' && refusals-- > 0) throw new NoCapacity('no capacity for pool local');
            return real.launch(job);
          },
        }),
    });
    const head = (await submitJob(world.deps, alice, { template: 'sleep' })).job;
    await waitForState(world.store, head.id, [JobState.WAITING]);
    // The pool has room for both, but the head's backoff holds the queue.
    const younger = (await submitJob(world.deps, bob, { template: 'audio-sleep' })).job;
    const blocked = await waitForState(world.store, younger.id, [JobState.WAITING]);
    assert.equal(blocked.stateReason, 'behind 1 older job in pool local');
    assert.equal((await world.store.getJob(head.id))?.state, JobState.WAITING, 'the head is still backing off');
    const headRunning = await waitForState(world.store, head.id, [JobState.RUNNING], 20_000);
    // The drain that admits the head admits the younger job as well, after it.
    const youngerRunning = await waitForState(world.store, younger.id, [JobState.RUNNING], 20_000);
    assert.ok(
      headRunning.admittedAt! <= youngerRunning.admittedAt!,
      `head admitted ${headRunning.admittedAt}, younger ${youngerRunning.admittedAt}`,
    );
  });

  it('an account vCPU limit is requeued too, and raised as an operator event', async () => {
    let refusals = 1;
    const world = await setup({
      wrapCompute: (real) =>
        wrap(real, {
          launch: async (job) => {
            if (refusals-- > 0)
              throw new NoCapacity('g5.xlarge in subnet-a: VcpuLimitExceeded; raise the vCPU service quota', true);
            return real.launch(job);
          },
        }),
    });
    const { job } = await submitJob(world.deps, alice, { template: 'ok' });
    const waiting = await waitForState(world.store, job.id, [JobState.WAITING]);
    assert.match(waiting.stateReason ?? '', /VcpuLimitExceeded/);
    await waitFor('operator event', async () => world.events.operatorEvents.length > 0);
    const [event] = world.events.operatorEvents;
    assert.equal(event.kind, 'capacity-limit');
    assert.equal(event.subject, 'pool/local');
    assert.match(event.reason, /VcpuLimitExceeded/);
    await waitForState(world.store, job.id, [JobState.SUCCEEDED], 30_000);
  });

  it('a job cancelled while it backs off ends CANCELLED and is not launched again', async () => {
    let launches = 0;
    const world = await setup({
      policy: { launchBackoffSeconds: 2, maxLaunchBackoffSeconds: 2 },
      wrapCompute: (real) =>
        wrap(real, {
          launch: async () => {
            launches++;
            throw new NoCapacity('no capacity for pool local');
          },
        }),
    });
    const { job } = await submitJob(world.deps, alice, { template: 'ok' });
    await waitForState(world.store, job.id, [JobState.WAITING]);
    await deleteJob(world.deps, alice, job.id);
    assert.equal((await world.store.getJob(job.id))?.state, JobState.CANCELLED);
    await waitFor('workflows to end', async () => world.workflows.running() === 0, 15_000);
    assert.equal(launches, 1);
    assert.deepEqual(await gpusHeld(world), { pool: 0, project: 0 });
  });

  it('a job cancelled between its admission and its Launch is never launched', async () => {
    const launches: string[] = [];
    const world = await setup({
      wrapCompute: (real) => wrap(real, { launch: async (job) => (launches.push(job.id), real.launch(job)) }),
    });
    // The cancel lands the moment the job is stored admitted: before its workflow starts, before Launch reads the job.
    const createAdmitted = world.deps.jobs.createAdmitted.bind(world.deps.jobs);
    world.deps.jobs = Object.assign(Object.create(world.deps.jobs), {
      createAdmitted: async (...args: Parameters<typeof createAdmitted>) => {
        const stored = await createAdmitted(...args);
        if (stored?.job.state === JobState.LAUNCHING) await deleteJob(world.deps, alice, stored.job.id);
        return stored;
      },
    });
    const { job } = await submitJob(world.deps, alice, { template: 'sleep' });
    const done = await waitForEnd(world.store, job.id, 15_000);
    assert.equal(done.state, JobState.CANCELLED);
    assert.deepEqual(launches, []);
    assert.equal(done.instanceIds, undefined);
    assert.deepEqual(await gpusHeld(world), { pool: 0, project: 0 });
  });

  it('an agent that never comes online fails the job after the bound, stops its compute and releases', async () => {
    const stopped: string[] = [];
    const checked: Array<string[] | undefined> = [];
    const world = await setup({
      policy: { maxComputeChecks: 2 },
      wrapCompute: (real) =>
        wrap(real, {
          launch: async () => ({ instanceIds: ['i-0agent'] }),
          isReady: async (job) => {
            checked.push(job.instanceIds);
            return false;
          },
          stop: async (job) => {
            stopped.push(...(job.instanceIds ?? []));
          },
        }),
    });
    const { job } = await submitJob(world.deps, alice, { template: 'ok' });
    const done = await waitForEnd(world.store, job.id, 30_000);
    assert.equal(done.state, JobState.FAILED);
    assert.match(done.stateReason ?? '', /ComputeNotReady: the instance agent of job .* was not online after 2 checks/);
    // Launch checks once with the instance it stored, AwaitCompute once after the wait: two checks in all.
    assert.deepEqual(checked, [['i-0agent'], ['i-0agent']]);
    await world.workflows.idle();
    assert.deepEqual(
      world.workflows
        .list()
        .find((e) => e.jobId === job.id)!
        .states.slice(0, 5),
      ['Launch', 'ComputeReady', 'WaitForCompute', 'AwaitCompute', 'Stop'],
    );
    assert.deepEqual(stopped, ['i-0agent']);
    assert.deepEqual(await gpusHeld(world), { pool: 0, project: 0 });
  });

  it('completion reported by an event ends the run early, in as many transitions as any run', async () => {
    const world = await setup();
    const { job } = await submitJob(world.deps, alice, { template: 'sleep' });
    const running = await waitForState(world.store, job.id, [JobState.RUNNING]);
    await reportNodeExit(world.deps, job.id, running.instanceIds![0], 0);
    const done = await waitForEnd(world.store, job.id);
    assert.equal(done.state, JobState.SUCCEEDED);
    assert.ok(Date.parse(done.finishedAt!) < Date.parse(done.expiresAt!), 'finished before its live timeout');
    await world.workflows.idle();
    const execution = world.workflows.list().find((e) => e.jobId === job.id)!;
    assert.ok(execution.transitions <= 25, `${execution.transitions} transitions`);
    assert.deepEqual(await gpusHeld(world), { pool: 0, project: 0 });
  });

  it('an instance lost while running fails the job with the reason and releases once', async () => {
    const world = await setup();
    const { job } = await submitJob(world.deps, alice, { template: 'sleep' });
    const running = await waitForState(world.store, job.id, [JobState.RUNNING]);
    const instance = running.instanceIds![0];
    await Promise.all([
      reportInstanceLost(world.deps, job.id, instance, `instance ${instance} is terminated`),
      reportInstanceLost(world.deps, job.id, instance, `instance ${instance} is shutting-down`),
    ]);
    const done = await waitForState(world.store, job.id, [JobState.FAILED, JobState.SUCCEEDED]);
    assert.match(done.stateReason ?? '', /^instance lost: instance .* is (terminated|shutting-down)$/);
    await waitFor('the JobState.FAILED event of job.id', async () =>
      world.events.statesOf(job.id).includes(JobState.FAILED),
    );
    assert.equal(world.events.statesOf(job.id).filter((s) => s === JobState.FAILED).length, 1);
    assert.deepEqual(await gpusHeld(world), { pool: 0, project: 0 });
  });

  it('a container command SSM never delivered (an EventBridge event into compute-events) fails the job at once with the reason and releases once', async () => {
    const instance = 'i-0abc1234def567890';
    const stopped: string[] = [];
    const world = await setup({
      wrapCompute: (real) =>
        wrap(real, {
          launch: async () => ({ instanceIds: [instance] }),
          isReady: async () => true,
          start: async () => undefined,
          stop: async (job) => void stopped.push(...(job.instanceIds ?? [])),
        }),
    });
    const { job } = await submitJob(world.deps, alice, { template: 'sleep' });
    await waitForState(world.store, job.id, [JobState.RUNNING]);
    const ssm = new SSMClient({ region: 'eu-west-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
    mockClient(ssm)
      .on(GetCommandInvocationCommand)
      .resolves({
        Comment: `flare:job=${job.id}`,
        Status: 'TimedOut',
        StatusDetails: 'DeliveryTimedOut',
        ResponseCode: -1,
        ExecutionEndDateTime: '',
      });
    const lookups = new Ec2SsmCompute({
      ec2: new EC2Client({ region: 'eu-west-1' }),
      ssm,
      launchTemplateId: 'lt-1',
      subnetIds: ['subnet-a'],
      pools: {},
    });
    const event = readFixture('events/aws-ssm-command-invocation-delivery-timed-out');
    // Delivered now: the fixture's own time is years ahead, which would read as after expiresAt.
    const handle = createComputeEventsHandler(
      () => world.deps,
      () => lookups,
    );
    await handle({ ...event, time: new Date().toISOString().replace(/\.\d+Z$/, 'Z') }, {} as Context);
    await handle({ ...event, time: new Date().toISOString().replace(/\.\d+Z$/, 'Z') }, {} as Context);

    const done = await waitForEnd(world.store, job.id);
    assert.equal(done.state, JobState.FAILED);
    assert.equal(done.stateReason, 'container command not delivered: SSM DeliveryTimedOut');
    assert.ok(Date.parse(done.finishedAt!) < Date.parse(done.expiresAt!), 'failed long before its live timeout');
    await waitFor('the FAILED event', async () => world.events.statesOf(job.id).includes(JobState.FAILED));
    assert.equal(world.events.statesOf(job.id).filter((s) => s === JobState.FAILED).length, 1);
    assert.deepEqual(stopped, [instance]);
    assert.deepEqual(await gpusHeld(world), { pool: 0, project: 0 });
  });

  it('an instance lost while the agent is awaited ends the job without starting it', async () => {
    let started = 0;
    const world = await setup({
      wrapCompute: (real) =>
        wrap(real, {
          launch: async () => ({ instanceIds: ['i-0lost'] }),
          isReady: async () => false,
          start: async () => {
            started++;
          },
          stop: async () => undefined,
        }),
    });
    const { job } = await submitJob(world.deps, alice, { template: 'ok' });
    await waitFor('instances recorded', async () => (await world.store.getJob(job.id))?.instanceIds?.length);
    await reportInstanceLost(world.deps, job.id, 'i-0lost', 'instance i-0lost is terminated');
    const done = await waitForState(world.store, job.id, [JobState.FAILED, JobState.SUCCEEDED], 20_000);
    assert.equal(done.stateReason, 'instance lost: instance i-0lost is terminated');
    assert.equal(started, 0);
    assert.deepEqual(await gpusHeld(world), { pool: 0, project: 0 });
  });

  it('reports about instances the job does not hold, or after it stopped, change nothing', async () => {
    const world = await setup();
    const { job } = await submitJob(world.deps, alice, { template: 'sleep' });
    await waitForState(world.store, job.id, [JobState.RUNNING]);
    await reportNodeExit(world.deps, job.id, 'i-0someoneelse', 1);
    await reportInstanceLost(world.deps, job.id, 'i-0someoneelse', 'gone');
    await reportNodeExit(world.deps, 'j-0000000000000000', 'i-0someoneelse', 1);
    const still = await world.store.getJob(job.id);
    assert.equal(still?.state, JobState.RUNNING);
    assert.equal(still?.outcome, undefined);
    await deleteJob(world.deps, alice, job.id);
    const done = await waitForState(world.store, job.id, [JobState.CANCELLED]);
    await reportInstanceLost(world.deps, job.id, done.instanceIds?.[0] ?? 'x', 'terminated by Stop');
    assert.equal((await world.store.getJob(job.id))?.state, JobState.CANCELLED);
  });

  describe('multi-node', () => {
    const pair = (real: Compute) =>
      wrap(real, {
        launch: async () => ({ instanceIds: ['i-0rank0', 'i-0rank1'] }),
        isReady: async () => true,
        start: async () => undefined,
        stop: async () => undefined,
      });

    it('succeeds only when every node has exited 0', async () => {
      const world = await setup({ wrapCompute: pair });
      const { job } = await submitJob(world.deps, alice, { template: 'pair' });
      await waitForState(world.store, job.id, [JobState.RUNNING]);
      assert.equal((await world.store.getPool('local'))?.usedGpus, 2);
      await reportNodeExit(world.deps, job.id, 'i-0rank1', 0);
      await reportNodeExit(world.deps, job.id, 'i-0rank1', 0);
      const after = await world.store.getJob(job.id);
      assert.equal(after?.state, JobState.RUNNING);
      assert.deepEqual(after?.nodeExits, { 'i-0rank1': 0 });
      await reportNodeExit(world.deps, job.id, 'i-0rank0', 0);
      const done = await waitForEnd(world.store, job.id);
      assert.equal(done.state, JobState.SUCCEEDED);
      assert.deepEqual(await gpusHeld(world), { pool: 0, project: 0 });
    });

    it('fails at the first node that exits non-zero', async () => {
      const world = await setup({ wrapCompute: pair });
      const { job } = await submitJob(world.deps, alice, { template: 'pair' });
      await waitForState(world.store, job.id, [JobState.RUNNING]);
      await reportNodeExit(world.deps, job.id, 'i-0rank1', 137);
      const done = await waitForEnd(world.store, job.id);
      assert.equal(done.state, JobState.FAILED);
      assert.equal(done.exitCode, 137);
    });
  });

  it("the deployment's default quotas apply to a project without limits, keeping its usage", async () => {
    const world = await setup({ policy: { defaultQuotas: { gpus: 1, jobs: 5 } } });
    const a = (await submitJob(world.deps, alice, { template: 'sleep' })).job;
    await waitForState(world.store, a.id, [JobState.RUNNING]);
    assert.deepEqual(await world.store.getQuota('vision', 'gpus'), {
      project: 'vision',
      resource: 'gpus',
      hardLimit: 1,
      used: 1,
    });
    const b = (await submitJob(world.deps, alice, { template: 'sleep' })).job;
    const waiting = await waitForState(world.store, b.id, [JobState.WAITING]);
    assert.equal(waiting.stateReason, 'project vision has 0 of 1 GPUs free, needs 1');
    assert.equal((await world.store.getQuota('vision', 'jobs'))?.hardLimit, 5);
    // A limit an admin set is never replaced by the default.
    await world.store.putQuota({ project: 'audio', resource: 'gpus', hardLimit: 2 });
    await submitJob(world.deps, bob, { template: 'audio-sleep' });
    assert.equal((await world.store.getQuota('audio', 'gpus'))?.hardLimit, 2);
  });
});
