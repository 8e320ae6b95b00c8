/**
 * What the API does with jobs: submit, read, list, cancel, remove. Handlers parse
 * and shape; every decision is here.
 */
import { createHash } from 'node:crypto';
import { gpusIssue } from './accounting.js';
import { admitNewArray, admitNewJob, drainPool, type SubmitLimits } from './admission.js';
import { budgetOf, refuseBeyond } from './budgets.js';
import type { Deps } from './deps.js';
import { JobNotFound, Unprocessable, ValidationError } from './errors.js';
import { canAccessProject, visibleProjects, type Identity } from './identity.js';
import { imageReference, versionToRun } from './images.js';
import { HOLDING_STATES, isTerminal, JobState, QUEUED_STATES, type Job } from './job.js';
import { forecastPool, type Forecast } from './forecast.js';
import { checkJobSecrets } from './secrets.js';
import type { ListJobsQuery, SubmitJobInput } from './job-schemas.js';
import { templateForJob } from './templates.js';
import type { IdempotencyClaim, OutcomeInstance, Page } from '../ports/jobs.js';

export const DEFAULT_LIVE_TIMEOUT_MINUTES = 60;

export async function submitJob(
  deps: Deps,
  identity: Identity,
  input: SubmitJobInput,
  idempotencyKey?: string,
): Promise<{ job: Job; created: boolean }> {
  const { job, seen, claim } = await prepareJob(deps, identity, input, idempotencyKey);
  return admitNewJob(deps, job, seen, claim);
}

/**
 * `array: { size, env? }`: `size` jobs from one submit, stored all or none (admission.ts admitNewArray). Each member is the job
 * the body describes, with its own id, `arrayIndex`, `arraySize` and `array.env[i]` merged over its env; Flare sets
 * FLARE_ARRAY_ID, FLARE_ARRAY_INDEX and FLARE_ARRAY_SIZE where it starts the job (core/container-command.ts arrayEnv).
 */
export async function submitArray(
  deps: Deps,
  identity: Identity,
  input: SubmitJobInput & { array: NonNullable<SubmitJobInput['array']> },
  idempotencyKey?: string,
): Promise<{ arrayId: string; jobs: Job[]; created: boolean }> {
  const { job, seen, claim } = await prepareJob(deps, identity, input, idempotencyKey);
  const { size, env = [] } = input.array;
  // One name, one source, as for env and secrets at submit: else the member could not start.
  const clashes = env.flatMap((vars, i) =>
    Object.keys(vars ?? {})
      .filter((name) => Object.hasOwn(job.secrets ?? {}, name))
      .map((name) => ({
        field: `array.env.${i}.${name}`,
        reason: "is also one of the job's secrets: give it one source",
      })),
  );
  if (clashes.length > 0) throw new ValidationError(clashes);
  const arrayId = `a-${deps.newId().slice(2)}`;
  const members = Array.from(
    { length: size },
    (_, i): Job => ({
      ...job,
      id: i === 0 ? job.id : deps.newId(),
      arrayId,
      arrayIndex: i,
      arraySize: size,
      env: { ...job.env, ...env[i] },
    }),
  );
  const { jobs, created } = await admitNewArray(deps, members, seen, claim);
  return { arrayId: jobs[0]?.arrayId ?? arrayId, jobs, created };
}

