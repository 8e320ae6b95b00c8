/**
 * What the API answers, as zod schemas: the `responses` of every route name
 * them, `GET /v1/openapi.json` publishes them as components, and
 * test/integration/response-schemas.test.ts parses real answers with them.
 * They are strict: a field the API sends but these do not describe fails that
 * test, and the type checks at the end fail `tsc` when a view and the type the
 * code returns disagree on any field.
 */
import { z } from 'zod';
import type { publicJob } from './job.js';
import { JOB_STATES } from './job.js';
import type { JobLogsView } from './logs.js';
import type { PoolHistory as PoolHistoryView } from './pool-history.js';
import type { PoolView } from './pools.js';
import type { QuotaView } from './quotas.js';
import { BUDGET_PERIODS } from './budgets.js';
import { QUOTA_RESOURCES } from './schemas.js';
import type { BudgetFigures as BudgetFiguresView, JobStats } from './stats.js';
import type { ImageRecord, TemplateRecord } from '../ports/catalog.js';

const time = (description: string) => z.iso.datetime().meta({ description: `${description} (ISO 8601 UTC)` });
const count = (description?: string) => {
  const schema = z.number().int().min(0);
  return description ? schema.meta({ description }) : schema;
};

/** A list: one page of `items` and, when more follow, the token for the next page. */
export function page<T extends z.ZodType>(item: T) {
  return z.strictObject({
    items: z.array(item),
    nextToken: z.string().optional().meta({
      description: 'Present when more items follow: pass it as `nextToken` (with the same filters) for the next page.',
    }),
  });
}

export const Job = z
  .strictObject({
    id: z.string().meta({ description: 'Assigned by Flare; never changes.' }),
    name: z.string().meta({
      description: "The name given at submit (or later with PATCH); the template's name when none was given.",
    }),
    project: z.string(),
    owner: z.string().meta({ description: 'Who submitted it.' }),
    template: z.string().meta({ description: "The template's name when the job was submitted." }),
    templateId: z
      .string()
      .optional()
      .meta({ description: "The template's id (tpl-...). Absent on jobs stored before templates had ids." }),
    pool: z.string().meta({ description: 'The GPU pool it runs in (from the template).' }),
    image: z.string().meta({
      description: 'What it runs, pinned by digest: `reference@sha256:...`, the catalog version chosen at submit.',
    }),
    command: z.array(z.string()).meta({ description: 'argv, never run through a shell.' }),
    env: z.record(z.string(), z.string()).meta({
      description:
        "The template's environment with the job's own on top. Readable by every member of the project: put credentials in secrets instead.",
    }),
    secrets: z.record(z.string(), z.string()).optional().meta({
      description:
        "Env names taken from the project's secrets: env name -> secret name (the template's with the job's on top). Never a value.",
    }),
    gpus: z.number().int().positive().meta({ description: 'GPUs per node.' }),
    nodeCount: z.number().int().positive().meta({ description: 'Instances, each with `gpus` GPUs.' }),
    liveTimeoutMinutes: z.number().positive().meta({
      description:
        'How long it may run once started (may be fractional): `expiresAt = startedAt + liveTimeoutMinutes`.',
    }),
    maxLiveTimeoutMinutes: z
      .number()
      .positive()
      .optional()
      .meta({ description: "The template's max at submit: the bound for later changes of liveTimeoutMinutes." }),
    state: z.enum(JOB_STATES),
    stateReason: z
      .string()
      .optional()
      .meta({ description: 'Why it is in this state: what a WAITING job waits for, why a job failed or ended.' }),
    queuePosition: count(
      "While PENDING or WAITING, on GET answers (lists too): how many older jobs wait ahead of it in its pool's queue; 0 is the head.",
    ).optional(),
    latestStartAt: z.iso.datetime().nullable().optional().meta({
      description:
        "While PENDING or WAITING, on GET answers: the latest time it is admitted (GPUs taken, launch begins) if no running job is extended, from its pool's running jobs' hard ends and the queue ahead (ISO 8601 UTC). Null when none can be promised: latestStartReason says why. See docs/architecture.md, Guarantees.",
    }),
    latestStartReason: z.string().optional().meta({
      description:
        'Why latestStartAt is null: it can never start under the current cap, or a gpus quota may hold it or a job ahead back.',
    }),
    createdAt: time('When it was submitted'),
    admittedAt: time('When it was admitted and its GPUs taken').optional(),
    startedAt: time('When its container started').optional(),
    expiresAt: time('When its live timeout ends the run; set while it runs').optional(),
    finishedAt: time('When it reached its terminal state').optional(),
    instanceIds: z
      .array(z.string())
      .optional()
      .meta({ description: 'The instances it runs on (EC2 instance ids on AWS).' }),
    exitCode: z.number().int().optional().meta({ description: "The container's exit code, once it exited." }),
    launchAttempt: count(
      'Launches tried that found no capacity; the job then waits at its place in the queue until retryAt.',
    ).optional(),
    retryAt: time('After no capacity was found: the next launch attempt is not before this time').optional(),
    arrayId: z
      .string()
      .optional()
      .meta({ description: 'The array it belongs to (a-...), when it was submitted as one of `array.size` jobs.' }),
    arrayIndex: count('Its 0-based index in its array (FLARE_ARRAY_INDEX in its environment).').optional(),
    arraySize: count('How many jobs its array has (FLARE_ARRAY_SIZE in its environment).').optional(),
    volumeSizeGb: z
      .number()
      .int()
      .positive()
      .optional()
      .meta({ description: 'Root volume of each instance (AWS), from the template.' }),
    allowRoot: z
      .boolean()
      .optional()
      .meta({ description: "True when the template lets the container run as the image's own user." }),
    outputs: z
      .strictObject({
        count: count('Files kept.'),
        bytes: count('Bytes kept.'),
        truncated: z
          .boolean()
          .optional()
          .meta({ description: 'True when the per-job cap left files out (whole files, in path order).' }),
        error: z
          .string()
          .optional()
          .meta({ description: 'What was not kept and why: the cap, or a failed upload (AWS).' }),
      })
      .optional()
      .meta({
        description: 'What it kept of $FLARE_OUTPUT_DIR, recorded when it stopped; list them at /v1/jobs/{id}/outputs.',
      }),
  })
  .meta({ id: 'Job', description: 'A GPU job and where it is in its life.' });

