// One job on this machine: what stands in for a job's instance. The job
// supervisor (local-job-supervisor.mjs) runs one JobRun per job it is asked to
// start. Plain JavaScript with node:* imports only: the supervisor must start
// without tsx and without the project's dependencies. Everything a job needs is
// in the spec file that LocalCompute wrote (see `RunnerSpec` in local-compute.ts).
//
// What it guarantees:
// - the job's argv is exec'd directly, never through a shell, in its own session
//   and process group (the job's pid is the group's id), so a stop reaches the
//   job's own children too;
// - stdout and stderr go straight into the job's output file (the child owns
//   the descriptor, so output survives the supervisor);
// - a stop sends SIGTERM once to the whole group, SIGKILL after the stop grace;
// - a dead-man switch stops the job at expiresAt + grace even when no control
//   plane is left to do it; expiresAt is re-read from the spec file when the
//   timer fires and when the control plane says it moved, so a changed live
//   timeout is honoured;
// - the job's pid file is claimed (created exclusively) before the job is
//   spawned, so a job is never run twice, even across supervisors;
// - exactly one exit record, written atomically (tmp + rename), and nothing of
//   the job's group left running afterwards.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { bootId } from './local-supervisor-lock.mjs';

/** Exit code when the job could not be run at all (docker uses the same). */
export const RUNNER_FAILED = 125;
/** Longest delay setTimeout takes; a later deadline is re-armed in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const RECORD_RETRY_MS = 5000;

/** The job's pid file claimed by another start: it ran (or runs) already. */
export class StartedBefore extends Error {}

