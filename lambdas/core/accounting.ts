/**
 * What a job is given, charged and counted (docs/concepts.md, "Pool"): exactly the GPUs it
 * runs on. The one place that decides how a job's `gpus` (per node) relates to its
 * pool's instances and to the devices its container sees.
 *
 * - A pool that runs on instances (on AWS, any `instanceType` but `local`) never
 *   shares one: each node of a job is one whole instance, so a job's `gpus` per node
 *   must be the pool's `gpusPerInstance`, and the job holds gpusPerInstance × nodeCount.
 * - A local pool (`instanceType` `local`) is a share of this machine's GPUs, not
 *   instances: a job takes any whole number of its devices, and the local driver
 *   hands it exactly that many (its own slots, never another pool's).
 */
import type { FieldIssue } from './errors.js';
import type { Job } from './job.js';
import type { PoolRecord } from '../ports/limits.js';

/** The instance type of a pool that is a share of one machine's GPUs (the local plane's pools). */
export const LOCAL_INSTANCE_TYPE = 'local';

type PoolShape = Pick<PoolRecord, 'name' | 'instanceType' | 'gpusPerInstance'>;

/** True when the pool's jobs run on whole instances of their own, never shared. */
export function runsOnInstances(pool: Pick<PoolRecord, 'instanceType'>): boolean {
  return pool.instanceType !== LOCAL_INSTANCE_TYPE;
}

/**
 * Why `gpus` (per node) cannot run in `pool`, naming the field and the pool's
 * gpusPerInstance; undefined when it can. `source` says where the value came from
 * (a template's), for the message.
 */
export function gpusIssue(pool: PoolShape, gpus: number, source?: string): FieldIssue | undefined {
  if (!runsOnInstances(pool) || gpus === pool.gpusPerInstance) return undefined;
  const given = source ? `${source} gives ${gpus}` : `not ${gpus}`;
  return {
    field: 'gpus',
    reason:
      `must be ${pool.gpusPerInstance} (${given}): pool ${pool.name} runs each node on a whole ${pool.instanceType} instance ` +
      `with gpusPerInstance ${pool.gpusPerInstance}, never shared; more GPUs are more nodes (nodeCount)`,
  };
}

/**
 * The GPU indices one node's container is given on its own instance: the first `gpus`
 * of the instance, by index, never "all" (an instance with more GPUs than the job is
 * charged for does not hand out the rest). A local job's devices are the host slots
 * the local driver chose for it.
 */
export function nodeDevices(job: Pick<Job, 'gpus' | 'devices'>): number[] {
  return job.devices ? [...job.devices] : Array.from({ length: job.gpus }, (_, index) => index);
}
