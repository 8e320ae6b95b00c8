/**
 * Compute on AWS: one EC2 launch per job (its `nodeCount` instances), the
 * container started through SSM Run Command, the instances terminated at the
 * end. Every method is safe to call twice (the workflow retries, recovery
 * re-drives):
 *
 * - launch: looks for the job's instances by tag first, and sends each
 *   RunInstances attempt with a ClientToken derived from the job id, its
 *   launch attempt and the subnet/type position, so a repeated call returns
 *   the original reservation instead of new machines, and a requeued job
 *   (next launch attempt) gets fresh tokens.
 * - start: SendCommand has no client token, so it looks for a command that
 *   already carries this job's Comment on each instance; the instance script
 *   itself starts the container at most once (see instanceScript).
 * - stop, terminate: TerminateInstances is idempotent; an id EC2 no longer
 *   knows is gone already, which is what they want.
 *
 * It also answers the lookups the compute events handler needs to tie an SSM
 * or EC2 event to a job (commandOutcome, jobOfInstance).
 */
import { createHash } from 'node:crypto';
import {
  DescribeInstancesCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type EC2Client,
  type Filter,
  type Instance,
  type RunInstancesCommandInput,
  type RunInstancesCommandOutput,
  type Tag,
} from '@aws-sdk/client-ec2';
import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  ListCommandsCommand,
  SendCommandCommand,
  type SendCommandCommandInput,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import {
  JOB_ID_PATTERN,
  SSM_MAX_EXECUTION_TIMEOUT_SECONDS,
  assertJobId,
  deadlineScript,
  instanceScript,
  type DockerRunOptions,
} from '../core/container-command.js';
import { gpusIssue } from '../core/accounting.js';
import { FlareError, LaunchFailed, NoCapacity, ValidationError, type FieldIssue } from '../core/errors.js';
import type { Job } from '../core/job.js';
import type { Compute, ContainerSpec, Launched, ManagedInstance } from '../ports/compute.js';
import { Ec2RootImage } from './ec2-root-image.js';

export interface Ec2Pool {
  /** The pool's instance type first, then fallbacks with the same GPUs per instance. */
  instanceTypes: string[];
  /** Container memory limit on this pool's instances; overrides `dockerOptions.memory`. */
  memory?: string;
  /** GPUs of each of its instances: a job whose `gpus` per node differs is refused at launch (core/accounting.ts). @default not checked */
  gpusPerInstance?: number;
}

/** Container options the deployment sets; `detach` is always on for instances. */
export type Ec2DockerOptions = Partial<Omit<DockerRunOptions, 'detach' | 'allowUnpinnedImage'>>;

export interface Ec2SsmComputeProps {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
  /** Launch template with the GPU AMI (docker, NVIDIA container toolkit, SSM agent, python3, the AWS CLI for private ECR images), instance profile and security groups; no network interfaces, since the subnet is chosen here. */
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
  /**
   * How long an instance may take to come online and start its container; part of the
   * `flare:expires-at` tag written at launch. Keep it at least the workflow's AwaitCompute bound.
   * @default 600
   */
  readonly agentTimeoutSeconds?: number;
  /** Root device of the launch template's AMI, resized when a job asks for `volumeSizeGb`. @default '/dev/sda1' */
  readonly rootDeviceName?: string;
  /** The launch template's AMI: a job's `volumeSizeGb` below its root snapshot fails at launch (DescribeImages, once per process). @default not checked */
  readonly imageId?: string;
  /** torchrun rendezvous port on the first instance of a multi-node job (`MASTER_PORT`). @default 29500 */
  readonly masterPort?: number;
  /** Clock for the launch deadline tag. @default () => new Date() */
  readonly now?: () => Date;
  /**
   * This deployment's name (the stack name), tagged `flare:deployment` on every
   * instance. The reconciler lists only its own deployment's instances, so two
   * Flare stacks in one account and region never reap each other's.
   * @default none: every `managed-by=flare` instance is this deployment's
   */
  readonly deployment?: string;
}

