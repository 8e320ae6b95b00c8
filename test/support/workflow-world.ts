/**
 * What the workflow tests (test/integration/workflow-*.test.ts) share: a fresh world per test on DynamoDB
 * Local with a 2-GPU pool and the templates they submit, and a job held WAITING behind a full pool.
 */
import { submitJob } from '../../lambdas/core/jobs.js';
import { JobState, type Job } from '../../lambdas/core/job.js';
import { template, waitForState, worldPerTest, type World, type WorldSetup } from './harness.js';
import { alice } from './identities.js';

export const TEMPLATES = [
  template({ name: 'ok', command: ['sh', '-c', 'exit 0'] }),
  template({ name: 'fail', command: ['sh', '-c', 'exit 3'] }),
  template({ name: 'sleep', command: ['sleep', '30'] }),
  template({ name: 'short', command: ['sleep', '1'] }),
  template({ name: 'audio-sleep', project: 'audio', command: ['sleep', '30'] }),
  template({ name: 'big', command: ['sleep', '30'], gpus: 2 }),
];

/** A world per test (DynamoDB Local for the file): the pool of 2 GPUs and TEMPLATES unless overridden. */
export function workflowWorld(): (overrides?: Partial<WorldSetup>) => Promise<World> {
  return worldPerTest({ pools: [{ name: 'local', gpus: 2 }], templates: TEMPLATES });
}

/** A job of `template` WAITING behind a running `big` job that holds the whole pool. */
export async function behindFullPool(world: World, template: string): Promise<{ running: Job; waiting: Job }> {
  const running = (await submitJob(world.deps, alice, { template: 'big' })).job;
  await waitForState(world.store, running.id, [JobState.RUNNING]);
  const waiting = (await submitJob(world.deps, alice, { template })).job;
  await waitForState(world.store, waiting.id, [JobState.WAITING]);
  return { running, waiting };
}
