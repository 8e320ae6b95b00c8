/**
 * A job's container on its instances, through SSM Run Command: whether their agents are
 * online, the container command (one per instance), the deadline rewrite of an extended
 * job, and reading a command's outcome back for the compute events. SendCommand has no
 * client token, so `start` looks for a command that already carries this job's Comment on
 * each instance; the instance script itself starts the container at most once.
 */
import {
  type Command,
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
import { LaunchFailed, ValidationError } from '../core/errors.js';
import type { Job } from '../core/job.js';
import type { ContainerSpec } from '../ports/compute.js';
import type { Ec2Instances } from './ec2-instances.js';

export const DEFAULT_AGENT_DOCUMENT = 'AWS-RunShellScript';
export const DEFAULT_INSTANCE_SCRATCH_DIR = '/var/lib/flare/scratch';
/** Where a job's $FLARE_OUTPUT_DIR is on its instance (`<this>/<jobId>`, mounted at /outputs). */
export const INSTANCE_OUTPUTS_DIR = '/var/lib/flare/outputs';
export const DEFAULT_MASTER_PORT = 29500;
/** SendCommand's smallest TimeoutSeconds (its delivery timeout). */
export const SSM_MIN_DELIVERY_TIMEOUT_SECONDS = 30;
/** A deadline rewrite is a mkdir and a rename: a minute is plenty. */
export const DEADLINE_COMMAND_TIMEOUT_SECONDS = 60;

/** Container options the deployment sets; `detach` is always on for instances. */
export type Ec2DockerOptions = Partial<Omit<DockerRunOptions, 'detach' | 'allowUnpinnedImage'>>;

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

/** What the commands need of the deployment, defaults resolved (Ec2SsmComputeProps documents each). */
export interface CommandSettings {
  readonly ssm: SSMClient;
  readonly document: string;
  readonly agentTimeoutSeconds: number;
  readonly masterPort: number;
  readonly pools: Readonly<Record<string, { memory?: string }>>;
  readonly logGroupName?: string;
  readonly dockerOptions?: Ec2DockerOptions;
}

export class SsmCommands {
  constructor(
    private readonly settings: CommandSettings,
    /** Where a multi-node job's first instance is reached. */
    private readonly instances: Pick<Ec2Instances, 'privateIp'>,
  ) {}

  async isReady(job: Job): Promise<boolean> {
    const instanceIds = requireInstances(job);
    const online = new Set<string>();
    let nextToken: string | undefined;
    do {
      const page = await this.settings.ssm.send(
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

    const masterAddr = job.nodeCount > 1 ? await this.instances.privateIp(instanceIds[0]) : undefined;
    // Build every script before sending any, so a bad spec sends nothing.
    const scripts = unsent.map((rank) => {
      const env =
        masterAddr === undefined ? spec.env : { ...spec.env, ...this.torchrunEnv(rank, job.nodeCount, masterAddr) };
      return { instanceId: instanceIds[rank], script: instanceScript({ ...spec, env }, options) };
    });
    for (const { instanceId, script } of scripts) {
      const input: SendCommandCommandInput = {
        DocumentName: this.settings.document,
        InstanceIds: [instanceId],
        Comment: comment,
        // How long SSM keeps trying to deliver it (default an hour): the agent was just seen online, so a command
        // still undelivered after the agent's own bound ends DeliveryTimedOut and fails the job (compute events).
        TimeoutSeconds: Math.max(SSM_MIN_DELIVERY_TIMEOUT_SECONDS, this.settings.agentTimeoutSeconds),
        Parameters: {
          commands: [script],
          // The container is detached, so this bounds only how long the command reports on it; the maximum
          // keeps that true for jobs whose live timeout is extended after start. Past 48 h the command ends
          // TimedOut while the container runs on until the workflow's expiry stops the instance.
          executionTimeout: [String(SSM_MAX_EXECUTION_TIMEOUT_SECONDS)],
        },
      };
      if (this.settings.logGroupName) {
        input.CloudWatchOutputConfig = {
          CloudWatchLogGroupName: this.settings.logGroupName,
          CloudWatchOutputEnabled: true,
        };
      }
      await this.settings.ssm.send(new SendCommandCommand(input));
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
    await this.settings.ssm.send(
      new SendCommandCommand({
        DocumentName: this.settings.document,
        InstanceIds: instanceIds,
        Comment: deadlineComment(job.id),
        Parameters: { commands: [script], executionTimeout: [String(DEADLINE_COMMAND_TIMEOUT_SECONDS)] },
      }),
    );
  }

  /**
   * The job whose container command this was, read back from the invocation's Comment;
   * undefined when the command is not Flare's (another tool's Run Command on the account).
   */
  async commandOutcome(commandId: string, instanceId: string): Promise<CommandOutcome | undefined> {
    const invocation = await this.settings.ssm.send(
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

  /** What torchrun reads to join the job's nodes; set after the job's env, so these win. */
  private torchrunEnv(rank: number, worldSize: number, masterAddr: string): Record<string, string> {
    return {
      NODE_RANK: String(rank),
      WORLD_SIZE: String(worldSize),
      MASTER_ADDR: masterAddr,
      MASTER_PORT: String(this.settings.masterPort),
    };
  }

  private dockerOptions(job: Job): DockerRunOptions {
    const configured = this.settings.dockerOptions ?? {};
    const memory = this.settings.pools[job.pool]?.memory ?? configured.memory;
    if (!memory) throw new LaunchFailed(`pool ${job.pool} has no container memory limit configured`);
    const options: DockerRunOptions = {
      scratchDir: DEFAULT_INSTANCE_SCRATCH_DIR,
      ...configured,
      memory,
      outputDir: `${INSTANCE_OUTPUTS_DIR}/${job.id}`,
    };
    // Ranks reach each other on MASTER_PORT and NCCL's ports: host networking, with the instance's
    // uid firewall rule (lib/instance-user-data.ts) keeping the metadata service from the job.
    if (job.nodeCount > 1) options.hostNetwork = true;
    else if (job.allowRoot) options.allowRoot = true;
    if (this.settings.logGroupName && !configured.logDriver) {
      options.logDriver = 'awslogs';
      options.logOptions = { 'awslogs-group': this.settings.logGroupName, 'awslogs-stream': job.id };
    }
    return options;
  }

  private async commandExists(instanceId: string, comment: string): Promise<boolean> {
    return (await findCommand(this.settings, instanceId, comment)) !== undefined;
  }
}

/** The newest command of `settings.document` sent to the instance with this comment: SendCommand has no client token. */
export async function findCommand(
  settings: Pick<CommandSettings, 'ssm' | 'document'>,
  instanceId: string,
  comment: string,
): Promise<Command | undefined> {
  let nextToken: string | undefined;
  do {
    const page = await settings.ssm.send(
      new ListCommandsCommand({
        InstanceId: instanceId,
        Filters: [{ key: 'DocumentName', value: settings.document }],
        MaxResults: 50,
        NextToken: nextToken,
      }),
    );
    const found = (page.Commands ?? []).find((c) => c.Comment === comment);
    if (found) return found;
    nextToken = page.NextToken || undefined;
  } while (nextToken);
  return undefined;
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

function requireInstances(job: Job): string[] {
  assertJobId(job.id);
  if (!job.instanceIds || job.instanceIds.length === 0) throw new LaunchFailed(`job ${job.id} has no instances`);
  return job.instanceIds;
}
