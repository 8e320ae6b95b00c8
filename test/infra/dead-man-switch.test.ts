/**
 * The instance's dead-man switch, run for real under bash: the script is taken
 * from the launch template's user data that FlareCompute synthesizes (15-minute
 * default grace, and 0), with `curl` (IMDS), `docker`, `logger`, `shutdown` and
 * `sleep` as stub scripts on PATH that record their argv (and `docker` and
 * `shutdown` the time, from the real `date`). One-pass cases end the script at
 * its first sleep or poweroff; the timed cases sleep for real and check only
 * the order of events around the job's expiry and the stop's precision.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Template } from 'aws-cdk-lib/assertions';
import type { FlareComputeProps } from '../../lib/compute.js';
import {
  DEAD_MAN_STOP_GRACE_SECONDS,
  EXPIRES_AT_FILE,
  JOB_CONTAINER_LABEL,
  MAX_DEAD_MAN_GRACE_MINUTES,
} from '../../lib/instance-user-data.js';
import { dockerRunArgs } from '../../lambdas/core/container-command.js';
import { computeStack } from '../support/cdk-synth.js';

/** What `docker ps --filter label=flare.job` answers: the job's running container. */
const CONTAINER = 'c0ffee0123ab';

/** The switch as the launch template's user data installs it. */
function switchScript(props: Partial<FlareComputeProps> = {}): string {
  const { stack, compute } = computeStack(props);
  const template = Template.fromStack(stack).toJSON() as { Resources: Record<string, { Properties: any }> };
  const userData =
    template.Resources[stack.getLogicalId(compute.launchTemplate.node.defaultChild as never)].Properties
      .LaunchTemplateData.UserData['Fn::Base64'];
  assert.equal(typeof userData, 'string', 'user data is static text');
  assert.ok(userData.includes('systemctl enable --now flare-deadman.service'), 'the switch runs as a service');
  const match = /<<'FLARE_EOF'\n([\s\S]*?)\nFLARE_EOF/.exec(userData);
  assert.ok(match, 'the user data installs the switch from a quoted heredoc');
  assert.ok(match[1].includes(EXPIRES_AT_FILE));
  return match[1];
}

let work: string;
let bin: string;

before(() => {
  work = mkdtempSync(path.join(tmpdir(), 'flare-deadman-'));
  bin = path.join(work, 'bin');
  mkdirSync(bin);
  const realSleep = spawnSync('bash', ['-c', 'command -v sleep'], { encoding: 'utf8' }).stdout.trim();
  assert.ok(realSleep, 'a sleep to delegate to');
  const stub = (name: string, body: string) => {
    writeFileSync(path.join(bin, name), `#!/bin/bash\n${body}\n`);
    chmodSync(path.join(bin, name), 0o755);
  };
  // IMDS: a token, then the flare:expires-at tag if the case sets one (curl -f fails on a 404 otherwise).
  stub(
    'curl',
    'case "$*" in *api/token*) echo token ;; *tags/instance/flare:expires-at*) [ -n "${STUB_TAG:-}" ] && echo "$STUB_TAG" || exit 22 ;; *) exit 22 ;; esac',
  );
  stub('logger', 'echo "logger $*" >> "$STUB_LOG"');
  // Only the job's label finds the container; every call is recorded with its time in nanoseconds.
  stub(
    'docker',
    `echo "$(date +%s%N) docker $*" >> "$STUB_LOG"; case "$*" in "ps --quiet --filter label=${JOB_CONTAINER_LABEL}") echo ${CONTAINER} ;; esac`,
  );
  stub('shutdown', 'echo "$(date +%s%N) shutdown $*" >> "$STUB_LOG"; kill -TERM $PPID');
  // One-pass cases end where the script would sleep; timed cases sleep for real.
  stub(
    'sleep',
    `echo "sleep $*" >> "$STUB_LOG"; if [ -n "\${STUB_REAL_SLEEP:-}" ]; then exec ${realSleep} "$@"; fi; kill -TERM $PPID`,
  );
});

after(() => rmSync(work, { recursive: true, force: true }));

