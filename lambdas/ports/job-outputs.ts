import type { Job } from '../core/job.js';

/** One file a job left under its output directory. */
export interface OutputFile {
  /** Relative to the output directory, `/`-separated: `sub/n.txt`. */
  path: string;
  size: number;
  /** ISO 8601 UTC. */
  modifiedAt: string;
}

/** How a file's bytes reach the caller: streamed from this machine, or a short-lived URL (S3 presigned GET). */
export type OutputDownload =
  | { kind: 'file'; hostPath: string; size: number }
  | { kind: 'redirect'; url: string /** ISO 8601 UTC: when the URL stops working. */; expiresAt: string };

/**
 * What a job kept of `$FLARE_OUTPUT_DIR`: its data directory's copy locally, the
 * outputs bucket's `<project>/<jobId>/` prefix on AWS. Read-side only: the job's
 * compute writes them (core/outputs.ts says how they are recorded on the job).
 */
export interface JobOutputs {
  /** Every file, by path; a job that kept nothing has none, not an error. */
  list(job: Job): Promise<OutputFile[]>;
  /** `path` is already checked (core/outputs.ts outputPathIssue); undefined when no such file was kept. */
  download(job: Job, path: string): Promise<OutputDownload | undefined>;
  /** Remove everything the job kept (its record is being removed); nothing there is no error. */
  remove(job: Job): Promise<void>;
}
