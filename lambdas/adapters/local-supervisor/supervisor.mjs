// The one long-lived process per data directory that runs the jobs of
// `flare local`: `node supervisor.mjs <dataDir> [idleMs]`.
//
// LocalCompute starts it detached (its own session) so that it and its jobs
// outlive a crash of the control plane, the way EC2 instances would, and talks
// to it over a unix socket in the data directory; a restarted control plane
// connects to the live one. Plain JavaScript with node:* imports only: it must
// start without tsx and without the project's dependencies.
//
// - `<dataDir>/supervisor.pid` (pid, boot, nonce) is its lock: created
//   exclusively, so two supervisors never serve one data directory; a stale one
//   (its process gone) is taken over. It is watched: if it goes (the data
//   directory was removed) or names another process, this one serves nobody
//   any more: it stops its jobs (as SIGTERM does) and exits.
// - `<dataDir>/supervisor.sock` takes one JSON object per line, each answered
//   by one line with the same `id`: {op: 'start', specPath}, {op: 'stop', jobId}
//   (answered once the job is over), {op: 'expiry', jobId}, {op: 'adopt', jobId}.
//   Each job's guarantees are JobRun's (job-run.mjs).
// - A job is over once its processes are gone, whether or not its exit record
//   could be written (RECORD_ATTEMPTS tries). A record that could not be is
//   logged and sent, unasked, to every connected plane, and to each one that
//   connects later: {event: 'ended', jobId, record}.
// - A supervisor that died (SIGKILL, OOM) leaves its jobs running: the next one
//   adopts every job of the data directory whose supervisor is gone, when it
//   starts and when asked (`adopt`). It enforces their expiry and records their
//   ends; a job whose processes are gone without an exit code is recorded `lost`.
// - SIGTERM (or SIGINT) stops every job as a stop would, then exits; within
//   the longest stop grace and the record's tries (SHUTDOWN_MARGIN_MS), whatever
//   its jobs do: what is left of them then is SIGKILLed.
// - With no job and no connection for idleMs (default 60 s) it exits.
// - It logs to `<dataDir>/supervisor.log`, or to stderr when that cannot be written.
//
// When it is ready it writes `ready` on stdout; exit code 0 without that line
// means another supervisor holds the data directory.
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { StartedBefore, writeExit } from './job-files.mjs';
import { DEFAULT_STOP_GRACE_MS, JobRun, RECORD_ATTEMPTS, RECORD_RETRY_MS, message } from './job-run.mjs';
import { LOCK_NAME, SOCKET_NAME, bootId, directSocketPath, liveSupervisor } from './lock.mjs';

const dataDir = process.argv[2] ? path.resolve(process.argv[2]) : undefined;
if (!dataDir) {
  process.stderr.write('usage: supervisor.mjs <dataDir> [idleMs]\n');
  process.exit(2);
}
const idleMs = Number(process.argv[3] ?? 60_000);
const lockPath = path.join(dataDir, LOCK_NAME);
const nonce = crypto.randomBytes(8).toString('hex');
const lockText = `${process.pid}\n${bootId()}\n${nonce}\n`;
const owner = { pid: process.pid, nonce };
const logPath = path.join(dataDir, 'supervisor.log');
/** Past the longest stop grace: time for the SIGKILL, the exit records' tries, and a loaded machine. */
const SHUTDOWN_MARGIN_MS = RECORD_ATTEMPTS * RECORD_RETRY_MS + 5000;
/** A look at the lock beside fs.watch, which may miss its removal (some file systems send no event). */
const LOCK_CHECK_MS = 5000;

/** jobId → JobRun, while the job runs. */
const jobs = new Map();
/** jobId → its exit record, for jobs over whose record could not be written: told to every plane. */
const unrecorded = new Map();
const connections = new Set();
let server;
let idleTimer;
/** SIGTERM, or the lock lost: no new jobs; exit when the last one has ended. */
let closing = false;
/** The lock is no longer ours: serve nobody; never touch the lock or the socket again. */
let orphaned = false;

