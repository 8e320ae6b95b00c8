/**
 * A job's outputs: what it wrote under `$FLARE_OUTPUT_DIR`, kept after it ends
 * whatever the outcome. The job's compute keeps them (the local driver in the
 * data directory, the instance by an upload to the outputs bucket) and says what
 * it kept (`Compute.keptOutputs`, recorded on the job by the Stop step); the
 * JobOutputs port reads them back for `GET /v1/jobs/{id}/outputs[/{path}]`.
 */
import type { Deps } from './deps.js';
import { JobNotFound, NotFound, ValidationError } from './errors.js';
import { canAccessProject, type Identity } from './identity.js';
import type { Job } from './job.js';
import type { OutputDownload, OutputFile } from '../ports/job-outputs.js';

/** Bytes a job may keep unless the deployment says otherwise (local config `outputs.maxBytes`, CDK context `flare:outputsMaxBytes`). */
export { DEFAULT_MAX_OUTPUT_BYTES } from '../../contract/vocabulary.js';
/** Longest output path the API takes (S3 keys are at most 1024 bytes, with `<project>/<jobId>/` before it). */
export const MAX_OUTPUT_PATH_LENGTH = 900;

/**
 * Why `path` cannot name a file inside a job's output directory, or undefined when it can:
 * relative, `/`-separated, no empty, `.` or `..` segment (whatever its encoding was), no NUL or backslash.
 */
export function outputPathIssue(path: string): string | undefined {
  if (path.length === 0) return 'must name a file';
  if (path.length > MAX_OUTPUT_PATH_LENGTH) return `must be at most ${MAX_OUTPUT_PATH_LENGTH} characters`;
  if (path.startsWith('/')) return 'must be relative to the output directory, not absolute';
  if (/[\0\\]/.test(path)) return 'must not contain NUL or a backslash';
  if (path.split('/').some((s) => s === '' || s === '.' || s === '..'))
    return "must stay inside the output directory: no empty, '.' or '..' segments";
  return undefined;
}

/**
 * What the job may keep when its files are over the cap: whole files in path order while they fit
 * (a later smaller file may still fit), so the same files are kept however often this runs.
 */
export function withinCap<F extends Pick<OutputFile, 'path' | 'size'>>(
  files: readonly F[],
  maxBytes: number,
): { kept: F[]; dropped: F[] } {
  const kept: F[] = [];
  const dropped: F[] = [];
  let bytes = 0;
  for (const file of [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    if (bytes + file.size <= maxBytes) {
      kept.push(file);
      bytes += file.size;
    } else dropped.push(file);
  }
  return { kept, dropped };
}

/** The Job's `outputs` field for these kept files. */
export function outputsRecord(
  kept: readonly Pick<OutputFile, 'size'>[],
  dropped: readonly Pick<OutputFile, 'size'>[],
  maxBytes: number,
): NonNullable<Job['outputs']> {
  const bytes = kept.reduce((sum, f) => sum + f.size, 0);
  if (dropped.length === 0) return { count: kept.length, bytes };
  const over = dropped.reduce((sum, f) => sum + f.size, 0);
  return { count: kept.length, bytes, truncated: true, error: capError(dropped.length, over, maxBytes) };
}

/** What a job's record says when files went over the cap (locally and in the AWS upload's record). */
export function capError(files: number, bytes: number, maxBytes: number): string {
  return `over the ${maxBytes}-byte cap: ${files} files (${bytes} bytes) were not kept`;
}

async function visibleJob(deps: Deps, identity: Identity, id: string): Promise<Job> {
  const job = await deps.jobs.getJob(id);
  // Same rule as getJob: another project's job does not exist for the caller.
  if (!job || !canAccessProject(identity, job.project)) throw new JobNotFound(id);
  return job;
}

export async function listJobOutputs(deps: Deps, identity: Identity, id: string): Promise<{ items: OutputFile[] }> {
  const job = await visibleJob(deps, identity, id);
  return { items: deps.outputs ? await deps.outputs.list(job) : [] };
}

export async function downloadJobOutput(
  deps: Deps,
  identity: Identity,
  id: string,
  path: string,
): Promise<OutputDownload> {
  const issue = outputPathIssue(path);
  if (issue) throw new ValidationError([{ field: 'path', reason: issue }]);
  const job = await visibleJob(deps, identity, id);
  const found = await deps.outputs?.download(job, path);
  if (!found) throw new NotFound('output', `${path} of job ${id}`);
  return found;
}
