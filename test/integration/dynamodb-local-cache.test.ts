/**
 * The emulator's cache after a first `npm start` was stopped with Ctrl-C while it
 * fetched DynamoDB Local: the killed install's work directory (a part of the
 * tarball) is removed by the next start; a running install's is left alone.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DYNAMODB_LOCAL_PACKAGE_INTEGRITY, ensureDynamoDbLocal } from '../../lambdas/local/dynamodb-local-install.js';

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await once(child, 'exit');
  return child.pid!;
}

describe('the DynamoDB Local cache', () => {
  it('removes the work directory of an install whose process is gone, and keeps a live one', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'flare-ddb-cache-'));
    try {
      const dir = join(parent, 'dynamodb-local');
      // Installed already (the marker with the pinned integrity), so nothing is fetched.
      await mkdir(dir);
      await writeFile(
        join(dir, '.flare-complete.json'),
        JSON.stringify({ integrity: DYNAMODB_LOCAL_PACKAGE_INTEGRITY }),
      );
      const abandoned = `.dynamodb-local.tmp-${await deadPid()}-a1b2c3`;
      const running = `.dynamodb-local.tmp-${process.pid}-d4e5f6`;
      for (const work of [abandoned, running]) {
        await mkdir(join(parent, work));
        await writeFile(join(parent, work, 'package.tgz'), 'part of a tarball');
      }

      assert.equal(await ensureDynamoDbLocal({ dir }), dir);

      assert.deepEqual((await readdir(parent)).sort(), [running, 'dynamodb-local'].sort());
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });
});
