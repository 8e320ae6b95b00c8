// One job on this machine: what stands in for a job's instance. The job
// supervisor (supervisor.mjs) runs one JobRun per job it is asked to
// start. Plain JavaScript with node:* imports only: the supervisor must start
// without tsx and without the project's dependencies. Everything a job needs is
// in the spec file that LocalCompute wrote (`RunnerSpec` in jobs.ts, from ../local-runner-spec.ts).
//
// What it guarantees:
// - the job's argv is run in its own session and process group, under a small
//   `sh` shim that leads the group and writes the job's exit code to a status
//   file (SHIM below). The argv is never parsed by that shell: it is passed as
//   positional parameters, argv[0] resolved to a path first (as execvp would), so
//   it can name no builtin. The shim is what lets a new supervisor adopt a job
//   whose supervisor died, and still learn how and when it ended;
// - stdout and stderr go straight into the job's output file (the child owns
//   the descriptor, so output survives the supervisor);
// - a stop sends SIGTERM once to the whole group, SIGKILL after the stop grace;
// - a dead-man switch stops the job at expiresAt (to the millisecond) even when
//   no control plane or store is left to do it; expiresAt is re-read from the
//   spec file when the timer fires and when the control plane says it moved, so
//   a changed live timeout is honoured;
// - an adopted job (its supervisor died: `adopt`) is watched through its group
//   and status file, and its expiry enforced the same way;
// - the job's pid file is claimed (created exclusively) before the job is
//   spawned, so a job is never run twice, even across supervisors;
// - nothing of the job's group left running once it has ended, and at most one
//   exit record, written atomically (tmp + rename); a record that cannot be
//   written is retried RECORD_ATTEMPTS times, then the job is over anyway
//   (`onEnd` says so, and the supervisor hands the record to connected planes).
// The files it writes are job-files.mjs's; what it asks of the process group, process-group.mjs's.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { claimPidFile, readStatus, statusPath, writeExit, writeWhole } from './job-files.mjs';
import { bootId } from './lock.mjs';
import { groupAlive, missedTerm, resolveCommand, signalOf } from './process-group.mjs';

/** Exit code when the job could not be run at all (docker uses the same). */
export const RUNNER_FAILED = 125;
/** SIGTERM to SIGKILL, when the spec says nothing: a few seconds, as docs/concepts.md's expiry asks. */
export const DEFAULT_STOP_GRACE_MS = 5000;
/**
 * Leads the job's group and outlives its supervisor: `sh -c SHIM flare-job <status> <argv...>`.
 * The traps are handlers, not "ignore", so the job gets default signal handling; a trapped
 * SIGTERM waits until the job returns, so the shim still writes its code. A stop that came
 * before the job was forked (the signal reached only the shim) ends it without running the job.
 */
const SHIM =
  'status=$1; shift; stop=; trap "stop=129" HUP; trap "stop=130" INT; trap "stop=143" TERM; ' +
  'if [ -z "$stop" ]; then "$@"; code=$?; else code=$stop; fi; echo "$code" > "$status"; exit "$code"';
/** After a stop's SIGTERM, when to look for a job process that was being forked as it was sent. */
const MISSED_TERM_CHECK_MS = 100;
/** How often an adopted job (not our child: no exit event) is looked at. */
const ADOPTED_POLL_MS = 200;
/** Longest delay setTimeout takes; a later deadline is re-armed in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Tries of a failing exit record (full disk, permissions, its directory gone), RECORD_RETRY_MS apart. */
export const RECORD_ATTEMPTS = 5;
export const RECORD_RETRY_MS = 1000;

/**
 * The spec's environment with the job's secret values (spec.secretsPath, a 0600 file removed once the
 * job is spawned) on top: they never sit in spec.json, and never on a command line.
 */
function withSecrets(spec) {
  if (!spec.secretsPath) return spec.env;
  const values = JSON.parse(fs.readFileSync(spec.secretsPath, 'utf8'));
  // Under the spec's own: Flare's variables (and docker's, in docker mode) are never replaced by a secret.
  return { ...values, ...spec.env };
}

