/** `flare job outputs ID [--download DIR]`: what a job kept of $FLARE_OUTPUT_DIR, listed or fetched. */
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathOf, type ApiClient } from '../client.js';
import { stringOf, usageOf, type Command } from '../command.js';
import type { Context } from '../context.js';
import { arrayMembers } from './arrays.js';
import { CliError, ExitCode, UsageError } from '../errors.js';
import { oneLine, table } from '../output.js';
import type { JobView } from '../views.js';

export interface OutputFileView {
  path: string;
  size: number;
  modifiedAt: string;
}

/** Files from this size on are drawn with a progress bar while they download. */
export const PROGRESS_MIN_BYTES = 1024 * 1024;
const BAR_WIDTH = 30;

/** 512 B, 1.5 kB, 27.0 MB: decimal units, as the sizes S3 and most tools show. */
export function humanBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB', 'PB'];
  let value = n;
  let unit = -1;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** One frame of a file's bar: `[######........]  45%  12.3 MB / 27.0 MB  sub/a.bin`. */
export function progressBar(path: string, done: number, total: number): string {
  const fraction = total > 0 ? Math.min(1, done / total) : 1;
  const filled = Math.round(fraction * BAR_WIDTH);
  const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
  return `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${percent}  ${humanBytes(done)} / ${humanBytes(total)}  ${oneLine(path)}`;
}

/** `flare job show`'s Outputs line: `3 files, 1.2 MB` and, when the cap or an upload left files out, why. */
export function outputsSummary(outputs: NonNullable<JobView['outputs']>): string {
  const kept = `${outputs.count} files, ${humanBytes(outputs.bytes)}`;
  return outputs.error ? `${kept}; ${outputs.error}` : kept;
}

/** Where `path` (from the API, so not trusted) lands under `dir`; a path that could leave it is refused. */
export function destinationOf(dir: string, path: string): string {
  const segments = path.split('/');
  if (/[\\\0]/.test(path) || segments.some((s) => s === '' || s === '.' || s === '..'))
    throw new CliError(
      `the API listed an output path that would leave the download directory: ${oneLine(path)}`,
      ExitCode.API,
    );
  return join(resolve(dir), ...segments);
}

/** Fetch one file to `target` (through a temporary name, so a broken download leaves no half file), drawing its bar. */
async function downloadFile(
  ctx: Context,
  client: ApiClient,
  jobId: string,
  file: OutputFileView,
  target: string,
): Promise<number> {
  const response = await client.download(
    `${pathOf('/v1/jobs', jobId, 'outputs')}/${file.path.split('/').map(encodeURIComponent).join('/')}`,
  );
  const total = Number(response.headers.get('content-length') ?? file.size);
  const drawn = !ctx.json && total >= PROGRESS_MIN_BYTES;
  let done = 0;
  let shown = -1;
  const count = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      done += chunk.length;
      const percent = Math.floor((done / Math.max(total, 1)) * 100);
      if (drawn && percent !== shown) {
        shown = percent;
        ctx.io.stderr(`\r${progressBar(file.path, done, total)}`);
      }
      callback(null, chunk);
    },
  });
  await mkdir(dirname(target), { recursive: true });
  const partial = `${target}.flare-partial`;
  try {
    if (!response.body) throw new CliError(`no body in the answer for ${oneLine(file.path)}`, ExitCode.API);
    await pipeline(
      Readable.fromWeb(response.body as import('node:stream/web').ReadableStream),
      count,
      createWriteStream(partial),
    );
    await rename(partial, target);
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
  if (drawn) ctx.io.stderr('\n');
  return done;
}

type Saved = Array<{ path: string; size: number; file: string }>;

/** Every file of one job under `dir`, each through downloadFile. */
async function saveJob(ctx: Context, client: ApiClient, jobId: string, dir: string): Promise<Saved> {
  const { items } = await client.get<{ items: OutputFileView[] }>(pathOf('/v1/jobs', jobId, 'outputs'));
  const saved: Saved = [];
  for (const file of items) {
    const target = destinationOf(dir, file.path);
    const size = await downloadFile(ctx, client, jobId, file, target);
    saved.push({ path: file.path, size, file: target });
    if (!ctx.json && size < PROGRESS_MIN_BYTES) ctx.io.stderr(`${oneLine(file.path)}  ${humanBytes(size)}\n`);
  }
  return saved;
}

const totalOf = (saved: Saved) => saved.reduce((sum, f) => sum + f.size, 0);

