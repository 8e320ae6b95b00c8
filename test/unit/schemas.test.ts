import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SubmitJobInput } from '../../lambdas/core/job-schemas.js';
import { LocalConfig, parse, TemplateSpec } from '../../lambdas/core/schemas.js';
import { validationFields as fields } from '../support/api-errors.js';

describe('SubmitJobInput', () => {
  it('accepts a minimal and a full job', () => {
    assert.deepEqual(parse(SubmitJobInput, { template: 'train' }), { template: 'train' });
    const full = {
      template: 'train',
      name: 'run 1',
      project: 'vision',
      command: ['python', 'train.py', '--lr', '0.1'],
      gpus: 2,
      liveTimeoutMinutes: 0.05,
      env: { SEED: '1' },
    };
    assert.deepEqual(parse(SubmitJobInput, full), full);
  });

  it('names every bad field at once', () => {
    assert.deepEqual(
      fields(() =>
        parse(SubmitJobInput, { template: 'train', gpus: 1.5, liveTimeoutMinutes: 0, privileged: true }),
      ).sort(),
      ['gpus', 'liveTimeoutMinutes', 'privileged'].sort(),
    );
  });

  for (const gpus of [0, -1, 1.5, '2', Number.POSITIVE_INFINITY]) {
    it(`refuses gpus ${String(gpus)}`, () =>
      assert.deepEqual(
        fields(() => parse(SubmitJobInput, { template: 't', gpus })),
        ['gpus'],
      ));
  }
  for (const liveTimeoutMinutes of [0, -5, Number.NaN, '10']) {
    it(`refuses liveTimeoutMinutes ${String(liveTimeoutMinutes)}`, () =>
      assert.deepEqual(
        fields(() => parse(SubmitJobInput, { template: 't', liveTimeoutMinutes })),
        ['liveTimeoutMinutes'],
      ));
  }

  it('refuses a command that is not an argv array, or carries NUL', () => {
    assert.deepEqual(
      fields(() => parse(SubmitJobInput, { template: 't', command: 'rm -rf /' })),
      ['command'],
    );
    assert.deepEqual(
      fields(() => parse(SubmitJobInput, { template: 't', command: ['a\0b'] })),
      ['command.0'],
    );
    assert.deepEqual(
      fields(() => parse(SubmitJobInput, { template: 't', command: [] })),
      ['command'],
    );
  });

  it('refuses unknown fields by name', () => {
    assert.deepEqual(
      fields(() => parse(SubmitJobInput, { template: 't', volumes: ['/:/host'], network: 'host' })).sort(),
      ['network', 'volumes'],
    );
  });
});

describe('LocalConfig', () => {
  it('fills defaults', () => {
    const config = parse(LocalConfig, {});
    assert.equal(config.host, '127.0.0.1');
    assert.equal(config.port, 8080);
    assert.deepEqual(config.pools, [{ name: 'local', gpus: 1 }]);
  });

  it('refuses unknown keys and dangling references, naming them', () => {
    assert.deepEqual(
      fields(() => parse(LocalConfig, { colour: 'blue' })),
      ['colour'],
    );
    const found = fields(() =>
      parse(LocalConfig, {
        pools: [{ name: 'local', gpus: 2 }],
        templates: [{ name: 'train', project: 'vision', pool: 'nope', image: 'missing', command: ['true'] }],
      }),
    );
    assert.deepEqual(found.sort(), ['templates.0.image', 'templates.0.pool']);
  });
});

describe('TemplateSpec.allowRoot', () => {
  const base = { name: 't', project: 'vision', pool: 'local', image: 'cuda', command: ['true'] };
  it('is off unless the template says so', () => {
    assert.equal(parse(TemplateSpec, base).allowRoot, undefined);
    assert.equal(parse(TemplateSpec, { ...base, allowRoot: true }).allowRoot, true);
  });
  it('is refused for multi-node templates, which share the host network', () => {
    assert.deepEqual(
      fields(() => parse(TemplateSpec, { ...base, nodeCount: 2, allowRoot: true })),
      ['allowRoot'],
    );
  });
  it('must be a boolean', () => {
    assert.deepEqual(
      fields(() => parse(TemplateSpec, { ...base, allowRoot: 'yes' })),
      ['allowRoot'],
    );
  });
});
