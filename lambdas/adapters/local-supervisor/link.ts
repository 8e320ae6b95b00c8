/**
 * One LocalCompute's connection to the job supervisor of its data directory
 * (supervisor.mjs): started when first needed, one JSON object per
 * line each way over `<dataDir>/supervisor.sock`, never blocking the event
 * loop but for the one spawn of a supervisor.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { FlareError, LaunchFailed } from '../../core/errors.js';
import type { Logger } from '../../core/deps.js';
import { directSocketPath, SOCKET_NAME } from './lock.mjs';

/** The local machine could not do what was asked: stuck process, bad job id or config. */
export class LocalComputeError extends FlareError {}

const SUPERVISOR = fileURLToPath(new URL('./supervisor.mjs', import.meta.url));
/** How long a plane tries to reach or start a supervisor before a start fails. */
const SUPERVISOR_START_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;

/** What a job may see of ours: enough to find programs and a home, nothing else (no credentials). */
export function baseEnv(): Record<string, string> {
  return { PATH: '/usr/local/bin:/usr/bin:/bin', ...pick(process.env, ['PATH', 'HOME', 'LANG']) };
}

export function pick(env: NodeJS.ProcessEnv, names: readonly string[]): Record<string, string> {
  return Object.fromEntries(names.flatMap((n) => (env[n] !== undefined ? [[n, env[n]!]] : [])));
}

export type SupervisorReply = {
  state: 'started' | 'running' | 'adopted' | 'ended' | 'stopped' | 'unknown';
  pid?: number;
};

/** What the supervisor tells unasked: a job is over and its exit record could not be written. */
export interface SupervisorEvents {
  /** The connection went away (the supervisor may have died). */
  onDisconnect(): void;
  /** `record` is the job's ExitRecord, as exit.json would hold it. */
  onEnded(jobId: string, record: unknown): void;
}

/** The connection went away before the answer came. */
class ConnectionLost extends LocalComputeError {}

/**
 * One LocalCompute's connection to the supervisor of its data directory:
 * started when first needed, one JSON object per line each way, never blocking
 * the event loop but for the one spawn of a supervisor.
 */
export class SupervisorLink {
  private socket: Socket | undefined;
  private connecting: { spawn: boolean; socket: Promise<Socket | undefined> } | undefined;
  private readonly pending = new Map<
    number,
    { resolve(reply: SupervisorReply): void; reject(error: Error): void; timer: NodeJS.Timeout }
  >();
  private nextId = 1;
  /** Keeps `/proc/self/fd/<n>` valid when the socket path is too long to use as it is. */
  private dirHandle: FileHandle | undefined;

  constructor(
    private readonly dataDir: string,
    private readonly idleMs: number,
    private readonly log: Logger,
    private readonly events: SupervisorEvents,
  ) {}

  /**
   * Send one request. `spawn`: start a supervisor when none is alive; otherwise
   * undefined then. A request cut off by a lost connection is sent once more:
   * every request is idempotent.
   */
  async request(
    body: { op: string } & Record<string, unknown>,
    spawn: boolean,
    timeoutMs = REQUEST_TIMEOUT_MS,
  ): Promise<SupervisorReply | undefined> {
    for (let attempt = 0; ; attempt += 1) {
      const socket = await this.connect(spawn);
      if (!socket) return undefined;
      try {
        return await this.send(socket, body, timeoutMs);
      } catch (error) {
        if (!(error instanceof ConnectionLost) || attempt > 0) throw error;
      }
    }
  }

  /** Be connected to the live supervisor, if one is (none is started): it tells what it cannot record. */
  async listen(): Promise<void> {
    await this.connect(false);
  }

  /** Let go of the connection; a later request connects again. */
  close(): void {
    this.socket?.destroy();
    void this.dirHandle?.close().catch(() => undefined);
    this.dirHandle = undefined;
  }

  private async connect(spawn: boolean): Promise<Socket | undefined> {
    for (;;) {
      if (this.socket) return this.socket;
      // Concurrent requests share one attempt; one that may spawn does not settle for one that may not.
      if (!this.connecting) {
        const socket = this.establish(spawn).finally(() => (this.connecting = undefined));
        this.connecting = { spawn, socket };
      }
      const { spawn: spawning, socket } = this.connecting;
      const connected = await socket;
      if (connected || !spawn || spawning) return connected;
    }
  }

  private async establish(spawn: boolean): Promise<Socket | undefined> {
    const deadline = Date.now() + SUPERVISOR_START_MS;
    for (let attempt = 0; ; attempt += 1) {
      const socket = await this.dial();
      if (socket) return this.adopt(socket);
      if (!spawn) return undefined;
      if (Date.now() > deadline)
        throw new LaunchFailed(
          `cannot start the job supervisor of ${this.dataDir}; see ${join(this.dataDir, 'supervisor.log')}`,
        );
      // Not ready: another supervisor holds the data directory, starting up or going away.
      if (!(await this.startSupervisor())) await sleep(Math.min(25 * 2 ** attempt, 500));
    }
  }

