/**
 * The local compute driver with real processes: every job here is a real
 * process of a real supervisor, in a temporary data directory.
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { LaunchFailed } from '../../lambdas/core/errors.js';
import { JobState } from '../../lambdas/core/job.js';
import { discoverGpus } from '../../lambdas/adapters/gpu-discovery.js';
import { LocalComputeError, type ExitRecord } from '../../lambdas/adapters/local-compute.js';
import {
  cleanups,
  harness,
  job,
  output,
  pidOf,
  run,
  runCleanups,
  running,
  spec,
  supervisorOf,
  supervisors,
  until,
} from '../support/local-compute.js';

afterEach(runCleanups);
describe('LocalCompute (process mode)', () => {
  it('reports exit codes, zero and non-zero, and keeps stdout and stderr', async () => {
    const h = await harness();
    await run(h.compute, 'ok', ['true']);
    await run(h.compute, 'bad', ['sh', '-c', 'echo to-out; echo to-err >&2; exit 3']);

    assert.equal((await h.exited('ok')).exitCode, 0);
    const bad = await h.exited('bad');
    assert.equal(bad.exitCode, 3);
    assert.equal(bad.signal, null);
    assert.equal(await output(h, 'bad'), 'to-out\nto-err\n');
  });

  it('reports an exit as it happens, also one that comes while it is still looking at the job it just started', async () => {
    // No poll to fall back on: every exit must come from watching the job's directory.
    const h = await harness({ pollMs: 3_600_000 });
    for (let i = 0; i < 30; i++) {
      const started = await run(h.compute, `quick-${i}`, ['true']);
      assert.equal((await h.exited(`quick-${i}`, 3000)).exitCode, 0);
      await h.compute.stop(started); // frees its slot, as the control plane does
    }
  });

  it('runs argv without a shell', async () => {
    const h = await harness();
    const text = '$(id); `uname` | cat > /tmp/x && echo $HOME';
    await run(h.compute, 'literal', ['echo', text]);

    assert.equal((await h.exited('literal')).exitCode, 0);
    assert.equal(await output(h, 'literal'), `${text}\n`);
  });

  it('gives concurrent jobs their own slots in CUDA_VISIBLE_DEVICES, FLARE_JOB_ID, and nothing of its own environment', async () => {
    const h = await harness();
    process.env.FLARE_TEST_SECRET = 'must-not-leak';
    cleanups.push(() => void delete process.env.FLARE_TEST_SECRET);
    const show = [
      'sh',
      '-c',
      'sleep 0.3; echo "$CUDA_VISIBLE_DEVICES|$FLARE_JOB_ID|$MODEL|${FLARE_TEST_SECRET:-unset}"',
    ];

    await run(h.compute, 'first', show, { env: { MODEL: 'resnet' } });
    await run(h.compute, 'second', show, { env: { MODEL: 'vit', CUDA_VISIBLE_DEVICES: '0,1' } });

    await assert.rejects(h.compute.launch(job('third')), LaunchFailed);
    await Promise.all([h.exited('first'), h.exited('second')]);
    assert.equal(await output(h, 'first'), '0|first|resnet|unset\n');
    assert.equal(await output(h, 'second'), '1|second|vit|unset\n', 'the job cannot widen its own devices');
  });

  it('launch is idempotent and allocates the lowest free slots of the pool', async () => {
    const h = await harness({ pools: [{ name: 'local', gpus: 4 }] });

    const a = await h.compute.launch(job('a', { gpus: 2 }));
    const again = await h.compute.launch(job('a', { gpus: 2 }));
    const b = await h.compute.launch(job('b', { gpus: 1 }));

    assert.deepEqual(a, { instanceIds: ['local-a'], devices: [0, 1] });
    assert.deepEqual(again, a);
    assert.deepEqual(b.devices, [2]);
    assert.deepEqual(h.compute.freeDevices('local'), [3]);
    await assert.rejects(h.compute.launch(job('c', { gpus: 2 })), /has 1 of 4 GPU slots free.*needs 2/);
    await assert.rejects(h.compute.launch(job('d', { pool: 'nope' })), LaunchFailed);
  });

  it('stop() ends a running job quickly, frees its slots, and does not report it as an exit', async () => {
    const h = await harness();
    const held = await run(h.compute, 'sleeper', ['sleep', '60']);
    const sleeper = await pidOf(h, 'sleeper');
    assert.deepEqual(h.compute.freeDevices('local'), [1]);

    const began = Date.now();
    await h.compute.stop(held);

    assert.ok(Date.now() - began < 1500, `stop took ${Date.now() - began} ms`);
    assert.deepEqual(running(sleeper), [], 'nothing of the job is left in its group');
    assert.deepEqual(h.compute.freeDevices('local'), [0, 1]);
    await h.compute.stop(held); // again: nothing to do
    await h.compute.stop(job('never-started'));
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(h.exits.has('sleeper'), false);
  });

  it('stop() kills a job that ignores SIGTERM after the grace period', async () => {
    const h = await harness({ stopGraceMs: 300 });
    const held = await run(h.compute, 'stubborn', ['sh', '-c', 'trap "" TERM; echo ready; sleep 60']);
    await until(
      async () => existsSync(h.compute.logPath('stubborn')) && (await output(h, 'stubborn')).includes('ready'),
      3000,
      'the job',
    );
    const stubborn = await pidOf(h, 'stubborn');

    await h.compute.stop(held);

    assert.deepEqual(running(stubborn), []);
    assert.deepEqual(h.compute.freeDevices('local'), [0, 1]);
  });

  it('starting a job twice runs it once', async () => {
    const h = await harness();
    const launched = await h.compute.launch(job('once'));
    const held = job('once', { command: ['sh', '-c', 'echo ran; sleep 0.3'], devices: launched.devices });

    await Promise.all([h.compute.start(held, spec(held)), h.compute.start(held, spec(held))]);
    await h.compute.start(held, spec(held));
    await h.exited('once');
    await h.compute.start(held, spec(held)); // after it ended
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(h.exits.get('once')?.length, 1);
    await h.make().start(held, spec(held)); // another control plane, after a restart

    assert.equal(await output(h, 'once'), 'ran\n');
  });

  it('after a restart, re-attaches: takes the slots back and reports exits, also those that happened while down', async () => {
    const h = await harness();
    // Long enough to end after the close below: jobs start in milliseconds now.
    const early = await run(h.compute, 'early', ['sh', '-c', 'sleep 0.2; exit 7']);
    const late = await run(h.compute, 'late', ['sh', '-c', 'sleep 0.8; exit 5']);
    h.compute.close(); // the control plane is gone; its jobs are not
    await until(() => existsSync(join(h.dataDir, 'jobs', 'early', 'exit.json')), 3000, 'the early exit');
    assert.equal(h.exits.size, 0);

    const restarted = h.make();
    await restarted.reattach([early, late, job('done', { state: JobState.SUCCEEDED, devices: [0] })]);

    assert.deepEqual(restarted.freeDevices('local'), []);
    assert.equal((await h.exited('early')).exitCode, 7);
    assert.equal((await h.exited('late')).exitCode, 5);
    await restarted.stop(early);
    await restarted.stop(late);
    assert.deepEqual(restarted.freeDevices('local'), [0, 1]);
  });

  it('a killed supervisor is replaced at once; the new one adopts its running jobs, which run on, and reports their exits', async () => {
    const h = await harness();
    const held = await run(h.compute, 'adopted', ['sleep', '60']);
    await run(h.compute, 'adopted-short', ['sh', '-c', 'sleep 1; exit 3']);
    const groups = [await pidOf(h, 'adopted'), await pidOf(h, 'adopted-short')];
    const supervisor = supervisorOf(h.dataDir);

    process.kill(supervisor, 'SIGKILL');
    await until(
      () => supervisors(h.dataDir).length === 1 && supervisorOf(h.dataDir) !== supervisor,
      5000,
      'a new supervisor',
    );

    for (const group of groups) assert.ok(running(group).length > 0, 'the job still runs');
    const short = await h.exited('adopted-short', 5000);
    assert.equal(short.exitCode, 3);
    assert.deepEqual(h.lost, [], 'no healthy job is lost');
    const [, , owner] = (await readFile(join(h.dataDir, 'jobs', 'adopted', 'pid'), 'utf8')).split('\n');
    assert.equal(Number(owner), supervisorOf(h.dataDir), 'the pid file names the adopting supervisor');
    await assert.doesNotReject(h.make().start(held, spec(held)), 'a restarted control plane does not run it again');

    await h.compute.stop(held);
    assert.deepEqual(running(groups[0]), []);
    const stopped = JSON.parse(await readFile(join(h.dataDir, 'jobs', 'adopted', 'exit.json'), 'utf8')) as ExitRecord;
    assert.equal(stopped.reason, 'stopped', 'the adopter stopped it and recorded its end');
    assert.equal(await output(h, 'adopted').then((o) => o.match(/sleep/g)), null, 'it was not started a second time');
  });

  it('an adopted job is stopped at its expiresAt by the new supervisor, with no control plane', async () => {
    const h = await harness({ stopGraceMs: 500 });
    const expiresAt = new Date(Date.now() + 1500).toISOString();
    await run(h.compute, 'adopted-expiry', ['sleep', '60'], { expiresAt });
    const supervisor = supervisorOf(h.dataDir);
    h.compute.close(); // no control plane to replace the supervisor...
    process.kill(supervisor, 'SIGKILL');
    await until(() => supervisors(h.dataDir).length === 0, 3000, 'the supervisor to die');

    const restarted = h.make(); // ...until one comes back, and the job is found running
    await restarted.reattach([job('adopted-expiry', { state: JobState.RUNNING, devices: [0], expiresAt })]);
    const record = await h.exited('adopted-expiry', 6000);

    assert.equal(record.reason, 'expired');
    assert.equal(record.exitCode, 143);
    assert.ok(
      Date.parse(record.finishedAt) >= Date.parse(expiresAt),
      `ended at ${record.finishedAt}, expiry ${expiresAt}`,
    );
    assert.deepEqual(h.lost, []);
  });

  it('a job that ended while no supervisor ran is reported with its own code and time; one whose processes vanished is lost', async () => {
    const h = await harness();
    const ended = await run(h.compute, 'ended-unwatched', ['sh', '-c', 'sleep 0.5; exit 5']);
    const vanished = await run(h.compute, 'vanished', ['sleep', '60']);
    const vanishedGroup = await pidOf(h, 'vanished');
    const supervisor = supervisorOf(h.dataDir);
    h.compute.close();
    process.kill(supervisor, 'SIGKILL');
    process.kill(-vanishedGroup, 'SIGKILL'); // shim and job gone: no exit code anywhere
    await until(
      () => existsSync(join(h.dataDir, 'jobs', 'ended-unwatched', 'exit-code')),
      3000,
      'the job to end unwatched',
    );
    const endedAt = (await stat(join(h.dataDir, 'jobs', 'ended-unwatched', 'exit-code'))).mtime.toISOString();
    await new Promise((r) => setTimeout(r, 300));

    const restarted = h.make();
    await restarted.reattach([ended, vanished]);

    const record = await h.exited('ended-unwatched');
    assert.equal(record.exitCode, 5);
    assert.equal(record.finishedAt, endedAt, 'when it ended, not when it was found');
    await until(() => h.lost.includes('vanished'), 3000, 'the lost report');
    assert.deepEqual(h.lost, ['vanished']);
  });

  it('an exit that cannot be recorded is reported again, with backoff, until it is', async () => {
    let calls = 0;
    const recorded: number[] = [];
    const h = await harness({
      onExit: (_jobId, exitCode) => {
        calls += 1;
        if (calls < 4) throw new Error('the store is down');
        recorded.push(exitCode);
      },
    });
    await run(h.compute, 'unrecorded', ['sh', '-c', 'exit 9']);

    await until(() => recorded.length > 0, 10_000, 'the exit to be recorded');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(calls, 4, 'reported until it was recorded, then never again');
    assert.deepEqual(recorded, [9]);
  });

  it('the dead-man switch stops a job at expiresAt with no control plane', async () => {
    const h = await harness({ stopGraceMs: 500 });
    const expiresAt = new Date(Date.now() + 300).toISOString();
    await run(h.compute, 'forgotten', ['sleep', '60'], { expiresAt });
    h.compute.close();
    const exitPath = join(h.dataDir, 'jobs', 'forgotten', 'exit.json');

    await until(() => existsSync(exitPath), 4000, 'the dead-man switch');

    const record = JSON.parse(await readFile(exitPath, 'utf8')) as ExitRecord;
    assert.equal(record.reason, 'expired');
    assert.equal(record.signal, 'SIGTERM');
    assert.ok(Date.parse(record.finishedAt) >= Date.parse(expiresAt));
    assert.equal(record.exitCode, 143);
    assert.match(await output(h, 'forgotten'), /live timeout passed/);
  });

  it('the dead-man switch honours a moved expiry', async () => {
    const h = await harness();
    // Room for the start and the move on a loaded machine (a test run beside CI took over 400 ms).
    const held = await run(h.compute, 'extended', ['sleep', '60'], {
      expiresAt: new Date(Date.now() + 1500).toISOString(),
    });

    await h.compute.updateExpiry('extended', new Date(Date.now() + 60_000).toISOString());
    await new Promise((r) => setTimeout(r, 2400)); // well past the old deadline + grace

    assert.equal(existsSync(join(h.dataDir, 'jobs', 'extended', 'exit.json')), false);
    await h.compute.stop(held);
  });

  it('the dead-man switch follows an expiry moved earlier at once', async () => {
    const h = await harness({ stopGraceMs: 500 });
    await run(h.compute, 'shortened', ['sleep', '60'], { expiresAt: new Date(Date.now() + 600_000).toISOString() });

    await h.compute.updateExpiry('shortened', new Date(Date.now() + 100).toISOString());

    const record = await h.exited('shortened', 3000);
    assert.equal(record.reason, 'expired');
    assert.equal(record.exitCode, 143);
  });

  it('a command that does not exist exits 127 and says so in the output', async () => {
    const h = await harness();
    await run(h.compute, 'missing', ['flare-no-such-command-anywhere', '--help']);

    const record = await h.exited('missing');
    assert.equal(record.exitCode, 127);
    assert.match(await output(h, 'missing'), /flare-no-such-command-anywhere.*command not found/);
  });

  it('refuses job ids that cannot name a directory', async () => {
    const h = await harness();
    await assert.rejects(h.compute.launch(job('../escape')), LocalComputeError);
  });
});

describe('LocalCompute: what the reconciler sees and ends', () => {
  it('listManaged lists live jobs and held slots of this data directory only, with their job', async () => {
    const h = await harness({ pools: [{ name: 'local', gpus: 4 }] });
    await run(h.compute, 'busy', ['sleep', '60']);
    await run(h.compute, 'quick', ['true']);
    await h.compute.launch(job('launched'));
    await h.exited('quick');
    const quick = await pidOf(h, 'quick');
    await until(() => running(quick).length === 0, 3000, 'the quick job to be gone');

    const managed = await h.compute.listManaged();

    assert.deepEqual(
      managed
        .map(({ instanceId, jobId, state }) => ({ instanceId, jobId, state }))
        .sort((a, b) => a.instanceId.localeCompare(b.instanceId)),
      [
        { instanceId: 'local-busy', jobId: 'busy', state: 'running' },
        { instanceId: 'local-launched', jobId: 'launched', state: 'pending' },
        // Ended, its slot held until stop(): still the job's (EC2's instance is there until terminated).
        { instanceId: 'local-quick', jobId: 'quick', state: 'stopped' },
      ],
    );
    assert.ok(Date.parse(managed.find((m) => m.jobId === 'busy')!.launchedAt!) <= Date.now());
    // After a restart the detached job is still found; another data directory sees nothing of it.
    assert.deepEqual(
      (await h.make().listManaged()).map((m) => m.jobId),
      ['busy'],
    );
    const other = await harness();
    assert.deepEqual(await other.compute.listManaged(), []);
  });

  it('terminate() stops jobs by instance id, frees their slots, reports no exit, and ignores ids already gone', async () => {
    const h = await harness({ stopGraceMs: 300 });
    await run(h.compute, 'orphan-a', ['sleep', '60']);
    await run(h.compute, 'orphan-b', ['sh', '-c', 'trap "" TERM; sleep 60']);
    const groups = [await pidOf(h, 'orphan-a'), await pidOf(h, 'orphan-b')];

    await h.compute.terminate(['local-orphan-a', 'local-orphan-b', 'local-long-gone']);

    for (const group of groups) assert.deepEqual(running(group), []);
    assert.deepEqual(await h.compute.listManaged(), []);
    await h.compute.terminate(['local-orphan-a']); // again: nothing to do
    await h.compute.terminate([]);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(h.exits.size, 0);
  });

  it('terminate() frees slots held by a launch that never started, and refuses ids that are not local instances', async () => {
    const h = await harness();
    await h.compute.launch(job('stranded', { gpus: 2 }));
    assert.deepEqual(h.compute.freeDevices('local'), []);

    await h.compute.terminate(['local-stranded']);

    assert.deepEqual(h.compute.freeDevices('local'), [0, 1]);
    await assert.rejects(h.compute.terminate(['i-0123456789abcdef0']), LocalComputeError);
    await assert.rejects(h.compute.terminate(['local-../escape']), LocalComputeError);
  });

  it('lists a job whose supervisor died while its process group lives on, and terminate() ends the group', async () => {
    const h = await harness();
    await run(h.compute, 'headless', ['sleep', '60']);
    const group = await pidOf(h, 'headless');
    const supervisor = supervisorOf(h.dataDir);
    h.compute.close();
    process.kill(supervisor, 'SIGKILL');
    await until(() => supervisors(h.dataDir).length === 0, 3000, 'the supervisor to die');

    const reconciler = h.make();
    assert.deepEqual(
      (await reconciler.listManaged()).map((m) => m.jobId),
      ['headless'],
    );
    await reconciler.terminate(['local-headless']);

    assert.deepEqual(running(group), []);
    assert.deepEqual(await reconciler.listManaged(), []);
  });

  it('docker mode: lists containers of this data directory that outlived their supervisor, and terminate() removes them', async () => {
    const bin = await mkdtemp(join(tmpdir(), 'flare-fake-docker-'));
    const calls = join(bin, 'calls');
    // `docker ps` shows this control plane's job and another one's; every call is recorded.
    await writeFile(
      join(bin, 'docker'),
      `#!/bin/sh\necho "$*" >> ${calls}\nif [ "$1" = ps ]; then printf 'boxed\\nnot-ours\\n'; fi\nexit 0\n`,
    );
    await chmod(join(bin, 'docker'), 0o755);
    const path = process.env.PATH;
    process.env.PATH = `${bin}:${path}`;
    cleanups.push(async () => {
      process.env.PATH = path;
      await rm(bin, { recursive: true, force: true });
    });
    const h = await harness({ driver: 'docker' });
    await mkdir(join(h.dataDir, 'jobs', 'boxed'), { recursive: true });
    await writeFile(join(h.dataDir, 'jobs', 'boxed', 'spec.json'), '{}');

    assert.deepEqual(await h.compute.listManaged(), [
      {
        instanceId: 'local-boxed',
        jobId: 'boxed',
        state: 'running',
        launchedAt: (await stat(join(h.dataDir, 'jobs', 'boxed', 'spec.json'))).mtime.toISOString(),
      },
    ]);
    await h.compute.terminate(['local-boxed']);

    const recorded = (await readFile(calls, 'utf8')).trim().split('\n');
    assert.deepEqual(recorded, [
      'ps --filter label=flare.job --format {{.Label "flare.job"}}',
      'rm --force flare-boxed',
    ]);
  });
});

describe('LocalCompute (docker mode)', () => {
  it('runs the job as a hardened docker run, with the job env passed to the container and not to docker', async () => {
    const h = await harness({ driver: 'docker', docker: { memory: '2g' } });
    await run(h.compute, 'boxed', ['python', 'train.py', '$(id)'], { env: { MODEL: 'vit' } });

    const record = await h.exited('boxed');
    const runnerSpec = JSON.parse(await readFile(join(h.dataDir, 'jobs', 'boxed', 'spec.json'), 'utf8'));
    const scratch = join(h.dataDir, 'scratch');
    assert.deepEqual(runnerSpec.argv.slice(0, 3), ['docker', 'run', '--rm']);
    const user = process.getuid!() === 0 ? '65534:65534' : `${process.getuid!()}:${process.getgid!()}`;
    for (const arg of [
      '--name=flare-boxed',
      '--cap-drop=ALL',
      '--memory=2g',
      `--user=${user}`,
      '--env=MODEL=vit',
      '--env=NVIDIA_VISIBLE_DEVICES=void',
      `--mount=type=bind,src=${scratch}/boxed,dst=/scratch`,
    ]) {
      assert.ok(runnerSpec.argv.includes(arg), `${arg} in ${runnerSpec.argv.join(' ')}`);
    }
    assert.ok(
      !runnerSpec.argv.some((a: string) => a.startsWith('--gpus')),
      'plain slots are not GPUs docker could give',
    );
    assert.deepEqual(runnerSpec.argv.slice(-5), ['--', job('boxed').image, 'python', 'train.py', '$(id)']);
    assert.equal(runnerSpec.env.MODEL, undefined);
    assert.deepEqual(runnerSpec.stopArgv, ['docker', 'stop', '--time', '2', 'flare-boxed']);
    // Here there is no engine (or no such image): docker itself fails, 125; no docker CLI at all, 127.
    assert.ok([125, 127].includes(record.exitCode), `exit ${record.exitCode}`);
  });
});

describe('GPU discovery and pool mapping', () => {
  it('counts the GPUs nvidia-smi -L lists, and is 0 without nvidia-smi', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flare-nvidia-smi-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const fake = join(dir, 'nvidia-smi');
    await writeFile(
      fake,
      '#!/bin/sh\necho "GPU 0: NVIDIA A10G (UUID: GPU-1)"\necho "GPU 1: NVIDIA A10G (UUID: GPU-2)"\n',
    );
    await chmod(fake, 0o755);

    assert.equal(await discoverGpus({ command: fake }), 2);
    assert.equal(await discoverGpus({ command: join(dir, 'absent') }), 0);
  });

  it('maps pools onto real GPUs in config order, and refuses more than the machine has', async () => {
    const h = await harness({
      pools: [
        { name: 'a', gpus: 2 },
        { name: 'b', gpus: 1 },
      ],
      hostGpus: 3,
    });

    assert.deepEqual((await h.compute.launch(job('on-b', { pool: 'b' }))).devices, [2]);
    assert.deepEqual((await h.compute.launch(job('on-a', { pool: 'a', gpus: 2 }))).devices, [0, 1]);
    assert.throws(() => h.make({ hostGpus: 2 }), /pools a \(2\), b \(1\) ask for 3 GPUs but this machine has 2/);
  });

  it('two pools never hand out the same device, with GPUs or with plain slots', async () => {
    for (const hostGpus of [0, 4]) {
      const h = await harness({
        pools: [
          { name: 'a', gpus: 2 },
          { name: 'b', gpus: 2 },
        ],
        hostGpus,
      });
      await run(h.compute, 'on-a', ['sh', '-c', 'echo "$CUDA_VISIBLE_DEVICES"'], { pool: 'a' });
      await run(h.compute, 'on-b', ['sh', '-c', 'echo "$CUDA_VISIBLE_DEVICES"'], { pool: 'b', gpus: 2 });
      await Promise.all([h.exited('on-a'), h.exited('on-b')]);

      assert.equal(await output(h, 'on-a'), '0\n');
      assert.equal(await output(h, 'on-b'), '2,3\n', `hostGpus ${hostGpus}`);
    }
  });
});