export async function downloadOutputs(ctx: Context, jobId: string, dir: string): Promise<number> {
  const saved = await saveJob(ctx, ctx.api(), jobId, dir);
  if (ctx.json) ctx.printJson({ jobId, directory: resolve(dir), items: saved });
  else ctx.print(`${saved.length} files, ${humanBytes(totalOf(saved))} saved to ${resolve(dir)}`);
  return 0;
}

/** `--array ID --download DIR`: each job's files under DIR/<its index>/. */
async function downloadArray(ctx: Context, arrayId: string, dir: string): Promise<number> {
  const client = ctx.api();
  const jobs = [];
  for (const job of await arrayMembers(client, arrayId)) {
    const saved = await saveJob(ctx, client, job.id, join(dir, String(job.arrayIndex)));
    jobs.push({ jobId: job.id, arrayIndex: job.arrayIndex, items: saved });
  }
  const files = jobs.flatMap((j) => j.items);
  if (ctx.json) ctx.printJson({ arrayId, directory: resolve(dir), jobs });
  else
    ctx.print(
      `${files.length} files of ${jobs.length} jobs, ${humanBytes(totalOf(files))} saved to ${resolve(dir)} (one folder per index)`,
    );
  return 0;
}

/** `--array ID`: every job's files, one table, by index then path. */
async function listArray(ctx: Context, arrayId: string): Promise<number> {
  const client = ctx.api();
  const jobs = [];
  for (const job of await arrayMembers(client, arrayId)) {
    const { items } = await client.get<{ items: OutputFileView[] }>(pathOf('/v1/jobs', job.id, 'outputs'));
    jobs.push({ jobId: job.id, arrayIndex: job.arrayIndex, items });
  }
  if (ctx.json) ctx.printJson({ arrayId, jobs });
  else
    ctx.print(
      table(
        ['INDEX', 'JOB', 'PATH', 'SIZE', 'MODIFIED'],
        jobs.flatMap((j) => j.items.map((f) => [j.arrayIndex, j.jobId, f.path, humanBytes(f.size), f.modifiedAt])),
      ),
    );
  return 0;
}

export const outputCommands: Command[] = [
  {
    name: 'job outputs',
    summary: 'List the files a job kept of $FLARE_OUTPUT_DIR, or download them',
    usage: 'ID [--download DIR] | --array ARRAY_ID [--download DIR]',
    description: `Whatever a job writes under $FLARE_OUTPUT_DIR is kept after it ends, whatever
its outcome (expired and cancelled jobs included), until the job is removed
('flare job delete' of a finished job) or the deployment's retention passes.
Without --download: one line per file (path, size, when it was written).
With --download DIR: every file, under DIR at its path (sub/n.txt lands in
DIR/sub/n.txt), with a progress bar on stderr for files of 1 MB or more.
'flare job show ID' says how many files and bytes were kept, and whether the
per-job size cap left some out.

With --array ARRAY_ID instead of a job id: every job of the array (a sweep),
listed by index, or with --download each job's files under DIR/<index>/.`,
    arity: [0, 1],
    options: {
      download: { type: 'string', value: 'DIR', help: 'save every file under DIR (created if missing)' },
      array: {
        type: 'string',
        value: 'ARRAY_ID',
        help: 'every job of this array, by index (DIR/<index>/ with --download)',
      },
    },
    examples: [
      'flare job outputs j-0123456789abcdef',
      'flare job outputs j-0123456789abcdef --download results/',
      'flare job outputs --array a-0123456789abcdef --download sweep/',
    ],
    async run(ctx, input) {
      const [id] = input.positionals;
      const dir = stringOf(input.values, 'download');
      const arrayId = stringOf(input.values, 'array');
      if ((id === undefined) === (arrayId === undefined))
        throw new UsageError('give a job ID or --array ARRAY_ID (one of them)', usageOf(this));
      if (arrayId !== undefined) return dir === undefined ? listArray(ctx, arrayId) : downloadArray(ctx, arrayId, dir);
      if (dir !== undefined) return downloadOutputs(ctx, id!, dir);
      const answer = await ctx.api().get<{ items: OutputFileView[] }>(pathOf('/v1/jobs', id!, 'outputs'));
      if (ctx.json) ctx.printJson(answer);
      else
        ctx.print(
          table(
            ['PATH', 'SIZE', 'MODIFIED'],
            answer.items.map((f) => [f.path, humanBytes(f.size), f.modifiedAt]),
          ),
        );
      return 0;
    },
  },
];