/** Everything a submit checks and reads before it stores: the job it would store, the limits read, its claim. */
async function prepareJob(
  deps: Deps,
  identity: Identity,
  input: SubmitJobInput,
  idempotencyKey?: string,
): Promise<{ job: Job; seen: SubmitLimits; claim?: IdempotencyClaim }> {
  const { template, project } = await templateForJob(deps, identity, input.template, input.project);
  if (deps.policy?.defaultQuotas) await deps.limits.ensureDefaultQuotas(project, deps.policy.defaultQuotas);
  // Independent reads, at once: the image, and the pool with the project's quota and budget in one request.
  const [image, limits] = await Promise.all([
    deps.catalog.getImage(template.image),
    deps.limits.getLimits(template.pool, [project]),
  ]);
  const { pool } = limits;
  const { gpus: quota, gpuHours } = limits.quotas.get(project) ?? {};
  const budget = budgetOf(gpuHours, deps.now());
  if (!image)
    throw new Unprocessable(`template ${template.name} names image '${template.image}', which is not in the catalog`);
  // The template's pinned version, else the latest at submit: the job keeps running what it was given.
  const version = versionToRun(image, template.imageVersion);
  if (!version)
    throw new Unprocessable(
      `template ${template.name} pins version ${template.imageVersion} of image ${image.name}, which it does not have`,
    );
  if (!pool) throw new Unprocessable(`template ${template.name} names pool '${template.pool}', which does not exist`);

  const gpus = input.gpus ?? template.gpus;
  const needs = gpus * template.nodeCount;
  if (needs > pool.maxGpus)
    throw new Unprocessable(`job needs ${needs} GPUs but pool ${pool.name} holds at most ${pool.maxGpus}`);
  // A job is charged exactly the GPUs it runs on: on instances, whole ones.
  const wholeInstances = gpusIssue(pool, gpus, input.gpus === undefined ? `template ${template.name}` : undefined);
  if (wholeInstances) throw new ValidationError([wholeInstances]);
  if (quota?.hardLimit !== undefined && needs > quota.hardLimit) {
    throw new Unprocessable(`job needs ${needs} GPUs but project ${project} may hold at most ${quota.hardLimit}`);
  }
  const max = template.maxLiveTimeoutMinutes;
  const liveTimeoutMinutes =
    input.liveTimeoutMinutes ?? Math.min(template.defaultLiveTimeoutMinutes ?? DEFAULT_LIVE_TIMEOUT_MINUTES, max);
  if (liveTimeoutMinutes > max)
    throw new ValidationError([
      { field: 'liveTimeoutMinutes', reason: `must be at most ${max} (template ${template.name})` },
    ]);
  refuseBeyond(budget, project, { gpus, nodeCount: template.nodeCount, liveTimeoutMinutes });
  const { env, secrets } = jobEnvironment(template, input);
  await checkJobSecrets(deps, project, secrets, input.env ?? {});

  const createdAt = deps.now().toISOString();
  const job: Job = {
    id: deps.newId(),
    name: input.name ?? template.name,
    project,
    owner: identity.name,
    template: template.name,
    templateId: template.id,
    pool: pool.name,
    image: imageReference(version),
    command: input.command ?? template.command,
    env,
    ...(Object.keys(secrets).length > 0 ? { secrets } : {}),
    gpus,
    nodeCount: template.nodeCount,
    liveTimeoutMinutes,
    maxLiveTimeoutMinutes: max,
    state: JobState.PENDING,
    createdAt,
    ...(template.volumeSizeGb !== undefined ? { volumeSizeGb: template.volumeSizeGb } : {}),
    ...(template.allowRoot ? { allowRoot: true } : {}),
  };
  const claim = idempotencyKey
    ? { key: `${project}#${idempotencyKey}`, bodyHash: hashBody({ ...input, project }) }
    : undefined;
  return { job, seen: { pool, quota, budget }, claim };
}

/**
 * The template's env and secrets with the job's own on top: a name the job gives in one
 * replaces the template's in the other (one name, one source; both in the job is a 400).
 */
function jobEnvironment(
  template: { env: Record<string, string>; secrets?: Record<string, string> },
  input: Pick<SubmitJobInput, 'env' | 'secrets'>,
): { env: Record<string, string>; secrets: Record<string, string> } {
  const without = (map: Record<string, string>, names: Record<string, string> | undefined) =>
    Object.fromEntries(Object.entries(map).filter(([name]) => !Object.hasOwn(names ?? {}, name)));
  return {
    env: { ...without(template.env, input.secrets), ...input.env },
    secrets: { ...without(template.secrets ?? {}, input.env), ...input.secrets },
  };
}

export async function getJob(deps: Deps, identity: Identity, id: string): Promise<Job> {
  const job = await deps.jobs.getJob(id);
  if (!job || !canAccessProject(identity, job.project)) throw new JobNotFound(id);
  if (QUEUED_STATES.includes(job.state)) {
    // One read of the queue ahead gives both its position and its latest start.
    const { forecasts, positions } = await forecastPool(deps, job.pool, [job]);
    job.queuePosition = positions.get(job.id) ?? (await deps.queue.queuePosition(job));
    showForecast(job, forecasts.get(job.id));
  }
  return job;
}

