/**
 * Compute on AWS: one EC2 launch per job (its `nodeCount` instances), the
 * container started through SSM Run Command, the instances terminated at the
 * end. Every method is safe to call twice (the workflow retries, recovery
 * re-drives):
 *
 * - launch: looks for the job's instances by tag first, and sends each
 *   RunInstances attempt with a ClientToken derived from the job id, so a
 *   repeated attempt returns the original reservation instead of new machines.
 * - start: SendCommand has no client token, so it looks for a command that
 *   already carries this job's Comment on the job's first instance; the
 *   instance script itself starts the container at most once (see
 *   instanceScript).
 * - stop: TerminateInstances is idempotent; an id EC2 no longer knows is gone
 *   already, which is what stop wants.
 */
import {
  DescribeInstancesCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type EC2Client,
  type RunInstancesCommandInput,
  type RunInstancesCommandOutput,
  type Tag,
} from '@aws-sdk/client-ec2';
import { DescribeInstanceInformationCommand, ListCommandsCommand, SendCommandCommand, type SendCommandCommandInput, type SSMClient } from '@aws-sdk/client-ssm';
import { SSM_MAX_EXECUTION_TIMEOUT_SECONDS, assertJobId, instanceScript, type DockerRunOptions } from '../core/container-command.js';
import { FlareError, LaunchFailed, ValidationError, type FieldIssue } from '../core/errors.js';
import type { Job } from '../core/job.js';
import type { Compute, ContainerSpec, Launched } from '../ports/compute.js';

export interface Ec2Pool {
  /** The pool's instance type first, then fallbacks with the same GPUs per instance. */
  instanceTypes: string[];
  /** Container memory limit on this pool's instances; overrides `dockerOptions.memory`. */
  memory?: string;
}

/** Container options the deployment sets; `detach` is always on for instances. */
export type Ec2DockerOptions = Partial<Omit<DockerRunOptions, 'detach' | 'allowUnpinnedImage'>>;

export interface Ec2SsmComputeProps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  /** Launch template with the GPU AMI (docker, NVIDIA container toolkit, SSM agent, python3), instance profile and security groups; no network interfaces, since the subnet is chosen here. */
  readonly launchTemplateId: string;
  /** Tried in order when a subnet has no capacity or addresses. */
  readonly subnetIds: string[];
  readonly pools: Record<string, Ec2Pool>;
  /** An SSM document taking `commands` and `executionTimeout` like AWS-RunShellScript. @default 'AWS-RunShellScript' */
  readonly agentDocument?: string;
  /** CloudWatch Logs group for the SSM command output and, unless `dockerOptions.logDriver` says otherwise, the container's (stream `<jobId>`). */
  readonly logGroupName?: string;
  /** @default { scratchDir: '/var/lib/flare/scratch' } plus DockerRunOptions' defaults */
  readonly dockerOptions?: Ec2DockerOptions;
}

export const DEFAULT_AGENT_DOCUMENT = 'AWS-RunShellScript';
export const DEFAULT_INSTANCE_SCRATCH_DIR = '/var/lib/flare/scratch';
/** SendCommand targets at most 50 instances. */
export const MAX_NODES_PER_JOB = 50;

/**
 * EC2 error codes after which another subnet or instance type may succeed.
 * Anything else (throttling, permissions, a bad template) is thrown as is:
 * the workflow retries what is transient and fails the rest.
 */
export const CAPACITY_ERROR_CODES: readonly string[] = ['InsufficientInstanceCapacity', 'InsufficientCapacity', 'Unsupported', 'InsufficientFreeAddressesInSubnet'];

/** Instances in these states still belong to the job; shutting-down and terminated ones no longer count. */
const LIVE_INSTANCE_STATES = ['pending', 'running', 'stopping', 'stopped'];

/** EC2 showed some of a job's instances but not all: its view is not settled yet, try again. */
export class PartialLaunchView extends FlareError {}

export class Ec2SsmCompute implements Compute {
  private readonly ec2: EC2Client;
  private readonly ssm: SSMClient;
  private readonly document: string;

