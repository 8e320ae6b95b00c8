/**
 * What every artifact scenario does through the deployed API and the fake:
 * a catalog set up by an admin, jobs submitted and watched by a member, the
 * EC2 and SSM requests a job caused, and the pool's GPUs read back.
 */
import assert from 'node:assert/strict';
import type { RecordedCall } from './types.js';
import type { Artifact } from './artifact.js';
import { assertCallsAllowed } from './iam-check.js';
import type { Caller } from './http-api.js';

export const admin: Caller = { sub: 'root', groups: ['admin'] };
export const alice: Caller = { sub: 'alice', groups: ['vision'] };
export const IMAGE = {
  name: 'cuda',
  reference: 'nvidia/cuda:12.4.1-base-ubuntu22.04',
  digest: `sha256:${'a'.repeat(64)}`,
};
export const POOL = 'a10g';
/** The template most scenarios run. */
export const TRAIN = { name: 'train', command: ['python', 'train.py'] };

export interface JobView {
  id: string;
  state: string;
  stateReason?: string;
  [key: string]: unknown;
}

/** An admin registers the image and a template of project vision, as on a fresh deployment. */
export async function setUpCatalog(
  a: Artifact,
  templates: Array<{ name: string; command: string[]; [k: string]: unknown }> = [TRAIN],
): Promise<void> {
  const image = await a.http.request('POST', '/v1/images', { caller: admin, body: IMAGE });
  assert.ok(
    [200, 201, 409].includes(image.status),
    `POST /v1/images: ${image.status} ${JSON.stringify(image.body)} ${image.error?.errorMessage ?? ''}`,
  );
  for (const t of templates) {
    const created = await a.http.request('POST', '/v1/templates', {
      caller: admin,
      body: { project: 'vision', pool: POOL, image: IMAGE.name, ...t },
    });
    assert.ok(
      [200, 201, 409].includes(created.status),
      `POST /v1/templates: ${created.status} ${JSON.stringify(created.body)} ${created.error?.errorMessage ?? ''}`,
    );
  }
}

export async function submit(a: Artifact, body: Record<string, unknown>, caller = alice): Promise<JobView> {
  const response = await a.http.request('POST', '/v1/jobs', { caller, body });
  assert.equal(
    response.status,
    202,
    `POST /v1/jobs: ${response.status} ${JSON.stringify(response.body)} ${response.error?.errorMessage ?? ''}`,
  );
  return response.body as JobView;
}

