/** What the numbers were measured on, and at which commit. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import type { Machine } from './results.js';

export function describeMachine(loadStart: number): Machine {
  const cpu = cpus()[0]?.model.trim() || 'unknown CPU';
  return {
    cpu,
    cores: cpus().length,
    memoryGb: totalmem() / 2 ** 30,
    os: osName(),
    kernel: release(),
    node: process.version,
    loadStart,
    loadEnd: loadavg()[0],
  };
}

function osName(): string {
  try {
    const text = readFileSync('/etc/os-release', 'utf8');
    return /^PRETTY_NAME="?([^"\n]+)"?/m.exec(text)?.[1] ?? process.platform;
  } catch {
    return process.platform;
  }
}

export function gitState(cwd: string): { commit: string; dirty: boolean } {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd, encoding: 'utf8' }).trim();
    const status = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd,
      encoding: 'utf8',
    }).trim();
    return { commit, dirty: status.length > 0 };
  } catch {
    return { commit: 'unknown (not a git checkout)', dirty: false };
  }
}
