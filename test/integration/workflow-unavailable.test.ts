/**
 * The real lifecycle ASL when the store is briefly unavailable: a step that
 * meets StoreUnavailable is retried by name, so a passing outage does not
 * fail a healthy job.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StoreUnavailable } from '../../lambdas/core/errors.js';
import { JobState } from '../../lambdas/core/job.js';
import { submitJob } from '../../lambdas/core/jobs.js';
import type { JobRecords } from '../../lambdas/ports/jobs.js';
import { template, waitForEnd, worldPerTest } from '../support/harness.js';
import { alice } from '../support/identities.js';

const setup = worldPerTest({
  pools: [{ name: 'local', gpus: 1 }],
  templates: [template({ name: 'short', command: ['sleep', '1'] })],
});

describe('the lifecycle workflow with a store that is briefly unavailable', () => {
  it('Run retries a StoreUnavailable on registering its wait: the job runs and succeeds', async () => {
    const world = await setup();
    const store = world.deps.jobs;
    let refused = 0;
    // The tasks see world.deps: its store refuses the first registration of Run's wait, as a throttled DynamoDB would.
    world.deps.jobs = Object.create(store, {
      setTaskToken: {
        value: async (...args: Parameters<JobRecords['setTaskToken']>) => {
          if (refused++ === 0)
            throw new StoreUnavailable('DynamoDB is throttled (ThrottlingException); try again later');
          return store.setTaskToken(...args);
        },
      },
    }) as JobRecords;

    const { job } = await submitJob(world.deps, alice, { template: 'short' });
    const done = await waitForEnd(store, job.id, 60_000);

    assert.equal(done.state, JobState.SUCCEEDED, done.stateReason);
    assert.equal(refused, 2, 'refused once, registered on the retry');
    assert.equal((await world.store.getPool('local'))?.usedGpus, 0);
  });
});
