/**
 * The `flare` CLI as a user runs it: `node --import tsx bin/flare.ts ...` as a subprocess, against
 * `flare local` started as a child process (test/support/cli-plane.ts). `flare job`: every command reaches its
 * route and shows the answer (tables and `--output json`), a job's outcome as exit codes 5/6/7, live
 * progress with queue positions, `job logs --follow` streaming a job's output as it is written,
 * and `flare stats` counting those jobs.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { waitFor } from '../support/harness.js';
import { CAROL, TERMINAL, assertUsage, gate } from '../support/cli-plane.js';
import { api, dir, flare, start, submit, untilState, useCliPlane } from '../support/cli-plane.js';

useCliPlane();

describe('flare job', () => {
  it('create, list, show, update and delete a job, in tables and in JSON', async () => {
    const gateFile = join(dir, 'release-crud');
    const created = await flare(['job', 'create', '--template', 'sh', '--name', 'crud', '--', ...gate(gateFile)]);
    assert.equal(created.code, 0, created.stderr);
    const id = /^submitted job (\S+) \(crud\): (?:PENDING|LAUNCHING)$/m.exec(created.stdout)?.[1];
    assert.ok(id, created.stdout);
    // Everything after `--` is the argv, flags and quotes included, never re-split.
    assert.deepEqual((await api('GET', `/v1/jobs/${id}`)).body.command, gate(gateFile));
    await untilState(id, ['RUNNING']);

    const list = await flare(['job', 'list']);
    assert.equal(list.code, 0, list.stderr);
    const [header, ...rows] = list.stdout.trimEnd().split('\n');
    assert.match(header, /^ID +NAME +PROJECT +STATE +GPUS +POOL +AGE +TIME LEFT +LATEST START +REASON$/);
    const row = rows.find((r) => r.startsWith(id));
    assert.ok(row, list.stdout);
    assert.match(
      row,
      new RegExp(`^${id} +crud +vision +RUNNING +1 +local +\\d+s +\\d+m\\d+s`),
      'a running job shows its time left',
    );
    const listed = JSON.parse((await flare(['job', 'list', '--output', 'json'])).stdout);
    assert.ok(listed.items.some((j: { id: string }) => j.id === id));
    assert.equal(
      (await flare(['job', 'list', '--state', 'SUCCEEDED', '--output', 'json'])).stdout.includes(id),
      false,
      '--state filters',
    );

    const show = await flare(['job', 'show', id]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, new RegExp(`^ID: +${id}$`, 'm'));
    assert.match(show.stdout, /^State: +RUNNING$/m);
    assert.match(show.stdout, /^Expires: +\S+ \(in \d+m\d+s\)$/m);
    const shown = JSON.parse((await flare(['job', 'show', id, '-o', 'json'])).stdout);
    assert.deepEqual(shown, (await api('GET', `/v1/jobs/${id}`)).body);

    const updated = await flare(['job', 'update', id, '--name', 'renamed', '--live-timeout', '30']);
    assert.equal(updated.code, 0, updated.stderr);
    assert.match(updated.stdout, /^Name: +renamed$/m);
    const after = (await api('GET', `/v1/jobs/${id}`)).body;
    assert.equal(after.name, 'renamed');
    assert.equal(after.liveTimeoutMinutes, 30);
    assert.equal(Date.parse(after.expiresAt) - Date.parse(after.startedAt), 30 * 60_000);
    assertUsage(await flare(['job', 'update', id]), 'job update', /nothing to change/);

    const cancel = await flare(['job', 'delete', id]);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.match(cancel.stdout, new RegExp(`^cancelling job ${id}`));
    await untilState(id, ['CANCELLED']);
    const remove = await flare(['job', 'delete', id]);
    assert.equal(remove.stdout, `removed job ${id}\n`);
    const gone = await flare(['job', 'show', id]);
    assert.equal(gone.code, 3);
    assert.equal(gone.stderr, `flare: job ${id} not found\n`);
  });

  it('create --array N --array-env FILE submits a sweep; list --array shows it by index; delete --array cancels it', async () => {
    const gateFile = join(dir, 'release-sweep');
    const envFile = join(dir, 'sweep-env.json');
    await writeFile(envFile, JSON.stringify([{ LR: '0.1' }, { LR: '0.01' }, { LR: '0.001' }]));
    const created = await flare([
      'job',
      'create',
      '--template',
      'sh',
      '--name',
      'sweep',
      '--array',
      '3',
      '--array-env',
      envFile,
      '--',
      ...gate(gateFile),
    ]);
    assert.equal(created.code, 0, created.stderr);
    const arrayId = /^submitted array (a-\S+): 3 jobs \(\d LAUNCHING, \d WAITING\)$/m.exec(created.stdout)?.[1];
    assert.ok(arrayId, created.stdout);
    const members = (await api('GET', `/v1/jobs?array=${arrayId}`)).body.items;
    assert.deepEqual(
      members.map((j: { arrayIndex: number; env: Record<string, string> }) => [j.arrayIndex, j.env.LR]),
      [
        [0, '0.1'],
        [1, '0.01'],
        [2, '0.001'],
      ],
    );

    const list = await flare(['job', 'list', '--array', arrayId]);
    assert.equal(list.code, 0, list.stderr);
    const rows = list.stdout.trimEnd().split('\n').slice(1);
    assert.deepEqual(
      rows.map((r) => r.split(/ +/)[1]),
      ['sweep[0]', 'sweep[1]', 'sweep[2]'],
    );

    const cancel = await flare(['job', 'delete', '--array', arrayId]);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.equal(cancel.stdout, `cancelling 3 of 3 jobs of array ${arrayId}\n`);
    for (const job of members) await untilState(job.id, ['CANCELLED']);

    assertUsage(
      await flare(['job', 'create', '--template', 'sh', '--array', 'two']),
      'job create',
      /--array must be a number/,
    );
    assertUsage(
      await flare(['job', 'create', '--template', 'sh', '--array-env', envFile]),
      'job create',
      /--array-env needs --array N/,
    );
    assertUsage(
      await flare(['job', 'create', '--template', 'sh', '--array', '2', '--wait']),
      'job create',
      /flare job list --array ID/,
    );
    const tooMany = await flare(['job', 'create', '--template', 'sh', '--array', '51']);
    assert.equal(tooMany.code, 1, tooMany.stderr);
    assert.match(tooMany.stderr, /array\.size/);
  });

  it('create --command takes a JSON array, and refuses anything else with a usage error', async () => {
    const job = await submit(['--template', 'sh', '--command', '["sh","-c","exit 0"]']);
    assert.deepEqual((await api('GET', `/v1/jobs/${job.id}`)).body.command, ['sh', '-c', 'exit 0']);
    assertUsage(
      await flare(['job', 'create', '--template', 'sh', '--command', 'python train.py']),
      'job create',
      /--command takes a JSON array of strings/,
    );
    assertUsage(
      await flare(['job', 'create', '--template', 'sh', '--command', '["a"]', '--', 'b']),
      'job create',
      /either after '--' or with --command/,
    );
    await untilState(job.id, TERMINAL);
  });

  it('create --wait prints progress and exits 0 for SUCCEEDED, 5 for FAILED, 6 for EXPIRED', async () => {
    const ok = await flare(['job', 'create', '--template', 'sh', '--wait', '--interval', '0.2', '--', 'true']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^submitted job \S+ \(sh\): (?:PENDING|LAUNCHING)$/m);
    assert.match(ok.stdout, /^\d\d:\d\d:\d\d SUCCEEDED  exited with code 0$/m);

    const failed = await flare(['job', 'create', '--template', 'sh', '--wait', '--interval', '0.2', '--', 'false']);
    assert.equal(failed.code, 5, failed.stdout + failed.stderr);
    assert.match(failed.stdout, /^\d\d:\d\d:\d\d FAILED  exited with code 1$/m);

    const expired = await flare([
      'job',
      'create',
      '--template',
      'sh',
      '--live-timeout',
      '0.05',
      '--wait',
      '--interval',
      '0.2',
      '--',
      'sleep',
      '30',
    ]);
    assert.equal(expired.code, 6, expired.stdout + expired.stderr);
    assert.match(
      expired.stdout,
      /^\d\d:\d\d:\d\d RUNNING  expires \d\d:\d\d:\d\d \(\d+s left\)$/m,
      'time to expiry while it runs',
    );
    assert.match(expired.stdout, /^\d\d:\d\d:\d\d EXPIRED  live timeout reached$/m);

    // With --output json, stdout is the final job alone; progress goes to stderr.
    const json = await flare([
      'job',
      'create',
      '--template',
      'sh',
      '--wait',
      '--interval',
      '0.2',
      '-o',
      'json',
      '--',
      'true',
    ]);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(JSON.parse(json.stdout).state, 'SUCCEEDED');
    assert.match(json.stderr, /SUCCEEDED/);
  });

  it('job wait shows the queue position and reason of a waiting job, then its end; 7 when it is cancelled', async () => {
    const release = join(dir, 'release-queue');
    const blocker = await submit(['--template', 'q', '--', ...gate(release)], { token: CAROL });
    await untilState(blocker.id, ['RUNNING']);
    const second = await submit(['--template', 'q', '--name', 'second'], { token: CAROL });
    const third = await submit(['--template', 'q', '--name', 'third'], { token: CAROL });
    await untilState(third.id, ['WAITING']);

    // The REASON column: place in the pool's queue and what the job waits for.
    const list = await flare(['job', 'list'], { token: CAROL });
    const rowOf = (id: string) => list.stdout.split('\n').find((r) => r.startsWith(id)) ?? '';
    // LATEST START: none can be promised while the project's own quota holds them back (others may pass them).
    assert.match(rowOf(second.id), / WAITING .* none +#1 in queue: project queue has 0 of 1 GPUs free, needs 1$/);
    assert.match(rowOf(third.id), / WAITING .* none +#2 in queue: /);
    const shown = await flare(['job', 'show', second.id], { token: CAROL });
    assert.match(shown.stdout, /^Latest start: +none: project queue's gpus quota \(0 of 1 free\) has no room/m);

    const waiting = start(['job', 'wait', third.id, '--interval', '0.2'], { token: CAROL });
    await waitFor('the first progress line', async () => waiting.stdout().includes('\n'));
    assert.match(waiting.stdout(), /^\d\d:\d\d:\d\d WAITING  #2 in queue: /);
    await writeFile(release, '');
    const waited = await waiting.result;
    assert.equal(waited.code, 0, waited.stdout + waited.stderr);
    assert.match(waited.stdout.trimEnd().split('\n').at(-1)!, /^\d\d:\d\d:\d\d SUCCEEDED  exited with code 0$/);

    const cancelled = await submit(['--template', 'sh', '--', ...gate(join(dir, 'never'))]);
    await untilState(cancelled.id, ['RUNNING']);
    const waiter = start(['job', 'wait', cancelled.id, '--interval', '0.2']);
    await waitFor('the wait to start', async () => waiter.stdout().includes('RUNNING'));
    assert.equal((await flare(['job', 'delete', cancelled.id])).code, 0);
    const end = await waiter.result;
    assert.equal(end.code, 7, end.stdout + end.stderr);
    assert.match(end.stdout, /CANCELLED  cancelled by alice/);
  });

  it('job logs prints the output, --tail the last lines, --output json the API answer', async () => {
    const job = await submit(['--template', 'sh', '--', 'sh', '-c', 'echo one; echo two; echo three >&2; printf four']);
    await untilState(job.id, TERMINAL);
    const all = await flare(['job', 'logs', job.id]);
    assert.equal(all.code, 0, all.stderr);
    assert.equal(all.stdout, 'one\ntwo\nthree\nfour\n');
    assert.equal((await flare(['job', 'logs', job.id, '--tail', '2'])).stdout, 'three\nfour\n');
    const json = JSON.parse((await flare(['job', 'logs', job.id, '--tail', '1', '-o', 'json'])).stdout);
    assert.deepEqual(json, {
      jobId: job.id,
      lines: [{ message: 'four' }],
      nextToken: String('one\ntwo\nthree\nfour'.length),
    });
    // Many jobs by now: --limit stops early and hands back where it stopped.
    const one = JSON.parse((await flare(['job', 'list', '--limit', '1', '-o', 'json'])).stdout);
    assert.equal(one.items.length, 1);
    assert.equal(typeof one.nextToken, 'string', 'more remain: the nextToken comes back');
    const bad = await flare(['job', 'logs', job.id, '--tail', '0']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^ {2}tail: must be at least 1$/m);
  });

  it('job logs --follow prints lines as the job writes them, each once, until it has ended', async () => {
    const go = join(dir, 'go-on');
    const script = `echo line 1; while [ ! -e '${go}' ]; do sleep 0.1; done; echo line 2; printf 'half '; sleep 0.5; echo line; printf 'no newline'`;
    const job = await submit(['--template', 'sh', '--', 'sh', '-c', script]);
    const follow = start(['job', 'logs', job.id, '--follow', '--interval', '0.2']);
    await waitFor('line 1 while the job runs', async () => follow.stdout().includes('line 1\n'), 60_000);
    assert.equal(follow.stdout(), 'line 1\n', 'nothing more yet: the job waits for the test');
    assert.ok(!TERMINAL.includes((await api('GET', `/v1/jobs/${job.id}`)).body.state));
    assert.equal(follow.child.exitCode, null, 'still following');
    await writeFile(go, '');
    const run = await follow.result;
    assert.equal(run.code, 0, run.stderr);
    assert.equal(
      run.stdout,
      'line 1\nline 2\nhalf line\nno newline\n',
      'every line once, a line written in two parts whole',
    );
  });
});

// Counts the jobs the tests above ran, so it stays in their file, after them.
describe('flare stats, health', () => {
  it('stats and health', async () => {
    const stats = await flare(['stats']);
    assert.equal(stats.code, 0, stats.stderr);
    assert.match(
      stats.stdout,
      /^SCOPE +JOBS +ACTIVE +SUCCEEDED +FAILED +EXPIRED +CANCELLED +GPU-HOURS +WAIT P50 +WAIT P95$/m,
    );
    assert.match(stats.stdout, /^all +\d+ /m);
    assert.match(stats.stdout, /^project vision +\d+ /m);
    const json = JSON.parse((await flare(['stats', '--project', 'vision', '-o', 'json'])).stdout);
    assert.ok(json.totalJobs > 0);
    assert.equal(
      (await flare(['stats', '--project', 'audio'])).code,
      3,
      "another project's stats do not exist for alice",
    );

    const health = await flare(['health'], { token: null });
    assert.equal(health.code, 0, health.stderr);
    assert.match(health.stdout, /^Status: +ok$/m);
    assert.match(health.stdout, /^ {2}dynamodb: +ok \(pid \d+, restarts 0\)$/m, 'a line, not JSON');
    assert.match(health.stdout, /^ {2}workflows: +running \d+$/m);
  });
});