  constructor(private readonly props: Ec2SsmComputeProps) {
    this.ec2 = props.ec2;
    this.ssm = props.ssm;
    this.document = props.agentDocument ?? DEFAULT_AGENT_DOCUMENT;
    const issues: FieldIssue[] = [];
    if (!props.launchTemplateId) issues.push({ field: 'launchTemplateId', reason: 'is required' });
    if (props.subnetIds.length === 0) issues.push({ field: 'subnetIds', reason: 'needs at least one subnet' });
    for (const [name, pool] of Object.entries(props.pools)) {
      if (pool.instanceTypes.length === 0) issues.push({ field: `pools.${name}.instanceTypes`, reason: 'needs at least one instance type' });
      if (!pool.memory && !props.dockerOptions?.memory) issues.push({ field: `pools.${name}.memory`, reason: 'is required when dockerOptions.memory is not set' });
    }
    if (issues.length > 0) throw new ValidationError(issues);
  }

  async launch(job: Job): Promise<Launched> {
    assertJobId(job.id);
    const pool = this.props.pools[job.pool];
    if (!pool) throw new LaunchFailed(`pool ${job.pool} has no EC2 configuration`);
    if (!Number.isInteger(job.nodeCount) || job.nodeCount < 1 || job.nodeCount > MAX_NODES_PER_JOB) {
      throw new LaunchFailed(`a job runs on 1 to ${MAX_NODES_PER_JOB} instances, not ${job.nodeCount}`);
    }

    // A previous call may have launched from a fallback attempt whose token this call would not reach first.
    const existing = await this.liveInstanceIds(job.id);
    if (existing.length === job.nodeCount) return { instanceIds: existing };
    if (existing.length > job.nodeCount) {
      // Never run a job on more machines than it holds GPUs for; stop() terminates every tagged instance.
      throw new LaunchFailed(`EC2 shows ${existing.length} instances for job ${job.id}, which needs ${job.nodeCount}`);
    }
    if (existing.length > 0) throw new PartialLaunchView(`EC2 shows ${existing.length} of job ${job.id}'s ${job.nodeCount} instances`);

    const failures: string[] = [];
    let lastError: unknown;
    let attempt = 0;
    for (const instanceType of pool.instanceTypes) {
      for (const subnetId of this.props.subnetIds) {
        let output: RunInstancesCommandOutput;
        try {
          output = await this.ec2.send(new RunInstancesCommand(this.runInstancesInput(job, instanceType, subnetId, attempt++)));
        } catch (error) {
          const code = errorCode(error);
          if (!code || !CAPACITY_ERROR_CODES.includes(code)) throw error;
          failures.push(`${instanceType} in ${subnetId}: ${code}`);
          lastError = error;
          continue;
        }
        // MinCount = MaxCount: EC2 starts all of them or none.
        return { instanceIds: (output.Instances ?? []).map((i) => i.InstanceId).filter((id): id is string => !!id) };
      }
    }
    throw new LaunchFailed(`no capacity for pool ${job.pool} (${failures.join('; ')})`, { cause: lastError });
  }

  /** Attempt 0 uses the job id itself; '.' cannot occur in a job id, so tokens of different jobs never collide. */
  private runInstancesInput(job: Job, instanceType: string, subnetId: string, attempt: number): RunInstancesCommandInput {
    const tags = jobTags(job);
    return {
      LaunchTemplate: { LaunchTemplateId: this.props.launchTemplateId },
      InstanceType: instanceType as RunInstancesCommandInput['InstanceType'],
      MinCount: job.nodeCount,
      MaxCount: job.nodeCount,
      SubnetId: subnetId,
      ClientToken: attempt === 0 ? job.id : `${job.id}.${attempt}`,
      TagSpecifications: [
        { ResourceType: 'instance', Tags: tags },
        { ResourceType: 'volume', Tags: tags },
      ],
    };
  }