/** A case's files: the script pointed at its own expiry file, and the stubs' log. */
function prepare(
  script: string,
  file: string | undefined,
): { dir: string; scriptFile: string; expiresFile: string; logFile: string } {
  const dir = mkdtempSync(path.join(work, 'case-'));
  const expiresFile = path.join(dir, 'expires-at');
  if (file !== undefined) writeFileSync(expiresFile, `${file}\n`);
  const scriptFile = path.join(dir, 'flare-deadman');
  writeFileSync(scriptFile, script.split(EXPIRES_AT_FILE).join(expiresFile));
  const logFile = path.join(dir, 'log');
  writeFileSync(logFile, '');
  return { dir, scriptFile, expiresFile, logFile };
}

function env(logFile: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: `${bin}:${process.env.PATH}`, STUB_LOG: logFile, ...extra };
}

const STOP_LINE = `docker stop --time ${DEAD_MAN_STOP_GRACE_SECONDS} ${CONTAINER}`;

describe('dead-man switch: one pass of its loop (stubbed sleep)', () => {
  let script: string;
  before(() => {
    script = switchScript();
  });

  /** One pass of the loop: what the script logged, whether it stopped the container and powered off. */
  function run(
    file: string | undefined,
    tag: string | undefined,
  ): { log: string; stopped: boolean; poweredOff: boolean } {
    const { logFile, scriptFile } = prepare(script, file);
    const result = spawnSync('bash', [scriptFile], {
      env: env(logFile, tag !== undefined ? { STUB_TAG: tag } : {}),
      timeout: 10_000,
    });
    assert.equal(result.error, undefined);
    const log = readFileSync(logFile, 'utf8');
    return { log, stopped: log.includes(STOP_LINE), poweredOff: log.includes('shutdown -h now') };
  }
  const minutesFromNow = (m: number) => new Date(Date.now() + m * 60_000).toISOString();

  it('past the deadline in the expiry file plus the 15-minute grace: stops the container, then powers off, even if the tag says later', () => {
    const { log, stopped, poweredOff } = run(minutesFromNow(-16), minutesFromNow(120));
    assert.ok(stopped && poweredOff, log);
    assert.ok(log.indexOf(STOP_LINE) < log.indexOf('shutdown -h now'), log);
    assert.match(log, /from the file/);
  });

  it("within the grace: stops the job's container at once, and leaves the instance to the control plane until the grace is over", () => {
    const { log, stopped, poweredOff } = run(minutesFromNow(-14), undefined);
    assert.ok(stopped, log);
    assert.ok(!poweredOff, log);
  });

  it('prefers the expiry file: a live-timeout extension there outlives a past tag, and the file is read again within half a second', () => {
    const { log, stopped, poweredOff } = run(minutesFromNow(60), minutesFromNow(-120));
    assert.ok(!stopped && !poweredOff, log);
    assert.match(log, /^sleep 0\.500$/m);
  });

  it('falls back to the flare:expires-at tag before the container started (no file yet)', () => {
    const { log, poweredOff } = run(undefined, minutesFromNow(-16));
    assert.ok(poweredOff, log);
    assert.match(log, /from the tag/);
  });

  it('ignores a file that is not an ISO-8601 UTC time (date -d would read "today" as midnight) and uses the tag', () => {
    assert.ok(!run('today', undefined).stopped, 'garbage alone stops nothing');
    assert.ok(!run('today', minutesFromNow(30)).stopped);
    assert.ok(run('today', minutesFromNow(-20)).poweredOff);
  });

  it('does nothing with neither a file nor a tag', () => {
    const { log, stopped, poweredOff } = run(undefined, undefined);
    assert.ok(!stopped && !poweredOff, log);
  });

  it('stops containers by the label every job container gets', () => {
    const args = dockerRunArgs(
      {
        jobId: 'job-7',
        image: `docker.io/library/busybox:1.36@sha256:${'a'.repeat(64)}`,
        command: ['true'],
        env: {},
        gpus: 0,
        expiresAt: '2030-01-01T00:00:00.000Z',
      },
      { memory: '1g' },
    );
    assert.ok(args.includes(`--label=${JOB_CONTAINER_LABEL}=job-7`), args.join(' '));
  });
});

