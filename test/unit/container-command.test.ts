import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import {
  EXEC_ARGV_PROGRAM,
  INSTANCE_DEADLINE_FILE,
  INSTANCE_STATE_DIR,
  MAX_INSTANCE_SCRIPT_BYTES,
  deadlineScript,
  dockerRunArgs,
  instanceScript,
  type DockerRunOptions,
} from '../../lambdas/core/container-command.js';
import { ValidationError } from '../../lambdas/core/errors.js';
import type { ContainerSpec } from '../../lambdas/ports/compute.js';

const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;
const IMAGE = `nvcr.io/nvidia/pytorch:24.05-py3@${DIGEST}`;

/** Strings that would do something if any shell or docker option parser saw them. */
const PAYLOADS = [
  '; rm -rf /',
  '$(id)',
  '`id`',
  'a && touch /tmp/owned',
  'x | nc evil 1',
  'it\'s "quoted" \\ back',
  'line1\nline2\r\nline3',
  '--privileged',
  '--volume=/:/host',
  '-v',
  '/:/host',
  '--network=host',
  '--pid=host',
  '--cap-add=SYS_ADMIN',
  '--device=/dev/mem',
  '${HOME}',
  '{{ssm:secret}}',
  '*',
  '~root',
  '',
  '   ',
  'ünïcødé ✓ 🚀',
  "'; exec sh; '",
  'FLARE_ARGV_BASE64',
];

function spec(overrides: Partial<ContainerSpec> = {}): ContainerSpec {
  return {
    jobId: 'job-1',
    image: IMAGE,
    command: ['python', 'train.py'],
    env: {},
    gpus: 1,
    expiresAt: '2030-01-01T00:00:00.000Z',
    ...overrides,
  };
}
const OPTIONS: DockerRunOptions = { memory: '30g' };

function nastySpec(): ContainerSpec {
  const env: Record<string, string> = {};
  PAYLOADS.forEach((p, i) => {
    env[`EVIL_${i}`] = p;
  });
  return spec({ command: [...PAYLOADS], env });
}

function assertValidation(fn: () => unknown, field: string | RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ValidationError, `expected ValidationError, got ${String(error)}`);
    const fields = error.details.map((d) => d.field);
    assert.ok(
      fields.some((f) => (typeof field === 'string' ? f === field : field.test(f))),
      `no issue for ${field} in ${JSON.stringify(error.details)}`,
    );
    return true;
  });
}

/** Options docker may see before the image: anything else (privileged, host namespaces, volumes, devices, cap-add) is a bug. */
const ALLOWED_OPTION =
  /^--(rm|detach|init|name=flare-[a-z0-9-]+|label=flare\.job=[a-z0-9-]+|cap-drop=ALL|security-opt=no-new-privileges|pids-limit=\d+|memory=\w+|shm-size=\w+|user=\d+(:\d+)?|gpus=(all|"device=[\d,]+")|env=[A-Za-z_][A-Za-z0-9_]*=[\s\S]*|mount=type=bind,src=[\w./-]+,dst=\/scratch|log-driver=[\w.-]+|log-opt=[\w.-]+=[\s\S]*)$/;

function splitAtImage(argv: string[]): { options: string[]; image: string; command: string[] } {
  const dash = argv.indexOf('--');
  assert.ok(dash > 0, 'argv has a -- before the image');
  return { options: argv.slice(1, dash), image: argv[dash + 1], command: argv.slice(dash + 2) };
}

function decodeScript(script: string): string[] {
  const match = /<<'FLARE_ARGV_BASE64'\n([A-Za-z0-9+/=\n]*?)\nFLARE_ARGV_BASE64\n/.exec(script);
  assert.ok(match, 'script carries a base64 heredoc');
  return JSON.parse(Buffer.from(match[1].replace(/\n/g, ''), 'base64').toString('utf8'));
}

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

