/**
 * A job's EC2 instances, found by the tags Flare writes at launch: the tags themselves,
 * the live instances of a job or of the deployment, the job an instance was launched for,
 * and their termination, which is idempotent (an id EC2 no longer knows is gone already).
 */
import {
  DescribeInstancesCommand,
  TerminateInstancesCommand,
  type EC2Client,
  type Filter,
  type Instance,
  type Tag,
} from '@aws-sdk/client-ec2';
import { JOB_ID_PATTERN } from '../core/container-command.js';
import { LaunchFailed } from '../core/errors.js';
import type { Job } from '../core/job.js';
import type { ManagedInstance } from '../ports/compute.js';

/** TerminateInstances takes up to 1000 ids; AWS recommends smaller batches. */
export const TERMINATE_BATCH_SIZE = 100;
/** The tag that marks everything Flare launched; the reconciler lists by it. */
export const MANAGED_BY_TAG = { Key: 'managed-by', Value: 'flare' } as const;
export const JOB_TAG_KEY = 'flare:job';
export const DEPLOYMENT_TAG_KEY = 'flare:deployment';

/** Instances in these states still belong to the job; shutting-down and terminated ones no longer count. */
const LIVE_INSTANCE_STATES = ['pending', 'running', 'stopping', 'stopped'];

export class Ec2Instances {
  constructor(
    private readonly ec2: EC2Client,
    /** This deployment's `flare:deployment` tag; unset, every `managed-by=flare` instance is this deployment's. */
    private readonly deployment?: string,
  ) {}

  /** The job's instances that still count, sorted by id. */
  async liveInstanceIds(jobId: string): Promise<string[]> {
    const instances = await this.describe({
      Filters: [
        { Name: `tag:${JOB_TAG_KEY}`, Values: [jobId] },
        { Name: 'instance-state-name', Values: LIVE_INSTANCE_STATES },
      ],
    });
    return instances
      .map((i) => i.InstanceId)
      .filter((id): id is string => !!id)
      .sort();
  }

  /** Every live instance carrying Flare's mark, whatever its job: the reconciler's view. */
  async listManaged(): Promise<ManagedInstance[]> {
    const instances = await this.describe({
      Filters: [
        { Name: `tag:${MANAGED_BY_TAG.Key}`, Values: [MANAGED_BY_TAG.Value] },
        ...(this.deployment ? [{ Name: `tag:${DEPLOYMENT_TAG_KEY}`, Values: [this.deployment] }] : []),
        { Name: 'instance-state-name', Values: LIVE_INSTANCE_STATES },
      ],
    });
    return instances.flatMap((instance): ManagedInstance[] => {
      if (!instance.InstanceId) return [];
      const managed: ManagedInstance = { instanceId: instance.InstanceId, state: instance.State?.Name ?? 'unknown' };
      const jobId = tagValue(instance, JOB_TAG_KEY);
      if (jobId) managed.jobId = jobId;
      if (instance.LaunchTime) managed.launchedAt = instance.LaunchTime.toISOString();
      return [managed];
    });
  }

  /** The job an instance was launched for; undefined when Flare did not launch it or EC2 no longer knows it. */
  async jobOfInstance(instanceId: string): Promise<string | undefined> {
    let instances: Instance[];
    try {
      instances = await this.describe({ InstanceIds: [instanceId] });
    } catch (error) {
      if (errorCode(error) === 'InvalidInstanceID.NotFound') return undefined;
      throw error;
    }
    const instance = instances.find((i) => i.InstanceId === instanceId);
    if (!instance || tagValue(instance, MANAGED_BY_TAG.Key) !== MANAGED_BY_TAG.Value) return undefined;
    if (this.deployment && tagValue(instance, DEPLOYMENT_TAG_KEY) !== this.deployment) return undefined;
    const jobId = tagValue(instance, JOB_TAG_KEY);
    return jobId && JOB_ID_PATTERN.test(jobId) ? jobId : undefined;
  }