/** `POST /v1/jobs` with `array`: every member, stored in one write. */
export const JobArray = z
  .object({
    arrayId: z.string().meta({ description: 'The array: list its members with `GET /v1/jobs?array=`.' }),
    items: z.array(Job).meta({ description: 'The members, by arrayIndex.' }),
  })
  .meta({ id: 'JobArray', description: 'The jobs one array submit stored, all or nothing.' });

export const Template = z
  .strictObject({
    id: z.string().meta({ description: 'tpl-...: assigned by Flare, never changes; routes take it or the name.' }),
    name: z.string(),
    project: z.string().optional().meta({ description: 'The owning project; absent on a public template.' }),
    public: z
      .boolean()
      .optional()
      .meta({ description: 'Present (true) on a public template: anyone signed in may read and run it.' }),
    pool: z.string().meta({ description: 'The GPU pool its jobs run in.' }),
    gpus: z.number().int().positive().meta({ description: 'GPUs per node.' }),
    nodeCount: z.number().int().positive().meta({ description: 'Instances per job.' }),
    image: z.string().meta({ description: 'A catalog image name.' }),
    imageVersion: z.number().int().positive().optional().meta({
      description: "The pinned version of the image; absent: each job runs the image's latest version at submit.",
    }),
    command: z.array(z.string()).meta({ description: 'argv, never run through a shell.' }),
    env: z.record(z.string(), z.string()),
    secrets: z
      .record(z.string(), z.string())
      .optional()
      .meta({ description: "Env names its jobs take from their project's secrets: env name -> secret name." }),
    volumeSizeGb: z.number().int().positive().optional().meta({ description: 'Root volume of each instance (AWS).' }),
    maxLiveTimeoutMinutes: z
      .number()
      .positive()
      .meta({ description: 'The longest live timeout a job of this template may have.' }),
    defaultLiveTimeoutMinutes: z
      .number()
      .positive()
      .optional()
      .meta({ description: "A job's live timeout when it names none; absent: 60 (at most the max)." }),
    allowRoot: z
      .boolean()
      .optional()
      .meta({ description: "Its jobs run as the image's own user instead of an unprivileged uid." }),
    createdAt: time('When it was created'),
    updatedAt: time('When it last changed'),
    createdBy: z.string().meta({ description: 'Who created it (`config` for templates of the local config).' }),
    revision: z.number().int().positive().meta({ description: 'Starts at 1; every change adds one.' }),
  })
  .meta({ id: 'Template', description: 'A job template: what its jobs run and their limits.' });