export const DEFAULT_AGENT_DOCUMENT = 'AWS-RunShellScript';
export const DEFAULT_INSTANCE_SCRATCH_DIR = '/var/lib/flare/scratch';
export const DEFAULT_AGENT_TIMEOUT_SECONDS = 600;
export const DEFAULT_ROOT_DEVICE_NAME = '/dev/sda1';
export const DEFAULT_MASTER_PORT = 29500;
/** SendCommand's smallest TimeoutSeconds (its delivery timeout). */
export const SSM_MIN_DELIVERY_TIMEOUT_SECONDS = 30;
/** A deadline rewrite is a mkdir and a rename: a minute is plenty. */
export const DEADLINE_COMMAND_TIMEOUT_SECONDS = 60;
/** Instances per job; each gets its own SendCommand, and 50 is also what one SendCommand may target. */
export const MAX_NODES_PER_JOB = 50;
/** TerminateInstances takes up to 1000 ids; AWS recommends smaller batches. */
export const TERMINATE_BATCH_SIZE = 100;
/** The tag that marks everything Flare launched; the reconciler lists by it. */
export const MANAGED_BY_TAG = { Key: 'managed-by', Value: 'flare' } as const;
export const JOB_TAG_KEY = 'flare:job';
export const DEPLOYMENT_TAG_KEY = 'flare:deployment';

/**
 * EC2 error codes after which another subnet or instance type may succeed.
 * Anything else (throttling, permissions, a bad template) is thrown as is:
 * the workflow retries what is transient and fails the rest.
 */
export const CAPACITY_ERROR_CODES: readonly string[] = [
  'InsufficientInstanceCapacity',
  'InsufficientCapacity',
  'Unsupported',
  'InsufficientFreeAddressesInSubnet',
  'VcpuLimitExceeded',
];
/** The account's regional vCPU quota: no subnet helps, only an operator raising the quota. */
const VCPU_LIMIT_CODE = 'VcpuLimitExceeded';

/** Instances in these states still belong to the job; shutting-down and terminated ones no longer count. */
const LIVE_INSTANCE_STATES = ['pending', 'running', 'stopping', 'stopped'];

const CLIENT_TOKEN_MAX_LENGTH = 64;
const ROOT_DEVICE_PATTERN = /^\/dev\/[a-z0-9]+$/;

/** EC2 showed some of a job's instances but not all: its view is not settled yet, try again. */
export class PartialLaunchView extends FlareError {}

/** What became of Flare's command on one instance, read back for an SSM status event. */
export interface CommandOutcome {
  jobId: string;
  /** The invocation's status (`Success`, `Failed`, `TimedOut`, ...). */
  status: string;
  /** SSM's finer status (`Undeliverable`, `DeliveryTimedOut`, ...). */
  statusDetails?: string;
  /** The script's exit code, which is the container's; undefined when it never ran (SSM reports -1). */
  exitCode?: number;
  /**
   * When the script ended (ExecutionEndDateTime), ISO 8601 UTC: the script ends as soon as
   * `docker wait` returns, so this is when the container exited, however late the event is
   * handled. Undefined when SSM gives none (empty before the plugin ran) or an unreadable one.
   */
  endedAt?: string;
}

export class Ec2SsmCompute implements Compute {
  private readonly ec2: EC2Client;
  private readonly ssm: SSMClient;
  private readonly document: string;
  private readonly agentTimeoutSeconds: number;
  private readonly rootDeviceName: string;
  private readonly masterPort: number;
  private readonly now: () => Date;
  private readonly rootImage?: Ec2RootImage;

  constructor(private readonly props: Ec2SsmComputeProps) {
    this.ec2 = props.ec2;
    this.ssm = props.ssm;
    this.document = props.agentDocument ?? DEFAULT_AGENT_DOCUMENT;
    this.agentTimeoutSeconds = props.agentTimeoutSeconds ?? DEFAULT_AGENT_TIMEOUT_SECONDS;
    this.rootDeviceName = props.rootDeviceName ?? DEFAULT_ROOT_DEVICE_NAME;
    this.masterPort = props.masterPort ?? DEFAULT_MASTER_PORT;
    this.now = props.now ?? (() => new Date());
    if (props.imageId) this.rootImage = new Ec2RootImage(props.ec2, props.imageId);
    const issues: FieldIssue[] = [];
    if (!props.launchTemplateId) issues.push({ field: 'launchTemplateId', reason: 'is required' });
    if (props.subnetIds.length === 0) issues.push({ field: 'subnetIds', reason: 'needs at least one subnet' });
    for (const [name, pool] of Object.entries(props.pools)) {
      if (pool.instanceTypes.length === 0)
        issues.push({ field: `pools.${name}.instanceTypes`, reason: 'needs at least one instance type' });
      if (!pool.memory && !props.dockerOptions?.memory)
        issues.push({ field: `pools.${name}.memory`, reason: 'is required when dockerOptions.memory is not set' });
    }
    if (!Number.isInteger(this.agentTimeoutSeconds) || this.agentTimeoutSeconds < 1)
      issues.push({ field: 'agentTimeoutSeconds', reason: 'must be a whole number of seconds, 1 or more' });
    if (!ROOT_DEVICE_PATTERN.test(this.rootDeviceName))
      issues.push({ field: 'rootDeviceName', reason: "must be a device path such as '/dev/sda1' or '/dev/xvda'" });
    if (!Number.isInteger(this.masterPort) || this.masterPort < 1 || this.masterPort > 65535)
      issues.push({ field: 'masterPort', reason: 'must be a TCP port, 1 to 65535' });
    if (issues.length > 0) throw new ValidationError(issues);
  }

