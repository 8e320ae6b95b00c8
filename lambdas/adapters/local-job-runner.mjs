// The process that stands in for a job's instance on this machine.
//
// LocalCompute spawns it detached (its own session and process group) as
// `node local-job-runner.mjs <spec.json>` so that a job outlives a crash of the
// control plane, the way an EC2 instance would. It is plain JavaScript with
// node:* imports only: it must start without tsx and without the project's
// dependencies. Everything it needs is in the spec file that LocalCompute
// wrote (see `RunnerSpec` in local-compute.ts).
//
// What it guarantees:
// - the job's argv is exec'd directly, never through a shell;
// - stdout and stderr go straight into the job's output file (the child owns
//   the descriptor, so output survives this process);
// - SIGTERM is passed on once to the whole process group, so the job's own
//   children stop too;
// - a dead-man switch stops the job at expiresAt + grace even when no control
//   plane is left to do it; expiresAt is re-read from the spec file, so a
//   changed live timeout is honoured;
// - exactly one exit record, written atomically (tmp + rename), and nothing
//   of the job left running afterwards.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const TICK_MS = 15_000;
/** Exit code when the runner itself could not run the job (docker uses the same). */
const RUNNER_FAILED = 125;

const specPath = process.argv[2];
if (!specPath) {
  process.stderr.write('usage: local-job-runner.mjs <spec.json>\n');
  process.exit(2);
}

let spec;
try {
  spec = JSON.parse(fs.readFileSync(specPath, 'utf8'));
} catch (error) {
  // Without a spec there is nowhere to report to but next to the spec itself.
  writeExit(path.join(path.dirname(specPath), 'exit.json'), { exitCode: RUNNER_FAILED, signal: null, reason: 'runner-error', error: `cannot read ${specPath}: ${message(error)}` });
  process.exit(1);
}

let out = -1;
let child;
let finished = false;
let terminating = false;
let reason;
let deadManTimer;
let killTimer;

try {
  main();
} catch (error) {
  note(`runner failed: ${message(error)}`);
  finish({ exitCode: RUNNER_FAILED, signal: null, reason: 'runner-error', error: message(error) });
}

function main() {
  // Handlers first: a stop that arrives while starting up must not be lost.
  process.on('SIGTERM', () => terminate('SIGTERM received'));
  process.on('SIGINT', () => terminate('SIGINT received'));
  process.on('SIGHUP', () => {}); // no terminal to lose; keep running

  if (!claimPidFile()) process.exit(0); // another runner has it
  // Checked after the claim: a runner writes its record before it goes, so a
  // runner that found its predecessor gone sees the record here.
  if (fs.existsSync(spec.exitPath)) process.exit(0); // ran before: never twice

  try {
    fs.mkdirSync(spec.cwd, { recursive: true, mode: 0o700 });
    out = fs.openSync(spec.outputPath, 'a', 0o600);
  } catch (error) {
    finish({ exitCode: RUNNER_FAILED, signal: null, reason: 'runner-error', error: message(error) });
    return;
  }

  if (terminating) {
    finish({ exitCode: 128 + os.constants.signals.SIGTERM, signal: 'SIGTERM', reason });
    return;
  }

  try {
    child = spawn(spec.argv[0], spec.argv.slice(1), {
      shell: false,
      cwd: spec.cwd,
      env: spec.env,
      stdio: ['ignore', out, out],
    });
  } catch (error) {
    // Synchronous failures: bad arguments, e.g. a NUL byte in argv or env.
    note(`cannot start ${JSON.stringify(spec.argv[0])}: ${message(error)}`);
    finish({ exitCode: RUNNER_FAILED, signal: null, reason: 'runner-error', error: message(error) });
    return;
  }
  child.on('error', (error) => {
    if (child.pid !== undefined) return; // a signal that could not be sent; 'exit' still comes
    const code = error.code === 'ENOENT' ? 127 : error.code === 'EACCES' ? 126 : RUNNER_FAILED;
    note(`cannot start ${JSON.stringify(spec.argv[0])}: ${error.code === 'ENOENT' ? 'command not found' : message(error)}`);
    finish({ exitCode: code, signal: null, reason: 'not-started', error: message(error) });
  });
  child.on('exit', (code, signal) => {
    const exitCode = signal ? 128 + (os.constants.signals[signal] ?? 0) : code ?? RUNNER_FAILED;
    finish({ exitCode, signal: signal ?? null, ...(reason ? { reason } : {}) });
  });

  armDeadMan();
}

