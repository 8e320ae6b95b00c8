/**
 * Compute on AWS: one EC2 launch per job (its `nodeCount` instances), the
 * container started through SSM Run Command, the instances terminated at the
 * end. Every method is safe to call twice (the workflow retries, recovery
 * re-drives): the launch by its client tokens (ec2-launch.ts), the container
 * command by its comment (ssm-commands.ts), the termination because an id EC2
 * no longer knows is gone already (ec2-instances.ts).
 *
 * It also answers the lookups the compute events handler needs to tie an SSM
 * or EC2 event to a job (commandOutcome, jobOfInstance).
 */
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { assertJobId } from '../core/container-command.js';
import { ValidationError, type FieldIssue } from '../core/errors.js';
import type { ExecLimits, ExecResult, SessionInput, SessionPlan } from '../core/exec.js';
import type { Job, JobOutputsRecord } from '../core/job.js';
import type { Compute, ContainerSpec, Launched, ManagedInstance } from '../ports/compute.js';
import { Ec2Instances } from './ec2-instances.js';
import { Ec2Launcher } from './ec2-launch.js';
import { Ec2RootImage } from './ec2-root-image.js';
import type { JobSecretCopies } from './job-secret-copies.js';
import type { S3OutputsUpload } from './s3-outputs-upload.js';
import { SsmOutputs } from './ssm-outputs.js';
import { execThroughSsm, sessionThroughSsm, type SessionDocuments, type SsmExecSettings } from './ssm-exec.js';
import {
  DEFAULT_AGENT_DOCUMENT,
  DEFAULT_MASTER_PORT,
  SsmCommands,
  type CommandOutcome,
  type Ec2DockerOptions,
} from './ssm-commands.js';

export interface Ec2Pool {
  /** The pool's instance type first, then fallbacks with the same GPUs per instance. */
  instanceTypes: string[];
  /** Container memory limit on this pool's instances; overrides `dockerOptions.memory`. */
  memory?: string;
  /** GPUs of each of its instances: a job whose `gpus` per node differs is refused at launch (core/accounting.ts). @default not checked */
  gpusPerInstance?: number;
}

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
  /** Where a job's secret values are copied for its instances at its start (job-secret-copies.ts); absent: a job with secrets fails to start. */
  readonly secretCopies?: JobSecretCopies;
  /** Where a job's outputs go when it stops (ssm-outputs.ts), and the per-job cap; absent: they go with the instance. */
  readonly outputs?: { readonly upload: S3OutputsUpload; readonly maxBytes: number };
  /** The stack's Session Manager documents shells and port forwards start with; absent: sessions are refused (409). */
  readonly sessionDocuments?: SessionDocuments;
}

export const DEFAULT_AGENT_TIMEOUT_SECONDS = 600;
export const DEFAULT_ROOT_DEVICE_NAME = '/dev/sda1';

const ROOT_DEVICE_PATTERN = /^\/dev\/[a-z0-9]+$/;

export class Ec2SsmCompute implements Compute {
  private readonly instances: Ec2Instances;
  private readonly launcher: Ec2Launcher;
  private readonly commands: SsmCommands;
  private readonly execSettings: SsmExecSettings;
  private readonly secretCopies: JobSecretCopies | undefined;
  private readonly outputs: SsmOutputs | undefined;