  async launch(job: Job): Promise<Launched> {
    assertJobId(job.id);
    const pool = this.props.pools[job.pool];
    if (!pool) throw new LaunchFailed(`pool ${job.pool} has no EC2 configuration`);
    if (!Number.isInteger(job.nodeCount) || job.nodeCount < 1 || job.nodeCount > MAX_NODES_PER_JOB) {
      throw new LaunchFailed(`a job runs on 1 to ${MAX_NODES_PER_JOB} instances, not ${job.nodeCount}`);
    }
    const launchAttempt = job.launchAttempt ?? 0;
    if (!Number.isInteger(launchAttempt) || launchAttempt < 0)
      throw new LaunchFailed(`job ${job.id} has launch attempt ${launchAttempt}, not a whole number`);
    if (job.volumeSizeGb !== undefined && (!Number.isInteger(job.volumeSizeGb) || job.volumeSizeGb < 1)) {
      throw new LaunchFailed(`job ${job.id} asks for a ${job.volumeSizeGb} GB root volume, not a whole number of GB`);
    }
    // Admitted before a deploy changed the pool's instances: it would be charged for other GPUs than it runs on.
    const wholeInstances =
      pool.gpusPerInstance === undefined
        ? undefined
        : gpusIssue(
            { name: job.pool, instanceType: pool.instanceTypes[0], gpusPerInstance: pool.gpusPerInstance },
            job.gpus,
          );
    if (wholeInstances) throw new LaunchFailed(`job ${job.id} cannot launch: gpus ${wholeInstances.reason}`);
    if (job.volumeSizeGb !== undefined) await this.rootImage?.check(job.id, job.volumeSizeGb, this.rootDeviceName);

    // A previous call may have launched from a fallback attempt whose token this call would not reach first.
    const existing = await this.liveInstanceIds(job.id);
    if (existing.length === job.nodeCount) return { instanceIds: existing };
    if (existing.length > job.nodeCount) {
      // Never run a job on more machines than it holds GPUs for; stop() terminates every tagged instance.
      throw new LaunchFailed(`EC2 shows ${existing.length} instances for job ${job.id}, which needs ${job.nodeCount}`);
    }
    if (existing.length > 0)
      throw new PartialLaunchView(`EC2 shows ${existing.length} of job ${job.id}'s ${job.nodeCount} instances`);

    const tags = jobTags(job, this.launchDeadline(job), this.props.deployment);
    const failures: string[] = [];
    const vcpuLimited: string[] = [];
    let lastError: unknown;
    for (const [typeIndex, instanceType] of pool.instanceTypes.entries()) {
      for (const [subnetIndex, subnetId] of this.props.subnetIds.entries()) {
        // The index is the position in the type x subnet grid, so skipping never shifts a later token.
        const index = typeIndex * this.props.subnetIds.length + subnetIndex;
        let output: RunInstancesCommandOutput;
        try {
          output = await this.ec2.send(
            new RunInstancesCommand(
              this.runInstancesInput(job, instanceType, subnetId, tags, clientToken(job.id, launchAttempt, index)),
            ),
          );
        } catch (error) {
          const code = errorCode(error);
          if (!code || !CAPACITY_ERROR_CODES.includes(code)) throw error;
          failures.push(`${instanceType} in ${subnetId}: ${code}`);
          lastError = error;
          if (code === VCPU_LIMIT_CODE) {
            vcpuLimited.push(instanceType);
            break; // The quota is per account and region: other subnets cannot help this type.
          }
          continue;
        }
        // MinCount = MaxCount: EC2 starts all of them or none.
        return { instanceIds: (output.Instances ?? []).map((i) => i.InstanceId).filter((id): id is string => !!id) };
      }
    }
    const message = `no capacity for pool ${job.pool} (${failures.join('; ')})`;
    if (vcpuLimited.length === 0) throw new NoCapacity(message, false, { cause: lastError });
    throw new NoCapacity(`${message}; ${vcpuQuotaAdvice(vcpuLimited)}`, true, { cause: lastError });
  }