export const ImageVersion = z
  .strictObject({
    version: z.number().int().positive().meta({ description: '1, 2, ... in the order added.' }),
    reference: z.string().meta({ description: 'registry/repository[:tag], without the digest.' }),
    digest: z.string().meta({ description: 'sha256:...: jobs run `reference@digest`.' }),
    addedAt: time('When it was added'),
    addedBy: z.string().meta({ description: 'Who added it (`config` for the local config).' }),
  })
  .meta({ id: 'ImageVersion', description: 'One version of a catalog image; never changed or removed.' });

export const Image = z
  .strictObject({
    name: z.string(),
    versions: z.array(ImageVersion).meta({ description: 'Oldest first; the last is the latest.' }),
    createdAt: time('When its first version was added'),
  })
  .meta({ id: 'Image', description: 'A catalog image and all its versions.' });

export const Quota = z
  .strictObject({
    project: z.string(),
    resource: z.enum(QUOTA_RESOURCES).meta({
      description:
        'gpus: GPUs held at once; jobs: jobs not yet finished; templates: templates owned; gpuHours: GPU-hours per period.',
    }),
    hardLimit: count(
      'The most the project may have at once (gpuHours: may spend per period). May be below `used`: that blocks new admissions only.',
    ),
    used: z
      .number()
      .min(0)
      .meta({ description: 'What the project has now (live); for gpuHours, spent + reserved GPU-hours this period.' }),
    period: z.enum(BUDGET_PERIODS).optional().meta({
      description: 'gpuHours only: the calendar period (UTC) the budget renews every (day, week from Monday, month).',
    }),
    periodStart: time('gpuHours only: when the current period began').optional(),
    periodEnd: time('gpuHours only: when it ends and spent goes back to 0').optional(),
    spent: z.number().min(0).optional().meta({
      description:
        'gpuHours only: GPU-hours charged this period to jobs that have ended (what each held from admission to release, at most its reservation).',
    }),
    reserved: z.number().min(0).optional().meta({
      description:
        'gpuHours only: GPU-hours reserved by jobs holding GPUs now (each its worst case: GPUs x live timeout); what a job does not use is given back when it ends.',
    }),
  })
  .meta({ id: 'Quota', description: "A project's limit for a resource, with live usage." });

export const Pool = z
  .strictObject({
    name: z.string(),
    instanceType: z.string().meta({ description: 'The EC2 instance type (`local` on one machine).' }),
    gpusPerInstance: z.number().int().positive(),
    maxGpus: count('The most GPUs Flare may hold in this pool at once.'),
    usedGpus: count('GPUs held now by admitted jobs (LAUNCHING, RUNNING, STOPPING).'),
    availableGpus: count('GPUs free under the cap: maxGpus - usedGpus, never below 0.'),
    waitingJobs: count('Jobs queued (PENDING or WAITING) in this pool.'),
    backfill: z.boolean().meta({
      description:
        "True: a younger job may start ahead of a blocked head when its live timeout proves it ends before the head's latest start. False (default): strict FIFO.",
    }),
  })
  .meta({ id: 'Pool', description: 'A GPU pool: its cap, the GPUs held and free, its queue.' });

export const PoolHistory = z
  .strictObject({
    pool: z.string(),
    maxGpus: count("The pool's cap now."),
    usedGpus: count('GPUs held now.'),
    availableGpus: count('GPUs free now under the cap.'),
    from: time('Start of the window'),
    to: time('End of the window: now'),
    stepSeconds: z.number().int().positive().meta({ description: 'Length of each step of the series.' }),
    times: z.array(z.iso.datetime()).meta({ description: 'The start of each step (ISO 8601 UTC).' }),
    series: z
      .array(
        z.strictObject({
          project: z.string().meta({
            description:
              'A project the caller may see, or `(other projects)`: the others summed, unnamed (admins see every project).',
          }),
          gpus: z.array(z.number().min(0)).meta({ description: 'Mean GPUs held during each step of `times`.' }),
        }),
      )
      .meta({ description: "Projects that held GPUs in the window, by name; stacked they make the pool's use." }),
    releases: z.array(z.strictObject({ at: time('When these GPUs come back at the latest'), gpus: count() })).meta({
      description:
        "The GPUs held now, by job, soonest first: a running job's expiry, else the worst case of its launch or stop.",
    }),
    truncated: z.boolean().meta({
      description:
        'True when the store held more jobs than one answer reads (the newest were read): older use may be missing.',
    }),
  })
  .meta({
    id: 'PoolHistory',
    description: "A pool's GPUs held over time by project, and when those held now come back.",
  });

