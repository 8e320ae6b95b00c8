/**
 * `Compute.exec` on AWS: execScript (core/exec-script.ts) sent with SSM Run
 * Command to the job's first instance, then GetCommandInvocation until it has
 * ended. Bounded below the API's own limits: the API function has 15 s and API
 * Gateway 30 s, and SSM returns at most 24000 characters of each stream inline.
 * The output is not sent to CloudWatch Logs (it may hold the job's secrets);
 * SSM keeps it in the command's history, readable with ssm:GetCommandInvocation.
 */
import {
  GetCommandInvocationCommand,
  SendCommandCommand,
  type GetCommandInvocationCommandOutput,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { setTimeout as sleep } from 'node:timers/promises';
import { assertJobId } from '../core/container-command.js';
import { Conflict } from '../core/errors.js';
import {
  EXEC_TIMED_OUT_EXIT_CODE,
  type ExecLimits,
  type ExecResult,
  type SessionInput,
  type SessionPlan,
} from '../core/exec.js';
import { containerAddressScript, execScript, readExecReport } from '../core/exec-script.js';
import type { Job } from '../core/job.js';

/** Seconds a command may run on AWS: with SSM's delivery, under the API function's 15 s. */
export const SSM_EXEC_TIMEOUT_SECONDS = 10;
/** Bytes of each stream: SSM returns 24000 characters inline, and stderr also carries the report line. */
export const SSM_EXEC_MAX_OUTPUT_BYTES = 20_000;
/** How long after the command's own bound the invocation is awaited before the answer says so. */
const ANSWER_GRACE_MS = 3000;
const POLL_MS = 500;
const ENDED = new Set(['Success', 'Failed', 'Cancelled', 'TimedOut', 'Cancelling']);

export interface SsmExecSettings {
  readonly ssm: SSMClient;
  /** AWS-RunShellScript or a document taking `commands` and `executionTimeout` like it. */
  readonly document: string;
  /** The stack's Session Manager documents (lib/session-documents.ts); absent: no sessions. */
  readonly sessionDocuments?: SessionDocuments;
  /** @default node:timers/promises setTimeout */
  readonly sleep?: (ms: number) => Promise<unknown>;
  /** @default Date.now */
  readonly now?: () => number;
}

/** The comment of an exec's command: not commandComment, so the compute events never take it for the job's end. */
export function execComment(jobId: string): string {
  return `flare:exec=${jobId}`;
}

export async function execThroughSsm(
  settings: SsmExecSettings,
  job: Job,
  argv: readonly string[],
  limits: ExecLimits,
): Promise<ExecResult> {
  const instanceId = firstInstance(job);
  const timeoutSeconds = Math.min(limits.timeoutSeconds, SSM_EXEC_TIMEOUT_SECONDS);
  const maxOutputBytes = Math.min(limits.maxOutputBytes, SSM_EXEC_MAX_OUTPUT_BYTES);
  const script = execScript(job.id, argv, { timeoutSeconds, maxOutputBytes });
  const ran = await runScript(settings, job.id, instanceId, script, timeoutSeconds);
  if ('late' in ran)
    return {
      exitCode: EXEC_TIMED_OUT_EXIT_CODE,
      stdout: '',
      stderr: `flare: no answer from instance ${instanceId} within ${timeoutSeconds} s (SSM command ${ran.commandId}, ${ran.status})\n`,
      truncated: false,
      timedOut: true,
    };
  return resultOf(ran, maxOutputBytes);
}

/**
 * The deployment's own Session Manager documents: the shell's logs every
 * session to CloudWatch Logs, and researchers' IAM allows no other document.
 */
export interface SessionDocuments {
  readonly shell: string;
  readonly portForward: string;
}

/**
 * The session the CLI starts on the job's first instance: a shell runs the
 * shell document's profile, `docker exec -it` into the instance's job
 * container; a port forward goes to the container's address on the instance,
 * found with a fixed `docker inspect` through Run Command (containerAddressScript).
 */
export async function sessionThroughSsm(
  settings: SsmExecSettings,
  job: Job,
  request: SessionInput,
): Promise<SessionPlan> {
  const documents = settings.sessionDocuments;
  // AWS's own documents would not log the session: no session rather than an unlogged one.
  if (!documents) throw new Conflict('this deployment has no Session Manager documents for sessions into jobs');
  const instanceId = firstInstance(job);
  const region = await settings.ssm.config.region();
  if (request.kind === 'shell')
    return { runtime: 'aws', kind: 'shell', region, target: instanceId, documentName: documents.shell, parameters: {} };
  const ran = await runScript(settings, job.id, instanceId, containerAddressScript(job.id), 5);
  if ('late' in ran || ran.Status !== 'Success')
    throw new Conflict(
      `cannot find the container of job ${job.id} on ${instanceId}: ${'late' in ran ? 'no answer' : (ran.StandardErrorContent ?? ran.Status)}`,
    );
  const address = (ran.StandardOutputContent ?? '').trim().split(/\s+/)[0] || 'localhost';
  return {
    runtime: 'aws',
    kind: 'port-forward',
    region,
    target: instanceId,
    documentName: documents.portForward,
    parameters: { host: [address], portNumber: [String(request.port)], localPortNumber: [String(request.port)] },
  };
}

function firstInstance(job: Job): string {
  assertJobId(job.id);
  const instanceId = job.instanceIds?.[0];
  if (!instanceId) throw new Conflict(`job ${job.id} has no instance to run a command on`);
  return instanceId;
}

/** Send `script` to the instance and wait for its invocation to end, or `late` past the bound. */
async function runScript(
  settings: SsmExecSettings,
  jobId: string,
  instanceId: string,
  script: string,
  timeoutSeconds: number,
): Promise<GetCommandInvocationCommandOutput | { late: true; commandId: string; status: string }> {
  const sent = await settings.ssm.send(
    new SendCommandCommand({
      DocumentName: settings.document,
      InstanceIds: [instanceId],
      Comment: execComment(jobId),
      // SendCommand's least delivery timeout; the answer is given up on far sooner.
      TimeoutSeconds: 30,
      Parameters: { commands: [script], executionTimeout: [String(timeoutSeconds + 5)] },
    }),
  );
  const commandId = sent.Command?.CommandId;
  if (!commandId) throw new Error(`SendCommand to ${instanceId} returned no command id`);
  const wait = settings.sleep ?? sleep;
  const now = settings.now ?? Date.now;
  const deadline = now() + timeoutSeconds * 1000 + ANSWER_GRACE_MS;
  for (;;) {
    await wait(POLL_MS);
    const invocation = await invocationOf(settings.ssm, commandId, instanceId);
    if (invocation && ENDED.has(invocation.Status ?? '')) return invocation;
    if (now() >= deadline) return { late: true, commandId, status: invocation?.Status ?? 'not yet delivered' };
  }
}

/** Undefined while SSM has not registered the invocation yet (InvocationDoesNotExist right after SendCommand). */
async function invocationOf(
  ssm: SSMClient,
  commandId: string,
  instanceId: string,
): Promise<GetCommandInvocationCommandOutput | undefined> {
  try {
    return await ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }));
  } catch (error) {
    if ((error as { name?: string }).name === 'InvocationDoesNotExist') return undefined;
    throw error;
  }
}

function resultOf(invocation: GetCommandInvocationCommandOutput, maxOutputBytes: number): ExecResult {
  const stdout = invocation.StandardOutputContent ?? '';
  const report = readExecReport(invocation.StandardErrorContent ?? '');
  if (!report) {
    // The script never reached the command (no docker, no python3, the agent gave up): say what SSM says.
    const detail = [invocation.Status, invocation.StatusDetails].filter(Boolean).join(', ');
    return {
      exitCode:
        typeof invocation.ResponseCode === 'number' && invocation.ResponseCode > 0 ? invocation.ResponseCode : 125,
      stdout,
      stderr: `${invocation.StandardErrorContent ?? ''}flare: the command did not run on the instance (${detail})\n`,
      truncated: false,
      timedOut: invocation.Status === 'TimedOut',
    };
  }
  return {
    exitCode: report.timedOut ? EXEC_TIMED_OUT_EXIT_CODE : report.code,
    stdout,
    stderr: report.stderr,
    truncated: report.stdoutBytes > maxOutputBytes || report.stderrBytes > maxOutputBytes,
    timedOut: report.timedOut,
  };
}