  /**
   * The dead-man deadline of an instance whose container never starts (the instance script
   * writes the real expiry once it does): admission, the agent's bound, then the live timeout.
   * It starts from the admission time rather than the clock because EC2 refuses a ClientToken
   * reused with different tags (IdempotentParameterMismatch), and a retried launch must send
   * the identical request; admission is fixed per launch attempt and never after the launch.
   */
  private launchDeadline(job: Job): string {
    const admitted = job.admittedAt ? Date.parse(job.admittedAt) : Number.NaN;
    const from = Number.isFinite(admitted) ? admitted : this.now().getTime();
    return new Date(from + this.agentTimeoutSeconds * 1000 + Math.ceil(job.liveTimeoutMinutes * 60_000)).toISOString();
  }

  private runInstancesInput(
    job: Job,
    instanceType: string,
    subnetId: string,
    tags: Tag[],
    token: string,
  ): RunInstancesCommandInput {
    const input: RunInstancesCommandInput = {
      LaunchTemplate: { LaunchTemplateId: this.props.launchTemplateId },
      InstanceType: instanceType as RunInstancesCommandInput['InstanceType'],
      MinCount: job.nodeCount,
      MaxCount: job.nodeCount,
      SubnetId: subnetId,
      ClientToken: token,
      TagSpecifications: [
        { ResourceType: 'instance', Tags: tags },
        { ResourceType: 'volume', Tags: tags },
      ],
    };
    if (job.volumeSizeGb !== undefined) {
      input.BlockDeviceMappings = [
        {
          DeviceName: this.rootDeviceName,
          Ebs: { VolumeSize: job.volumeSizeGb, VolumeType: 'gp3', Encrypted: true, DeleteOnTermination: true },
        },
      ];
    }
    return input;
  }

  async isReady(job: Job): Promise<boolean> {
    const instanceIds = requireInstances(job);
    const online = new Set<string>();
    let nextToken: string | undefined;
    do {
      const page = await this.ssm.send(
        new DescribeInstanceInformationCommand({
          Filters: [{ Key: 'InstanceIds', Values: instanceIds }],
          MaxResults: 50,
          NextToken: nextToken,
        }),
      );
      for (const info of page.InstanceInformationList ?? []) {
        if (info.InstanceId && info.PingStatus === 'Online') online.add(info.InstanceId);
      }
      nextToken = page.NextToken || undefined;
    } while (nextToken);
    return instanceIds.every((id) => online.has(id));
  }

  /**
   * One SendCommand per instance: a multi-node job's nodes differ in torchrun's
   * NODE_RANK, and a retry resends only to the instances that have no command yet.
   */
  async start(job: Job, spec: ContainerSpec): Promise<void> {
    const instanceIds = requireInstances(job);
    if (spec.jobId !== job.id)
      throw new ValidationError([{ field: 'spec.jobId', reason: `is ${spec.jobId}, expected ${job.id}` }]);
    if (instanceIds.length !== job.nodeCount)
      throw new LaunchFailed(`job ${job.id} has ${instanceIds.length} instances for ${job.nodeCount} nodes`);
    const comment = commandComment(job.id);
    const options = this.dockerOptions(job);

    const unsent: number[] = [];
    for (const [rank, instanceId] of instanceIds.entries()) {
      if (!(await this.commandExists(instanceId, comment))) unsent.push(rank);
    }
    if (unsent.length === 0) return;

    const masterAddr = job.nodeCount > 1 ? await this.privateIp(instanceIds[0]) : undefined;
    // Build every script before sending any, so a bad spec sends nothing.
    const scripts = unsent.map((rank) => {
      const env =
        masterAddr === undefined ? spec.env : { ...spec.env, ...this.torchrunEnv(rank, job.nodeCount, masterAddr) };
      return { instanceId: instanceIds[rank], script: instanceScript({ ...spec, env }, options) };
    });
    for (const { instanceId, script } of scripts) {
      const input: SendCommandCommandInput = {
        DocumentName: this.document,
        InstanceIds: [instanceId],
        Comment: comment,
        // How long SSM keeps trying to deliver it (default an hour): the agent was just seen online, so a command
        // still undelivered after the agent's own bound ends DeliveryTimedOut and fails the job (compute events).
        TimeoutSeconds: Math.max(SSM_MIN_DELIVERY_TIMEOUT_SECONDS, this.agentTimeoutSeconds),
        Parameters: {
          commands: [script],
          // The container is detached, so this bounds only how long the command reports on it; the maximum
          // keeps that true for jobs whose live timeout is extended after start. Past 48 h the command ends
          // TimedOut while the container runs on until the workflow's expiry stops the instance.
          executionTimeout: [String(SSM_MAX_EXECUTION_TIMEOUT_SECONDS)],
        },
      };
      if (this.props.logGroupName) {
        input.CloudWatchOutputConfig = {
          CloudWatchLogGroupName: this.props.logGroupName,
          CloudWatchOutputEnabled: true,
        };
      }
      await this.ssm.send(new SendCommandCommand(input));
    }
  }

