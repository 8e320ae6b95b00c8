/**
 * Outputs on this machine: a job's `$FLARE_OUTPUT_DIR` is
 * `<dataDir>/outputs/<project>/<jobId>/` (bind-mounted at /outputs when docker
 * runs it), kept after the job ends until the job is removed. Only regular files
 * reached without following a symbolic link count: a link cannot show or serve
 * anything outside the directory.
 */
import { lstat, readdir, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { JOB_ID_PATTERN, scratchPath } from '../core/container-command.js';
import type { Job, JobOutputsRecord } from '../core/job.js';
import { outputsRecord, withinCap } from '../core/outputs.js';
import { NAME_PATTERN } from '../core/schemas.js';
import type { JobOutputs, OutputDownload, OutputFile } from '../ports/job-outputs.js';

interface FoundFile extends OutputFile {
  hostPath: string;
}

/** The job's output directory under `dataDir` (absolute when `dataDir` is). */
export function localOutputDir(dataDir: string, job: Pick<Job, 'id' | 'project'>): string {
  // Both become path segments: neither pattern admits '/', '.' or '..'.
  if (!NAME_PATTERN.test(job.project) || !JOB_ID_PATTERN.test(job.id))
    throw new Error(`job ${JSON.stringify(job.id)} of project ${JSON.stringify(job.project)} cannot name a directory`);
  return join(dataDir, 'outputs', job.project, job.id);
}

/** Regular files under `dir`, by relative path; symbolic links (and what they lead to) are left out. */
async function walk(dir: string, prefix = ''): Promise<FoundFile[]> {
  let entries;
  try {
    entries = await readdir(join(dir, prefix), { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const files: FoundFile[] = [];
  for (const entry of entries) {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) files.push(...(await walk(dir, path)));
    else if (entry.isFile()) {
      const hostPath = join(dir, path);
      const info = await lstat(hostPath).catch(() => undefined); // gone meanwhile: not kept
      if (info?.isFile()) files.push({ path, size: info.size, modifiedAt: info.mtime.toISOString(), hostPath });
    }
  }
  return files.sort((a, b) => (a.path < b.path ? -1 : 1));
}

/** Applies the cap (files over it are deleted, in withinCap's order) and says what is kept. Run once the job's processes are gone. */
export async function settleOutputs(dir: string, maxBytes: number): Promise<JobOutputsRecord> {
  const { kept, dropped } = withinCap(await walk(dir), maxBytes);
  for (const file of dropped) await unlink(file.hostPath).catch(() => undefined);
  return outputsRecord(kept, dropped, maxBytes);
}

export class LocalOutputs implements JobOutputs {
  constructor(private readonly dataDir: string) {}

  async list(job: Job): Promise<OutputFile[]> {
    return (await walk(localOutputDir(this.dataDir, job))).map(({ hostPath: _, ...file }) => file);
  }

  /** The file when every segment of `path` is a directory or, the last, a regular file: never through a link. */
  async download(job: Job, path: string): Promise<OutputDownload | undefined> {
    let hostPath = localOutputDir(this.dataDir, job);
    const segments = path.split('/');
    for (const [i, segment] of segments.entries()) {
      hostPath = join(hostPath, segment);
      const info = await lstat(hostPath).catch(() => undefined);
      const last = i === segments.length - 1;
      if (!info || (last ? !info.isFile() : !info.isDirectory())) return undefined;
      if (last) return { kind: 'file', hostPath, size: info.size };
    }
    return undefined;
  }

  /** The job's outputs and its scratch directory, which nothing else removes. */
  async remove(job: Job): Promise<void> {
    await rm(localOutputDir(this.dataDir, job), { recursive: true, force: true });
    await rm(scratchPath(join(this.dataDir, 'scratch'), job.id), { recursive: true, force: true });
  }
}