describe('instanceScript', () => {
  const scriptOptions: DockerRunOptions = { memory: '30g', scratchDir: '/var/lib/flare/scratch' };

  test('decodes back to exactly the detached argv', () => {
    const nasty = nastySpec();
    assert.deepEqual(
      decodeScript(instanceScript(nasty, scriptOptions)),
      dockerRunArgs(nasty, { ...scriptOptions, detach: true }),
    );
  });

  test('contains no job-supplied text at all, not even fragments', () => {
    const nasty = nastySpec();
    const script = instanceScript(nasty, scriptOptions);
    const fragments = [
      'rm -rf',
      '$(id)',
      '`id`',
      '&&',
      '| nc',
      'touch',
      'privileged',
      '/:/host',
      'network=host',
      'SYS_ADMIN',
      '/dev/mem',
      '${HOME}',
      '{{',
      'ssm:secret',
      'line1',
      'quoted',
      'exec sh',
      '🚀',
      'EVIL_',
      'train.py',
      'pytorch',
      DIGEST.slice(7, 30),
    ];
    for (const text of [...PAYLOADS.filter((p) => p.trim().length > 2 && p !== 'FLARE_ARGV_BASE64'), ...fragments]) {
      assert.ok(!script.includes(text), `script contains ${JSON.stringify(text)}`);
    }
    // The heredoc delimiter as a payload cannot end the heredoc early: it only occurs as the delimiter itself.
    assert.equal(script.split('\n').filter((l) => l.includes('FLARE_ARGV_BASE64')).length, 2);
  });

  test('is the same text whatever the job asks for, apart from the base64 block', () => {
    const strip = (s: string) => s.replace(/(<<'FLARE_ARGV_BASE64'\n)[\s\S]*?\n(FLARE_ARGV_BASE64\n)/, '$1$2');
    assert.equal(strip(instanceScript(nastySpec(), scriptOptions)), strip(instanceScript(spec(), scriptOptions)));
  });

  test('writes the job expiry to the deadline file before the container starts, renamed into place', () => {
    const script = instanceScript(spec({ expiresAt: '2030-06-01T12:30:00.000Z' }), scriptOptions);
    const lines = script.split('\n');
    const write = lines.indexOf(`echo 2030-06-01T12:30:00.000Z > ${INSTANCE_DEADLINE_FILE}.job-1.tmp`);
    const rename = lines.indexOf(`mv -f ${INSTANCE_DEADLINE_FILE}.job-1.tmp ${INSTANCE_DEADLINE_FILE}`);
    assert.ok(write > 0 && rename === write + 1, script);
    assert.ok(lines.indexOf('mkdir -p /var/lib/flare') < write);
    assert.ok(rename < lines.findIndex((l) => l.includes('python3 -c')), 'deadline written before docker run');
    assert.equal(INSTANCE_DEADLINE_FILE, '/var/lib/flare/expires-at');
  });

  test('refuses an expiry that is not an ISO 8601 UTC timestamp, so nothing else reaches the shell through it', () => {
    for (const expiresAt of [
      '',
      'tomorrow',
      '2030-01-01T00:00:00.000Z; rm -rf /',
      '2030-01-01T00:00:00.000Z\nid',
      '$(id)',
      '`id`',
      '2030-01-01T00:00:00.000Z > /etc/passwd',
      '2030-01-01 00:00:00Z',
      '2030-01-01T00:00:00+01:00',
      '2030-01-01T00:00:00.000',
      '2030-13-45T99:99:99.000Z',
      '--privileged',
      undefined as unknown as string,
      1893456000000 as unknown as string,
    ]) {
      assertValidation(() => instanceScript(spec({ expiresAt }), scriptOptions), 'expiresAt');
    }
    assert.doesNotThrow(() => instanceScript(spec({ expiresAt: '2030-01-01T00:00:00Z' }), scriptOptions));
  });

  test('names every bad field at once, the expiry among them', () => {
    assert.throws(
      () => instanceScript(spec({ image: '--privileged', expiresAt: 'soon' }), scriptOptions),
      (error: unknown) =>
        error instanceof ValidationError &&
        ['image', 'expiresAt'].every((f) => error.details.some((d) => d.field === f)),
    );
  });

  test('embeds the exec program in single quotes safely', () => {
    assert.ok(!EXEC_ARGV_PROGRAM.includes("'"));
  });

  test('refuses a command too large to send rather than letting SendCommand fail', () => {
    const env: Record<string, string> = {};
    for (let i = 0; i < 40; i++) env[`BIG_${i}`] = 'x'.repeat(4096);
    assertValidation(() => instanceScript(spec({ env }), scriptOptions), 'command');
    assert.ok(MAX_INSTANCE_SCRIPT_BYTES >= 16 * 1024);
  });

  for (const shell of ['sh', 'dash', 'bash']) {
    const available =
      spawnSync('sh', ['-c', `command -v ${shell}`]).status === 0 &&
      spawnSync('sh', ['-c', 'command -v python3 && command -v flock && command -v base64']).status === 0;
    test(`run by ${shell} with a fake docker, execs exactly the argv once and exits with the container's code`, {
      skip: !available && `${shell}, python3, flock or base64 missing`,
    }, () => {
      const sandbox = fs.mkdtempSync(path.join(os.tmpdir(), 'flare-script-'));
      try {
        const bin = path.join(sandbox, 'bin');
        fs.mkdirSync(bin);
        fs.writeFileSync(path.join(bin, 'docker'), FAKE_DOCKER, { mode: 0o755 });
        const uid = process.getuid?.() ?? 1000;
        const gid = process.getgid?.() ?? 1000;
        const options: DockerRunOptions = {
          memory: '30g',
          scratchDir: path.join(sandbox, 'scratch'),
          user: uid === 0 ? '65534:65534' : `${uid}:${gid}`,
        };
        const canary = path.join(sandbox, 'owned');
        const nasty = nastySpec();
        nasty.command.push(`$(touch ${canary})`, `\`touch ${canary}\``, `; touch ${canary}`);
        nasty.env.CANARY = `$(touch ${canary})`;
        // Only the fixed state and deadline directories are moved into the sandbox; the base64 block is untouched.
        const deadlineFile = path.join(sandbox, 'lib', 'expires-at');
        const script = instanceScript(nasty, options)
          .replaceAll(INSTANCE_STATE_DIR, path.join(sandbox, 'state'))
          .replaceAll(path.dirname(INSTANCE_DEADLINE_FILE), path.dirname(deadlineFile));
        const scriptPath = path.join(sandbox, '_script.sh');
        fs.writeFileSync(scriptPath, script, { mode: 0o700 });
        const env = {
          PATH: `${bin}:${process.env.PATH}`,
          FAKE_DOCKER_DIR: sandbox,
          FAKE_EXIT_CODE: '42',
          FAKE_DEADLINE_FILE: deadlineFile,
          HOME: sandbox,
        };

        const first = spawnSync(shell, [scriptPath], { env, encoding: 'utf8' });
        assert.equal(first.status, 42, first.stderr);
        const second = spawnSync(shell, [scriptPath], { env, encoding: 'utf8' });
        assert.equal(second.status, 42, second.stderr);

        const runs = fs.readdirSync(sandbox).filter((f) => f.startsWith('run-'));
        assert.deepEqual(runs, ['run-1.json'], 'docker run happened once across two deliveries');
        const received = JSON.parse(fs.readFileSync(path.join(sandbox, 'run-1.json'), 'utf8'));
        assert.deepEqual(received, dockerRunArgs(nasty, { ...options, detach: true }));
        assert.ok(!fs.existsSync(canary), 'no payload was executed');
        assert.ok(fs.statSync(path.join(sandbox, 'scratch', 'job-1')).isDirectory(), 'scratch directory created');
        assert.match(first.stdout, /container flare-job-1 exited with code 42/);
        assert.equal(
          fs.readFileSync(path.join(sandbox, 'deadline-at-run'), 'utf8'),
          `${nasty.expiresAt}\n`,
          'the deadline file was in place when docker run started',
        );
        assert.equal(fs.readFileSync(deadlineFile, 'utf8'), `${nasty.expiresAt}\n`);
        assert.deepEqual(fs.readdirSync(path.dirname(deadlineFile)), ['expires-at'], 'no temporary file left behind');
        // `date -d` is how the dead-man switch reads it.
        const parsed = spawnSync('date', ['-u', '-d', nasty.expiresAt, '+%s'], { encoding: 'utf8' });
        if (parsed.status === 0) assert.equal(Number(parsed.stdout.trim()) * 1000, Date.parse(nasty.expiresAt));
      } finally {
        fs.rmSync(sandbox, { recursive: true, force: true });
      }
    });
  }
});

