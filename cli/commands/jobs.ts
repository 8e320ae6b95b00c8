/** `flare job create|list|show|update|delete|logs|wait`. */
import { pathOf, type ApiClient } from '../client.js';
import {
  commandOf,
  defined,
  envOf,
  flagOf,
  intervalOf,
  limitOf,
  numberOf,
  pairsOf,
  stringOf,
  usageOf,
  type Command,
} from '../command.js';
import type { Context } from '../context.js';
import { arrayOf, cancelArray, submitArray } from './arrays.js';
import { outputsSummary } from './outputs.js';
import { UsageError } from '../errors.js';
import { duration, envNames, fields, gpuCount, gpusPerNode, minutes, oneLine, table, when } from '../output.js';
import {
  OUTCOME_EXIT_CODES,
  printFailureTail,
  printLogs,
  queuePlace,
  WAIT_EXIT_CODES,
  waitForJob,
} from '../progress.js';
import { isTerminal, JOB_STATES, QUEUED_STATES, type JobView } from '../views.js';

/** Queued jobs of a listing whose queue position is looked up one by one, at most. */
const MAX_POSITION_LOOKUPS = 100;

const interval = { type: 'string', value: 'SECONDS', help: 'seconds between polls (default 1)' } as const;
const limit = { type: 'string', value: 'N', help: 'list at most N (default: all, page after page)' } as const;

const COMMAND_HELP = `The command is an argv, never a shell string: put its words after '--'
(everything after '--' is the command, flags included), or give --command a
JSON array. Without either, the template's command runs.`;

