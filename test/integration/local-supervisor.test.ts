/**
 * The job supervisor of the local compute driver, with real processes: one per
 * data directory, shared by planes, gone when idle, and never lingering: not
 * when its data directory or lock goes, not when a job's exit record cannot be
 * written, not after SIGTERM.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, it } from 'node:test';
import {
  cleanups,
  harness,
  ids,
  job,
  pidOf,
  run,
  runCleanups,
  running,
  supervisorOf,
  supervisors,
  until,
} from '../support/local-compute.js';

afterEach(runCleanups);

const SUPERVISOR = fileURLToPath(new URL('../../lambdas/adapters/local-supervisor/supervisor.mjs', import.meta.url));
/** Generous: the machine may be loaded; what matters is that it ends, not how fast. */
const GONE_MS = 30_000;

/**
 * A supervisor of `dataDir` started by hand, as a plane would start it (planes then connect to it), with
 * its output here. As root it runs without CAP_DAC_OVERRIDE (setpriv), so that file permissions bind it
 * as they bind everyone else: root writes through a directory's mode otherwise.
 */
async function startSupervisor(
  dataDir: string,
  idleMs = 60_000,
): Promise<{ child: ChildProcess; stderr: () => string }> {
  await writeFile(join(dataDir, 'supervisor.log'), '', { flag: 'a' }); // as a plane creates it
  const command = [process.execPath, SUPERVISOR, dataDir, String(idleMs)];
  if (process.getuid?.() === 0) {
    if (!existsSync('/usr/bin/setpriv')) throw new Error('as root, setpriv (util-linux) is needed to test permissions');
    command.unshift('/usr/bin/setpriv', '--bounding-set=-dac_override,-dac_read_search');
  }
  const child = spawn(command[0], command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  cleanups.push(() => void child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk) => (stdout += chunk));
  child.stderr?.on('data', (chunk) => (stderr += chunk));
  await until(() => stdout.includes('ready\n'), GONE_MS, `the supervisor to be ready (${stderr})`);
  return { child, stderr: () => stderr };
}

/** A job's script (`sh -c ENDS_ON_GO <go file> <exit code>`) that ends once the test creates its go file: whatever the load, after the test is ready. */
const ENDS_ON_GO = 'while [ ! -e "$0" ]; do sleep 0.05; done; exit "$1"';

/** True once a process started here has exited. */
const ended = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null;

/** A path the supervisor may not write to (mode 0500): an exit record renamed into it, or a log appended to it, fails with EACCES. */
async function makeUnwritable(path: string): Promise<void> {
  await chmod(path, 0o500);
  cleanups.push(() => chmod(path, 0o700).catch(() => undefined));
}