process.on('SIGTERM', () => shutdown('SIGTERM received'));
process.on('SIGINT', () => shutdown('SIGINT received'));
process.on('SIGHUP', () => {}); // no terminal to lose; keep running
process.stdout.on('error', () => {}); // the control plane that started us is gone: nobody to tell

if (!claimLock()) process.exit(0);
const socketPath = socketAddress();
fs.rmSync(socketPath, { force: true }); // left by a dead predecessor: the lock is ours
server = net.createServer(serve);
server.on('error', (error) => fail(`cannot listen on ${socketPath}: ${message(error)}`));
// Only this user may connect: whoever can talk to the socket runs commands as us.
const umask = process.umask(0o077);
try {
  server.listen(socketPath, () => {
    fs.watch(lockPath, { persistent: false }, checkLock).on('error', () => checkLock());
    setInterval(checkLock, LOCK_CHECK_MS).unref();
    checkLock(); // it may have gone before the watch was set
    if (!orphaned) adoptOrphans();
    if (!orphaned) process.stdout.write('ready\n');
    idleCheck();
  });
} finally {
  process.umask(umask);
}

function serve(connection) {
  if (orphaned) {
    connection.destroy();
    return;
  }
  connections.add(connection);
  clearTimeout(idleTimer);
  for (const [jobId, record] of unrecorded) tell(connection, { event: 'ended', jobId, record });
  connection.setEncoding('utf8');
  let buffer = '';
  connection.on('data', (chunk) => {
    buffer += chunk;
    let newline;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (line.trim()) answer(connection, line);
    }
  });
  connection.on('error', () => {}); // the control plane went away; 'close' follows
  connection.on('close', () => {
    connections.delete(connection);
    idleCheck();
  });
}

function answer(connection, line) {
  let request;
  Promise.resolve()
    .then(() => {
      request = JSON.parse(line);
      return handle(request);
    })
    .then(
      (result) => ({ ok: true, ...result }),
      (error) => ({
        ok: false,
        code: error instanceof StartedBefore ? 'started-before' : 'failed',
        error: message(error),
      }),
    )
    .then((reply) => tell(connection, { id: request?.id, ...reply }));
}

function tell(connection, message) {
  if (!connection.destroyed) connection.write(`${JSON.stringify(message)}\n`);
}

/** JobRun's onEnd: the job is over, its record written or not. */
function ended(jobId, record, written) {
  jobs.delete(jobId);
  if (!written) {
    unrecorded.set(jobId, record);
    for (const connection of connections) tell(connection, { event: 'ended', jobId, record });
  }
  idleCheck();
}

/**
 * Log to supervisor.log (created by the plane that starts us); to stderr when it cannot be written
 * (removed with the data directory, say). Never created here: that would race a removal of the directory.
 */