export const jobCommands: Command[] = [
  {
    name: 'job create',
    summary: 'Submit a job from a template',
    usage: '--template T [options] [-- COMMAND [ARG...]]',
    description: `${COMMAND_HELP}\n\nPrints the job's id and state; with --wait, then one line per change\n(state and reason, queue position, time left while it runs) until it ends,\nand exits with the job's outcome (below). A job that ends FAILED or EXPIRED\nis followed by its last 20 lines of output.\n\n--env values are stored with the job and shown to every member of its\nproject (flare job show, GET /v1/jobs/{id}). For API keys and passwords use\n--secret ENV=NAME with a secret put by 'flare secret put NAME': the job\nrecords only the name, the value reaches only its environment, and its\nlogs show the value as ***.`,
    options: {
      template: { type: 'string', value: 'T', help: 'the template (name or id) to run (required)' },
      name: { type: 'string', value: 'N', help: "the job's name (default: the template's)" },
      project: { type: 'string', value: 'P', help: 'the project to run in (needed when you are in several)' },
      command: { type: 'string', value: 'JSON', help: 'the argv as a JSON array, e.g. \'["python","train.py"]\'' },
      gpus: { type: 'string', value: 'N', help: "GPUs per node (default: the template's)" },
      'live-timeout': {
        type: 'string',
        value: 'MIN',
        help: "minutes the job may run, fractions allowed (default: the template's, else 60)",
      },
      env: {
        type: 'string',
        multiple: true,
        value: 'KEY=VALUE',
        help: 'an environment variable for the container; every member of the project can read it: use --secret for credentials',
      },
      secret: {
        type: 'string',
        multiple: true,
        value: 'ENV=NAME',
        help: "env variable ENV set from the project's secret NAME (flare secret put); the job records only the name",
      },
      'idempotency-key': {
        type: 'string',
        value: 'KEY',
        help: 'retrying with the same key and flags returns the same job',
      },
      wait: { type: 'boolean', help: 'wait for the job to end, printing its progress' },
      array: {
        type: 'string',
        value: 'N',
        help: `a sweep: N jobs from one submit (at most 50), stored all or none; each gets FLARE_ARRAY_INDEX 0..N-1`,
      },
      'array-env': {
        type: 'string',
        value: 'FILE',
        help: 'with --array: a JSON array of objects, one per index, merged over --env for that job',
      },
      interval,
    },
    trailing: true,
    examples: [
      'flare job create --template train -- python train.py --lr 0.1',
      'flare job create --template train --gpus 2 --live-timeout 90 --name sweep-3 --wait',
      'flare job create --template train --secret OPENAI_API_KEY=openai-key -- python eval.py',
      `flare job create --template train --command '["python","-c","print(42)"]'`,
    ],
    epilogue: `with --wait, ${WAIT_EXIT_CODES}`,
    async run(ctx, input) {
      const usage = usageOf(this);
      const template = stringOf(input.values, 'template');
      if (!template) throw new UsageError('missing --template T', usage);
      const body = defined({
        template,
        name: stringOf(input.values, 'name'),
        project: stringOf(input.values, 'project'),
        command: commandOf(input, usage),
        gpus: numberOf(input.values, 'gpus', usage),
        liveTimeoutMinutes: numberOf(input.values, 'live-timeout', usage),
        env: envOf(input.values, usage),
        secrets: pairsOf(input.values, 'secret', 'ENV=NAME', usage),
      });
      const wait = flagOf(input.values, 'wait');
      const intervalMs = intervalOf(input.values, usage);
      const key = stringOf(input.values, 'idempotency-key');
      const client = ctx.api();
      const array = arrayOf(input.values, usage);
      if (array) {
        if (wait)
          throw new UsageError("--wait follows one job: follow an array with 'flare job list --array ID'", usage);
        return submitArray(ctx, client, { ...body, array }, key);
      }
      const job = await client.post<JobView>('/v1/jobs', body, key ? { 'idempotency-key': key } : undefined);
      const submitted = oneLine(`submitted job ${job.id}${job.name ? ` (${job.name})` : ''}: ${job.state}`);
      if (!wait) {
        ctx.show(job, () => submitted);
        return 0;
      }
      ctx.progress(submitted);
      return finish(ctx, client, await waitForJob(ctx, client, job.id, intervalMs, ctx.progress));
    },
  },
  {
    name: 'job list',
    summary: 'List jobs of your projects (admins: all), newest first',
    usage: '[--project P] [--state S] [--limit N]',
    description: `REASON says why a job is where it is, like squeue's: for a queued job its
place in the pool's queue and what it waits for, for a finished one how it
ended. TIME LEFT is the time to a running job's expiry. LATEST START is, for a
queued job, how long until it is admitted at the latest if no running job is
extended ('none' when no start can be promised: see flare job show).`,
    options: {
      project: { type: 'string', value: 'P', help: 'only this project' },
      state: { type: 'string', value: 'S', help: `only jobs in this state (${JOB_STATES.join(', ')})` },
      array: { type: 'string', value: 'ID', help: "only this array's jobs, by index" },
      limit,
    },
    examples: [
      'flare job list',
      'flare job list --state WAITING --project vision',
      'flare job list --array a-0123456789abcdef',
      'flare job list --limit 20 --output json',
    ],
    async run(ctx, input) {
      const usage = usageOf(this);
      const state = stringOf(input.values, 'state')?.toUpperCase();
      const client = ctx.api();
      const page = await client.list<JobView>(
        '/v1/jobs',
        { project: stringOf(input.values, 'project'), state, array: stringOf(input.values, 'array') },
        limitOf(input.values, usage),
      );
      if (ctx.json) {
        ctx.printJson(page);
        return 0;
      }
      await addQueuePositions(client, page.items);
      const now = ctx.io.now();
      ctx.print(
        table(
          ['ID', 'NAME', 'PROJECT', 'STATE', 'GPUS', 'POOL', 'AGE', 'TIME LEFT', 'LATEST START', 'REASON'],
          page.items.map((job) => [
            job.id,
            job.arrayIndex === undefined ? job.name : `${job.name ?? ''}[${job.arrayIndex}]`,
            job.project,
            job.state,
            gpuCount(job),
            job.pool,
            job.createdAt ? duration(now.getTime() - Date.parse(job.createdAt)) : undefined,
            timeLeft(job, now),
            latestStart(job, now),
            reasonOf(job),
          ]),
        ),
      );
      if (page.nextToken) ctx.io.stderr(`(more jobs: raise --limit to see them)\n`);
      return 0;
    },
  },
  {
    name: 'job show',
    summary: 'Show one job: state, reason, queue position, times',
    usage: 'ID',
    arity: [1, 1],
    options: {},
    examples: ['flare job show j-0123456789abcdef', 'flare job show j-0123456789abcdef --output json'],
    async run(ctx, input) {
      const job = await ctx.api().get<JobView>(pathOf('/v1/jobs', input.positionals[0]));
      ctx.show(job, (j) => jobFields(j, ctx.io.now()));
      return 0;
    },
  },
  {
    name: 'job update',
    summary: "Rename a job or change its live timeout (extend or shorten a running job's expiry)",
    usage: 'ID [--name N] [--live-timeout MIN]',
    description:
      "The live timeout counts from the job's start and may not exceed its template's\nmaximum; a running job whose new timeout has already passed expires now.",
    arity: [1, 1],
    options: {
      name: { type: 'string', value: 'N', help: 'the new name' },
      'live-timeout': { type: 'string', value: 'MIN', help: 'the new live timeout in minutes, counted from the start' },
    },
    examples: [
      'flare job update j-0123456789abcdef --live-timeout 120',
      'flare job update j-0123456789abcdef --name final-run',
    ],
    async run(ctx, input) {
      const usage = usageOf(this);
      const body = defined({
        name: stringOf(input.values, 'name'),
        liveTimeoutMinutes: numberOf(input.values, 'live-timeout', usage),
      });
      if (!Object.keys(body).length) throw new UsageError('nothing to change: give --name or --live-timeout', usage);
      const job = await ctx.api().patch<JobView>(pathOf('/v1/jobs', input.positionals[0]), body);
      ctx.show(job, (j) => jobFields(j, ctx.io.now()));
      return 0;
    },
  },
  {
    name: 'job delete',
    summary: 'Cancel an active job, or remove a finished one',
    usage: 'ID | --array ID',
    description:
      'With --array, every active job of the array is cancelled; finished ones are left (delete them by id).',
    arity: [0, 1],
    options: { array: { type: 'string', value: 'ID', help: 'cancel every active job of this array' } },
    examples: ['flare job delete j-0123456789abcdef', 'flare job delete --array a-0123456789abcdef'],
    async run(ctx, input) {
      const usage = usageOf(this);
      const arrayId = stringOf(input.values, 'array');
      if (arrayId !== undefined) {
        if (input.positionals.length) throw new UsageError('give a job ID or --array ID, not both', usage);
        return cancelArray(ctx, arrayId);
      }
      if (input.positionals.length !== 1) throw new UsageError('missing the job ID', usage);
      const id = input.positionals[0];
      const job = await ctx.api().delete<JobView>(pathOf('/v1/jobs', id));
      ctx.showDone(
        job,
        job
          ? `cancelling job ${id}: ${job.state}${job.stateReason ? ` (${job.stateReason})` : ''}`
          : `removed job ${id}`,
      );
      return 0;
    },
  },
  {
    name: 'job logs',
    summary: "Print a job's container output (stdout and stderr), oldest line first",
    usage: 'ID [--tail N] [--follow]',
    description: `--follow keeps printing new lines as the job writes them until it has ended
and its last lines are printed, then exits 0 whatever the job's outcome (use
'flare job wait' for that). With --output json: without --follow the API's
answer, with --follow one JSON object per line ({"at"?, "message"}).`,
    arity: [1, 1],
    options: {
      tail: { type: 'string', value: 'N', help: 'start with the last N lines (default 1000, at most 10000)' },
      follow: { type: 'boolean', short: 'f', help: 'keep printing new output until the job has ended' },
      timestamps: {
        type: 'boolean',
        help: 'prefix each line with when it was written, where the API records it (AWS)',
      },
      interval,
    },
    examples: ['flare job logs j-0123456789abcdef --tail 50', 'flare job logs j-0123456789abcdef --follow'],
    async run(ctx, input) {
      const usage = usageOf(this);
      const tail = numberOf(input.values, 'tail', usage);
      const intervalMs = intervalOf(input.values, usage);
      await printLogs(ctx, ctx.api(), input.positionals[0], {
        tail,
        follow: flagOf(input.values, 'follow'),
        intervalMs,
        timestamps: flagOf(input.values, 'timestamps'),
      });
      return 0;
    },
  },
  {
    name: 'job wait',
    summary: 'Wait for a job to end, printing its progress; exit with its outcome',
    usage: 'ID [--interval SECONDS]',
    description:
      'Prints one line per change: state and reason, queue position while it waits,\ntime left while it runs; a job that ends FAILED or EXPIRED is followed by its\nlast 20 lines of output. With --output json, progress and those lines go to\nstderr and the final job to stdout.',
    arity: [1, 1],
    options: { interval },
    examples: ['flare job wait j-0123456789abcdef', 'flare job wait j-0123456789abcdef --interval 5 && echo done'],
    epilogue: WAIT_EXIT_CODES,
    async run(ctx, input) {
      const intervalMs = intervalOf(input.values, usageOf(this));
      const client = ctx.api();
      return finish(ctx, client, await waitForJob(ctx, client, input.positionals[0], intervalMs, ctx.progress));
    },
  },
];

