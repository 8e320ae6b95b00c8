// The files a job run writes in its directory (see jobs.ts for how the plane reads
// them): the pid file, claimed exclusively before the job is spawned; the shim's
// status file; the exit record, written atomically. Plain JavaScript with node:*
// imports only, like job-run.mjs and supervisor.mjs, which use it.
import fs from 'node:fs';

/** The job's pid file claimed by another start: it ran (or runs) already. */
export class StartedBefore extends Error {}

export function statusPath(spec) {
  return spec.statusPath ?? `${spec.pidPath}.status`;
}

/** The shim's record of the job's exit: its code, and when (the file's mtime). */
export function readStatus(file) {
  try {
    const text = fs.readFileSync(file, 'utf8');
    const exitCode = Number(text.trim());
    if (!text.endsWith('\n') || !Number.isInteger(exitCode)) return undefined; // being written
    return { exitCode, at: fs.statSync(file).mtime.toISOString() };
  } catch {
    return undefined;
  }
}

/**
 * Create `file` exclusively and whole (written aside, then hard-linked into
 * place: a reader never sees it half written). Throws StartedBefore if it exists.
 */
export function claimPidFile(file, text) {
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
export function writeWhole(file, text) {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

export function writeExit(exitPath, record) {
  const tmp = `${exitPath}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    try {
      fs.writeSync(fd, `${JSON.stringify(record)}\n`);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, exitPath);
  } catch (error) {
    fs.rmSync(tmp, { force: true }); // a half-written record is no record
    throw error;
  }
}
