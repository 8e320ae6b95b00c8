/**
 * instanceScript and deadlineScript: the shell an instance runs for a job carries no job-supplied text,
 * and the deadline file they write.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
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
import { DIGEST, PAYLOADS, assertValidation, decodeScript, nastySpec, spec } from '../support/container-specs.js';

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