  /** A connected socket, or undefined when no supervisor listens. */
  private async dial(): Promise<Socket | undefined> {
    const path = await this.socketPath();
    return new Promise((resolve, reject) => {
      const socket = createConnection(path);
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        resolve(socket);
      });
      socket.once('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT' || error.code === 'ECONNREFUSED') resolve(undefined);
        else
          reject(
            new LocalComputeError(`cannot reach the job supervisor at ${path}: ${error.message}`, { cause: error }),
          );
      });
    });
  }

  /** Same rule as the supervisor's: too long for sun_path, go through a descriptor of the directory (Linux). */
  private async socketPath(): Promise<string> {
    const direct = directSocketPath(this.dataDir);
    if (direct) return direct;
    if (!existsSync('/proc/self/fd'))
      throw new LocalComputeError(`data directory path too long for a unix socket: ${this.dataDir}`);
    this.dirHandle ??= await open(this.dataDir, 'r');
    return `/proc/self/fd/${this.dirHandle.fd}/${SOCKET_NAME}`;
  }

  /** Spawn a supervisor: true once it is ready, false when another one holds the data directory. */
  private async startSupervisor(): Promise<boolean> {
    const logPath = join(this.dataDir, 'supervisor.log');
    const log = await open(logPath, 'a', 0o600);
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [SUPERVISOR, this.dataDir, String(this.idleMs)], {
        cwd: this.dataDir,
        detached: true, // own session: it outlives us, and no terminal signal reaches it
        stdio: ['ignore', 'pipe', log.fd],
        env: baseEnv(),
      });
    } finally {
      await log.close();
    }
    const ready = await new Promise<boolean>((resolve, reject) => {
      let out = '';
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        out += chunk;
        if (out.includes('ready\n')) resolve(true);
      });
      child.once('error', (error) =>
        reject(new LaunchFailed(`cannot start the job supervisor: ${error.message}`, { cause: error })),
      );
      child.once('exit', (code, signal) => {
        if (code === 0) resolve(false);
        else reject(new LaunchFailed(`the job supervisor exited with ${signal ?? code} as it started; see ${logPath}`));
      });
    }).finally(() => {
      child.stdout!.destroy();
      child.removeAllListeners();
    });
    child.unref();
    if (ready) this.log.info('job supervisor started', { pid: child.pid, dataDir: this.dataDir });
    return ready;
  }

  private adopt(socket: Socket): Socket {
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      for (let newline = buffer.indexOf('\n'); newline >= 0; newline = buffer.indexOf('\n')) {
        this.settle(socket, buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
      }
    });
    socket.on('error', (error) =>
      this.log.warn('the connection to the job supervisor failed', { error: error.message }),
    );
    socket.on('close', () => {
      if (this.socket === socket) this.socket = undefined;
      for (const [id, waiting] of this.pending) {
        clearTimeout(waiting.timer);
        waiting.reject(new ConnectionLost('the job supervisor went away before it answered'));
        this.pending.delete(id);
      }
      this.events.onDisconnect();
    });
    socket.unref(); // a plane with nothing to ask may exit; ref'd while an answer is awaited
    this.socket = socket;
    return socket;
  }

  private send(socket: Socket, body: { op: string }, timeoutMs: number): Promise<SupervisorReply> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        if (this.pending.size === 0) socket.unref();
        reject(new LocalComputeError(`the job supervisor did not answer ${body.op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      socket.ref();
      socket.write(`${JSON.stringify({ id, ...body })}\n`);
    });
  }

  private settle(socket: Socket, line: string): void {
    let reply: { id?: number; ok?: boolean; code?: string; error?: string } & SupervisorReply;
    try {
      reply = JSON.parse(line);
    } catch {
      this.log.warn('the job supervisor sent a line that is not JSON', { line });
      return;
    }
    const told = reply as { event?: string; jobId?: unknown; record?: unknown };
    if (told.event === 'ended' && typeof told.jobId === 'string') {
      this.events.onEnded(told.jobId, told.record);
      return;
    }
    const waiting = reply.id === undefined ? undefined : this.pending.get(reply.id);
    if (!waiting) return;
    this.pending.delete(reply.id!);
    clearTimeout(waiting.timer);
    if (this.pending.size === 0) socket.unref();
    if (reply.ok) waiting.resolve({ state: reply.state, ...(reply.pid !== undefined ? { pid: reply.pid } : {}) });
    else if (reply.code === 'started-before') waiting.reject(new LaunchFailed(`job supervisor: ${reply.error}`));
    else waiting.reject(new LocalComputeError(`job supervisor: ${reply.error}`));
  }
}
