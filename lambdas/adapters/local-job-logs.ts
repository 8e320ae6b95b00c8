import { open, type FileHandle } from 'node:fs/promises';
import { ValidationError } from '../core/errors.js';
import type { Job } from '../core/job.js';
import type { JobLogs, LogsRead, ReadLogsOptions } from '../ports/job-logs.js';

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
  /** Lines returned at most by one read after a cursor. @default 10000 */
  readonly maxLines?: number;
}

const NEWLINE = 0x0a;

/**
 * Container output on this machine: the job's output file (LocalCompute's
 * `logPath`), which its process appends to while it runs. The tail is found by
 * reading backwards from the end in chunks, so a large file is never read
 * whole. A file that does not exist yet is no lines. The file records no
 * times, so lines have no `at`.
 *
 * The cursor (`nextToken`) is the byte offset in the file where the lines
 * returned end, as a decimal string: a read after it starts there. A tail read
 * ends at the file's size when it was read.
 */
export class LocalJobLogs implements JobLogs {
  private readonly chunkBytes: number;
  private readonly maxBytes: number;
  private readonly maxLines: number;

  constructor(
    /** Where a job's output file is, e.g. `(id) => compute.logPath(id)`. */
    private readonly logPath: (jobId: string) => string,
    options: LocalJobLogsOptions = {},
  ) {
    this.chunkBytes = options.chunkBytes ?? 64 * 1024;
    this.maxBytes = options.maxBytes ?? 4 * 1024 * 1024;
    this.maxLines = options.maxLines ?? 10_000;
    for (const [name, value] of [
      ['chunkBytes', this.chunkBytes],
      ['maxBytes', this.maxBytes],
      ['maxLines', this.maxLines],
    ] as const) {
      if (!Number.isInteger(value) || value < 1)
        throw new RangeError(`LocalJobLogs: ${name} must be a whole number >= 1, got ${value}`);
    }
  }

  async read(job: Job, options: ReadLogsOptions): Promise<LogsRead> {
    const after = options.after === undefined ? undefined : parseCursor(options.after);
    let file: FileHandle;
    try {
      file = await open(this.logPath(job.id), 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      if (after) throw badCursor();
      return { lines: [], nextToken: '0' };
    }
    try {
      // The size is taken once: what the job appends meanwhile is for the next read.
      const { size } = await file.stat();
      if (after === undefined) {
        const tail = await this.readTail(file, size, options.tail ?? Number.POSITIVE_INFINITY);
        return { lines: toLines(tail), nextToken: String(size) };
      }
      if (after > size) throw badCursor();
      const { bytes, end } = await this.readAfter(file, after, size, options.ended ?? false);
      return { lines: toLines(bytes), nextToken: String(end) };
    } finally {
      await file.close();
    }
  }

  /**
   * The whole lines from `offset` on: at most maxLines of them and maxBytes of
   * output. A last line without newline is held back while the job may still be
   * writing it, unless it alone is longer than maxBytes (an endless progress
   * bar): that one is passed on in pieces, never splitting a character.
   */
  private async readAfter(
    file: FileHandle,
    offset: number,
    size: number,
    ended: boolean,
  ): Promise<{ bytes: Buffer; end: number }> {
    const raw = await readAt(file, offset, Math.min(size - offset, this.maxBytes));
    // A cursor handed out by a tail read may fall inside a character being written.
    const read = dropPartialCharacter(raw);
    const start = offset + raw.length - read.length;
    let length = read.length;
    let newlines = 0;
    let lastNewline = -1;
    for (let i = 0; i < read.length; i++) {
      if (read[i] !== NEWLINE) continue;
      lastNewline = i;
      if (++newlines === this.maxLines) break;
    }
    const reachedEnd = start + read.length === size;
    if (newlines === this.maxLines) length = lastNewline + 1;
    else if (!(reachedEnd && ended)) {
      if (lastNewline >= 0) length = lastNewline + 1;
      else if (raw.length < this.maxBytes)
        length = 0; // a line still growing: wait for its end
      else length = wholeCharacters(read);
    }
    return { bytes: read.subarray(0, length), end: start + length };
  }

  /** The bytes of the last `wanted` lines (or of the last maxBytes) before `size`. */
  private async readTail(file: FileHandle, size: number, wanted: number): Promise<Buffer> {
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
function toLines(bytes: Buffer): LogsRead['lines'] {
  if (bytes.length === 0) return [];
  const lines = bytes.toString('utf8').split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines.map((line) => ({ message: line.endsWith('\r') ? line.slice(0, -1) : line }));
}

const CURSOR_PATTERN = /^(0|[1-9][0-9]{0,15})$/;

function parseCursor(token: string): number {
  if (!CURSOR_PATTERN.test(token)) throw badCursor();
  return Number(token);
}

function badCursor(): ValidationError {
  return new ValidationError([{ field: 'nextToken', reason: "is not a position in this job's output" }]);
}

/** How many bytes hold whole characters: a cut may land inside a UTF-8 sequence at the end. */
function wholeCharacters(bytes: Buffer): number {
  let continuation = 0;
  while (continuation < 3 && continuation < bytes.length && (bytes[bytes.length - 1 - continuation] & 0xc0) === 0x80)
    continuation++;
  const lead = bytes.length - 1 - continuation;
  if (lead <= 0) return bytes.length; // no whole character to keep: pass the bytes on rather than stall
  const first = bytes[lead];
  const needs = first >= 0xf0 ? 4 : first >= 0xe0 ? 3 : first >= 0xc0 ? 2 : 1;
  return needs > continuation + 1 ? lead : bytes.length;
}

/** A cut may land inside a UTF-8 sequence: skip its continuation bytes rather than show U+FFFD. */
function dropPartialCharacter(bytes: Buffer): Buffer {
  let start = 0;
  while (start < bytes.length && start < 3 && (bytes[start] & 0xc0) === 0x80) start++;
  return bytes.subarray(start);
}
