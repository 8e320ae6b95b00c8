/**
 * The `flare` CLI as a user runs it: `node --import tsx bin/flare.ts ...` as a subprocess, against
 * `flare local` started as a child process (test/support/cli-plane.ts). Templates, images, quotas and pools: every
 * command reaches its route and shows the answer, in tables and `--output json`.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TOOLS_IMAGE } from '../support/local-plane.js';
import { ROOT_TOKEN, BOB_TOKEN } from '../support/identities.js';
import { api, assertUsage, dir, flare, useCliPlane } from '../support/cli-plane.js';

useCliPlane();

describe('flare template, image, quota, pool', () => {
  it('template create (flags and --file), list, show, update, delete', async () => {
    const created = await flare([
      'template',
      'create',
      '--name',
      'train',
      '--project',
      'vision',
      '--pool',
      'local',
      '--image',
      'tools',
      '--gpus',
      '2',
      '--max-live-timeout',
      '90',
      '--env',
      'EPOCHS=3',
      '--',
      'python',
      'train.py',
      '--lr',
      '0.1',
    ]);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /^Name: +train$/m);
    assert.match(created.stdout, /^Max live timeout: +1h30m$/m);
    const stored = (await api('GET', '/v1/templates/train?project=vision')).body;
    assert.deepEqual(
      [stored.command, stored.gpus, stored.env, stored.maxLiveTimeoutMinutes],
      [['python', 'train.py', '--lr', '0.1'], 2, { EPOCHS: '3' }, 90],
    );

    const spec = join(dir, 'spec.json');
    await writeFile(
      spec,
      JSON.stringify({
        name: 'from-file',
        project: 'vision',
        pool: 'local',
        image: 'tools',
        command: ['nvidia-smi'],
        gpus: 1,
      }),
    );
    const fromFile = await flare(['template', 'create', '--file', spec, '--gpus', '3', '-o', 'json']);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.deepEqual(
      [JSON.parse(fromFile.stdout).name, JSON.parse(fromFile.stdout).gpus],
      ['from-file', 3],
      'flags override the file',
    );
    assertUsage(
      await flare(['template', 'create', '--name', 'x', '--pool', 'local']),
      'template create',
      /missing --image, the command/,
    );

    const list = await flare(['template', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^ID +NAME +PROJECT +POOL +GPUS +IMAGE +MAX TIMEOUT +COMMAND$/m);
    assert.match(
      list.stdout,
      /^tpl-\S+ +train +vision +local +2 +tools +1h30m +\["python","train.py","--lr","0.1"\]$/m,
    );
    assert.deepEqual(
      JSON.parse((await flare(['template', 'list', '-o', 'json'])).stdout)
        .items.map((t: { name: string }) => t.name)
        .sort(),
      ['from-file', 'sh', 'train'],
    );

    const show = await flare(['template', 'show', 'train']);
    assert.match(show.stdout, new RegExp(`^ID: +${stored.id}$`, 'm'));
    const updated = await flare([
      'template',
      'update',
      'train',
      '--project',
      'vision',
      '--max-live-timeout',
      '120',
      '--',
      'python',
      'train.py',
    ]);
    assert.equal(updated.code, 0, updated.stderr);
    const changed = (await api('GET', `/v1/templates/${stored.id}`)).body;
    assert.deepEqual(
      [changed.maxLiveTimeoutMinutes, changed.command, changed.gpus],
      [120, ['python', 'train.py'], 2],
      'only the fields given change',
    );

    const refused = await flare(['template', 'update', 'train', '--gpus', '0']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^ {2}gpus: /m);
    assert.equal(
      (await flare(['template', 'show', 'train'], { token: BOB_TOKEN })).code,
      3,
      "another project's template does not exist for bob",
    );

    const deleted = await flare(['template', 'delete', 'from-file', '--project', 'vision']);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal((await flare(['template', 'show', 'from-file'])).code, 3);
  });

  it('image add, list, show; members read, only admins add', async () => {
    const digest = `sha256:${'c'.repeat(64)}`;
    const added = await flare(
      ['image', 'add', 'tools', '--reference', 'docker.io/library/busybox:1.37', '--digest', digest],
      { token: ROOT_TOKEN },
    );
    assert.equal(added.code, 0, added.stderr);
    const show = await flare(['image', 'show', 'tools']);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, new RegExp(`^1 +docker.io/library/busybox:1.36 +${TOOLS_IMAGE.digest} `, 'm'));
    assert.match(show.stdout, new RegExp(`^2 +docker.io/library/busybox:1.37 +${digest} `, 'm'));
    const list = await flare(['image', 'list']);
    assert.match(list.stdout, /^tools +2 +docker.io\/library\/busybox:1.37 +sha256:c{12}… +2$/m);
    assert.equal(JSON.parse((await flare(['image', 'show', 'tools', '-o', 'json'])).stdout).versions.length, 2);
    const member = await flare([
      'image',
      'add',
      'mine',
      '--reference',
      'docker.io/library/alpine:3',
      '--digest',
      digest,
    ]);
    assert.equal(member.code, 4, member.stderr);
    assertUsage(await flare(['image', 'add', 'x', '--reference', 'r']), 'image add', /missing --digest/);
    assert.equal((await flare(['image', 'show', 'nope'])).code, 3);
  });

  it('quota create, list, show, update, delete', async () => {
    const created = await flare(['quota', 'create', 'vision', 'jobs', '--hard-limit', '5'], { token: ROOT_TOKEN });
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /^vision +jobs +5 +\d+$/m);
    const updated = await flare(['quota', 'update', 'vision', 'jobs', '--hard-limit', '7'], { token: ROOT_TOKEN });
    assert.equal(updated.code, 0, updated.stderr);
    assert.equal((await api('GET', '/v1/quotas/vision/jobs')).body.hardLimit, 7);
    const list = await flare(['quota', 'list']);
    assert.match(list.stdout, /^PROJECT +RESOURCE +LIMIT +USED$/m);
    assert.match(list.stdout, /^vision +jobs +7 +\d+$/m);
    assert.equal(JSON.parse((await flare(['quota', 'show', 'vision', 'jobs', '-o', 'json'])).stdout).hardLimit, 7);
    assert.equal(
      (await flare(['quota', 'update', 'vision', 'jobs', '--hard-limit', '9'])).code,
      4,
      'members do not write quotas',
    );
    const deleted = await flare(['quota', 'delete', 'vision', 'jobs'], { token: ROOT_TOKEN });
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal((await flare(['quota', 'show', 'vision', 'jobs'])).code, 3);
    assertUsage(
      await flare(['quota', 'create', 'vision'], { token: ROOT_TOKEN }),
      'quota create',
      /missing argument: RESOURCE/,
    );
  });

  it('pool list and update', async () => {
    const list = await flare(['pool', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^NAME +INSTANCE TYPE +GPUS\/INSTANCE +MAX GPUS +USED +FREE +WAITING +BACKFILL$/m);
    assert.match(list.stdout, /^local +local +\d+ +4 +.* off$/m, 'strict FIFO by default');
    const raised = await flare(['pool', 'update', 'local', '--max-gpus', '6'], { token: ROOT_TOKEN });
    assert.equal(raised.code, 0, raised.stderr);
    assert.equal((await api('GET', '/v1/pools')).body.items[0].maxGpus, 6);
    assert.equal((await flare(['pool', 'update', 'local', '--max-gpus', '8'])).code, 4, 'members do not change caps');
    assert.equal((await flare(['pool', 'update', 'local', '--max-gpus', '4'], { token: ROOT_TOKEN })).code, 0);
    const on = await flare(['pool', 'update', 'local', '--backfill', 'on'], { token: ROOT_TOKEN });
    assert.equal(on.code, 0, on.stderr);
    assert.match(on.stdout, /^local +local +\d+ +4 +.* on$/m);
    assert.equal((await api('GET', '/v1/pools')).body.items[0].backfill, true);
    assertUsage(
      await flare(['pool', 'update', 'local', '--backfill', 'maybe'], { token: ROOT_TOKEN }),
      'pool update',
      /--backfill takes on or off/,
    );
    assert.equal((await flare(['pool', 'update', 'local', '--backfill', 'off'], { token: ROOT_TOKEN })).code, 0);
  });
});
