// The job's process group, as the kernel shows it: whether any of it still runs
// (/proc, zombies excluded), a job process that missed its group's SIGTERM while it
// was being forked, what an exit code says of a signal, and argv[0] found as execvp
// would. Plain JavaScript with node:* imports only, like job-run.mjs, which uses it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** 143 -> 'SIGTERM': the shell's way of telling a death by signal. */
export function signalOf(exitCode) {
  if (exitCode <= 128) return null;
  return Object.entries(os.constants.signals).find(([, n]) => n === exitCode - 128)?.[0] ?? null;
}

/**
 * argv[0] as execvp would find it, as a path, so the shim's shell runs it and never a
 * builtin of its own (`eval`, `exit`, `exec`); 127 not found, 126 not executable.
 */
export function resolveCommand(name, searchPath = '/usr/bin:/bin', cwd) {
  if (typeof name !== 'string' || name === '') return 127;
  const candidates = name.includes('/')
    ? [path.resolve(cwd, name)]
    : searchPath.split(':').map((dir) => path.resolve(cwd, dir || '.', name));
  let denied = false;
  for (const candidate of candidates) {
    try {
      if (!fs.statSync(candidate).isFile()) continue;
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch (error) {
      if (error.code === 'EACCES') denied = true;
    }
  }
  return denied ? 126 : 127;
}

/** True while a process of the group runs; zombies (reaped late by some inits) do not count. */
export function groupAlive(pgid) {
  try {
    process.kill(-pgid, 0);
  } catch (error) {
    if (error.code !== 'EPERM') return false;
  }
  const members = groupMembers(pgid);
  return members === undefined || members.length > 0; // no procfs: the signal probe is all there is
}

/** The live (not zombie) processes of group `pgid`, from /proc; undefined without procfs. */
function groupMembers(pgid) {
  let pids;
  try {
    pids = fs.readdirSync('/proc').filter((name) => /^[0-9]+$/.test(name));
  } catch {
    return undefined;
  }
  return pids.flatMap((pid) => {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const [state, ppid, pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return Number(pgrp) === pgid && state !== 'Z' ? [{ pid: Number(pid), ppid: Number(ppid) }] : [];
    } catch {
      return [];
    }
  });
}

const SIGTERM_BIT = 1n << BigInt(os.constants.signals.SIGTERM - 1);

/**
 * The job process (the shim's child) if it is alive with SIGTERM's default action: it cannot have
 * received the group's SIGTERM (that action ends it), so the signal came while it was being forked.
 */
export function missedTerm(shimPid) {
  for (const { pid, ppid } of groupMembers(shimPid) ?? []) {
    if (ppid !== shimPid) continue;
    try {
      const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      const mask = (name) =>
        BigInt(`0x${new RegExp(`^${name}:\\s*([0-9a-f]+)`, 'm').exec(status)?.[1] ?? 'ffffffffffffffff'}`);
      if (((mask('SigBlk') | mask('SigIgn') | mask('SigCgt')) & SIGTERM_BIT) === 0n) return pid;
    } catch {
      // it ended while we looked
    }
  }
  return undefined;
}
