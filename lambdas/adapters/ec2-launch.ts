/**
 * A job's launch on EC2: one RunInstances of all its `nodeCount` instances, tried over the
 * pool's instance types and the subnets in order until one has capacity. It looks for the
 * job's instances by tag first, and sends each attempt with a ClientToken derived from the
 * job id, its launch attempt and the subnet/type position, so a repeated call returns the
 * original reservation instead of new machines, and a requeued job (next launch attempt)
 * gets fresh tokens.
 */
import { createHash } from 'node:crypto';
import {
  RunInstancesCommand,
  type EC2Client,
  type RunInstancesCommandInput,
  type RunInstancesCommandOutput,
  type Tag,
} from '@aws-sdk/client-ec2';
import { gpusIssue } from '../core/accounting.js';
import { assertJobId } from '../core/container-command.js';
import { FlareError, LaunchFailed, NoCapacity } from '../core/errors.js';
import type { Job } from '../core/job.js';
import type { Launched } from '../ports/compute.js';
import { errorCode, jobTags, type Ec2Instances } from './ec2-instances.js';
import type { Ec2RootImage } from './ec2-root-image.js';

/** Instances per job; each gets its own SendCommand, and 50 is also what one SendCommand may target. */
export const MAX_NODES_PER_JOB = 50;

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

const CLIENT_TOKEN_MAX_LENGTH = 64;

/** EC2 showed some of a job's instances but not all: its view is not settled yet, try again. */
export class PartialLaunchView extends FlareError {}

/** What a launch needs of the deployment, defaults resolved (Ec2SsmComputeProps documents each). */
export interface LaunchSettings {
  readonly ec2: EC2Client;
  readonly launchTemplateId: string;
  readonly subnetIds: readonly string[];
  readonly pools: Readonly<Record<string, { instanceTypes: string[]; gpusPerInstance?: number }>>;
  readonly agentTimeoutSeconds: number;
  readonly rootDeviceName: string;
  readonly rootImage?: Ec2RootImage;
  readonly now: () => Date;
  readonly deployment?: string;
}

export class Ec2Launcher {
  constructor(
    private readonly settings: LaunchSettings,
    private readonly instances: Ec2Instances,
  ) {}

  async launch(job: Job): Promise<Launched> {
    assertJobId(job.id);
    const pool = this.settings.pools[job.pool];
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
    if (job.volumeSizeGb !== undefined)
      await this.settings.rootImage?.check(job.id, job.volumeSizeGb, this.settings.rootDeviceName);

    // A previous call may have launched from a fallback attempt whose token this call would not reach first.
    const existing = await this.instances.liveInstanceIds(job.id);
    if (existing.length === job.nodeCount) return { instanceIds: existing };
    if (existing.length > job.nodeCount) {
      // Never run a job on more machines than it holds GPUs for; stop() terminates every tagged instance.
      throw new LaunchFailed(`EC2 shows ${existing.length} instances for job ${job.id}, which needs ${job.nodeCount}`);
    }
    if (existing.length > 0)
      throw new PartialLaunchView(`EC2 shows ${existing.length} of job ${job.id}'s ${job.nodeCount} instances`);

    const { subnetIds } = this.settings;
    const tags = jobTags(job, this.launchDeadline(job), this.settings.deployment);
    const failures: string[] = [];
    const vcpuLimited: string[] = [];
    let lastError: unknown;
    for (const [typeIndex, instanceType] of pool.instanceTypes.entries()) {
      for (const [subnetIndex, subnetId] of subnetIds.entries()) {
        // The index is the position in the type x subnet grid, so skipping never shifts a later token.
        const index = typeIndex * subnetIds.length + subnetIndex;
        let output: RunInstancesCommandOutput;
        try {
          output = await this.settings.ec2.send(
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
    const from = Number.isFinite(admitted) ? admitted : this.settings.now().getTime();
    return new Date(
      from + this.settings.agentTimeoutSeconds * 1000 + Math.ceil(job.liveTimeoutMinutes * 60_000),
    ).toISOString();
  }

  private runInstancesInput(
    job: Job,
    instanceType: string,
    subnetId: string,
    tags: Tag[],
    token: string,
  ): RunInstancesCommandInput {
    const input: RunInstancesCommandInput = {
      LaunchTemplate: { LaunchTemplateId: this.settings.launchTemplateId },
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
          DeviceName: this.settings.rootDeviceName,
          Ebs: { VolumeSize: job.volumeSizeGb, VolumeType: 'gp3', Encrypted: true, DeleteOnTermination: true },
        },
      ];
    }
    return input;
  }
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