describe('LocalCompute: the job supervisor', () => {
  it('runs each job in its own session and process group, apart from the supervisor, which is apart from the control plane', async () => {
    const h = await harness();
    await run(h.compute, 'grouped', ['sleep', '60']);
    const pid = await pidOf(h, 'grouped');
    const supervisor = supervisorOf(h.dataDir);

    assert.deepEqual(ids(pid), { ppid: supervisor, pgrp: pid, session: pid });
    assert.equal(ids(supervisor).session, supervisor, 'the supervisor leads its own session');
    assert.notEqual(ids(supervisor).session, ids(process.pid).session);
  });

  it('one supervisor per data directory: concurrent control planes share it, and a restarted one reconnects to it', async () => {
    const h = await harness({ pools: [{ name: 'local', gpus: 6 }] });
    const planes = [h.compute, h.make(), h.make()];

    await Promise.all(planes.map((plane, i) => run(plane, `p${i}`, ['sleep', '60'])));

    const supervisor = supervisorOf(h.dataDir);
    assert.deepEqual(supervisors(h.dataDir), [supervisor]);
    for (const id of ['p0', 'p1', 'p2']) {
      const [, , owner] = (await readFile(join(h.dataDir, 'jobs', id, 'pid'), 'utf8')).split('\n');
      assert.equal(Number(owner), supervisor, `${id} runs under the one supervisor`);
    }
    for (const plane of planes) plane.close(); // every control plane gone; the jobs and their supervisor stay
    const restarted = h.make();
    const held = await run(restarted, 'p3', ['sh', '-c', 'exit 4']);
    assert.equal((await h.exited('p3')).exitCode, 4);
    assert.deepEqual(supervisors(h.dataDir), [supervisor]);
    await restarted.stop(held);
  });

  it('exits on its own once it has no job and no control plane, and a later start brings up a new one', async () => {
    const h = await harness({ supervisorIdleMs: 200 });
    await run(h.compute, 'brief', ['sleep', '0.3']);
    const first = supervisorOf(h.dataDir);
    h.compute.close();

    await until(() => supervisors(h.dataDir).length === 0, 4000, 'the idle supervisor to exit');
    assert.ok(existsSync(join(h.dataDir, 'jobs', 'brief', 'exit.json')), 'it waited for its job to end');
    assert.equal(existsSync(join(h.dataDir, 'supervisor.pid')), false);
    assert.equal(existsSync(join(h.dataDir, 'supervisor.sock')), false);

    const again = h.make();
    await run(again, 'later', ['true']);
    assert.equal((await h.exited('later')).exitCode, 0);
    assert.notEqual(supervisorOf(h.dataDir), first);
  });

  it('leaves a data directory that is removed, once its jobs have ended', async () => {
    const h = await harness();
    await run(h.compute, 'short', ['true']);
    await h.exited('short');
    const supervisor = supervisorOf(h.dataDir);
    h.compute.close();

    await rm(h.dataDir, { recursive: true, force: true, maxRetries: 5 });

    await until(() => running(supervisor).length === 0, 4000, 'the supervisor to exit');
  });

  it('SIGTERM to the supervisor stops its jobs as a stop would, records their ends, and it exits', async () => {
    const h = await harness();
    await run(h.compute, 'term-a', ['sleep', '60']);
    await run(h.compute, 'term-b', ['sleep', '60']);
    const supervisor = supervisorOf(h.dataDir);

    process.kill(supervisor, 'SIGTERM');

    for (const id of ['term-a', 'term-b']) {
      const record = await h.exited(id);
      assert.equal(record.reason, 'stopped');
      assert.equal(record.exitCode, 143);
    }
    await until(() => supervisors(h.dataDir).length === 0, 3000, 'the supervisor to exit');
    assert.equal(h.lost.length, 0);
  });

  it('reaches its socket through the directory when the data directory path is too long for one', async () => {
    const h = await harness();
    const deep = join(h.dataDir, 'd'.repeat(60), 'e'.repeat(60));
    await mkdir(deep, { recursive: true });
    const far = h.make({ dataDir: deep });

    await run(far, 'far', ['sh', '-c', 'exit 6']);

    assert.equal((await h.exited('far')).exitCode, 6);
    assert.deepEqual(supervisors(deep).length, 1);
    far.close();
  });
});

