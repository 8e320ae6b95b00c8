/**
 * Ctrl-C at the terminal sends SIGINT to the whole foreground process group of
 * `npm start`. The plane stops DynamoDB Local itself, in order: the JVM is not
 * hit by the same SIGINT first (which the plane took for a crash and restarted
 * it), and it is gone once `flare local` has exited.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../support/harness.js';

const ROOT = resolve(import.meta.dirname, '../..');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The process group of a process (`/proc/<pid>/stat` field 5). */
function groupOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

describe('Ctrl-C (SIGINT to the process group) of flare local', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flare-sigint-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('stops DynamoDB Local in order, without taking its exit for a crash, and exits 0', async () => {
    const config = join(dir, 'flare.local.json');
    await writeFile(config, JSON.stringify({ port: 0, dataDir: join(dir, 'data'), compute: { driver: 'process' } }));
    // detached: its own process group, as a shell gives a foreground job.
    const plane = spawn(process.execPath, ['--import', 'tsx', 'bin/flare.ts', 'local', '--config', config], {
      cwd: ROOT,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    plane.stdout!.on('data', (chunk: Buffer) => void (output += chunk));
    plane.stderr!.on('data', (chunk: Buffer) => void (output += chunk));
    const exited = once(plane, 'exit');
    try {
      await waitFor('the plane listening', async () => /listening on (http:\/\/\S+)/.test(output), 60_000);
      const url = /listening on (http:\/\/\S+)/.exec(output)![1];
      const health = (await (await fetch(`${url}/v1/health`)).json()) as {
        components: { dynamodb: { pid: number } };
      };
      const jvm = health.components.dynamodb.pid;
      assert.ok(alive(jvm));
      // Whether the JVM is hit by the group's SIGINT before the plane stops it is a race; its group says whether it can be.
      assert.notEqual(groupOf(jvm), plane.pid, "DynamoDB Local is outside the plane's process group");

      process.kill(-plane.pid!, 'SIGINT');
      const [code] = (await exited) as [number | null];
      assert.equal(code, 0, output);
      assert.doesNotMatch(output, /exited unexpectedly|restarting it/, output);
      assert.equal(alive(jvm), false, 'no DynamoDB Local left behind');
    } finally {
      if (plane.exitCode === null && plane.signalCode === null) process.kill(-plane.pid!, 'SIGKILL');
    }
  });
});
