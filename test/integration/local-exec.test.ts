/**
 * The local driver's exec (lambdas/adapters/local-exec.ts) on real processes:
 * the time bound kills the command's whole process group, and a job run as a
 * container is reached with `docker exec` by its container's name.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execInLocalJob, execTarget } from '../../lambdas/adapters/local-exec.js';
import { Conflict } from '../../lambdas/core/errors.js';
import { waitFor } from '../support/harness.js';

let dir: string;

const spec = (extra: Record<string, unknown> = {}) =>
  writeFile(
    join(dir, 'spec.json'),
    JSON.stringify({
      jobId: 'j-1',
      argv: ['sleep', '60'],
      env: { PATH: process.env.PATH, MARK: 'm' },
      cwd: dir,
      ...extra,
    }),
  );

/** A process that exists and is not a zombie (its reaper may be slow). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flare-exec-'));
});
after(() => rm(dir, { recursive: true, force: true }));

describe('local exec', () => {
  it('kills the whole process group at the time bound and says so', async () => {
    await spec();
    const pidFile = join(dir, 'grandchild.pid');
    const result = await execInLocalJob(
      dir,
      'j-1',
      ['sh', '-c', `echo started; sleep 60 & echo $! > ${pidFile}; wait`],
      { timeoutSeconds: 1, maxOutputBytes: 1024 },
    );
    assert.deepEqual(result, { exitCode: 124, stdout: 'started\n', stderr: '', truncated: false, timedOut: true });
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    await waitFor('the background sleep to be killed', async () => !alive(grandchild) || undefined, 10_000, 50);
  });

  it("runs in the job's environment and directory", async () => {
    await spec();
    const result = await execInLocalJob(dir, 'j-1', ['sh', '-c', 'echo "$MARK $(pwd)"'], {
      timeoutSeconds: 10,
      maxOutputBytes: 1024,
    });
    assert.equal(result.stdout, `m ${dir}\n`);
  });

  it('reaches a container job with docker exec by name, with a TTY for a shell', async () => {
    await spec({ stopArgv: ['docker', 'stop', '--time', '5', 'flare-j-1'] });
    const target = await execTarget(dir, 'j-1', ['nvidia-smi']);
    assert.deepEqual([target.command, ...target.args], ['docker', 'exec', 'flare-j-1', 'nvidia-smi']);
    const shell = await execTarget(dir, 'j-1', ['sh'], true);
    assert.deepEqual(shell.args, ['exec', '--interactive', '--tty', 'flare-j-1', 'sh']);
  });

  it('is a conflict for a job that was never started here', async () => {
    await assert.rejects(execTarget(join(dir, 'nowhere'), 'j-2', ['true']), Conflict);
  });
});