describe('deadlineScript', () => {
  const EXPIRY = '2030-06-01T12:30:00.000Z';

  test('rewrites the deadline file exactly as the instance script first wrote it, renamed into place', () => {
    assert.equal(
      deadlineScript('job-1', EXPIRY),
      [
        '#!/bin/sh',
        '# Flare job job-1: its live timeout changed; move the deadline the dead-man switch enforces.',
        '# Generated by deadlineScript(); the job id and the expiry are checked patterns, nothing else is variable.',
        'set -eu',
        'umask 077',
        'mkdir -p /var/lib/flare',
        `echo ${EXPIRY} > ${INSTANCE_DEADLINE_FILE}.job-1.tmp`,
        `mv -f ${INSTANCE_DEADLINE_FILE}.job-1.tmp ${INSTANCE_DEADLINE_FILE}`,
        '',
      ].join('\n'),
    );
    const started = instanceScript(spec({ expiresAt: EXPIRY }), { memory: '30g' }).split('\n');
    for (const line of deadlineScript('job-1', EXPIRY).split('\n').slice(5, 8))
      assert.ok(started.includes(line), `the start script has ${line}`);
  });

  test('varies only by the job id and the expiry', () => {
    const other = deadlineScript('job-22', '2031-01-01T00:00:00Z');
    assert.equal(
      other.replaceAll('job-22', 'job-1').replaceAll('2031-01-01T00:00:00Z', EXPIRY),
      deadlineScript('job-1', EXPIRY),
    );
  });

  test('refuses hostile job ids and expiries, naming each, so nothing reaches a shell through them', () => {
    for (const jobId of [
      '',
      'Job-1',
      '-rf',
      'job-1;reboot',
      'job-1 x',
      '$(reboot)',
      '`reboot`',
      '../../etc/passwd',
      'job\n1',
      'a'.repeat(61),
      7 as unknown as string,
    ]) {
      assertValidation(() => deadlineScript(jobId, EXPIRY), 'jobId');
    }
    for (const expiresAt of [
      '',
      'tomorrow',
      `${EXPIRY}; reboot`,
      `${EXPIRY}\nreboot`,
      `${EXPIRY} > /etc/passwd`,
      '$(reboot)',
      '`reboot`',
      '2030-06-01T12:30:00+01:00',
      '2030-13-45T99:99:99.000Z',
      undefined as unknown as string,
      1893456000000 as unknown as string,
    ]) {
      assertValidation(() => deadlineScript('job-1', expiresAt), 'expiresAt');
    }
    assert.throws(
      () => deadlineScript('$(id)', 'soon'),
      (error: unknown) =>
        error instanceof ValidationError &&
        ['jobId', 'expiresAt'].every((f) => error.details.some((d) => d.field === f)),
    );
  });

  for (const shell of ['sh', 'dash', 'bash']) {
    const available = spawnSync('sh', ['-c', `command -v ${shell}`]).status === 0;
    test(`run by ${shell}, replaces the deadline the dead-man switch reads and leaves no temporary file`, {
      skip: !available && `${shell} missing`,
    }, () => {
      const sandbox = fs.mkdtempSync(path.join(os.tmpdir(), 'flare-deadline-'));
      try {
        const deadlineFile = path.join(sandbox, 'lib', 'expires-at');
        fs.mkdirSync(path.dirname(deadlineFile));
        fs.writeFileSync(deadlineFile, '2030-01-01T00:00:00.000Z\n');
        const scriptPath = path.join(sandbox, '_deadline.sh');
        fs.writeFileSync(
          scriptPath,
          deadlineScript('job-1', EXPIRY).replaceAll(path.dirname(INSTANCE_DEADLINE_FILE), path.dirname(deadlineFile)),
          { mode: 0o700 },
        );

        const run = spawnSync(shell, [scriptPath], { encoding: 'utf8' });

        assert.equal(run.status, 0, run.stderr);
        assert.equal(fs.readFileSync(deadlineFile, 'utf8'), `${EXPIRY}\n`);
        assert.deepEqual(fs.readdirSync(path.dirname(deadlineFile)), ['expires-at'], 'no temporary file left behind');
      } finally {
        fs.rmSync(sandbox, { recursive: true, force: true });
      }
    });
  }
});

