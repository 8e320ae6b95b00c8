import { open, type FileHandle } from 'node:fs/promises';
import type { Job } from '../core/job.js';
import type { JobLogs, LogLine, ReadLogsOptions } from '../ports/job-logs.js';

export interface LocalJobLogsOptions {
  /** Bytes read per step, walking back from the end of the file. @default 65536 */
  readonly chunkBytes?: number;
  /**
   * Read at most this many bytes from the end, so one endless line (a progress
   * bar without newlines) cannot fill memory; the oldest line returned may then
   * be cut at its start.
   * @default 4 MiB
   */
  readonly maxBytes?: number;
}

const NEWLINE = 0x0a;

/**
 * Container output on this machine: the job's output file (LocalCompute's
 * `logPath`), which its process appends to while it runs. The tail is found by
 * reading backwards from the end in chunks, so a large file is never read
 * whole. A file that does not exist yet is no lines. The file records no
 * times, so lines have no `at`.
 */
export class LocalJobLogs implements JobLogs {
  private readonly chunkBytes: number;
  private readonly maxBytes: number;

  constructor(
    /** Where a job's output file is, e.g. `(id) => compute.logPath(id)`. */
    private readonly logPath: (jobId: string) => string,
    options: LocalJobLogsOptions = {},
  ) {
    this.chunkBytes = options.chunkBytes ?? 64 * 1024;
    this.maxBytes = options.maxBytes ?? 4 * 1024 * 1024;
    for (const [name, value] of [['chunkBytes', this.chunkBytes], ['maxBytes', this.maxBytes]] as const) {
      if (!Number.isInteger(value) || value < 1) throw new RangeError(`LocalJobLogs: ${name} must be a whole number >= 1, got ${value}`);
    }
  }

  async read(job: Job, options: ReadLogsOptions): Promise<{ lines: LogLine[] }> {
    let file: FileHandle;
    try {
      file = await open(this.logPath(job.id), 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { lines: [] };
      throw error;
    }
    try {
      const tail = await this.readTail(file, options.tail ?? Number.POSITIVE_INFINITY);
      return { lines: splitLines(tail).map((message) => ({ message })) };
    } finally {
      await file.close();
    }
  }

  /** The bytes of the last `wanted` lines (or of the last maxBytes), as the file is now. */
  private async readTail(file: FileHandle, wanted: number): Promise<Buffer> {
    // The size is taken once: what the job appends meanwhile is for the next read.
    const { size } = await file.stat();
    const chunks: Buffer[] = [];
    let position = size;
    let newlines = 0;
    while (position > 0) {
      const length = Math.min(this.chunkBytes, position, this.maxBytes - (size - position));
      if (length <= 0) return dropPartialCharacter(Buffer.concat(chunks)); // maxBytes reached: the oldest line is cut
      position -= length;
      const chunk = await readAt(file, position, length);
      for (let i = chunk.length - 1; i >= 0; i--) {
        // A newline ends the line before it; the file's last byte ends the last line, it starts none.
        if (chunk[i] !== NEWLINE || position + i === size - 1) continue;
        if (++newlines === wanted) {
          chunks.unshift(chunk.subarray(i + 1));
          return Buffer.concat(chunks);
        }
      }
      chunks.unshift(chunk);
    }
    return Buffer.concat(chunks);
  }
}

async function readAt(file: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await file.read(buffer, filled, length - filled, position + filled);
    if (bytesRead === 0) break; // cannot happen to an append-only file; never loop on it
    filled += bytesRead;
  }
  return buffer.subarray(0, filled);
}

/** Lines without their terminators; a last line without a newline is still a line. */
function splitLines(bytes: Buffer): string[] {
  if (bytes.length === 0) return [];
  const lines = bytes.toString('utf8').split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines.map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
}

/** A cut may land inside a UTF-8 sequence: skip its continuation bytes rather than show U+FFFD. */
function dropPartialCharacter(bytes: Buffer): Buffer {
  let start = 0;
  while (start < bytes.length && start < 3 && (bytes[start] & 0xc0) === 0x80) start++;
  return bytes.subarray(start);
}