export async function getJob(a: Artifact, id: string, caller = alice): Promise<JobView> {
  const response = await a.http.request('GET', `/v1/jobs/${id}`, { caller });
  assert.equal(response.status, 200, `GET /v1/jobs/${id}: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body as JobView;
}

/** A job of template `train` (set up first), submitted and seen RUNNING. */
export async function submitUntilRunning(
  a: Artifact,
  body: Record<string, unknown> = { template: 'train' },
): Promise<JobView> {
  await setUpCatalog(a);
  const submitted = await submit(a, body);
  const job = await waitForState(a, submitted.id, ['RUNNING', 'FAILED']);
  assert.equal(job.state, 'RUNNING', job.stateReason);
  return job;
}

/**
 * A job of template `train` (set up first) that runs, with the Run state waiting on it: from then on an
 * end the API or an event reports reaches that wait through its token (before, the tasks function sees
 * the outcome itself). Its container command's id and its instance.
 */
export async function runningJob(
  a: Artifact,
  body: Record<string, unknown> = { template: 'train' },
): Promise<{ job: JobView; instanceId: string; commandId: string }> {
  const job = await submitUntilRunning(a, body);
  const command = await waitFor('the container command', () =>
    a.fake.commands().find((c) => c.comment === `flare:job=${job.id}`),
  );
  await waitFor('the Run state to wait on the job', () =>
    callsSince(a, 0, 'UpdateItem', job.id).find((c) => String(c.params.UpdateExpression).includes('taskToken')),
  );
  return { job, instanceId: command.instanceIds[0]!, commandId: command.commandId };
}

/** Its owner alice cancels a running job: 202, then CANCELLED. */
export async function cancelJob(a: Artifact, id: string): Promise<JobView> {
  const cancel = await a.http.request('DELETE', `/v1/jobs/${id}`, { caller: alice });
  assert.equal(cancel.status, 202, JSON.stringify(cancel.body));
  const done = await waitForState(a, id, ['CANCELLED', 'FAILED', 'SUCCEEDED']);
  assert.equal(done.state, 'CANCELLED');
  return done;
}

/**
 * What a job that ran leaves once it ended in `last`: its GPU back, each state published once
 * (a second release would take the counter below zero or publish a second terminal event), and
 * every call so far one the template's policies allow.
 */
export async function assertReleasedOnce(a: Artifact, jobId: string, last: string): Promise<void> {
  assert.equal((await pool(a)).usedGpus, 0);
  assert.deepEqual(publishedStates(a, jobId), ['PENDING', 'LAUNCHING', 'RUNNING', 'STOPPING', last]);
  await assertCallsAllowed(a.template, a.fake.calls(), a.fake.tagsOf);
}

/** The same, with its one instance terminated once since `from` (a `mark()` taken while it ran). */
export async function assertTerminatedOnce(
  a: Artifact,
  from: number,
  jobId: string,
  instanceId: string,
  last: string,
): Promise<void> {
  assert.deepEqual(
    callsSince(a, from, 'TerminateInstances').map((c) => c.params),
    [{ InstanceId: [instanceId] }],
  );
  await assertReleasedOnce(a, jobId, last);
}

/** Polls the API until the job is in one of `states` (the harness's pollers run meanwhile). */
export async function waitForState(a: Artifact, id: string, states: string[], timeoutMs = 60_000): Promise<JobView> {
  const deadline = Date.now() + timeoutMs;
  let job = await getJob(a, id);
  while (!states.includes(job.state)) {
    if (Date.now() > deadline)
      throw new Error(
        `job ${id} is ${job.state} (${job.stateReason ?? ''}), not ${states.join('|')} after ${timeoutMs} ms; errors the functions logged:\n${errorLogs(a).join('\n')}`,
      );
    await new Promise((r) => setTimeout(r, 100));
    job = await getJob(a, id);
  }
  return job;
}

/** The last error lines every function logged: what a failed wait shows. */
export function errorLogs(a: Artifact, last = 10): string[] {
  return a.all
    .flatMap((fn) =>
      fn.logs
        .filter((line) => /"level":"(error|warn|ERROR|WARN)"|Error/.test(line))
        .map((line) => `[${fn.spec.logicalId}] ${line}`),
    )
    .slice(-last);
}

export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The pool as an admin reads it. */
export async function pool(
  a: Artifact,
  name = POOL,
): Promise<{ usedGpus: number; maxGpus: number; [k: string]: unknown }> {
  const response = await a.http.request('GET', '/v1/pools', { caller: admin });
  assert.equal(response.status, 200);
  const found = (response.body.pools ?? response.body.items ?? response.body).find(
    (p: { name: string }) => p.name === name,
  );
  assert.ok(found, `pool ${name} is listed`);
  return found;
}

/** The calls of one action since `from` (a `mark()`), those naming `needle` (a job or instance id) when given. */
export function callsSince(a: Artifact, from: number, action: string, needle?: string): RecordedCall[] {
  return a.fake
    .calls()
    .slice(from)
    .filter((c) => c.action === action && (needle === undefined || JSON.stringify(c.params).includes(needle)));
}

/** The Job State Change events the stream publisher put for a job, in order. */
export function publishedStates(a: Artifact, jobId: string): string[] {
  return a.fake
    .events({ source: 'flare', detailType: 'Job State Change' })
    .map((e) => (typeof e.Detail === 'string' ? JSON.parse(e.Detail) : e.Detail) as { jobId: string; state: string })
    .filter((d) => d.jobId === jobId)
    .map((d) => d.state);
}

/** The docker argv a container command carries (base64 in the script, so no shell parses job text). */
export function dockerArgv(script: string): string[] {
  const block = /<<'FLARE_ARGV_BASE64'\n([\s\S]*?)\nFLARE_ARGV_BASE64/.exec(script);
  assert.ok(block, 'the container script carries its argv as a base64 block');
  return JSON.parse(Buffer.from(block[1].replace(/\s+/g, ''), 'base64').toString('utf8')) as string[];
}

/** The tasks function's view of the deployment: subnets, launch template, pools, as the template set them. */
export function tasksEnvironment(a: Artifact): {
  subnets: string[];
  launchTemplateId: string;
  deployment: string;
  logGroup: string;
  agentTimeoutSeconds: number;
} {
  const env = a.fns.tasks.spec.environment;
  return {
    subnets: env.SUBNET_IDS.split(','),
    launchTemplateId: env.LAUNCH_TEMPLATE_ID,
    deployment: env.DEPLOYMENT_NAME,
    logGroup: env.LOG_GROUP_NAME,
    agentTimeoutSeconds: Number(env.AGENT_TIMEOUT_SECONDS),
  };
}

/** RunInstances as Ec2SsmCompute sends it for a one-node job, its launch-deadline tag aside (checked on its own). */
export function expectedRunInstances(
  a: Artifact,
  job: JobView,
  attempt: number,
  subnetIndex: number,
): Record<string, unknown> {
  const t = tasksEnvironment(a);
  const tags = [
    { Key: 'Name', Value: `flare-${job.id}` },
    { Key: 'managed-by', Value: 'flare' },
    { Key: 'flare:deployment', Value: t.deployment },
    { Key: 'flare:job', Value: job.id },
    { Key: 'flare:project', Value: 'vision' },
    { Key: 'flare:owner', Value: String(job.owner) },
    { Key: 'flare:pool', Value: POOL },
    { Key: 'flare:attempt', Value: String(attempt) },
  ];
  return {
    MaxCount: '1',
    MinCount: '1',
    InstanceType: 'g5.xlarge',
    SubnetId: t.subnets[subnetIndex],
    TagSpecification: [
      { ResourceType: 'instance', Tag: tags },
      { ResourceType: 'volume', Tag: tags },
    ],
    LaunchTemplate: { LaunchTemplateId: t.launchTemplateId },
    ClientToken: `${job.id}.${attempt}.${subnetIndex}`,
  };
}

/** A recorded RunInstances without its `flare:expires-at` tags, and that tag's value. */
export function withoutDeadline(call: RecordedCall): { params: Record<string, unknown>; deadline: string } {
  const params = structuredClone(call.params) as {
    TagSpecification: Array<{ Tag: Array<{ Key: string; Value: string }> }>;
  };
  let deadline = '';
  for (const spec of params.TagSpecification) {
    deadline = spec.Tag.find((t) => t.Key === 'flare:expires-at')?.Value ?? deadline;
    spec.Tag = spec.Tag.filter((t) => t.Key !== 'flare:expires-at');
  }
  return { params, deadline };
}