/** Records `docker run`'s argv as JSON (exact bytes, decoded as UTF-8); `inspect` finds the container once run; `wait` prints FAKE_EXIT_CODE. */
const FAKE_DOCKER = `#!/usr/bin/env python3
import json, os, sys
d = os.environ["FAKE_DOCKER_DIR"]
args = [os.fsencode(a).decode("utf-8") for a in sys.argv[1:]]
marker = os.path.join(d, "container-exists")
if args[:2] == ["container", "inspect"]:
    sys.exit(0 if os.path.exists(marker) else 1)
if args[:1] == ["run"]:
    deadline = os.environ.get("FAKE_DEADLINE_FILE")
    if deadline and os.path.exists(deadline):
        with open(deadline, encoding="utf-8") as src, open(os.path.join(d, "deadline-at-run"), "w", encoding="utf-8") as dst:
            dst.write(src.read())
    n = len([f for f in os.listdir(d) if f.startswith("run-")]) + 1
    with open(os.path.join(d, "run-%d.json" % n), "w", encoding="utf-8") as f:
        json.dump(args, f)
    open(marker, "w").close()
    print("0123456789ab")
    sys.exit(0)
if args[:1] == ["info"]:
    sys.exit(0)
if args[:1] == ["wait"]:
    print(os.environ["FAKE_EXIT_CODE"])
    sys.exit(0)
sys.exit("fake docker: unexpected " + " ".join(args))
`;

