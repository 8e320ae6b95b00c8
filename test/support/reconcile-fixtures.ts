/**
 * What the reconciler tests need beside test/support/harness.ts: jobs put straight into the store
 * (as a crash would leave them), and process liveness.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { newJobId } from '../../lambdas/adapters/ids.js';
import type { Job } from '../../lambdas/core/job.js';
import { IMAGE, type Dynamo, type World } from './harness.js';
import { jobRecord } from './jobs.js';

export function newJob(overrides: Partial<Job> = {}): Job {
  return jobRecord({
    id: newJobId(),
    name: 'stored',
    template: 'stored',
    pool: 'local',
    image: `${IMAGE.reference}@${IMAGE.digest}`,
    command: ['sh', '-c', 'exit 0'],
    liveTimeoutMinutes: 10,
    createdAt: new Date().toISOString(),
    ...overrides,
  });
}

/** A job stored and admitted (LAUNCHING, GPUs held) with no workflow execution: a crash right after a drain. */
export async function admittedJob(world: World, overrides: Partial<Job> = {}): Promise<Job> {
  const { job } = await world.store.createJob(newJob(overrides));
  const admitted = await world.store.admit(job, new Date().toISOString());
  if (!admitted.admitted) throw new Error(`job ${job.id} was not admitted: ${admitted.blockedBy}`);
  return admitted.job;
}

/** ADD to a counter row by hand, as a bug or a lost release would. */
export async function corrupt(
  dynamo: Dynamo,
  world: World,
  row: { pool: string } | { project: string; resource: string },
  by: number,
): Promise<void> {
  const { tables } = world;
  const [TableName, Key] =
    'pool' in row
      ? [tables.pools, { name: row.pool }]
      : [tables.quotas, { project: row.project, resource: row.resource }];
  await dynamo.doc.send(
    new UpdateCommand({
      TableName,
      Key,
      UpdateExpression: 'ADD used :n, available :minus',
      ExpressionAttributeValues: { ':n': by, ':minus': -by },
    }),
  );
}

/** The runner's pid, once its pid file is there. */
export async function runnerPid(world: World, jobId: string): Promise<number | undefined> {
  try {
    return Number((await readFile(join(world.dataDir, 'jobs', jobId, 'pid'), 'utf8')).split('\n')[0]);
  } catch {
    return undefined;
  }
}

/** Running, not a zombie. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] !== 'Z';
  } catch {
    return false;
  }
}
