/**
 * What the Stop step records of a job's outputs, on the local runtime with the
 * real ASL: the kept files' count and bytes once the job's processes are gone,
 * and, when they cannot be read, an error on the job, which still ends.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { submitJob } from '../../lambdas/core/jobs.js';
import { template, waitForEnd, worldPerTest, wrapCompute } from '../support/harness.js';
import { alice } from '../support/identities.js';

const TEMPLATES = [
  template({
    name: 'writes',
    command: [
      'sh',
      '-c',
      'mkdir -p "$FLARE_OUTPUT_DIR/sub" && printf 123 > "$FLARE_OUTPUT_DIR/sub/a" && printf 45 > "$FLARE_OUTPUT_DIR/b"',
    ],
  }),
];
const setup = worldPerTest({ pools: [{ name: 'local', gpus: 1 }], templates: TEMPLATES });

describe('the outputs a job kept, on its record', () => {
  it('are counted once the job has stopped', async () => {
    const world = await setup();
    const { job } = await submitJob(world.deps, alice, { template: 'writes' });
    const ended = await waitForEnd(world.store, job.id);
    assert.equal(ended.state, 'SUCCEEDED', ended.stateReason);
    assert.deepEqual(ended.outputs, { count: 2, bytes: 5 });
  });

  it('say so when they could not be read, and the job still ends as it would have', async () => {
    const world = await setup({
      wrapCompute: (real) =>
        wrapCompute(real, {
          keptOutputs: async () => {
            throw new Error('EACCES: permission denied');
          },
        }),
    });
    const { job } = await submitJob(world.deps, alice, { template: 'writes' });
    const ended = await waitForEnd(world.store, job.id);
    assert.equal(ended.state, 'SUCCEEDED', ended.stateReason);
    assert.deepEqual(ended.outputs, {
      count: 0,
      bytes: 0,
      error: 'outputs could not be read: EACCES: permission denied',
    });
  });
});
