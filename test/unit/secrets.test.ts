/**
 * Secrets below the API: the docker command names a secret's variable without
 * its value, masking in served logs, and the local store's files.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { LocalSecretStore } from '../../lambdas/adapters/local-secrets.js';
import { dockerRunArgs, instanceScript } from '../../lambdas/core/container-command.js';
import { ValidationError } from '../../lambdas/core/errors.js';
import { parse } from '../../lambdas/core/schemas.js';
import { maskLine, secretsMap } from '../../lambdas/core/secrets.js';
import type { ContainerSpec } from '../../lambdas/ports/compute.js';
import { validationFields as fieldsOf } from '../support/api-errors.js';

const spec = (overrides: Partial<ContainerSpec> = {}): ContainerSpec => ({
  jobId: 'job-1',
  image: `registry.example/train:1@sha256:${'a'.repeat(64)}`,
  command: ['python', 'train.py'],
  env: { MODE: 'fast' },
  gpus: 0,
  expiresAt: '2030-01-01T00:00:00.000Z',
  ...overrides,
});
const OPTIONS = { memory: '1g' };

describe('docker command with secrets', () => {
  test('names each secret variable as --env=NAME, so docker takes the value from its own environment', () => {
    const args = dockerRunArgs(spec({ secrets: { API_KEY: 'openai', DB: 'db-pass' }, project: 'vision' }), OPTIONS);
    const envs = args.filter((a) => a.startsWith('--env='));
    assert.ok(envs.includes('--env=API_KEY') && envs.includes('--env=DB'), envs.join(' '));
    assert.ok(envs.includes('--env=MODE=fast'));
    assert.ok(!args.some((a) => a.includes('openai') || a.includes('db-pass')), 'not even the secret names');
  });

  test('refuses reserved names and a name also in env', () => {
    assert.deepEqual(
      fieldsOf(() => dockerRunArgs(spec({ secrets: { FLARE_JOB_ID: 'x', MODE: 'y', '1A': 'z' } }), OPTIONS)),
      ['secrets.FLARE_JOB_ID', 'secrets.MODE', 'secrets.1A'],
    );
  });

  test('a submit naming a variable Flare sets is refused, naming it, before anything is stored', () => {
    try {
      parse(secretsMap, { FLARE_OUTPUT_DIR: 'a', NVIDIA_VISIBLE_DEVICES: 'b', API_KEY: 'openai' });
      assert.fail('expected a ValidationError');
    } catch (error) {
      assert.ok(error instanceof ValidationError, String(error));
      assert.deepEqual(
        error.details.map((d) => [d.field, d.reason.startsWith('is set by Flare')]),
        [
          ['FLARE_OUTPUT_DIR', true],
          ['NVIDIA_VISIBLE_DEVICES', true],
        ],
      );
    }
  });

  test('an instance is never started without the secrets its job names', () => {
    assert.deepEqual(
      fieldsOf(() => instanceScript(spec({ secrets: { API_KEY: 'openai' }, project: 'vision' }), OPTIONS)),
      ['secrets'],
    );
  });
});

describe('maskLine', () => {
  test('replaces every occurrence, longest value first', () => {
    assert.equal(maskLine('a=abcdef b=abc abcdef', ['abcdef', 'abc']), 'a=*** b=*** ***');
    assert.equal(maskLine('nothing here', ['abc']), 'nothing here');
  });
});

describe('LocalSecretStore', () => {
  test('keeps values in one 0600 file per project, under a 0700 directory; lists names; deletes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'flare-secret-store-'));
    try {
      const store = new LocalSecretStore(dir);
      // Concurrent puts are applied one after the other: none is lost.
      await Promise.all(
        Array.from({ length: 10 }, (_, i) => store.put('vision', `k${i}`, `v${i}`, '2030-01-01T00:00:00.000Z')),
      );
      assert.equal((await store.list('vision')).length, 10);
      assert.deepEqual(await store.list('audio'), []);
      assert.equal((await stat(join(dir, 'secrets', 'vision.json'))).mode & 0o777, 0o600);
      assert.equal((await stat(join(dir, 'secrets'))).mode & 0o777, 0o700);
      assert.deepEqual(await store.missing('vision', ['k1', 'nope']), ['nope']);
      assert.deepEqual([...(await store.values('vision', ['k1', 'nope']))], [['k1', 'v1']]);
      assert.equal(await store.delete('vision', 'k1'), true);
      assert.equal(await store.delete('vision', 'k1'), false);
      assert.ok(!(await readFile(join(dir, 'secrets', 'vision.json'), 'utf8')).includes('v1"'));
      // Prototype names are plain keys here.
      assert.deepEqual(await store.missing('vision', ['constructor', 'toString']), ['constructor', 'toString']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
