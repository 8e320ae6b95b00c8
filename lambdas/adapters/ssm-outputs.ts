/**
 * A job's outputs kept on AWS: when it stops, one SSM command on its first
 * instance uploads its output directory to the outputs bucket with a presigned
 * POST (core/outputs-upload.ts, s3-outputs-upload.ts), before the instance is
 * terminated; the workflow checks the command until it ends or its bound
 * passes (AwaitOutputs), and Release records what its report says. Other nodes
 * of a multi-node job keep nothing: rank 0 writes a run's results.
 */
import { GetCommandInvocationCommand, SendCommandCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { assertJobId } from '../core/container-command.js';
import type { Job, JobOutputsRecord } from '../core/job.js';
import {
  OUTPUTS_UPLOAD_SECONDS,
  readUploadReport,
  uploadedOutputsRecord,
  uploadScript,
} from '../core/outputs-upload.js';
import type { S3OutputsUpload } from './s3-outputs-upload.js';
import { findCommand, INSTANCE_OUTPUTS_DIR } from './ssm-commands.js';

/** How long SSM tries to deliver the upload: the agent ran the job a moment ago, so a minute is plenty. */
export const UPLOAD_DELIVERY_SECONDS = 60;
/** How long the workflow waits for the upload at most: delivery, then the script's own bound. */
export const OUTPUTS_WAIT_SECONDS = UPLOAD_DELIVERY_SECONDS + OUTPUTS_UPLOAD_SECONDS;
/** Command statuses after which nothing more happens (ListCommands' Status). */
const ENDED = ['Success', 'Failed', 'TimedOut', 'Cancelled'];

export interface SsmOutputsSettings {
  readonly ssm: SSMClient;
  readonly document: string;
  readonly upload: S3OutputsUpload;
  /** The per-job cap, for the record's message. */
  readonly maxBytes: number;
  readonly now?: () => Date;
}

/** How the upload command is told apart from the job's own and from exec's (SSM caps comments at 100 characters). */
export function outputsComment(jobId: string): string {
  return `flare:outputs=${jobId}`;
}

export class SsmOutputs {
  constructor(private readonly settings: SsmOutputsSettings) {}

  /** Sends the upload once (a retry finds it by its comment); undefined when the instance can take no command. */
  async collect(job: Job): Promise<{ until: string } | undefined> {
    const instanceId = firstInstance(job);
    const now = this.settings.now?.() ?? new Date();
    const sent = await findCommand(this.settings, instanceId, outputsComment(job.id));
    if (sent) return { until: untilFrom(sent.RequestedDateTime ?? now) };
    const request = await this.settings.upload.request(job);
    const script = uploadScript(job.id, `${INSTANCE_OUTPUTS_DIR}/${job.id}`, request);
    try {
      await this.settings.ssm.send(
        new SendCommandCommand({
          DocumentName: this.settings.document,
          InstanceIds: [instanceId],
          Comment: outputsComment(job.id),
          TimeoutSeconds: UPLOAD_DELIVERY_SECONDS,
          // No CloudWatch output: the script prints only its report, which Release reads back.
          Parameters: { commands: [script], executionTimeout: [String(OUTPUTS_UPLOAD_SECONDS)] },
        }),
      );
    } catch (error) {
      // A lost instance or a dead agent: nothing will upload; Release records that nothing was kept.
      if ((error as { name?: string }).name === 'InvalidInstanceId') return undefined;
      throw error;
    }
    return { until: untilFrom(now) };
  }

  /**
   * True when the upload ended. One not listed yet is still on its way (only a sent upload is waited
   * for, and SSM may list a command a moment after SendCommand): the workflow's bound ends that wait.
   */
  async collected(job: Job): Promise<boolean> {
    const sent = await findCommand(this.settings, firstInstance(job), outputsComment(job.id));
    return ENDED.includes(sent?.Status ?? '');
  }

  /** What the upload's report says was kept; never silent when it did not run, did not end or failed. */
  async kept(job: Job): Promise<JobOutputsRecord> {
    const instanceId = firstInstance(job);
    const sent = await findCommand(this.settings, instanceId, outputsComment(job.id));
    if (!sent?.CommandId)
      return { count: 0, bytes: 0, error: "outputs were not uploaded: the job's instance took no command" };
    const invocation = await this.settings.ssm.send(
      new GetCommandInvocationCommand({ CommandId: sent.CommandId, InstanceId: instanceId }),
    );
    const report = readUploadReport(invocation.StandardOutputContent ?? '');
    if (report) return uploadedOutputsRecord(report, this.settings.maxBytes);
    const status = [invocation.Status, invocation.StatusDetails].filter(Boolean).join(', ') || 'unknown';
    return {
      count: 0,
      bytes: 0,
      error: ENDED.includes(invocation.Status ?? '')
        ? `outputs upload ended without a report (${status})`
        : `outputs upload did not end within ${OUTPUTS_WAIT_SECONDS} s (${status}); what it uploaded may be listed`,
    };
  }
}

function untilFrom(requested: Date): string {
  return new Date(requested.getTime() + OUTPUTS_WAIT_SECONDS * 1000).toISOString();
}

function firstInstance(job: Job): string {
  assertJobId(job.id);
  const instanceId = job.instanceIds?.[0];
  if (!instanceId) throw new Error(`job ${job.id} has no instance to upload its outputs from`);
  return instanceId;
}