  /**
   * One SendCommand to every instance of the job, rewriting the deadline file its
   * dead-man switch reads (deadlineScript). Its comment is not the container
   * command's, so neither `start` nor the compute events take it for the job's
   * own command. A bad job id or expiry sends nothing.
   */
  async updateExpiry(job: Job, expiresAt: string): Promise<void> {
    const script = deadlineScript(job.id, expiresAt);
    const instanceIds = requireInstances(job);
    await this.ssm.send(
      new SendCommandCommand({
        DocumentName: this.document,
        InstanceIds: instanceIds,
        Comment: deadlineComment(job.id),
        Parameters: { commands: [script], executionTimeout: [String(DEADLINE_COMMAND_TIMEOUT_SECONDS)] },
      }),
    );
  }

  /** What torchrun reads to join the job's nodes; set after the job's env, so these win. */
  private torchrunEnv(rank: number, worldSize: number, masterAddr: string): Record<string, string> {
    return {
      NODE_RANK: String(rank),
      WORLD_SIZE: String(worldSize),
      MASTER_ADDR: masterAddr,
      MASTER_PORT: String(this.masterPort),
    };
  }

  private async privateIp(instanceId: string): Promise<string> {
    const ip = (await this.describe({ InstanceIds: [instanceId] })).find(
      (i) => i.InstanceId === instanceId,
    )?.PrivateIpAddress;
    if (!ip) throw new LaunchFailed(`instance ${instanceId} has no private IP address for the other nodes to reach`);
    return ip;
  }