  constructor(props: Ec2SsmComputeProps) {
    const agentTimeoutSeconds = props.agentTimeoutSeconds ?? DEFAULT_AGENT_TIMEOUT_SECONDS;
    const rootDeviceName = props.rootDeviceName ?? DEFAULT_ROOT_DEVICE_NAME;
    const masterPort = props.masterPort ?? DEFAULT_MASTER_PORT;
    const issues: FieldIssue[] = [];
    if (!props.launchTemplateId) issues.push({ field: 'launchTemplateId', reason: 'is required' });
    if (props.subnetIds.length === 0) issues.push({ field: 'subnetIds', reason: 'needs at least one subnet' });
    for (const [name, pool] of Object.entries(props.pools)) {
      if (pool.instanceTypes.length === 0)
        issues.push({ field: `pools.${name}.instanceTypes`, reason: 'needs at least one instance type' });
      if (!pool.memory && !props.dockerOptions?.memory)
        issues.push({ field: `pools.${name}.memory`, reason: 'is required when dockerOptions.memory is not set' });
    }
    if (!Number.isInteger(agentTimeoutSeconds) || agentTimeoutSeconds < 1)
      issues.push({ field: 'agentTimeoutSeconds', reason: 'must be a whole number of seconds, 1 or more' });
    if (!ROOT_DEVICE_PATTERN.test(rootDeviceName))
      issues.push({ field: 'rootDeviceName', reason: "must be a device path such as '/dev/sda1' or '/dev/xvda'" });
    if (!Number.isInteger(masterPort) || masterPort < 1 || masterPort > 65535)
      issues.push({ field: 'masterPort', reason: 'must be a TCP port, 1 to 65535' });
    if (issues.length > 0) throw new ValidationError(issues);

    this.instances = new Ec2Instances(props.ec2, props.deployment);
    this.secretCopies = props.secretCopies;
    this.launcher = new Ec2Launcher(
      {
        ec2: props.ec2,
        launchTemplateId: props.launchTemplateId,
        subnetIds: props.subnetIds,
        pools: props.pools,
        agentTimeoutSeconds,
        rootDeviceName,
        ...(props.imageId ? { rootImage: new Ec2RootImage(props.ec2, props.imageId) } : {}),
        now: props.now ?? (() => new Date()),
        deployment: props.deployment,
      },
      this.instances,
    );
    this.execSettings = {
      ssm: props.ssm,
      document: props.agentDocument ?? DEFAULT_AGENT_DOCUMENT,
      ...(props.sessionDocuments ? { sessionDocuments: props.sessionDocuments } : {}),
    };
    this.outputs = props.outputs
      ? new SsmOutputs({
          ssm: props.ssm,
          document: this.execSettings.document,
          ...props.outputs,
          ...(props.now ? { now: props.now } : {}),
        })
      : undefined;
    this.commands = new SsmCommands(
      {
        ssm: props.ssm,
        document: props.agentDocument ?? DEFAULT_AGENT_DOCUMENT,
        agentTimeoutSeconds,
        masterPort,
        pools: props.pools,
        logGroupName: props.logGroupName,
        dockerOptions: props.dockerOptions,
      },
      this.instances,
    );
  }

  launch(job: Job): Promise<Launched> {
    return this.launcher.launch(job);
  }

  isReady(job: Job): Promise<boolean> {
    return this.commands.isReady(job);
  }

  async start(job: Job, spec: ContainerSpec): Promise<void> {
    if (Object.keys(spec.secrets ?? {}).length === 0 || !this.secretCopies) return this.commands.start(job, spec);
    // The values go to Secrets Manager for the instances to fetch; the command carries only where they are.
    await this.secretCopies.copy(job, spec);
    return this.commands.start(job, { ...spec, secretSource: this.secretCopies.sourceFor(job) });
  }

  updateExpiry(job: Job, expiresAt: string): Promise<void> {
    return this.commands.updateExpiry(job, expiresAt);
  }

  async stop(job: Job): Promise<void> {
    assertJobId(job.id);
    // Also what EC2 knows by tag: covers a crash between RunInstances and the job record saving its ids.
    const tagged = await this.instances.liveInstanceIds(job.id);
    await this.instances.terminate([...new Set([...(job.instanceIds ?? []), ...tagged])]);
    if (Object.keys(job.secrets ?? {}).length > 0) await this.secretCopies?.remove(job);
  }

  /** The upload of the job's output directory from its first instance, before `stop` terminates it. */
  async collectOutputs(job: Job): Promise<{ until: string } | undefined> {
    return this.outputs?.collect(job);
  }

  async outputsCollected(job: Job): Promise<boolean> {
    return this.outputs ? this.outputs.collected(job) : true;
  }

  async keptOutputs(job: Job): Promise<JobOutputsRecord | undefined> {
    return this.outputs?.kept(job);
  }

  terminate(instanceIds: readonly string[]): Promise<void> {
    return this.instances.terminate(instanceIds);
  }

  /** Every live instance carrying Flare's mark, whatever its job: the reconciler's view. */
  listManaged(): Promise<ManagedInstance[]> {
    return this.instances.listManaged();
  }

  /** What became of Flare's command on one instance; undefined when the command is not Flare's. */
  commandOutcome(commandId: string, instanceId: string): Promise<CommandOutcome | undefined> {
    return this.commands.commandOutcome(commandId, instanceId);
  }

  /** A command in the job's container on its first instance, through SSM Run Command (ssm-exec.ts). */
  exec(job: Job, argv: readonly string[], limits: ExecLimits): Promise<ExecResult> {
    return execThroughSsm(this.execSettings, job, argv, limits);
  }

  /** A Session Manager session into the job's first instance, for the CLI to start (ssm-exec.ts). */
  session(job: Job, request: SessionInput): Promise<SessionPlan> {
    return sessionThroughSsm(this.execSettings, job, request);
  }

  /** The job an instance was launched for; undefined when Flare did not launch it or EC2 no longer knows it. */
  jobOfInstance(instanceId: string): Promise<string | undefined> {
    return this.instances.jobOfInstance(instanceId);
  }
}
