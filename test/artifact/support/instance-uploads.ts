/**
 * A stopping job's instance, as far as its outputs go: for each upload command
 * the bundled tasks function sends (comment `flare:outputs=<jobId>`), it runs
 * the command's own upload program (python3) with the form the command carries
 * over the files the test gave that job (none unless `give` says), then reports
 * how the command ended, as the agent would (an SSM status event included).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UPLOAD_PROGRAM } from '../../../lambdas/core/outputs-upload.js';
import type { AwsFake, SentCommand } from './aws-fake.js';
import type { ComputeEventSource } from './compute-event-source.js';

const COMMENT = 'flare:outputs=';
const DELIMITER = 'FLARE_ARGV_BASE64';

export interface InstanceUpload {
  jobId: string;
  command: SentCommand;
  /** The form the command carried, decoded. */
  request: { url: string; fields: Record<string, string>; prefix: string; maxBytes: number; maxFileBytes: number };
  code: number;
  stdout: string;
}

export class InstanceUploads {
  private readonly handled = new Set<string>();
  private readonly dirs = new Map<string, string>();
  readonly runs: InstanceUpload[] = [];

  constructor(
    private readonly fake: AwsFake,
    private readonly compute: ComputeEventSource,
  ) {}

  /** The job's instance has this directory as its output directory when the upload runs. */
  give(jobId: string, outputDir: string): void {
    this.dirs.set(jobId, outputDir);
  }

  /** Runs every upload command not run yet; how many. */
  async poll(): Promise<number> {
    let moved = 0;
    for (const command of this.fake.commands()) {
      if (!command.comment?.startsWith(COMMENT) || this.handled.has(command.commandId)) continue;
      this.handled.add(command.commandId);
      await this.run(command);
      moved += 1;
    }
    return moved;
  }

  private async run(command: SentCommand): Promise<void> {
    const jobId = command.comment!.slice(COMMENT.length);
    const script = command.parameters.commands?.[0] ?? '';
    if (!script.includes(`python3 -c '${UPLOAD_PROGRAM}' `))
      throw new Error(`the upload command of job ${jobId} does not run the upload program`);
    const lines = script.split('\n');
    const start = lines.findIndex((l) => l.endsWith(`<<'${DELIMITER}'`));
    const end = lines.indexOf(DELIMITER, start + 1);
    const request = JSON.parse(
      Buffer.from(lines.slice(start + 1, end).join(''), 'base64').toString('utf8'),
    ) as InstanceUpload['request'];
    const scratch = await mkdtemp(join(tmpdir(), 'flare-instance-'));
    try {
      const requestFile = join(scratch, 'upload.json');
      await writeFile(requestFile, JSON.stringify(request));
      const outputDir = this.dirs.get(jobId) ?? join(scratch, 'empty');
      const { code, stdout } = await new Promise<{ code: number; stdout: string }>((resolve) =>
        execFile('python3', ['-c', UPLOAD_PROGRAM, outputDir, requestFile], (error, out) =>
          resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout: out }),
        ),
      );
      this.runs.push({ jobId, command, request, code, stdout });
      for (const instanceId of command.instanceIds) {
        await this.compute.finishCommand(command.commandId, instanceId, {
          status: code === 0 ? 'Success' : 'Failed',
          responseCode: code,
          stdout,
        });
      }
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }
}