/**
 * The real docker CLI parses the argv against a fake Engine API socket: what it
 * would send the daemon is what the container gets.
 */
describe('dockerRunArgs read by the real docker CLI', () => {
  const hasDocker = spawnSync('docker', ['--version']).status === 0;

  test('creates exactly the hardened container: command and env verbatim, no privilege, no host access', {
    skip: !hasDocker && 'docker CLI not installed',
  }, async () => {
    const sandbox = fs.mkdtempSync(path.join(os.tmpdir(), 'flare-docker-'));
    try {
      const nasty = nastySpec();
      nasty.gpus = 2;
      nasty.devices = [0, 1];
      const argv = dockerRunArgs(nasty, { memory: '2g', scratchDir: '/var/lib/flare/scratch' });
      const { url, body } = await captureCreate(sandbox, argv);

      assert.equal(new URL(url, 'http://docker').searchParams.get('name'), 'flare-job-1');
      assert.equal(body.Image, IMAGE);
      assert.deepEqual(body.Cmd, PAYLOADS);
      assert.equal(body.Entrypoint, null);
      assert.equal(body.User, '65534:65534');
      assert.deepEqual(body.Labels, { 'flare.job': 'job-1' });
      const expectedEnv = [
        'NVIDIA_VISIBLE_DEVICES=0,1',
        'FLARE_JOB_ID=job-1',
        'HOME=/scratch',
        ...Object.keys(nasty.env)
          .sort()
          .map((k) => `${k}=${nasty.env[k]}`),
      ];
      // The CLI gathers env into a map, so order is not kept; each entry must arrive whole and unchanged.
      assert.deepEqual([...body.Env].sort(), expectedEnv.sort());

      const host = body.HostConfig;
      assert.equal(host.Privileged, false);
      assert.deepEqual(host.CapDrop, ['ALL']);
      assert.equal(host.CapAdd, null);
      assert.deepEqual(host.SecurityOpt, ['no-new-privileges']);
      assert.equal(host.PidsLimit, 4096);
      assert.equal(host.Memory, 2 * 1024 ** 3);
      assert.equal(host.ShmSize, 1024 ** 3);
      assert.equal(host.NetworkMode, 'default');
      assert.equal(host.PidMode, '');
      assert.equal(host.IpcMode, '');
      assert.equal(host.UTSMode, '');
      assert.equal(host.UsernsMode, '');
      assert.equal(host.Binds, null);
      assert.deepEqual(host.Devices, []);
      assert.deepEqual(host.Mounts, [{ Type: 'bind', Source: '/var/lib/flare/scratch/job-1', Target: '/scratch' }]);
      assert.deepEqual(host.DeviceRequests, [
        { Driver: '', Count: 0, DeviceIDs: ['0', '1'], Capabilities: [['gpu']], Options: {} },
      ]);
      assert.equal(host.Init, true);
      assert.equal(host.AutoRemove, true);
    } finally {
      fs.rmSync(sandbox, { recursive: true, force: true });
    }
  });
});

/** Serves just enough of the Engine API for `docker run` to send its create request, records it, and refuses it. */
async function captureCreate(sandbox: string, argv: string[]): Promise<{ url: string; body: any }> {
  const socket = path.join(sandbox, 'docker.sock');
  let captured: { url: string; body: any } | undefined;
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (chunk) => (raw += chunk));
    req.on('end', () => {
      if (req.url?.endsWith('/_ping')) {
        res.writeHead(200, { 'Api-Version': '1.45', 'Content-Type': 'text/plain' });
        res.end('OK');
        return;
      }
      if (req.method === 'POST' && /\/containers\/create/.test(req.url ?? ''))
        captured = { url: req.url!, body: JSON.parse(raw) };
      res.writeHead(400, { 'Content-Type': 'application/json' });
      res.end('{"message":"refused by the test daemon"}');
    });
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn('docker', argv, {
        env: {
          PATH: process.env.PATH,
          HOME: sandbox,
          DOCKER_HOST: `unix://${socket}`,
          DOCKER_CONFIG: path.join(sandbox, 'config'),
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      child.on('error', reject);
      child.on('exit', resolve);
    });
    assert.equal(code, 125, 'docker gave up after the refused create');
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
  assert.ok(captured, 'docker sent a create request');
  return captured;
}
