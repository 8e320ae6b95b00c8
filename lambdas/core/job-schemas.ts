/**
 * The inputs of the job API (`/v1/jobs`): submit (one job or an array),
 * change, list, logs. One zod schema each; their types are inferred from them.
 */
import { z } from 'zod';
import { JOB_STATES } from './job.js';
import { PageQuery, pageToken, wholeNumberParam } from './pagination.js';
import { argv, envMap, jsonNumber, liveTimeoutMinutes, MAX_ENV_VARS, name, positiveGpus } from './schema-fields.js';
import { secretsMap } from './secrets.js';

/** The most jobs one array submit stores: all are written in one DynamoDB transaction (at most 100 items). */
export const MAX_ARRAY_SIZE = 50;
export const ARRAY_ID_PATTERN = /^a-[0-9a-hjkmnp-tv-z]{16}$/;

const arraySpec = z
  .strictObject({
    size: jsonNumber()
      .int('must be a whole number')
      .min(1, 'must be at least 1')
      .max(MAX_ARRAY_SIZE, `must be at most ${MAX_ARRAY_SIZE}: one array is stored in one write`),
    env: z
      .array(envMap)
      .max(MAX_ARRAY_SIZE)
      .optional()
      .describe("One object per index (0 first), merged over the job's env for that member; fewer than size is fine"),
  })
  .refine((a) => !a.env || a.env.length <= a.size, { path: ['env'], message: 'must have at most size entries' });

export const SubmitJobInput = z.strictObject({
  template: name('template').describe(
    "The template to run: its name (looked up among your projects' templates, then the public ones) or its id",
  ),
  name: z
    .string()
    .min(1)
    .max(128)
    .refine((s) => !/[\u0000-\u001f\u007f]/.test(s), 'must not contain control characters')
    .optional()
    .describe("Default: the template's name"),
  project: name('project')
    .optional()
    .describe('Needed only when you are a member of several projects; a project you are not a member of is a 403'),
  command: argv.optional().describe("argv, never a shell string; default: the template's command"),
  gpus: positiveGpus
    .optional()
    .describe(
      "GPUs per node (default: the template's). In a pool that runs on instances (instanceType other than `local`) it must be the pool's gpusPerInstance: each node is one whole instance, never shared; else 400 naming this field. gpus × the template's nodeCount must fit the pool's maxGpus and the project's gpus quota, and gpus × nodeCount × liveTimeoutMinutes its gpuHours budget, else 422 (it could never run)",
    ),
  liveTimeoutMinutes: liveTimeoutMinutes
    .optional()
    .describe(
      "How long the job may run once started, in minutes (fractions allowed): at most the template's maxLiveTimeoutMinutes, else 400 naming this field. Default: the template's defaultLiveTimeoutMinutes, else 60, never above its max",
    ),
  env: envMap
    .optional()
    .describe(
      `Environment variables merged over the template's: at most ${MAX_ENV_VARS} here, names of letters, digits and _ (not __proto__, constructor or prototype), string values. Every member of the project can read them (GET /v1/jobs/{id}): put credentials in secrets`,
    ),
  secrets: secretsMap
    .optional()
    .describe(
      "Environment variables from the project's secrets, ENV_NAME -> secret name (PUT /v1/projects/{project}/secrets/{name}), merged over the template's. The job stores the names only; the value reaches only its environment, and the logs the API serves show it as ***. A secret the project does not have, or a name also in env, is a 400 naming secrets",
    ),
  array: arraySpec
    .optional()
    .describe(
      `A sweep: \`size\` jobs (at most ${MAX_ARRAY_SIZE}) from one submit, all stored or none (the project's jobs limit must have room for all); each has FLARE_ARRAY_ID, FLARE_ARRAY_INDEX (0-based) and FLARE_ARRAY_SIZE in its environment and queues like any job. The answer is { arrayId, items }`,
    ),
});
export type SubmitJobInput = z.infer<typeof SubmitJobInput>;

/** `PATCH /v1/jobs/{id}`: the same rules as at submit; at least one field. */
export const ChangeJobInput = z
  .strictObject({
    name: SubmitJobInput.shape.name,
    liveTimeoutMinutes: SubmitJobInput.shape.liveTimeoutMinutes.describe(
      "The job's new live timeout, counted from its start (extend or shorten; at most the template's max). A running job whose new timeout has already passed expires now.",
    ),
  })
  .refine(
    (input) => input.name !== undefined || input.liveTimeoutMinutes !== undefined,
    'must set name or liveTimeoutMinutes',
  )
  .meta({ minProperties: 1 });
export type ChangeJobInput = z.infer<typeof ChangeJobInput>;

export const ListJobsQuery = PageQuery.extend({
  project: name('project').optional(),
  array: z
    .string()
    .regex(ARRAY_ID_PATTERN, 'must be an array id (a- and 16 characters)')
    .optional()
    .describe("An array's members only, by index"),
  state: z.enum(JOB_STATES).optional(),
});
export type ListJobsQuery = z.infer<typeof ListJobsQuery>;

/** The most lines `GET /v1/jobs/{id}/logs` returns: CloudWatch's own page limit. */
export const MAX_LOG_TAIL = 10_000;
export const JobLogsQuery = z
  .strictObject({
    tail: wholeNumberParam(MAX_LOG_TAIL).optional().describe('The last N lines (default 1000). Not with nextToken.'),
    nextToken: pageToken
      .optional()
      .describe(
        "The nextToken of an earlier answer: only the lines written after it, oldest first (follow a job's output by passing each answer's nextToken to the next request).",
      ),
  })
  .refine((q) => q.tail === undefined || q.nextToken === undefined, {
    path: ['tail'],
    message: 'cannot be combined with nextToken',
  });
export type JobLogsQuery = z.infer<typeof JobLogsQuery>;