  private dockerOptions(job: Job): DockerRunOptions {
    const configured = this.props.dockerOptions ?? {};
    const memory = this.props.pools[job.pool]?.memory ?? configured.memory;
    if (!memory) throw new LaunchFailed(`pool ${job.pool} has no container memory limit configured`);
    const options: DockerRunOptions = { scratchDir: DEFAULT_INSTANCE_SCRATCH_DIR, ...configured, memory };
    // Ranks reach each other on MASTER_PORT and NCCL's ports: host networking, with the instance's
    // uid firewall rule (lib/compute.ts user data) keeping the metadata service from the job.
    if (job.nodeCount > 1) options.hostNetwork = true;
    else if (job.allowRoot) options.allowRoot = true;
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
        new ListCommandsCommand({
          InstanceId: instanceId,
          Filters: [{ key: 'DocumentName', value: this.document }],
          MaxResults: 50,
          NextToken: nextToken,
        }),
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
    await this.terminate([...new Set([...(job.instanceIds ?? []), ...tagged])]);
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

  /** Every live instance carrying Flare's mark, whatever its job: the reconciler's view. */
  async listManaged(): Promise<ManagedInstance[]> {
    const instances = await this.describe({
      Filters: [
        { Name: `tag:${MANAGED_BY_TAG.Key}`, Values: [MANAGED_BY_TAG.Value] },
        ...(this.props.deployment ? [{ Name: `tag:${DEPLOYMENT_TAG_KEY}`, Values: [this.props.deployment] }] : []),
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

  /**
   * The job whose container command this was, read back from the invocation's Comment;
   * undefined when the command is not Flare's (another tool's Run Command on the account).
   */
  async commandOutcome(commandId: string, instanceId: string): Promise<CommandOutcome | undefined> {
    const invocation = await this.ssm.send(
      new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }),
    );
    const jobId = jobOfComment(invocation.Comment);
    if (!jobId) return undefined;
    const outcome: CommandOutcome = { jobId, status: invocation.Status ?? 'Unknown' };
    if (invocation.StatusDetails) outcome.statusDetails = invocation.StatusDetails;
    // -1: the script never ran or never reported, so there is no container exit code to speak of.
    if (typeof invocation.ResponseCode === 'number' && invocation.ResponseCode >= 0)
      outcome.exitCode = invocation.ResponseCode;
    const ended = invocation.ExecutionEndDateTime ? Date.parse(invocation.ExecutionEndDateTime) : Number.NaN;
    if (Number.isFinite(ended)) outcome.endedAt = new Date(ended).toISOString();
    return outcome;
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
    if (this.props.deployment && tagValue(instance, DEPLOYMENT_TAG_KEY) !== this.props.deployment) return undefined;
    const jobId = tagValue(instance, JOB_TAG_KEY);
    return jobId && JOB_ID_PATTERN.test(jobId) ? jobId : undefined;
  }

  private async liveInstanceIds(jobId: string): Promise<string[]> {
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

/**
 * Tags on every instance and volume of a job, set at RunInstances (the only time the
 * instance role's IAM lets Flare tag): the reconciler finds orphans by `managed-by` and
 * `flare:job`; the instance's dead-man switch reads `flare:expires-at` until the job's
 * own expiry file exists (container-command's INSTANCE_DEADLINE_FILE).
 */
export function jobTags(job: Job, expiresAt: string, deployment?: string): Tag[] {
  return [
    { Key: 'Name', Value: `flare-${job.id}` },
    { Key: MANAGED_BY_TAG.Key, Value: MANAGED_BY_TAG.Value },
    ...(deployment ? [{ Key: DEPLOYMENT_TAG_KEY, Value: deployment }] : []),
    { Key: JOB_TAG_KEY, Value: job.id },
    { Key: 'flare:project', Value: job.project },
    { Key: 'flare:pool', Value: job.pool },
    { Key: 'flare:attempt', Value: String(job.launchAttempt ?? 0) },
    { Key: 'flare:expires-at', Value: expiresAt },
  ];
}

/**
 * RunInstances' idempotency token for one position of one launch attempt. '.' cannot occur
 * in a job id, so tokens of different jobs never collide; a token past EC2's 64 characters
 * (only for job ids far longer than Flare's own) becomes its SHA-256, which is as unique.
 */
export function clientToken(jobId: string, launchAttempt: number, index: number): string {
  const token = `${jobId}.${launchAttempt}.${index}`;
  return token.length <= CLIENT_TOKEN_MAX_LENGTH ? token : createHash('sha256').update(token).digest('hex');
}

/** How start recognises its own command (SSM caps comments at 100 characters; job ids are at most 60). */
export function commandComment(jobId: string): string {
  return `flare:job=${jobId}`;
}

/** The comment of a deadline change (updateExpiry): deliberately not a commandComment, which names the job's container command. */
export function deadlineComment(jobId: string): string {
  return `flare:deadline=${jobId}`;
}

const COMMENT_PREFIX = commandComment('');

/** The job id in a command comment written by commandComment, or undefined for anyone else's comment. */
export function jobOfComment(comment: string | undefined): string | undefined {
  if (!comment?.startsWith(COMMENT_PREFIX)) return undefined;
  const jobId = comment.slice(COMMENT_PREFIX.length);
  return JOB_ID_PATTERN.test(jobId) ? jobId : undefined;
}

/** The EC2 vCPU service quota an instance type counts against (Service Quotas, On-Demand). */
export function vcpuQuotaName(instanceType: string): string {
  const family = /^[a-z]+/.exec(instanceType)?.[0] ?? '';
  const byFamily: Record<string, string> = {
    g: 'G and VT',
    vt: 'G and VT',
    p: 'P',
    inf: 'Inf',
    trn: 'Trn',
    dl: 'DL',
    f: 'F',
    x: 'X',
    u: 'High Memory',
    hpc: 'HPC',
  };
  return `Running On-Demand ${byFamily[family] ?? 'Standard (A, C, D, H, I, M, R, T, Z)'} instances`;
}

function vcpuQuotaAdvice(instanceTypes: string[]): string {
  const families = [...new Set(instanceTypes.map((t) => t.split('.')[0]))];
  const quotas = [...new Set(instanceTypes.map(vcpuQuotaName))].map((q) => `"${q}"`);
  const what =
    families.length === 1 ? `the ${families[0]} instance family` : `the ${families.join(', ')} instance families`;
  return `the account's vCPU service quota for ${what} must be raised (Service Quotas, Amazon EC2: ${quotas.join(', ')})`;
}

function tagValue(instance: Instance, key: string): string | undefined {
  return instance.Tags?.find((t) => t.Key === key)?.Value;
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