export const StatsFigures = z
  .strictObject({
    totalJobs: count(),
    jobsByState: z.strictObject(
      Object.fromEntries(JOB_STATES.map((state) => [state, count()])) as Record<
        (typeof JOB_STATES)[number],
        ReturnType<typeof count>
      >,
    ),
    gpuHours: z
      .number()
      .min(0)
      .meta({ description: 'GPU-hours held (from admission to release), counting jobs still holding GPUs up to now.' }),
    waitingSeconds: z
      .strictObject({
        count: count('Jobs admitted, over which the percentiles run.'),
        p50: z
          .number()
          .min(0)
          .nullable()
          .meta({ description: 'Median seconds from submission to admission; null when no job was admitted.' }),
        p95: z.number().min(0).nullable().meta({ description: '95th percentile; null when no job was admitted.' }),
      })
      .meta({ description: 'Time from submission to admission, over the jobs admitted.' }),
  })
  .meta({ id: 'StatsFigures', description: 'Figures for one set of jobs.' });

export const BudgetFigures = z
  .strictObject({
    hardLimit: count('GPU-hours the project may spend per period.'),
    period: z.enum(BUDGET_PERIODS),
    periodStart: time('When the current period began'),
    periodEnd: time('When it ends'),
    spent: z.number().min(0).meta({ description: 'GPU-hours charged this period to jobs that have ended.' }),
    reserved: z
      .number()
      .min(0)
      .meta({ description: 'GPU-hours reserved by jobs holding GPUs now (their worst case).' }),
  })
  .meta({ description: "A project's GPU-hour budget: the current period, what was spent in it and what is reserved." });

export const Stats = z
  .strictObject({
    projects: z
      .array(z.string())
      .nullable()
      .meta({ description: 'The projects counted; null means every project (an admin asking for all).' }),
    ...StatsFigures.shape,
    byPool: z
      .record(z.string(), StatsFigures)
      .meta({ description: 'The same figures per pool with jobs, by pool name.' }),
    byProject: z
      .record(z.string(), StatsFigures)
      .meta({ description: 'The same figures per project with jobs, by project name.' }),
    truncated: z
      .boolean()
      .meta({ description: 'True when there were more jobs than one answer counts and only the newest were counted.' }),
    budgets: z
      .strictObject({
        spent: z.number().min(0).meta({ description: 'GPU-hours spent this period, summed over the projects below.' }),
        reserved: z
          .number()
          .min(0)
          .meta({ description: 'GPU-hours reserved by jobs holding GPUs now, summed over the projects below.' }),
        byProject: z
          .record(z.string(), BudgetFigures)
          .meta({ description: 'Every project counted that has a gpuHours budget, by project name.' }),
      })
      .meta({
        description:
          'GPU-hour budgets (quota resource gpuHours), read from the counters admission is conditioned on; not bounded by `truncated`.',
      }),
  })
  .meta({
    id: 'Stats',
    description:
      'Jobs by state, GPU-hours and waiting times: overall, by pool and by project; GPU-hour budgets spent and reserved.',
  });

export const JobLogs = z
  .strictObject({
    jobId: z.string(),
    lines: z
      .array(
        z.strictObject({
          at: time(
            'When the line was written, where the source records it (CloudWatch Logs does, a local log file does not)',
          ).optional(),
          message: z.string(),
        }),
      )
      .meta({ description: 'Oldest first. Empty when the job has written nothing (yet).' }),
    nextToken: z.string().optional().meta({
      description: 'Where these lines end: ask again with it for only the lines written since (follow a job this way).',
    }),
  })
  .meta({ id: 'JobLogs', description: "A job's container output." });