describe('dead-man switch at the expiry itself (real sleep, grace 0)', () => {
  let script: string;
  before(() => {
    script = switchScript({ deadManGraceMinutes: 0 });
  });

  /** An expiry at least `ms` ahead with a fractional second that is not .000. */
  function expiryIn(ms: number): number {
    return Math.ceil((Date.now() + ms) / 1000) * 1000 + 337;
  }

  /** Runs the switch until it powers off; `rewrite` may change the expiry file once it has slept. */
  async function runUntilPoweroff(
    file: string,
    rewrite?: (expiresFile: string) => void,
  ): Promise<{ log: string; stopNs: bigint; shutdownNs: bigint }> {
    const { logFile, scriptFile, expiresFile } = prepare(script, file);
    const child = spawn('bash', [scriptFile], { env: env(logFile, { STUB_REAL_SLEEP: '1' }), stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const guard = setTimeout(() => child.kill('SIGKILL'), 20_000);
    try {
      if (rewrite) {
        while (!readFileSync(logFile, 'utf8').includes('sleep ')) await new Promise((r) => setTimeout(r, 20));
        rewrite(expiresFile);
      }
      await exited;
    } finally {
      clearTimeout(guard);
    }
    const log = readFileSync(logFile, 'utf8');
    const stop = log.split('\n').find((l) => l.endsWith(` ${STOP_LINE}`));
    const shutdown = log.split('\n').find((l) => l.endsWith(' shutdown -h now'));
    assert.ok(stop, `the container was stopped:\n${log}`);
    assert.ok(shutdown, `the instance powered off:\n${log}`);
    return { log, stopNs: BigInt(stop.split(' ')[0]), shutdownNs: BigInt(shutdown.split(' ')[0]) };
  }

  function assertStoppedAt(expiresAt: number, result: { log: string; stopNs: bigint; shutdownNs: bigint }): void {
    const { log, stopNs, shutdownNs } = result;
    const expiresNs = BigInt(expiresAt) * 1_000_000n;
    assert.ok(stopNs >= expiresNs, `docker stop came ${Number(expiresNs - stopNs) / 1e6} ms before expiresAt:\n${log}`);
    assert.ok(
      stopNs < expiresNs + 1_000_000_000n,
      `docker stop came ${Number(stopNs - expiresNs) / 1e6} ms after expiresAt:\n${log}`,
    );
    assert.ok(shutdownNs >= stopNs, `poweroff after the stop:\n${log}`);
    // The last wait before the expiry is a fraction of a second, not a rounded whole one.
    assert.match(log, /^sleep 0\.(?!000)\d{3}$/m, log);
  }

  it('stops the container at expiresAt (within the second after it, fractional seconds included) and then powers off', async () => {
    const expiresAt = expiryIn(1200);
    assertStoppedAt(expiresAt, await runUntilPoweroff(new Date(expiresAt).toISOString()));
  });

  it('honours a live timeout shortened while it waits (the file rewritten, as Rearm does)', async () => {
    let expiresAt = 0;
    const result = await runUntilPoweroff(new Date(Date.now() + 3_600_000).toISOString(), (file) => {
      expiresAt = expiryIn(800);
      writeFileSync(`${file}.tmp`, `${new Date(expiresAt).toISOString()}\n`);
      renameSync(`${file}.tmp`, file);
    });
    assertStoppedAt(expiresAt, result);
  });
});

describe('deadManGraceMinutes', () => {
  for (const grace of [-1, 1.5, MAX_DEAD_MAN_GRACE_MINUTES + 1, Number.NaN]) {
    it(`refuses ${grace}, naming the setting and its range`, () => {
      assert.throws(
        () => computeStack({ deadManGraceMinutes: grace }),
        new RegExp(`deadManGraceMinutes must be an integer from 0 to ${MAX_DEAD_MAN_GRACE_MINUTES}, got ${grace}`),
      );
    });
  }
});