describe('The job supervisor never lingers', () => {
  it('stops its jobs (SIGTERM, SIGKILL after the grace) and exits when its data directory is removed under it', async () => {
    const h = await harness({ stopGraceMs: 500 });
    await run(h.compute, 'stubborn', ['sh', '-c', 'trap "" TERM; sleep 600']);
    const group = await pidOf(h, 'stubborn');
    const supervisor = supervisorOf(h.dataDir);
    h.compute.close();

    await rm(h.dataDir, { recursive: true, force: true, maxRetries: 5 });

    await until(() => running(supervisor).length === 0, GONE_MS, 'the supervisor to exit');
    await until(() => running(group).length === 0, GONE_MS, 'the job to be gone');
  });

  it('stops its jobs, records their ends and exits when its lock file is removed', async () => {
    const h = await harness({ stopGraceMs: 500 });
    await run(h.compute, 'unlocked', ['sleep', '600']);
    const group = await pidOf(h, 'unlocked');
    const supervisor = supervisorOf(h.dataDir);
    h.compute.close();

    await rm(join(h.dataDir, 'supervisor.pid'));

    await until(() => running(supervisor).length === 0, GONE_MS, 'the supervisor to exit');
    assert.deepEqual(running(group), []);
    const record = JSON.parse(await readFile(join(h.dataDir, 'jobs', 'unlocked', 'exit.json'), 'utf8'));
    assert.equal(record.reason, 'stopped');
  });

  it('lets go of a job whose exit record cannot be written: logs it, tells the plane its end, and obeys SIGTERM', async () => {
    const h = await harness();
    const { child } = await startSupervisor(h.dataDir);
    const go = join(h.dataDir, 'go');
    await run(h.compute, 'unwritable', ['sh', '-c', ENDS_ON_GO, go, '3']);
    const group = await pidOf(h, 'unwritable');
    await makeUnwritable(join(h.dataDir, 'jobs', 'unwritable'));
    await writeFile(go, '');

    const record = await h.exited('unwritable', GONE_MS);

    assert.equal(record.exitCode, 3, 'told to the plane');
    assert.match(
      await readFile(join(h.dataDir, 'supervisor.log'), 'utf8'),
      /cannot write .*exit\.json \(attempt 5\): EACCES.*giving up/,
    );
    assert.equal(existsSync(join(h.dataDir, 'jobs', 'unwritable', 'exit.json')), false);
    assert.deepEqual(running(group), []);
    child.kill('SIGTERM');
    await until(() => ended(child), GONE_MS, 'the supervisor to exit on SIGTERM');
    assert.deepEqual(supervisors(h.dataDir), []);
  });

  it('exits once idle after a job whose exit record cannot be written, with no job process left (the issue as reported)', async () => {
    const h = await harness();
    const { child } = await startSupervisor(h.dataDir, 500);
    const go = join(h.dataDir, 'go');
    await run(h.compute, 'idle-unwritable', ['sh', '-c', ENDS_ON_GO, go, '0']);
    const group = await pidOf(h, 'idle-unwritable');
    await makeUnwritable(join(h.dataDir, 'jobs', 'idle-unwritable'));
    await writeFile(go, '');
    await h.exited('idle-unwritable', GONE_MS);
    h.compute.close(); // no plane, no job: idle

    await until(() => ended(child), GONE_MS, 'the idle supervisor to exit on its own');

    assert.equal(child.exitCode, 0);
    assert.deepEqual(running(group), []);
    assert.deepEqual(supervisors(h.dataDir), []);
  });

  it('on SIGTERM stops a job whose exit record cannot be written, tells the plane, and exits', async () => {
    const h = await harness({ stopGraceMs: 500 });
    const { child } = await startSupervisor(h.dataDir);
    // It says when it ignores SIGTERM: a SIGTERM before its trap would end it (143), not the SIGKILL after the grace.
    const deaf = join(h.dataDir, 'deaf');
    await run(h.compute, 'term-unwritable', ['sh', '-c', 'trap "" TERM; : > "$0"; sleep 600', deaf]);
    const group = await pidOf(h, 'term-unwritable');
    await until(() => existsSync(deaf), GONE_MS, 'the job to ignore SIGTERM');
    await makeUnwritable(join(h.dataDir, 'jobs', 'term-unwritable'));

    child.kill('SIGTERM');

    await until(() => supervisors(h.dataDir).length === 0, GONE_MS, 'the supervisor to exit');
    assert.deepEqual(running(group), [], 'the job ignored SIGTERM: SIGKILLed after its grace');
    const record = await h.exited('term-unwritable', GONE_MS);
    assert.equal(record.reason, 'stopped');
    assert.equal(record.exitCode, 137);
    assert.equal(existsSync(join(h.dataDir, 'jobs', 'term-unwritable', 'exit.json')), false);
  });

  it('tells a plane that connects later the end it could not record, and logs to stderr when its log cannot be written', async () => {
    const h = await harness();
    h.compute.close();
    const { child, stderr } = await startSupervisor(h.dataDir);
    await makeUnwritable(join(h.dataDir, 'supervisor.log'));
    const first = h.make();
    const go = join(h.dataDir, 'go');
    await run(first, 'told-later', ['sh', '-c', ENDS_ON_GO, go, '5']);
    await makeUnwritable(join(h.dataDir, 'jobs', 'told-later'));
    first.close(); // nobody connected when the job ends
    await writeFile(go, '');
    await until(() => /giving up/.test(stderr()), GONE_MS, 'the supervisor to give up on the record');

    const later = h.make();
    await later.reattach([job('told-later', { devices: [0] })]);

    assert.equal((await h.exited('told-later', GONE_MS)).exitCode, 5);
    assert.match(stderr(), /cannot write .*exit\.json.*EACCES/);
    assert.equal(await readFile(join(h.dataDir, 'supervisor.log'), 'utf8'), '', 'nothing reached the unwritable log');
    child.kill('SIGTERM');
    await until(() => ended(child), GONE_MS, 'the supervisor to exit');
    assert.deepEqual(supervisors(h.dataDir), []);
  });
});