  async isReady(job: Job): Promise<boolean> {
    const instanceIds = requireInstances(job);
    const online = new Set<string>();
    let nextToken: string | undefined;
    do {
      const page = await this.ssm.send(
        new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: instanceIds }], MaxResults: 50, NextToken: nextToken }),
      );
      for (const info of page.InstanceInformationList ?? []) {
        if (info.InstanceId && info.PingStatus === 'Online') online.add(info.InstanceId);
      }
      nextToken = page.NextToken || undefined;
    } while (nextToken);
    return instanceIds.every((id) => online.has(id));
  }

  async start(job: Job, spec: ContainerSpec): Promise<void> {
    const instanceIds = requireInstances(job);
    if (spec.jobId !== job.id) throw new ValidationError([{ field: 'spec.jobId', reason: `is ${spec.jobId}, expected ${job.id}` }]);
    const comment = commandComment(job.id);
    if (await this.commandExists(instanceIds[0], comment)) return;

    const input: SendCommandCommandInput = {
      DocumentName: this.document,
      InstanceIds: instanceIds,
      Comment: comment,
      Parameters: {
        commands: [instanceScript(spec, this.dockerOptions(job))],
        // The container is detached, so this bounds only how long the command reports on it; the maximum
        // keeps that true for jobs whose live timeout is extended after start. Past 48 h the command ends
        // TimedOut while the container runs on until the workflow's expiry stops the instance.
        executionTimeout: [String(SSM_MAX_EXECUTION_TIMEOUT_SECONDS)],
      },
    };
    if (this.props.logGroupName) {
      input.CloudWatchOutputConfig = { CloudWatchLogGroupName: this.props.logGroupName, CloudWatchOutputEnabled: true };
    }
    await this.ssm.send(new SendCommandCommand(input));
  }

  private dockerOptions(job: Job): DockerRunOptions {
    const configured = this.props.dockerOptions ?? {};
    const memory = this.props.pools[job.pool]?.memory ?? configured.memory;
    if (!memory) throw new LaunchFailed(`pool ${job.pool} has no container memory limit configured`);
    const options: DockerRunOptions = { scratchDir: DEFAULT_INSTANCE_SCRATCH_DIR, ...configured, memory };
    if (this.props.logGroupName && !configured.logDriver) {
      options.logDriver = 'awslogs';
      options.logOptions = { 'awslogs-group': this.props.logGroupName, 'awslogs-stream': job.id };
    }
    return options;
  }

  private async commandExists(instanceId: string, comment: string): Promise<boolean> {
    let nextToken: string | undefined;
    do {
      const page = await this.ssm.send(
        new ListCommandsCommand({ InstanceId: instanceId, Filters: [{ key: 'DocumentName', value: this.document }], MaxResults: 50, NextToken: nextToken }),
      );
      if ((page.Commands ?? []).some((c) => c.Comment === comment)) return true;
      nextToken = page.NextToken || undefined;
    } while (nextToken);
    return false;
  }

  async stop(job: Job): Promise<void> {
    assertJobId(job.id);
    // Also what EC2 knows by tag: covers a crash between RunInstances and the job record saving its ids.
    const tagged = await this.liveInstanceIds(job.id);
    const instanceIds = [...new Set([...(job.instanceIds ?? []), ...tagged])];
    if (instanceIds.length === 0) return;
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

  private async liveInstanceIds(jobId: string): Promise<string[]> {
    const ids: string[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.ec2.send(
        new DescribeInstancesCommand({
          Filters: [
            { Name: 'tag:flare:job', Values: [jobId] },
            { Name: 'instance-state-name', Values: LIVE_INSTANCE_STATES },
          ],
          NextToken: nextToken,
        }),
      );
      for (const reservation of page.Reservations ?? []) {
        for (const instance of reservation.Instances ?? []) if (instance.InstanceId) ids.push(instance.InstanceId);
      }
      nextToken = page.NextToken || undefined;
    } while (nextToken);
    return ids.sort();
  }
}

/** Tags on every instance and volume of a job; the reconciler finds orphans by `managed-by` and `flare:job`. */
export function jobTags(job: Job): Tag[] {
  const tags: Tag[] = [
    { Key: 'Name', Value: `flare-${job.id}` },
    { Key: 'managed-by', Value: 'flare' },
    { Key: 'flare:job', Value: job.id },
    { Key: 'flare:project', Value: job.project },
    { Key: 'flare:pool', Value: job.pool },
  ];
  if (job.expiresAt) tags.push({ Key: 'flare:expires-at', Value: job.expiresAt });
  return tags;
}

/** How start recognises its own command (SSM caps comments at 100 characters; job ids are at most 60). */
export function commandComment(jobId: string): string {
  return `flare:job=${jobId}`;
}

function requireInstances(job: Job): string[] {
  assertJobId(job.id);
  if (!job.instanceIds || job.instanceIds.length === 0) throw new LaunchFailed(`job ${job.id} has no instances`);
  return job.instanceIds;
}

/** The EC2 query protocol puts the error code in `name`; some paths also set `Code`. */
function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { Code, name } = error as { Code?: unknown; name?: unknown };
  if (typeof Code === 'string') return Code;
  return typeof name === 'string' ? name : undefined;
}