export const JobOutputs = z
  .strictObject({
    items: z
      .array(
        z.strictObject({
          path: z.string().meta({ description: 'Relative to the output directory: `sub/n.txt`.' }),
          size: count('Bytes.'),
          modifiedAt: time('When the job last wrote it'),
        }),
      )
      .meta({ description: 'Every file kept, by path. Empty when the job kept nothing (yet).' }),
  })
  .meta({ id: 'JobOutputs', description: 'The files a job kept of its output directory.' });

export const Health = z
  .strictObject({
    status: z.enum(['ok', 'degraded']),
    components: z.record(z.string(), z.union([z.string(), z.record(z.string(), z.unknown())])).meta({
      description:
        "By component: 'ok', a word for what is wrong (e.g. 'unavailable'), or an object of details (unhealthy when its `status` is there and not 'ok').",
    }),
  })
  .meta({ id: 'Health', description: 'The control plane and its components: 200 when all are ok, else 503.' });

const VersionStatus = z
  .enum(['CURRENT', 'SUPPORTED', 'DEPRECATED'])
  .meta({ description: 'CURRENT: the version to use.' });

export const Versions = z
  .strictObject({
    versions: z.array(
      z.strictObject({ id: z.string().meta({ description: 'The path prefix, e.g. v1.' }), status: VersionStatus }),
    ),
  })
  .meta({ id: 'Versions', description: 'The API versions served.' });

export const V1 = z
  .strictObject({
    id: z.literal('v1'),
    status: VersionStatus,
    resources: z.array(
      z.strictObject({
        path: z.string().meta({ description: 'A path of v1; `{name}` is a path parameter.' }),
        methods: z.array(z.enum(['GET', 'POST', 'PATCH', 'PUT', 'DELETE'])),
        public: z.boolean().meta({ description: 'Served without a token.' }),
      }),
    ),
  })
  .meta({ id: 'V1', description: 'Version 1 and its resources.' });

/** Its own format is OpenAPI's (https://spec.openapis.org/oas/v3.1.0); only the top level is fixed here. */
export const OpenApiDocument = z
  .strictObject({
    openapi: z.string().meta({ description: '3.1.0' }),
    info: z.record(z.string(), z.unknown()),
    servers: z.array(z.record(z.string(), z.unknown())).optional(),
    tags: z.array(z.record(z.string(), z.unknown())),
    paths: z.record(z.string(), z.record(z.string(), z.unknown())),
    components: z.record(z.string(), z.unknown()),
  })
  .meta({ id: 'OpenApiDocument', description: 'An OpenAPI 3.1 document (https://spec.openapis.org/oas/v3.1.0).' });

// Each view has exactly the fields of the type the code returns, with the same types:
// a field added to or dropped from either side fails `tsc`.
type Exactly<A, B> = [A] extends [B]
  ? [B] extends [A]
    ? [keyof A] extends [keyof B]
      ? [keyof B] extends [keyof A]
        ? true
        : false
      : false
    : false
  : false;
type Check<T extends true> = T;
export type ViewsMatchTheCode = [
  Check<Exactly<z.output<typeof Job>, ReturnType<typeof publicJob>>>,
  Check<Exactly<z.output<typeof Template>, TemplateRecord>>,
  Check<Exactly<z.output<typeof Image>, ImageRecord>>,
  Check<Exactly<z.output<typeof Quota>, QuotaView>>,
  Check<Exactly<z.output<typeof Pool>, PoolView>>,
  Check<Exactly<z.output<typeof PoolHistory>, PoolHistoryView>>,
  Check<Exactly<z.output<typeof PoolHistory>['series'][number], PoolHistoryView['series'][number]>>,
  Check<Exactly<z.output<typeof Stats>, JobStats>>,
  Check<Exactly<z.output<typeof Stats>['budgets'], JobStats['budgets']>>,
  Check<Exactly<z.output<typeof BudgetFigures>, BudgetFiguresView>>,
  Check<Exactly<z.output<typeof StatsFigures>['jobsByState'], JobStats['jobsByState']>>,
  Check<Exactly<z.output<typeof JobLogs>, JobLogsView>>,
  Check<Exactly<z.output<typeof JobLogs>['lines'][number], JobLogsView['lines'][number]>>,
];