/** After a wait: a failed job's last lines of output, the final job with `--output json`, the outcome's exit code. */
async function finish(ctx: Context, client: ApiClient, job: JobView): Promise<number> {
  await printFailureTail(client, job, ctx.progress);
  if (ctx.json) ctx.printJson(job);
  return OUTCOME_EXIT_CODES[job.state] ?? 1;
}

/** The listing carries no queue position: ask for it, job by job, for the queued ones. */
async function addQueuePositions(client: ApiClient, jobs: JobView[]): Promise<void> {
  const queued = jobs
    .filter((j) => QUEUED_STATES.includes(j.state) && j.queuePosition === undefined)
    .slice(0, MAX_POSITION_LOOKUPS);
  for (let i = 0; i < queued.length; i += 8) {
    await Promise.all(
      queued.slice(i, i + 8).map(async (job) => {
        try {
          const fresh = await client.get<JobView>(pathOf('/v1/jobs', job.id));
          if (fresh.state === job.state)
            Object.assign(job, { queuePosition: fresh.queuePosition, stateReason: fresh.stateReason });
        } catch {
          // Gone or admitted meanwhile: the listing shows what it had.
        }
      }),
    );
  }
}

function timeLeft(job: JobView, now: Date): string | undefined {
  if (!job.expiresAt || isTerminal(job.state)) return undefined;
  return duration(Date.parse(job.expiresAt) - now.getTime());
}