export class JobRun {
  /**
   * @param {string} specPath the job's spec.json
   * @param {object} spec its content
   * @param {{ pid: number, nonce: string }} owner the supervisor, recorded in the pid file
   * @param {{ onEnd(record: object, written: boolean): void, log(line: string): void }} hooks onEnd: called
   *   once the job is over, its exit record written or given up on; log: the supervisor's log
   */
  constructor(specPath, spec, owner, hooks) {
    this.specPath = specPath;
    this.spec = spec;
    this.owner = owner;
    this.onEnd = hooks.onEnd;
    this.log = hooks.log;
    this.child = undefined;
    this.pid = undefined;
    this.finished = false;
    this.terminating = false;
    this.reason = undefined;
    this.deadManTimer = undefined;
    this.killTimer = undefined;
    /** Adopted from a dead supervisor: not our child, watched by `poller`. */
    this.adopted = false;
    this.poller = undefined;
    /** Settles once the job is over: its exit record written, or given up on. */
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
    let env = spec.env;
    try {
      env = withSecrets(spec);
      fs.mkdirSync(spec.cwd, { recursive: true, mode: 0o700 });
      out = fs.openSync(spec.outputPath, 'a', 0o600);
      const command = resolveCommand(spec.argv[0], spec.env.PATH, spec.cwd);
      if (typeof command === 'number') {
        this.note(
          `cannot start ${JSON.stringify(spec.argv[0])}: ${command === 127 ? 'command not found' : 'permission denied'}`,
        );
        this.finish({
          exitCode: command,
          signal: null,
          reason: 'not-started',
          error: command === 127 ? 'command not found' : 'permission denied',
        });
        return;
      }
      try {
        this.child = spawn('/bin/sh', ['-c', SHIM, 'flare-job', statusPath(spec), command, ...spec.argv.slice(1)], {
          shell: false,
          cwd: spec.cwd,
          env,
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
      // The values now live only in the job's environment (and docker's, which passes them on by name).
      if (spec.secretsPath) fs.rmSync(spec.secretsPath, { force: true });
    }
    const child = this.child;
    child.on('error', (error) => {
      if (child.pid !== undefined) return; // a signal that could not be sent; 'exit' still comes
      this.note(`cannot start the job's shell: ${message(error)}`);
      this.finish({ exitCode: RUNNER_FAILED, signal: null, reason: 'runner-error', error: message(error) });
    });
    child.on('exit', (code, signal) => {
      // The shim passes the job's code on (128+n for a signal); a signal of its own is a SIGKILL of the group.
      const exitCode = signal ? 128 + (os.constants.signals[signal] ?? 0) : (code ?? RUNNER_FAILED);
      this.finish({ exitCode, signal: signal ?? signalOf(exitCode), ...(this.reason ? { reason: this.reason } : {}) });
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

  /**
   * Take over a job whose supervisor died: its group `pgid` is not our child, so its end is
   * seen by looking (the shim's status file, the group gone). The pid file names us from now on.
   * Returns false, with an exit record written, when nothing of the job runs any more.
   */
  adopt(pgid) {
    const { spec } = this;
    this.pid = pgid;
    this.adopted = true;
    if (this.lookAtAdopted()) return false;
    try {
      writeWhole(spec.pidPath, `${pgid}\n${bootId()}\n${this.owner.pid}\n${this.owner.nonce}\n`);
    } catch (error) {
      this.note(`cannot record the adopting supervisor: ${message(error)}`);
    }
    this.note(`job supervisor restarted: adopted the job's process group ${pgid}`);
    this.poller = setInterval(() => this.lookAtAdopted(), ADOPTED_POLL_MS);
    this.armDeadMan();
    return true;
  }

  /** True once the adopted job is over (and recorded): its shim wrote its code, or its group is gone. */
  lookAtAdopted() {
    if (this.finished) return true;
    const alive = groupAlive(this.pid);
    // Read after the look at the group: a shim that wrote its code and exited in between is not taken for lost.
    const status = readStatus(statusPath(this.spec));
    if (status) {
      // Ended after our signal (its status was not there when we sent it): a file's mtime comes from a coarse
      // clock that can read a few ms before the signal.
      const at =
        this.terminatedAt !== undefined && Date.parse(status.at) < this.terminatedAt
          ? new Date(this.terminatedAt).toISOString()
          : status.at;
      this.finish(
        {
          exitCode: status.exitCode,
          signal: signalOf(status.exitCode),
          ...(this.reason ? { reason: this.reason } : {}),
        },
        at,
      );
      return true;
    }
    if (alive) return false;
    // Gone without a code: killed by us after the grace, or by someone else. Its pgid may be reused now: no signals.
    this.groupGone = true;
    this.finish(
      this.reason
        ? { exitCode: 137, signal: 'SIGKILL', reason: this.reason }
        : {
            exitCode: RUNNER_FAILED,
            signal: null,
            reason: 'lost',
            error: 'its processes ended while no supervisor watched them, without an exit code',
          },
    );
    return true;
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
    this.terminatedAt = Date.now();
    this.reason ??= 'stopped';
    clearTimeout(this.deadManTimer);
    const { spec } = this;
    if (spec.stopArgv) {
      // e.g. `docker stop`: the container is not in the job's process group.
      let out = -1;
      try {
        out = fs.openSync(spec.outputPath, 'a', 0o600);
        const stopper = spawn(spec.stopArgv[0], spec.stopArgv.slice(1), {
          shell: false,
          detached: true,
          stdio: ['ignore', out, out],
          env: spec.env,
        });
        stopper.on('error', (error) => this.note(`${spec.stopArgv[0]}: ${message(error)}`));
        stopper.unref();
      } catch (error) {
        this.note(`${spec.stopArgv[0]}: ${message(error)}`);
      } finally {
        if (out >= 0) fs.closeSync(out);
      }
    }
    this.signalGroup('SIGTERM');
    // A SIGTERM that raced the job's fork reaches only the shim: the job gets it then, once.
    this.missedTermTimer = setTimeout(() => {
      const missed = missedTerm(this.pid);
      if (missed === undefined) return;
      try {
        process.kill(missed, 'SIGTERM');
      } catch {
        // gone
      }
    }, MISSED_TERM_CHECK_MS);
    this.killTimer = setTimeout(() => {
      this.note(`job did not stop within ${spec.stopGraceMs ?? DEFAULT_STOP_GRACE_MS} ms after ${why}; killing it`);
      this.signalGroup('SIGKILL');
      if (this.adopted) this.lookAtAdopted();
    }, spec.stopGraceMs ?? DEFAULT_STOP_GRACE_MS);
  }

  armDeadMan() {
    const current = this.readSpec();
    const expiresAt = Date.parse(current.expiresAt);
    if (Number.isNaN(expiresAt)) return;
    const left = expiresAt - Date.now();
    if (left <= 0) {
      if (this.adopted && this.lookAtAdopted()) return; // it ended on its own before its expiry, unseen till now
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

  /** `at`: when the job ended, if it was not just now (an adopted job's shim wrote it earlier). */
  finish(record, at = new Date().toISOString()) {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.deadManTimer);
    clearTimeout(this.killTimer);
    clearTimeout(this.missedTermTimer);
    clearInterval(this.poller);
    // Whatever the job left behind in its group goes with it, before its end is told: its GPUs are about
    // to be handed to someone else.
    if (!this.groupGone) this.signalGroup('SIGKILL');
    this.record({ ...record, finishedAt: at }, 1);
  }

  /** Write the exit record; a failure is retried a few times, never for ever (the job would never leave us). */
  record(record, attempt) {
    const { exitPath } = this.spec;
    try {
      writeExit(exitPath, record);
    } catch (error) {
      // Removed with the data directory: nothing to wait for.
      const gone = error.code === 'ENOENT' && !fs.existsSync(path.dirname(exitPath));
      if (attempt < RECORD_ATTEMPTS && !gone) {
        this.log(`cannot write ${exitPath} (attempt ${attempt} of ${RECORD_ATTEMPTS}): ${message(error)}; retrying`);
        setTimeout(() => this.record(record, attempt + 1), RECORD_RETRY_MS);
        return;
      }
      this.log(
        `cannot write ${exitPath} (attempt ${attempt}): ${message(error)}; giving up: ` +
          `job ${this.spec.jobId} ended with ${record.exitCode}${record.reason ? ` (${record.reason})` : ''}, ` +
          'told to connected control planes only',
      );
      this.resolveEnded();
      this.onEnd(record, false);
      return;
    }
    this.resolveEnded();
    this.onEnd(record, true);
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

export function message(error) {
  return error instanceof Error ? error.message : String(error);
}