export async function listJobs(deps: Deps, identity: Identity, query: ListJobsQuery): Promise<Page<Job>> {
  const projects = visibleProjects(identity, query.project);
  if (projects?.length === 0) return { items: [] };
  const page = query.array
    ? await arrayPage(deps, query.array, projects, query)
    : await deps.jobs.listJobs(
        { projects, state: query.state },
        { limit: query.limit ?? 100, nextToken: query.nextToken },
      );
  // Latest starts and places in the queue: one forecast per pool with queued jobs on the page, not one per job.
  const queued = page.items.filter((j) => QUEUED_STATES.includes(j.state));
  const pools = [...new Set(queued.map((j) => j.pool))];
  const perPool = await Promise.all(pools.map((pool) => forecastPool(deps, pool, queued)));
  for (const job of queued) {
    const { forecasts, positions } = perPool[pools.indexOf(job.pool)]!;
    const position = positions.get(job.id);
    if (position !== undefined) job.queuePosition = position;
    showForecast(job, forecasts.get(job.id));
  }
  return page;
}

/** An array's members the caller may see (another project's array lists as empty), by index; the token is an offset. */
async function arrayPage(
  deps: Deps,
  arrayId: string,
  projects: string[] | undefined,
  query: ListJobsQuery,
): Promise<Page<Job>> {
  const members = (await deps.jobs.listArray(arrayId)).filter(
    (j) => (!projects || projects.includes(j.project)) && (!query.state || j.state === query.state),
  );
  const start = Number(query.nextToken ?? 0) || 0;
  const limit = query.limit ?? 100;
  const items = members.slice(start, start + limit);
  return start + limit < members.length ? { items, nextToken: String(start + limit) } : { items };
}

function showForecast(job: Job, forecast: Forecast | undefined): void {
  if (!forecast) return;
  job.latestStartAt = forecast.latestStartAt;
  if (forecast.latestStartAt === null) job.latestStartReason = forecast.reason;
}

/** DELETE: an active job is cancelled (202), a terminal one removed (204). */
export async function deleteJob(
  deps: Deps,
  identity: Identity,
  id: string,
): Promise<{ removed: true } | { removed: false; job: Job }> {
  for (;;) {
    const job = await deps.jobs.getJob(id);
    if (!job || !canAccessProject(identity, job.project)) throw new JobNotFound(id);
    if (isTerminal(job.state)) {
      // Outputs first: a removal that fails here leaves the job to be removed again, never files without a job.
      await deps.outputs?.remove(job);
      if (await deps.jobs.deleteJob(id)) return { removed: true };
      continue;
    }
    if (QUEUED_STATES.includes(job.state)) {
      const cancelled = await deps.jobs.finishJob(job, {
        state: JobState.CANCELLED,
        stateReason: `cancelled by ${identity.name}`,
        finishedAt: deps.now().toISOString(),
      });
      if (!cancelled) continue; // admitted meanwhile: cancel it as a holding job
      await drainPool(deps, job.pool); // it may have been the head that blocked others
      return { removed: false, job: cancelled };
    }
    if (HOLDING_STATES.includes(job.state) && job.state !== JobState.STOPPING) {
      const recorded = await reportOutcome(deps, id, {
        kind: 'cancelled',
        by: identity.name,
        at: deps.now().toISOString(),
      });
      // Recorded before, but its wake-up may have been lost (Step Functions refused it: the caller got a 503 and
      // repeats the cancel). A wait that has already ended ignores it.
      if (!recorded && job.outcome && job.taskToken)
        await deps.workflows.sendTaskSuccess(job.taskToken, { outcome: job.outcome });
    }
    return { removed: false, job: (await deps.jobs.getJob(id)) ?? job };
  }
}

/**
 * Why a running job stops (exit, cancel, lost instance): recorded once, then the
 * workflow's wait is ended. Whichever of this and the workflow's AwaitOutcome step
 * runs second sees both the outcome and the token, so the wait always ends.
 */
export async function reportOutcome(
  deps: Deps,
  jobId: string,
  outcome: NonNullable<Job['outcome']>,
  on?: OutcomeInstance,
): Promise<boolean> {
  const job = await deps.jobs.recordOutcome(jobId, outcome, on);
  if (job?.taskToken) await deps.workflows.sendTaskSuccess(job.taskToken, { outcome: job.outcome });
  return job !== undefined;
}

function hashBody(body: unknown): string {
  return createHash('sha256').update(canonicalJson(body)).digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
