import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { dockerRunArgs, instanceScript } from '../../lambdas/core/container-command.js';
import { ValidationError } from '../../lambdas/core/errors.js';
import { DEFAULT_MAX_OUTPUT_BYTES, outputPathIssue, outputsRecord, withinCap } from '../../lambdas/core/outputs.js';
import { LocalConfig } from '../../lambdas/core/schemas.js';

const SPEC = {
  jobId: 'job-1',
  image: `nvcr.io/nvidia/pytorch:24.05-py3@sha256:${'0'.repeat(64)}`,
  command: ['python', 'train.py'],
  env: {},
  gpus: 1,
  expiresAt: '2030-01-01T00:00:00.000Z',
};

describe('output paths', () => {
  test('a relative path inside the directory passes; anything leaving it is refused with the reason', () => {
    for (const ok of ['a.txt', 'sub/deep/n.txt', '..a', 'a..', '.hidden', 'x y/z'])
      assert.equal(outputPathIssue(ok), undefined, ok);
    for (const [bad, reason] of [
      ['', /must name a file/],
      ['/etc/passwd', /not absolute/],
      ['..', /no empty, '\.' or '\.\.' segments/],
      ['sub/../../x', /no empty/],
      ['./a', /no empty/],
      ['a//b', /no empty/],
      ['a/', /no empty/],
      ['a\\..\\b', /backslash/],
      ['a\0b', /NUL/],
      ['x'.repeat(901), /at most 900/],
    ] as const)
      assert.match(outputPathIssue(bad) ?? '', reason, JSON.stringify(bad));
  });
});

describe('the per-job cap', () => {
  const files = [
    { path: 'b.bin', size: 600 },
    { path: 'a.bin', size: 600 },
    { path: 'c.txt', size: 300 },
  ];

  test('keeps whole files in path order while they fit, a later smaller one included', () => {
    const { kept, dropped } = withinCap(files, 1000);
    assert.deepEqual(
      kept.map((f) => f.path),
      ['a.bin', 'c.txt'],
    );
    assert.deepEqual(
      dropped.map((f) => f.path),
      ['b.bin'],
    );
    assert.deepEqual(outputsRecord(kept, dropped, 1000), {
      count: 2,
      bytes: 900,
      truncated: true,
      error: 'over the 1000-byte cap: 1 files (600 bytes) were not kept',
    });
  });

  test('under the cap everything is kept and the record says only count and bytes', () => {
    const { kept, dropped } = withinCap(files, 1500);
    assert.equal(dropped.length, 0);
    assert.deepEqual(outputsRecord(kept, dropped, 1500), { count: 3, bytes: 1500 });
  });
});

describe('the output directory in a container', () => {
  test('is mounted at /outputs and named by FLARE_OUTPUT_DIR, which the job cannot set itself', () => {
    const argv = dockerRunArgs(SPEC, { memory: '1g', outputDir: '/data/outputs/vision/job-1' });
    assert.ok(argv.includes('--env=FLARE_OUTPUT_DIR=/outputs'));
    assert.ok(argv.includes('--mount=type=bind,src=/data/outputs/vision/job-1,dst=/outputs'));
    assert.ok(!dockerRunArgs(SPEC, { memory: '1g' }).some((a) => a.includes('/outputs')), 'no directory, no mount');
    assert.throws(
      () => dockerRunArgs({ ...SPEC, env: { FLARE_OUTPUT_DIR: '/etc' } }, { memory: '1g', outputDir: '/o/job-1' }),
      (e: unknown) => e instanceof ValidationError && e.details.some((d) => d.field === 'env.FLARE_OUTPUT_DIR'),
    );
  });

  test("on an instance it is made before the container starts, owned by the container's user", () => {
    const options = { memory: '1g', scratchDir: '/var/lib/flare/scratch', outputDir: '/var/lib/flare/outputs/job-1' };
    const lines = instanceScript(SPEC, options).split('\n');
    const made = lines.indexOf('install -d -m 0700 -o 65534 -g 65534 /var/lib/flare/outputs/job-1');
    assert.ok(made > 0, 'the directory is created for uid 65534');
    assert.ok(made < lines.findIndex((l) => l.includes('docker container inspect')), 'before the container starts');
    const root = instanceScript(SPEC, { ...options, allowRoot: true });
    assert.ok(root.includes('install -d -m 0700 /var/lib/flare/outputs/job-1\n'), 'root: no owner flags');
  });

  test('refuses a host directory that could widen the mount', () => {
    for (const outputDir of ['relative', '/a/../etc', '/a,dst=/etc', '/a b'])
      assert.throws(
        () => dockerRunArgs(SPEC, { memory: '1g', outputDir }),
        (e: unknown) => e instanceof ValidationError && e.details.some((d) => d.field === 'options.outputDir'),
        outputDir,
      );
  });
});

describe('local config outputs', () => {
  test('maxBytes defaults to 10 GiB; an unknown key or a bad value is refused by name', () => {
    assert.equal(LocalConfig.parse({}).outputs.maxBytes, DEFAULT_MAX_OUTPUT_BYTES);
    assert.equal(DEFAULT_MAX_OUTPUT_BYTES, 10 * 2 ** 30);
    assert.equal(LocalConfig.parse({ outputs: { maxBytes: 5 } }).outputs.maxBytes, 5);
    const unknown = LocalConfig.safeParse({ outputs: { maxGb: 5 } });
    assert.equal(unknown.success, false);
    assert.match(JSON.stringify(unknown.error!.issues), /maxGb/);
    const bad = LocalConfig.safeParse({ outputs: { maxBytes: -1 } });
    assert.equal(bad.success, false);
    assert.deepEqual(bad.error!.issues[0]!.path, ['outputs', 'maxBytes']);
  });
});
