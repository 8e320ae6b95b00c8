/**
 * One control plane per data directory (lambdas/local/plane-lock.ts): a second
 * `flare local` on a directory a plane serves is refused before it starts
 * DynamoDB Local or touches a job; a lock left by a killed plane is taken over.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LocalConfig, parse } from '../../lambdas/core/schemas.js';
import { startControlPlane, type ControlPlane } from '../../lambdas/local/control-plane.js';
import { DataDirInUseError, lockDataDir, PLANE_LOCK } from '../../lambdas/local/plane-lock.js';
import { quietLog } from '../support/harness.js';

const ROOT = resolve(import.meta.dirname, '../..');

function configOf(dataDir: string): LocalConfig {
  return parse(LocalConfig, { port: 0, dataDir, pools: [{ name: 'local', gpus: 1 }], compute: { driver: 'process' } });
}

/** A node process that takes the lock of `dataDir` and holds it until killed. */
async function holder(dataDir: string): Promise<ChildProcess> {
  const script = `import { lockDataDir } from ${JSON.stringify(join(ROOT, 'lambdas/local/plane-lock.ts'))};
await lockDataDir(${JSON.stringify(dataDir)}); console.log('locked'); setInterval(() => {}, 60000);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  assert.equal(line.toString().trim(), 'locked');
  return child;
}

describe('one control plane per data directory', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flare-plane-lock-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describe('while a plane serves the directory', () => {
    let plane: ControlPlane;
    let dataDir: string;
    before(async () => {
      dataDir = join(dir, 'served');
      plane = await startControlPlane(configOf(dataDir), { inMemory: true, log: quietLog, announce: () => {} });
    });
    after(async () => {
      await plane?.stop();
    });

    it('a second plane in this process is refused, naming the holder', async () => {
      const second = await startControlPlane(configOf(dataDir), {
        inMemory: true,
        log: quietLog,
        announce: () => {},
      }).catch((error: unknown) => error as Error);
      if (!(second instanceof Error)) await second.stop();
      assert.ok(second instanceof DataDirInUseError, `refused: ${second}`);
      assert.equal(second.pid, process.pid);
      const health = await fetch(`${plane.url}/v1/health`);
      assert.equal(health.status, 200, 'the first plane still serves');
    });

    it('`flare local` on it exits 1 saying so, before it starts anything', async () => {
      const config = join(dir, 'second.local.json');
      await writeFile(config, JSON.stringify({ port: 0, dataDir, compute: { driver: 'process' } }));
      const child = spawn(process.execPath, ['--import', 'tsx', 'bin/flare.ts', 'local', '--config', config], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout!.on('data', (chunk: Buffer) => void (output += chunk));
      child.stderr!.on('data', (chunk: Buffer) => void (output += chunk));
      // A plane that started after all would serve until stopped: stop it, and the asserts below fail.
      child.stdout!.on('data', () => void (/listening/.test(output) && child.kill('SIGTERM')));
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 1, output);
      assert.match(
        output,
        new RegExp(`flare: ${dataDir} is in use by another Flare control plane \\(pid ${process.pid}\\)`),
      );
      assert.doesNotMatch(output, /DynamoDB Local|recovering|listening/, output);
    });
  });

  it('is free again once the plane stops', async () => {
    const dataDir = join(dir, 'restarted');
    const first = await startControlPlane(configOf(dataDir), { inMemory: true, log: quietLog, announce: () => {} });
    await first.stop();
    await assert.rejects(readFile(join(dataDir, PLANE_LOCK)), { code: 'ENOENT' });
    const second = await startControlPlane(configOf(dataDir), { inMemory: true, log: quietLog, announce: () => {} });
    await second.stop();
  });

  it("another process's lock refuses; once that process is SIGKILLed its lock is taken over", async () => {
    const dataDir = join(dir, 'killed');
    await mkdir(dataDir);
    const child = await holder(dataDir);
    try {
      await assert.rejects(
        lockDataDir(dataDir),
        (error: unknown) => error instanceof DataDirInUseError && error.pid === child.pid,
      );
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    const release = await lockDataDir(dataDir);
    assert.match(await readFile(join(dataDir, PLANE_LOCK), 'utf8'), new RegExp(`^${process.pid}\n`));
    await release();
  });
});
