/**
 * dockerRunArgs: the hardened `docker run` command line a job's spec becomes, and the specs, images and
 * deployment options it refuses.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { dockerRunArgs } from '../../lambdas/core/container-command.js';
import {
  ALLOWED_OPTION,
  DIGEST,
  IMAGE,
  OPTIONS,
  PAYLOADS,
  assertValidation,
  nastySpec,
  spec,
  splitAtImage,
} from '../support/container-specs.js';

describe('dockerRunArgs', () => {
  test('builds the hardened command line, options as single --flag=value elements, the command verbatim after the image', () => {
    const argv = dockerRunArgs(spec({ env: { EPOCHS: '3', A_PATH: '/data' } }), {
      memory: '30g',
      scratchDir: '/var/lib/flare/scratch',
    });

    assert.deepEqual(argv, [
      'run',
      '--rm',
      '--name=flare-job-1',
      '--label=flare.job=job-1',
      '--init',
      '--cap-drop=ALL',
      '--security-opt=no-new-privileges',
      '--pids-limit=4096',
      '--memory=30g',
      '--shm-size=1g',
      '--user=65534:65534',
      '--gpus=all',
      '--env=NVIDIA_VISIBLE_DEVICES=all',
      '--env=FLARE_JOB_ID=job-1',
      '--env=HOME=/scratch',
      '--env=A_PATH=/data',
      '--env=EPOCHS=3',
      '--mount=type=bind,src=/var/lib/flare/scratch/job-1,dst=/scratch',
      '--',
      IMAGE,
      'python',
      'train.py',
    ]);
  });

  test("sets a member of an array's FLARE_ARRAY_ID, FLARE_ARRAY_INDEX and FLARE_ARRAY_SIZE itself, beside FLARE_JOB_ID", () => {
    const argv = dockerRunArgs(spec({ array: { id: 'a-0123456789abcdef', index: 2, size: 4 } }), OPTIONS);
    const envs = argv.filter((a) => a.startsWith('--env=FLARE_'));
    assert.deepEqual(envs, [
      '--env=FLARE_JOB_ID=job-1',
      '--env=FLARE_ARRAY_ID=a-0123456789abcdef',
      '--env=FLARE_ARRAY_INDEX=2',
      '--env=FLARE_ARRAY_SIZE=4',
    ]);
    assert.deepEqual(
      dockerRunArgs(spec({}), OPTIONS).filter((a) => a.startsWith('--env=FLARE_ARRAY')),
      [],
      'not for a job alone',
    );
  });

  test('hands a device list to --gpus as one quoted CSV field and to the NVIDIA runtime', () => {
    const argv = dockerRunArgs(spec({ gpus: 2, devices: [0, 3] }), OPTIONS);
    assert.ok(argv.includes('--gpus="device=0,3"'));
    assert.ok(argv.includes('--env=NVIDIA_VISIBLE_DEVICES=0,3'));
  });

  test('gives a job without GPUs no --gpus and no GPUs from a runtime that defaults to nvidia', () => {
    const argv = dockerRunArgs(spec({ gpus: 0 }), OPTIONS);
    assert.ok(!argv.some((a) => a.startsWith('--gpus')));
    assert.ok(argv.includes('--env=NVIDIA_VISIBLE_DEVICES=void'));
  });

  test('detach keeps the stopped container for docker wait instead of --rm', () => {
    const argv = dockerRunArgs(spec(), { ...OPTIONS, detach: true });
    assert.equal(argv[1], '--detach');
    assert.ok(!argv.includes('--rm'));
  });

  test('allowRoot drops --user; log driver and options come from the deployment', () => {
    const argv = dockerRunArgs(spec(), {
      ...OPTIONS,
      allowRoot: true,
      logDriver: 'awslogs',
      logOptions: { 'awslogs-stream': 'job-1', 'awslogs-group': '/flare/jobs' },
    });
    assert.ok(!argv.some((a) => a.startsWith('--user')));
    const { options } = splitAtImage(argv);
    assert.deepEqual(options.slice(-3), [
      '--log-driver=awslogs',
      '--log-opt=awslogs-group=/flare/jobs',
      '--log-opt=awslogs-stream=job-1',
    ]);
  });

  test('passes every hostile string through as exactly one element after the image, never before it', () => {
    const nasty = nastySpec();
    const argv = dockerRunArgs(nasty, OPTIONS);
    const { options, image, command } = splitAtImage(argv);

    assert.equal(image, IMAGE);
    assert.deepEqual(command, PAYLOADS);
    for (const option of options) assert.match(option, ALLOWED_OPTION);
    PAYLOADS.forEach((payload, i) => {
      assert.ok(options.includes(`--env=EVIL_${i}=${payload}`), `env EVIL_${i} is one element`);
      if (payload.length > 0) assert.ok(!options.includes(payload), `${JSON.stringify(payload)} is not an option`);
    });
    for (const flag of [
      '--privileged',
      '--network=host',
      '--net=host',
      '--pid=host',
      '--ipc=host',
      '--userns=host',
      '--uts=host',
      '-v',
      '--volume',
      '--device',
      '--cap-add',
    ]) {
      assert.ok(!options.some((o) => o === flag || o.startsWith(`${flag}=`)), `${flag} is never an option`);
    }
  });

  test('refuses images that are not pinned references, so the image can never be a flag', () => {
    for (const image of [
      '--privileged',
      '-v /:/host',
      '-v',
      `--privileged@${DIGEST}`,
      `-alpine@${DIGEST}`,
      ' alpine',
      'alpine',
      'alpine:3.20',
      `Alpine@${DIGEST}`,
      `alpine;id@${DIGEST}`,
      `alpine@${DIGEST}\n`,
      `alpine@sha256:${'a'.repeat(63)}`,
      `alpine @${DIGEST}`,
      '',
    ]) {
      assertValidation(() => dockerRunArgs(spec({ image }), OPTIONS), 'image');
    }
  });

  test('accepts an undigested reference only when allowed, and still never a flag', () => {
    assert.ok(
      dockerRunArgs(spec({ image: 'nvidia/cuda:12.4.1-base-ubuntu22.04' }), {
        ...OPTIONS,
        allowUnpinnedImage: true,
      }).includes('nvidia/cuda:12.4.1-base-ubuntu22.04'),
    );
    for (const image of ['--privileged', '-v', '/abs', 'a b']) {
      assertValidation(() => dockerRunArgs(spec({ image }), { ...OPTIONS, allowUnpinnedImage: true }), 'image');
    }
  });

  test('refuses bad and reserved environment names', () => {
    for (const name of [
      '1ABC',
      'A-B',
      'A B',
      'A=B',
      '',
      '--privileged',
      'A\nB',
      'FLARE_JOB_ID',
      'FLARE_ANYTHING',
      'NVIDIA_VISIBLE_DEVICES',
      'NVIDIA_MIG_MONITOR_DEVICES',
    ]) {
      assertValidation(() => dockerRunArgs(spec({ env: { [name]: 'x' } }), OPTIONS), `env.${name}`);
    }
  });

  test('refuses NUL and lone surrogates, which cannot cross exec; keeps newlines, which can', () => {
    assertValidation(() => dockerRunArgs(spec({ command: ['echo', 'a\0b'] }), OPTIONS), 'command[1]');
    assertValidation(() => dockerRunArgs(spec({ env: { A: 'a\0b' } }), OPTIONS), 'env.A');
    assertValidation(() => dockerRunArgs(spec({ command: ['\uD800'] }), OPTIONS), 'command[0]');
    const argv = dockerRunArgs(spec({ env: { MULTI: 'a\nb' }, command: ['printf', 'x\ny'] }), OPTIONS);
    assert.ok(argv.includes('--env=MULTI=a\nb'));
    assert.deepEqual(argv.slice(-2), ['printf', 'x\ny']);
  });

  test('refuses job ids that are not safe as names, paths and tokens', () => {
    for (const jobId of ['', 'Job', '../etc', 'a;b', 'a b', '-a', 'a.b', 'x'.repeat(61)]) {
      assertValidation(() => dockerRunArgs(spec({ jobId }), OPTIONS), 'jobId');
    }
  });

  test('refuses GPU device lists that do not match the GPU count', () => {
    assertValidation(() => dockerRunArgs(spec({ gpus: 2, devices: [0] }), OPTIONS), 'devices');
    assertValidation(() => dockerRunArgs(spec({ gpus: 2, devices: [1, 1] }), OPTIONS), 'devices');
    assertValidation(() => dockerRunArgs(spec({ gpus: 1, devices: [-1] }), OPTIONS), 'devices');
    assertValidation(() => dockerRunArgs(spec({ gpus: 1.5 }), OPTIONS), 'gpus');
  });

  test('refuses deployment options that would widen the container', () => {
    assertValidation(() => dockerRunArgs(spec(), { ...OPTIONS, user: '0:0' }), 'options.user');
    assertValidation(() => dockerRunArgs(spec(), { ...OPTIONS, user: 'root' }), 'options.user');
    assertValidation(() => dockerRunArgs(spec(), { ...OPTIONS, scratchDir: '/var/../' }), 'options.scratchDir');
    assertValidation(() => dockerRunArgs(spec(), { ...OPTIONS, scratchDir: '/a,dst=/etc' }), 'options.scratchDir');
    assertValidation(() => dockerRunArgs(spec(), { ...OPTIONS, scratchDir: 'relative' }), 'options.scratchDir');
    assertValidation(() => dockerRunArgs(spec(), { memory: '--privileged' }), 'options.memory');
    assertValidation(() => dockerRunArgs(spec(), { ...OPTIONS, pidsLimit: 0 }), 'options.pidsLimit');
    assertValidation(() => dockerRunArgs(spec(), { ...OPTIONS, logDriver: '--privileged' }), 'options.logDriver');
    assertValidation(
      () => dockerRunArgs(spec(), { ...OPTIONS, hostNetwork: true, allowRoot: true }),
      'options.hostNetwork',
    );
  });

  test('host networking (multi-node) is one option, only with the non-root user, and adds nothing else', () => {
    const bridge = dockerRunArgs(spec(), OPTIONS);
    const host = dockerRunArgs(spec(), { ...OPTIONS, hostNetwork: true });
    assert.deepEqual(
      host.filter((a) => !bridge.includes(a)),
      ['--network=host'],
    );
    assert.ok(host.includes(`--user=65534:65534`));
    assert.ok(!bridge.some((a) => a.startsWith('--network') || a.startsWith('--net=')));
  });
});
