/** `/v1/jobs`: submit, list, read, change, logs, cancel or remove. */
import { z } from 'zod';
import type { Deps } from '../../../core/deps.js';
import { ValidationError } from '../../../core/errors.js';
import { publicJob } from '../../../core/job.js';
import { changeJob } from '../../../core/job-update.js';
import { deleteJob, getJob, listJobs, submitArray, submitJob } from '../../../core/jobs.js';
import { readJobLogs } from '../../../core/logs.js';
import { ChangeJobInput, JobLogsQuery, ListJobsQuery, SubmitJobInput } from '../../../core/job-schemas.js';
import { Job, JobArray, JobLogs, page } from '../../../core/views.js';
import { json, noContent, type ApiEvent, type Route } from '../middleware.js';
import { route } from './route.js';

/** `Idempotency-Key`: 1-128 visible ASCII characters. */
const IDEMPOTENCY_KEY_PATTERN = /^[\x21-\x7e]{1,128}$/;
export const JobParams = z.object({ id: z.string().min(1).max(128) });

export function jobRoutes(deps: () => Deps): Route[] {
  return [
    route({
      method: 'POST',
      path: '/v1/jobs',
      errors: [409, 422, 429],
      summary: 'Submit a job',
      description:
        'Stores the job durably (202) and starts its workflow. `Idempotency-Key` makes retries safe: the same key and body return the same job, the same key with another body is a 409.',
      access: 'member',
      body: SubmitJobInput,
      responses: {
        202: {
          description:
            'The job, stored durably; its workflow has started if it was admitted. With `array`: { arrayId, items }, every member',
          schema: z.union([Job, JobArray]),
          headers: {
            Location: { description: 'The path of the job', required: true },
            'Idempotent-Replayed': {
              description:
                '`true` when the Idempotency-Key was used before with the same body: the job is the one stored then',
            },
          },
        },
      },
      handle: async ({ event, identity, body }) => {
        const key = idempotencyKey(event);
        if (body.array) {
          const { arrayId, jobs, created } = await submitArray(deps(), identity, { ...body, array: body.array }, key);
          return json(
            202,
            { arrayId, items: jobs.map(publicJob) },
            {
              location: `/v1/jobs?array=${encodeURIComponent(arrayId)}`,
              ...(created ? {} : { 'idempotent-replayed': 'true' }),
            },
          );
        }
        const { job, created } = await submitJob(deps(), identity, body, key);
        return json(202, publicJob(job), {
          location: `/v1/jobs/${encodeURIComponent(job.id)}`,
          ...(created ? {} : { 'idempotent-replayed': 'true' }),
        });
      },
    }),
    route({
      method: 'GET',
      path: '/v1/jobs',
      summary: "List jobs of the caller's projects (admins: all), newest first",
      access: 'member',
      query: ListJobsQuery,
      responses: { 200: { description: 'One page of jobs, newest first', schema: page(Job) } },
      handle: async ({ identity, query }) => {
        const page = await listJobs(deps(), identity, query);
        return json(200, { items: page.items.map(publicJob), nextToken: page.nextToken });
      },
    }),
    route({
      method: 'GET',
      path: '/v1/jobs/{id}',
      summary: 'Read a job, with queuePosition and stateReason while it waits',
      access: 'member',
      params: JobParams,
      responses: { 200: { description: 'The job', schema: Job } },
      handle: async ({ identity, params }) => json(200, publicJob(await getJob(deps(), identity, params.id))),
    }),
    route({
      method: 'PATCH',
      path: '/v1/jobs/{id}',
      errors: [409, 422, 429],
      summary: 'Rename a job or change its live timeout',
      description:
        "Extends or shortens the live timeout, never past the template's max. A running job's expiresAt becomes startedAt + the new timeout and its timer follows; a new expiresAt already past ends it at once (EXPIRED). A stopping or finished job's timeout cannot change (409); any job may be renamed. A job holding GPUs reserves the extra GPU-hours against its project's gpuHours budget (429 when they do not fit now, 422 when the new worst case exceeds the budget itself).",
      access: 'member',
      params: JobParams,
      body: ChangeJobInput,
      responses: { 200: { description: 'The job as changed', schema: Job } },
      handle: async ({ identity, params, body }) =>
        json(200, publicJob(await changeJob(deps(), identity, params.id, body))),
    }),
    route({
      // `{ jobId, lines: [{ at?, message }] }`, oldest first: see JobLogsView in core/logs.ts.
      method: 'GET',
      path: '/v1/jobs/{id}/logs',
      summary: "The job's container output, oldest line first",
      access: 'member',
      params: JobParams,
      query: JobLogsQuery,
      responses: { 200: { description: 'Lines of output, oldest first, and where they end', schema: JobLogs } },
      handle: async ({ identity, params, query }) => json(200, await readJobLogs(deps(), identity, params.id, query)),
    }),
    route({
      method: 'DELETE',
      path: '/v1/jobs/{id}',
      summary: 'Cancel an active job (202) or remove a finished one (204)',
      access: 'member',
      params: JobParams,
      responses: {
        202: {
          description:
            'The job was active: a queued job comes back CANCELLED; an admitted one is being stopped and becomes CANCELLED once its GPUs are released',
          schema: Job,
        },
        204: { description: 'The job had finished: it is removed' },
      },
      handle: async ({ identity, params }) => {
        const result = await deleteJob(deps(), identity, params.id);
        return result.removed ? noContent() : json(202, publicJob(result.job));
      },
    }),
  ];
}

function idempotencyKey(event: ApiEvent): string | undefined {
  const entry = Object.entries(event.headers ?? {}).find(([name]) => name.toLowerCase() === 'idempotency-key');
  if (!entry || entry[1] === undefined) return undefined;
  if (!IDEMPOTENCY_KEY_PATTERN.test(entry[1])) {
    throw new ValidationError([{ field: 'Idempotency-Key', reason: 'must be 1 to 128 visible ASCII characters' }]);
  }
  return entry[1];
}