/** A queued job's promise as a time from now: `in 12m00s`, `now` when it is due, `none` when there is none. */
function latestStart(job: JobView, now: Date): string | undefined {
  if (!QUEUED_STATES.includes(job.state) || job.latestStartAt === undefined) return undefined;
  if (job.latestStartAt === null) return 'none';
  const ms = Date.parse(job.latestStartAt) - now.getTime();
  return ms > 0 ? `in ${duration(ms)}` : 'now';
}

function reasonOf(job: JobView): string | undefined {
  if (QUEUED_STATES.includes(job.state) && job.queuePosition !== undefined)
    return `${queuePlace(job.queuePosition)}${job.stateReason ? `: ${job.stateReason}` : ''}`;
  return job.stateReason;
}

function jobFields(job: JobView, now: Date): string {
  return fields([
    ['ID', job.id],
    ['Name', job.name],
    ['Project', job.project],
    ['Owner', job.owner],
    ['Template', job.template],
    ['State', job.state],
    ['Reason', job.stateReason],
    ['Queue', job.queuePosition === undefined ? undefined : queuePlace(job.queuePosition)],
    [
      'Latest start',
      job.latestStartAt === null
        ? `none: ${job.latestStartReason ?? 'no start can be promised'}`
        : when(job.latestStartAt, now),
    ],
    ['Pool', job.pool],
    ['GPUs', gpusPerNode(job)],
    ['Image', job.image],
    ['Command', job.command],
    ['Env', envNames(job.env)],
    [
      'Secrets',
      job.secrets && Object.keys(job.secrets).length
        ? Object.entries(job.secrets)
            .sort(([a], [b]) => (a < b ? -1 : 1))
            .map(([env, name]) => `${env} from ${name}`)
            .join(', ')
        : undefined,
    ],
    ['Live timeout', minutes(job.liveTimeoutMinutes)],
    ['Created', when(job.createdAt, now)],
    ['Admitted', when(job.admittedAt, now)],
    ['Started', when(job.startedAt, now)],
    ['Expires', isTerminal(job.state) ? job.expiresAt : when(job.expiresAt, now)],
    ['Finished', when(job.finishedAt, now)],
    ['Exit code', job.exitCode],
    ['Instances', job.instanceIds?.join(', ')],
    ['Outputs', job.outputs ? outputsSummary(job.outputs) : undefined],
  ]);
}