/**
 * Create the pid file exclusively and whole (written aside, then hard-linked into
 * place: a reader never sees it half written); a stale one (its runner gone) is replaced.
 */
function claimPidFile() {
  const tmp = `${spec.pidPath}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${process.pid}\n${bootId()}\n`, { mode: 0o600 });
  try {
    for (let attempt = 0; attempt < 2; attempt += 1) {
      try {
        fs.linkSync(tmp, spec.pidPath);
        return true;
      } catch (error) {
        if (error.code !== 'EEXIST') throw error;
      }
      const [pid, boot] = fs.readFileSync(spec.pidPath, 'utf8').split('\n');
      if (isRunner(Number(pid), boot)) return false;
      fs.rmSync(spec.pidPath, { force: true });
    }
    return false;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

function isRunner(pid, boot) {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (boot && bootId() && boot !== bootId()) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    if (error.code !== 'EPERM') return false;
  }
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(specPath);
  } catch {
    return !fs.existsSync('/proc/self'); // no procfs (macOS): trust the signal probe
  }
}

function bootId() {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
}

function armDeadMan() {
  const deadline = readDeadline();
  if (deadline === undefined) return;
  const left = deadline - Date.now();
  if (left <= 0) {
    reason = 'expired';
    note(`live timeout passed (expiresAt ${readSpec().expiresAt}); stopping the job`);
    terminate('live timeout passed');
    return;
  }
  deadManTimer = setTimeout(armDeadMan, Math.min(left, TICK_MS));
}

/** expiresAt + grace from the spec file as it is now: the control plane may have moved it. */
function readDeadline() {
  const current = readSpec();
  const expiresAt = Date.parse(current.expiresAt);
  if (Number.isNaN(expiresAt)) return undefined;
  return expiresAt + (current.deadManGraceMs ?? 0);
}

function readSpec() {
  try {
    return JSON.parse(fs.readFileSync(specPath, 'utf8'));
  } catch {
    return spec; // mid-rewrite or gone: the copy read at start still holds
  }
}

/** Stop the job: SIGTERM once to the group (the job and its children), SIGKILL after the grace. */
function terminate(why) {
  if (terminating || finished) return;
  terminating = true;
  reason ??= 'stopped';
  clearTimeout(deadManTimer);
  if (spec.stopArgv) {
    // e.g. `docker stop`: the container is not in this process group. Detached,
    // so the SIGTERM about to reach the group does not cut it short.
    spawn(spec.stopArgv[0], spec.stopArgv.slice(1), { shell: false, detached: true, stdio: ['ignore', out, out], env: spec.env }).on('error', (error) => note(`${spec.stopArgv[0]}: ${message(error)}`));
  }
  signalGroup('SIGTERM'); // reaches this process too; the handler ignores repeats
  killTimer = setTimeout(() => {
    note(`job did not stop within ${spec.stopGraceMs} ms after ${why}; killing it`);
    if (child?.pid !== undefined) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone; 'exit' is on its way
      }
    }
  }, spec.stopGraceMs ?? 10_000);
}

function finish(record) {
  if (finished) return;
  finished = true;
  clearTimeout(deadManTimer);
  clearTimeout(killTimer);
  writeExit(spec.exitPath, record);
  if (out >= 0) fs.closeSync(out);
  // Whatever the job left behind in its group goes with it, this runner included:
  // the job is over and its GPUs are about to be handed to someone else.
  signalGroup('SIGKILL');
  process.exit(0);
}

function signalGroup(signal) {
  try {
    process.kill(-process.pid, signal);
  } catch {
    // not a group leader (started by hand): the job alone then
    if (child?.pid !== undefined) {
      try {
        process.kill(child.pid, signal);
      } catch {
        // already gone
      }
    }
  }
}

function writeExit(exitPath, record) {
  const tmp = `${exitPath}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  fs.writeSync(fd, `${JSON.stringify({ ...record, finishedAt: new Date().toISOString() })}\n`);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.renameSync(tmp, exitPath);
}

function note(line) {
  if (out < 0) return;
  try {
    fs.writeSync(out, `[flare] ${new Date().toISOString()} ${line}\n`);
  } catch {
    // the output file is best effort; the exit record is what counts
  }
}

function message(error) {
  return error instanceof Error ? error.message : String(error);
}