  /** The address the other nodes of a multi-node job reach its first instance on. */
  async privateIp(instanceId: string): Promise<string> {
    const ip = (await this.describe({ InstanceIds: [instanceId] })).find(
      (i) => i.InstanceId === instanceId,
    )?.PrivateIpAddress;
    if (!ip) throw new LaunchFailed(`instance ${instanceId} has no private IP address for the other nodes to reach`);
    return ip;
  }

  async terminate(instanceIds: readonly string[]): Promise<void> {
    const ids = [...new Set(instanceIds)];
    for (let i = 0; i < ids.length; i += TERMINATE_BATCH_SIZE)
      await this.terminateBatch(ids.slice(i, i + TERMINATE_BATCH_SIZE));
  }

  private async terminateBatch(instanceIds: string[]): Promise<void> {
    try {
      await this.ec2.send(new TerminateInstancesCommand({ InstanceIds: instanceIds }));
    } catch (error) {
      if (errorCode(error) !== 'InvalidInstanceID.NotFound') throw error;
      // One unknown id fails the whole call; end the others one by one.
      if (instanceIds.length === 1) return;
      for (const id of instanceIds) {
        try {
          await this.ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
        } catch (single) {
          if (errorCode(single) !== 'InvalidInstanceID.NotFound') throw single;
        }
      }
    }
  }

  /** DescribeInstances, every page. */
  private async describe(query: { Filters: Filter[] } | { InstanceIds: string[] }): Promise<Instance[]> {
    const instances: Instance[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.ec2.send(new DescribeInstancesCommand({ ...query, NextToken: nextToken }));
      for (const reservation of page.Reservations ?? []) instances.push(...(reservation.Instances ?? []));
      nextToken = page.NextToken || undefined;
    } while (nextToken);
    return instances;
  }
}

/** Who submitted the job (its owner, the `sub` of their token), on each of its instances. */
export const OWNER_TAG_KEY = 'flare:owner';
const MAX_TAG_VALUE_LENGTH = 256;

/**
 * Tags on every instance and volume of a job, set at RunInstances (the only time the
 * instance role's IAM lets Flare tag): the reconciler finds orphans by `managed-by` and
 * `flare:job`; the instance's dead-man switch reads `flare:expires-at` until the job's
 * own expiry file exists (container-command's INSTANCE_DEADLINE_FILE); `flare:owner` lets
 * IAM open Session Manager sessions to the job's owner only (docs/operations.md).
 */
export function jobTags(job: Job, expiresAt: string, deployment?: string): Tag[] {
  return [
    { Key: 'Name', Value: `flare-${job.id}` },
    { Key: MANAGED_BY_TAG.Key, Value: MANAGED_BY_TAG.Value },
    ...(deployment ? [{ Key: DEPLOYMENT_TAG_KEY, Value: deployment }] : []),
    { Key: JOB_TAG_KEY, Value: job.id },
    { Key: 'flare:project', Value: job.project },
    // EC2 takes any characters in a tag value, up to 256 of them: a longer owner gets no tag, and no session by IAM.
    ...(job.owner.length <= MAX_TAG_VALUE_LENGTH ? [{ Key: OWNER_TAG_KEY, Value: job.owner }] : []),
    { Key: 'flare:pool', Value: job.pool },
    { Key: 'flare:attempt', Value: String(job.launchAttempt ?? 0) },
    { Key: 'flare:expires-at', Value: expiresAt },
  ];
}

/** The EC2 query protocol puts the error code in `name`; some paths also set `Code`. */
export function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { Code, name } = error as { Code?: unknown; name?: unknown };
  if (typeof Code === 'string') return Code;
  return typeof name === 'string' ? name : undefined;
}

function tagValue(instance: Instance, key: string): string | undefined {
  return instance.Tags?.find((t) => t.Key === key)?.Value;
}
