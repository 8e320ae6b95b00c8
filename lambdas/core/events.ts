import type { Deps } from './deps.js';
import { totalGpus, type Job, type JobState } from './job.js';

/** Publish a job's state change. Publishing never undoes the change it reports. */
export async function publishChange(deps: Pick<Deps, 'events' | 'log' | 'now'>, job: Job, previousState: JobState | null): Promise<void> {
  try {
    await deps.events.publish({
      jobId: job.id,
      name: job.name,
      project: job.project,
      owner: job.owner,
      pool: job.pool,
      gpus: totalGpus(job),
      previousState,
      state: job.state,
      ...(job.stateReason ? { stateReason: job.stateReason } : {}),
      at: deps.now().toISOString(),
    });
  } catch (error) {
    deps.log.error('event publish failed', { jobId: job.id, state: job.state, error: String(error) });
  }
}