export class JobRun {
  /**
   * @param {string} specPath the job's spec.json
   * @param {object} spec its content
   * @param {{ pid: number, nonce: string }} owner the supervisor, recorded in the pid file
   * @param {() => void} onEnd called once the exit record is written
   */
  constructor(specPath, spec, owner, onEnd) {
    this.specPath = specPath;
    this.spec = spec;
    this.owner = owner;
    this.onEnd = onEnd;
    this.child = undefined;
    this.pid = undefined;
    this.finished = false;
    this.terminating = false;
    this.reason = undefined;
    this.deadManTimer = undefined;
    this.killTimer = undefined;
    /** Settles once the exit record is written. */
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve));
  }

  /**
   * Claim the pid file and spawn the job. Throws StartedBefore when the job was
   * claimed before; any other failure ends the job with an exit record.
   */
  start() {
    const { spec } = this;
    claimPidFile(spec.pidPath, `\n${bootId()}\n${this.owner.pid}\n${this.owner.nonce}\n`);
    let out = -1;
    try {
      fs.mkdirSync(spec.cwd, { recursive: true, mode: 0o700 });
      out = fs.openSync(spec.outputPath, 'a', 0o600);
      try {
        this.child = spawn(spec.argv[0], spec.argv.slice(1), {
          shell: false,
          cwd: spec.cwd,
          env: spec.env,
          detached: true, // own session and process group: the group is the job
          stdio: ['ignore', out, out],
        });
      } catch (error) {
        // Synchronous failures: bad arguments, e.g. a NUL byte in argv or env.
        this.note(`cannot start ${JSON.stringify(spec.argv[0])}: ${message(error)}`);
        throw error;
      }
    } catch (error) {
      this.finish({ exitCode: RUNNER_FAILED, signal: null, reason: 'runner-error', error: message(error) });
      return;
    } finally {
      if (out >= 0) fs.closeSync(out); // the child has its own copy
    }
    const child = this.child;
    child.on('error', (error) => {
      if (child.pid !== undefined) return; // a signal that could not be sent; 'exit' still comes
      const code = error.code === 'ENOENT' ? 127 : error.code === 'EACCES' ? 126 : RUNNER_FAILED;
      this.note(`cannot start ${JSON.stringify(spec.argv[0])}: ${error.code === 'ENOENT' ? 'command not found' : message(error)}`);
      this.finish({ exitCode: code, signal: null, reason: 'not-started', error: message(error) });
    });
    child.on('exit', (code, signal) => {
      const exitCode = signal ? 128 + (os.constants.signals[signal] ?? 0) : code ?? RUNNER_FAILED;
      this.finish({ exitCode, signal: signal ?? null, ...(this.reason ? { reason: this.reason } : {}) });
    });
    if (child.pid === undefined) return; // 'error' is on its way
    this.pid = child.pid;
    try {
      writeWhole(spec.pidPath, `${child.pid}\n${bootId()}\n${this.owner.pid}\n${this.owner.nonce}\n`);
    } catch (error) {
      // Without its pid on record nobody could stop the job after us: do not let it run.
      this.note(`cannot record the job's pid: ${message(error)}`);
      this.reason = 'runner-error';
      this.signalGroup('SIGKILL');
      return;
    }
    this.armDeadMan();
  }

  /** expiresAt moved: re-read it now rather than when the old deadline comes. */
  rearm() {
    if (this.terminating || this.finished) return;
    clearTimeout(this.deadManTimer);
    this.armDeadMan();
  }

  /** Stop the job: SIGTERM once to its group, SIGKILL after the grace. */
  terminate(why) {
    if (this.terminating || this.finished || this.pid === undefined) return;
    this.terminating = true;
    this.reason ??= 'stopped';
    clearTimeout(this.deadManTimer);
    const { spec } = this;
    if (spec.stopArgv) {
      // e.g. `docker stop`: the container is not in the job's process group.
      let out = -1;
      try {
        out = fs.openSync(spec.outputPath, 'a', 0o600);
        const stopper = spawn(spec.stopArgv[0], spec.stopArgv.slice(1), { shell: false, detached: true, stdio: ['ignore', out, out], env: spec.env });
        stopper.on('error', (error) => this.note(`${spec.stopArgv[0]}: ${message(error)}`));
        stopper.unref();
      } catch (error) {
        this.note(`${spec.stopArgv[0]}: ${message(error)}`);
      } finally {
        if (out >= 0) fs.closeSync(out);
      }
    }
    this.signalGroup('SIGTERM');
    this.killTimer = setTimeout(() => {
      this.note(`job did not stop within ${spec.stopGraceMs} ms after ${why}; killing it`);
      this.signalGroup('SIGKILL');
    }, spec.stopGraceMs ?? 10_000);
  }

  armDeadMan() {
    const current = this.readSpec();
    const expiresAt = Date.parse(current.expiresAt);
    if (Number.isNaN(expiresAt)) return;
    const left = expiresAt + (current.deadManGraceMs ?? 0) - Date.now();
    if (left <= 0) {
      this.reason = 'expired';
      this.note(`live timeout passed (expiresAt ${current.expiresAt}); stopping the job`);
      this.terminate('live timeout passed');
      return;
    }
    // One timer per job, at its deadline: the spec is read again only then.
    this.deadManTimer = setTimeout(() => this.armDeadMan(), Math.min(left, MAX_TIMER_MS));
  }

  /** The spec file as it is now: the control plane may have moved expiresAt. */
  readSpec() {
    try {
      return JSON.parse(fs.readFileSync(this.specPath, 'utf8'));
    } catch {
      return this.spec; // mid-rewrite or gone: the copy read at start still holds
    }
  }

  finish(record) {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.deadManTimer);
    clearTimeout(this.killTimer);
    this.record({ ...record, finishedAt: new Date().toISOString() });
  }

  record(record) {
    try {
      writeExit(this.spec.exitPath, record);
    } catch (error) {
      // The job stays ours (and its slots held) until its end is on record.
      process.stderr.write(`[flare-supervisor] ${new Date().toISOString()} cannot write ${this.spec.exitPath}: ${message(error)}; retrying\n`);
      setTimeout(() => this.record(record), RECORD_RETRY_MS);
      return;
    }
    // Whatever the job left behind in its group goes with it: its GPUs are
    // about to be handed to someone else.
    this.signalGroup('SIGKILL');
    this.resolveEnded();
    this.onEnd();
  }

  signalGroup(signal) {
    if (this.pid === undefined) return;
    try {
      process.kill(-this.pid, signal);
    } catch {
      // the group is gone already
    }
  }

  note(line) {
    try {
      fs.appendFileSync(this.spec.outputPath, `[flare] ${new Date().toISOString()} ${line}\n`, { mode: 0o600 });
    } catch {
      // the output file is best effort; the exit record is what counts
    }
  }
}

/**
 * Create `file` exclusively and whole (written aside, then hard-linked into
 * place: a reader never sees it half written). Throws StartedBefore if it exists.
 */
function claimPidFile(file, text) {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text, { mode: 0o600 });
  try {
    fs.linkSync(tmp, file);
  } catch (error) {
    if (error.code === 'EEXIST') throw new StartedBefore(`${file} exists: the job was started before`);
    throw error;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** Replace `file` atomically; no fsync: it is rewritten at once if the machine goes down. */
function writeWhole(file, text) {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

export function writeExit(exitPath, record) {
  const tmp = `${exitPath}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, `${JSON.stringify(record)}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, exitPath);
}

export function message(error) {
  return error instanceof Error ? error.message : String(error);
}