function log(line) {
  const text = `[flare-supervisor] ${new Date().toISOString()} ${line}\n`;
  let fd;
  try {
    fd = fs.openSync(logPath, fs.constants.O_WRONLY | fs.constants.O_APPEND);
    fs.writeSync(fd, text);
  } catch {
    process.stderr.write(text);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function handle(request) {
  switch (request.op) {
    case 'start':
      return start(request.specPath);
    case 'stop': {
      const job = jobs.get(request.jobId);
      if (!job) return { state: 'unknown' }; // ended and recorded, or never ours
      job.terminate('stop requested');
      return job.ended.then(() => ({ state: 'stopped', pid: job.pid }));
    }
    case 'expiry': {
      const job = jobs.get(request.jobId);
      job?.rearm();
      return { state: job ? 'running' : 'unknown' };
    }
    case 'adopt':
      return adopt(request.jobId);
    default:
      throw new Error(`unknown op ${JSON.stringify(request.op)}`);
  }
}

function start(specPath) {
  if (typeof specPath !== 'string' || !path.isAbsolute(specPath)) throw new Error('specPath must be an absolute path');
  const spec = JSON.parse(fs.readFileSync(specPath, 'utf8'));
  const running = jobs.get(spec.jobId);
  if (running) return { state: 'running', pid: running.pid };
  if (unrecorded.has(spec.jobId) || fs.existsSync(spec.exitPath)) return { state: 'ended' };
  if (closing || orphaned) throw new Error('the job supervisor is shutting down');
  const job = new JobRun(specPath, spec, owner, {
    onEnd: (record, written) => ended(spec.jobId, record, written),
    log,
  });
  jobs.set(spec.jobId, job);
  clearTimeout(idleTimer);
  try {
    job.start();
  } catch (error) {
    jobs.delete(spec.jobId);
    idleCheck();
    throw error;
  }
  return { state: 'started', pid: job.pid };
}

const JOB_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** Every job of the data directory that a dead supervisor left: adopted, or recorded as over. */
function adoptOrphans() {
  let ids;
  try {
    ids = fs.readdirSync(path.join(dataDir, 'jobs'));
  } catch {
    return;
  }
  for (const jobId of ids) {
    if (!JOB_ID.test(jobId)) continue;
    try {
      adopt(jobId);
    } catch (error) {
      log(`cannot adopt job ${jobId}: ${message(error)}`);
    }
  }
}

/**
 * A job whose supervisor is gone, taken over: its group still runs (adopted, its expiry
 * enforced, its end recorded), or it ended unwatched (recorded from its shim's status file,
 * or as lost). Nothing to do for a job we run, one with a record, or one never started.
 */
function adopt(jobId) {
  if (typeof jobId !== 'string' || !JOB_ID.test(jobId)) throw new Error('jobId must name a job directory');
  if (jobs.has(jobId)) return { state: 'running', pid: jobs.get(jobId).pid };
  if (unrecorded.has(jobId)) return { state: 'ended' };
  const dir = path.join(dataDir, 'jobs', jobId);
  const specPath = path.join(dir, 'spec.json');
  const pidPath = path.join(dir, 'pid');
  if (fs.existsSync(path.join(dir, 'exit.json'))) return { state: 'ended' };
  let lines;
  try {
    lines = fs.readFileSync(pidPath, 'utf8').split('\n');
  } catch {
    return { state: 'unknown' }; // never started
  }
  const [pidText, boot, ownerPid, ownerNonce] = lines;
  if (Number(ownerPid) === process.pid && ownerNonce === nonce) return { state: 'unknown' }; // ours, and over
  if (ownerPid && liveSupervisor(`${ownerPid}\n${boot}\n${ownerNonce}\n`, dataDir)) return { state: 'unknown' }; // its supervisor lost the lock but runs it still
  const spec = JSON.parse(fs.readFileSync(specPath, 'utf8'));
  const pgid = Number(pidText);
  if ((boot && bootId() && boot !== bootId()) || !Number.isInteger(pgid) || pgid <= 0) {
    const why = pgid > 0 ? 'the machine restarted while it ran' : 'its supervisor died as it started the job';
    const record = { exitCode: 125, signal: null, reason: 'lost', error: why, finishedAt: new Date().toISOString() };
    try {
      writeExit(spec.exitPath, record);
    } catch (error) {
      log(`cannot write ${spec.exitPath}: ${message(error)}; job ${jobId} was lost, told to connected planes only`);
      ended(jobId, record, false);
    }
    return { state: 'ended' };
  }
  if (closing || orphaned) throw new Error('the job supervisor is shutting down');
  const job = new JobRun(specPath, spec, owner, {
    onEnd: (record, written) => ended(jobId, record, written),
    log,
  });
  jobs.set(jobId, job);
  clearTimeout(idleTimer);
  // Over already (its shim's code on disk, or nothing left of it): recorded at once by adopt.
  if (!job.adopt(pgid)) return { state: 'ended' };
  return { state: 'adopted', pid: pgid };
}

/**
 * Take `supervisor.pid` exclusively. A stale one is moved aside and checked
 * to be the one found stale before it is dropped: a lock taken meanwhile by
 * another supervisor is put back, never removed.
 */
function claimLock() {
  const tmp = `${lockPath}.${process.pid}.tmp`;
  const aside = `${lockPath}.${process.pid}.stale`;
  fs.writeFileSync(tmp, lockText, { mode: 0o600 });
  try {
    for (let attempt = 0; attempt < 5; attempt += 1) {
      try {
        fs.linkSync(tmp, lockPath);
        return true;
      } catch (error) {
        if (error.code !== 'EEXIST') throw error;
      }
      let found;
      try {
        found = fs.readFileSync(lockPath, 'utf8');
      } catch (error) {
        if (error.code === 'ENOENT') continue;
        throw error;
      }
      if (liveSupervisor(found, dataDir)) return false;
      try {
        fs.renameSync(lockPath, aside);
      } catch (error) {
        if (error.code === 'ENOENT') continue;
        throw error;
      }
      if (fs.readFileSync(aside, 'utf8') !== found) {
        try {
          fs.linkSync(aside, lockPath);
        } catch (error) {
          if (error.code !== 'EEXIST') throw error;
        }
      }
      fs.rmSync(aside, { force: true });
    }
    return false;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** Where to listen; a data directory too deep for a socket path is reached through its descriptor (Linux). */
function socketAddress() {
  const direct = directSocketPath(dataDir);
  if (direct) return direct;
  if (!fs.existsSync('/proc/self/fd')) fail(`data directory path too long for a unix socket: ${dataDir}`);
  return `/proc/self/fd/${fs.openSync(dataDir, 'r')}/${SOCKET_NAME}`;
}

function checkLock() {
  if (orphaned) return;
  let text;
  try {
    text = fs.readFileSync(lockPath, 'utf8');
  } catch {
    text = undefined;
  }
  if (text === lockText) return;
  // Removed with the data directory, or replaced: another supervisor may serve it now, and none can
  // reach us to stop, adopt or hear of our jobs.
  orphaned = true;
  for (const connection of connections) connection.destroy();
  log(
    `${lockPath} is ${text === undefined ? 'gone' : "another supervisor's"}: stopping ${jobs.size} job(s) and exiting`,
  );
  shutdown('its supervisor lost its lock');
}

function shutdown(why) {
  if (closing) return;
  closing = true;
  let grace = 0;
  for (const job of jobs.values()) {
    grace = Math.max(grace, job.spec.stopGraceMs ?? DEFAULT_STOP_GRACE_MS);
    job.terminate(why);
  }
  // Bounded whatever a job or its record does: what is left then is killed, and we go.
  if (jobs.size > 0) setTimeout(forceExit, grace + SHUTDOWN_MARGIN_MS);
  idleCheck();
}

function forceExit() {
  for (const [jobId, job] of jobs) {
    log(`job ${jobId} is not over ${SHUTDOWN_MARGIN_MS} ms after its stop grace; killing its processes`);
    job.signalGroup('SIGKILL');
  }
  exit();
}

function idleCheck() {
  clearTimeout(idleTimer);
  if (jobs.size > 0) return;
  if (closing || orphaned) {
    exit();
    return;
  }
  if (connections.size > 0) return;
  idleTimer = setTimeout(() => {
    if (jobs.size === 0 && connections.size === 0) exit();
  }, idleMs);
}

function exit() {
  if (!orphaned) {
    // Socket first (close unlinks it), lock last: a successor never loses its socket to us.
    server?.close();
    try {
      if (fs.readFileSync(lockPath, 'utf8') === lockText) fs.rmSync(lockPath, { force: true });
    } catch {
      // gone already
    }
  }
  process.exit(0);
}

function fail(line) {
  log(line);
  try {
    if (fs.readFileSync(lockPath, 'utf8') === lockText) fs.rmSync(lockPath, { force: true });
  } catch {
    // gone already
  }
  process.exit(1);
}
