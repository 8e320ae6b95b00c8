/**
 * The `flare` CLI as a user runs it: `node --import tsx bin/flare.ts ...` as a subprocess, against
 * `flare local` started as a child process (test/support/cli-plane.ts). The exit codes (1, 2 with usage, 3, 4),
 * the connection rules (env, flags, profile file and its permissions), and `--help` for every command.
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { COMMANDS } from '../../cli/main.js';
import type { CliRun as Run } from '../support/flare-cli.js';
import { ALICE_TOKEN, BOB_TOKEN } from '../support/identities.js';
import { TERMINAL, assertUsage, dir, flare, home, submit, untilState, url, useCliPlane } from '../support/cli-plane.js';

useCliPlane();

describe('errors, connection and help', () => {
  it('usage errors exit 2 with the command’s usage, never a stack trace', async () => {
    assertUsage(await flare(['job', 'list', '--bogus']), 'job list', /^flare: unknown option '--bogus'$/m);
    assertUsage(await flare(['job', 'show']), 'job show', /^flare: missing argument: ID$/m);
    assertUsage(await flare(['job', 'show', 'a', 'b']), 'job show', /unexpected argument 'b'/);
    assertUsage(await flare(['job', 'create']), 'job create', /missing --template T/);
    assertUsage(await flare(['job', 'create', '--template']), 'job create', /option --template needs a value/);
    assertUsage(
      await flare(['job', 'create', '--template', 'sh', '--gpus', 'two']),
      'job create',
      /--gpus must be a number, got 'two'/,
    );
    assertUsage(await flare(['job', 'wait', 'x', '--interval', '0']), 'job wait', /--interval must be more than 0/);
    assertUsage(await flare(['job', 'list', '--output', 'yaml']), 'job list', /--output must be 'table' or 'json'/);
    assertUsage(
      await flare(['job', 'list', '--limit', '0']),
      'job list',
      /--limit must be a whole number of at least 1/,
    );
    assertUsage(await flare(['nope']), '<command>', /unknown command 'nope'/);
    assertUsage(await flare(['job', 'nope']), 'job', /unknown command 'job nope'/);
    const bare = await flare([]);
    assert.equal(bare.code, 2);
    assert.match(bare.stderr, /^usage: flare <command>/);
  });

  it('API errors: 404 exits 3, a bad token 4, refused input 1 naming each field, an unreachable API 1 naming its URL', async () => {
    const missing = await flare(['job', 'show', 'j-does-not-exist']);
    assert.deepEqual([missing.code, missing.stderr], [3, 'flare: job j-does-not-exist not found\n']);
    const other = await submit(['--template', 'sh'], { token: ALICE_TOKEN });
    assert.equal(
      (await flare(['job', 'show', other.id], { token: BOB_TOKEN })).code,
      3,
      "another project's job is not found",
    );

    const badToken = await flare(['job', 'list'], { token: 'wrong-token-0123456789' });
    assert.equal(badToken.code, 4);
    assert.match(badToken.stderr, /^flare: a valid bearer token is required$/m);

    const refused = await flare(['job', 'create', '--template', 'sh', '--gpus', '1.5', '--live-timeout=-1']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^flare: the API refused the request \(400 validation_error\):$/m);
    assert.match(refused.stderr, /^ {2}gpus: must be a whole number$/m);
    assert.match(refused.stderr, /^ {2}liveTimeoutMinutes: /m);

    const unreachable = await flare(['job', 'list'], { apiUrl: 'http://127.0.0.1:9' });
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /^flare: cannot reach the API at http:\/\/127\.0\.0\.1:9: /);
    assert.doesNotMatch(unreachable.stderr, /\n\s+at /);
    await untilState(other.id, TERMINAL);
  });

  it('no token or no URL is a clear message and exit 2; --api and --token win over the environment', async () => {
    const noToken = await flare(['job', 'list'], { token: null });
    assert.equal(noToken.code, 2);
    assert.match(noToken.stderr, /^flare: no API token: pass --token TOKEN, set FLARE_TOKEN, or put "token" in /);
    const noUrl = await flare(['job', 'list'], { apiUrl: null });
    assert.equal(noUrl.code, 2);
    assert.match(noUrl.stderr, /^flare: no API URL: pass --api URL, set FLARE_API_URL/);
    const flags = await flare(['--api', url, 'job', 'list', '--token', ALICE_TOKEN], {
      token: 'wrong-token-0123456789',
      apiUrl: 'http://127.0.0.1:9',
    });
    assert.equal(flags.code, 0, flags.stderr);
    assert.equal((await flare(['job', 'list'], { apiUrl: 'ftp://example.com' })).code, 2);
  });

  it('reads the profile file, and refuses one that holds a token others can read', async () => {
    const profile = join(dir, 'profile.json');
    await writeFile(profile, JSON.stringify({ apiUrl: url, token: ALICE_TOKEN }), { mode: 0o644 });
    await chmod(profile, 0o644);
    const open = await flare(['job', 'list'], { token: null, apiUrl: null, env: { FLARE_CONFIG: profile } });
    assert.equal(open.code, 2);
    assert.match(open.stderr, /holds a token but group or others may read or write it \(mode 644\); run: chmod 600 /);
    await chmod(profile, 0o600);
    const ok = await flare(['job', 'list'], { token: null, apiUrl: null, env: { FLARE_CONFIG: profile } });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^ID +NAME/);

    // The default place: ~/.config/flare/config.json.
    await mkdir(join(home, '.config', 'flare'), { recursive: true });
    await writeFile(
      join(home, '.config', 'flare', 'config.json'),
      JSON.stringify({ apiUrl: url, token: ALICE_TOKEN, apiURL: 'typo' }),
      { mode: 0o600 },
    );
    const typo = await flare(['job', 'list'], { token: null, apiUrl: null });
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /^ {2}apiURL: unknown key/m);
    await rm(join(home, '.config'), { recursive: true });
  });

  it('--help for every command and group, each with an example; flare --help lists them all', async () => {
    const top = await flare(['--help'], { token: null, apiUrl: null });
    assert.equal(top.code, 0);
    for (const command of COMMANDS)
      assert.match(top.stdout, new RegExp(`^ {2}${command.name} +\\S`, 'm'), command.name);
    assert.match(top.stdout, /^ {2}local +/m);
    assert.match(top.stdout, /5 FAILED, 6 EXPIRED, 7 CANCELLED/);

    const groups = ['job', 'template', 'image', 'quota', 'pool'];
    const names = [...COMMANDS.map((c) => c.name), ...groups, 'local'];
    const runs = new Map<string, Run>();
    for (let i = 0; i < names.length; i += 4) {
      await Promise.all(
        names
          .slice(i, i + 4)
          .map(async (name) =>
            runs.set(name, await flare([...name.split(' '), '--help'], { token: null, apiUrl: null })),
          ),
      );
    }
    for (const name of names) {
      const run = runs.get(name)!;
      assert.equal(run.code, 0, `${name}: ${run.stderr}`);
      assert.match(run.stdout, new RegExp(`^usage: flare ${name}\\b`), name);
      assert.match(
        run.stdout,
        new RegExp(`^example[s]?:\\n {2}flare ${name === 'local' ? 'local' : name.split(' ')[0]}\\b`, 'm'),
        `${name} has an example`,
      );
    }
    assert.match(runs.get('job wait')!.stdout, /^ {2}5 {2}the job FAILED/m, 'wait documents its exit codes');
    assert.match(runs.get('job create')!.stdout, /everything after '--' is the command/);
  });
});
