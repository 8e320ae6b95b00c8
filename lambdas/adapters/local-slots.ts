/**
 * The GPU slots of this machine, by pool, and which job holds which: what the
 * local driver hands out at launch in place of EC2 instances. Pools split the
 * machine's devices: each pool gets its own indices, in config order, so two
 * pools never hand out the same GPU (nor, without GPUs, the same
 * CUDA_VISIBLE_DEVICES slot number).
 */
import { LaunchFailed } from '../core/errors.js';
import type { Logger } from '../core/deps.js';
import { LocalComputeError } from './local-supervisor/link.js';

export interface LocalPool {
  readonly name: string;
  readonly gpus: number;
}

interface Held {
  pool: string;
  devices: number[];
}

export class LocalSlots {
  private readonly poolDevices = new Map<string, number[]>();
  private readonly held = new Map<string, Held>();

  /**
   * `hostGpus`: GPUs found on this machine, mapped onto pools in config order;
   * 0: no GPUs, each pool's slots are plain numbers.
   */
  constructor(
    pools: readonly LocalPool[],
    hostGpus: number,
    private readonly log: Logger,
  ) {
    const wanted = pools.reduce((sum, p) => sum + p.gpus, 0);
    if (hostGpus > 0 && wanted > hostGpus) {
      const asked = pools.map((p) => `${p.name} (${p.gpus})`).join(', ');
      throw new LocalComputeError(
        `pools ${asked} ask for ${wanted} GPUs but this machine has ${hostGpus}: lower pools[].gpus so that they add up to at most ${hostGpus}`,
      );
    }
    let next = 0;
    for (const pool of pools) {
      if (!Number.isInteger(pool.gpus) || pool.gpus < 0)
        throw new LocalComputeError(`pool ${pool.name}: gpus must be a whole number`);
      if (this.poolDevices.has(pool.name)) throw new LocalComputeError(`pool ${pool.name} is configured twice`);
      this.poolDevices.set(
        pool.name,
        Array.from({ length: pool.gpus }, (_, i) => next + i),
      );
      next += pool.gpus;
    }
  }

  /** Slots of `pool` that no job holds, lowest first. */
  free(pool: string): number[] {
    const all = this.poolDevices.get(pool) ?? [];
    const taken = new Set([...this.held.values()].filter((h) => h.pool === pool).flatMap((h) => h.devices));
    return all.filter((d) => !taken.has(d));
  }

  /** The slots `jobId` holds, if any. */
  devicesOf(jobId: string): number[] | undefined {
    return this.held.get(jobId)?.devices;
  }

  /** Jobs holding slots, whether or not anything of theirs runs. */
  holders(): IterableIterator<string> {
    return this.held.keys();
  }

  /** Give `jobId` the lowest `need` free slots of `pool`; LaunchFailed when there are not enough. */
  take(jobId: string, pool: string, need: number): number[] {
    const all = this.poolDevices.get(pool);
    if (!all) throw new LaunchFailed(`pool ${pool} is not configured on this machine`);
    const free = this.free(pool);
    if (free.length < need) {
      throw new LaunchFailed(
        `pool ${pool} has ${free.length} of ${all.length} GPU slots free on this machine, job ${jobId} needs ${need}`,
      );
    }
    const devices = free.slice(0, need);
    this.held.set(jobId, { pool, devices });
    return devices;
  }

  /** Record that `jobId` holds `devices` (its record says so); slots someone else holds are logged, not refused. */
  claim(jobId: string, pool: string, devices: readonly number[]): void {
    const taken = devices.filter((d) => !this.free(pool).includes(d));
    if (taken.length > 0) {
      this.log.error('job holds GPU slots that are not free', { jobId, pool, devices: [...devices], taken });
    }
    this.held.set(jobId, { pool, devices: [...devices] });
  }

  release(jobId: string): void {
    this.held.delete(jobId);
  }
}
