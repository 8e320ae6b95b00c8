/**
 * Ec2SsmCompute's outputs on AWS (ssm-outputs.ts) against the AWS SDK with
 * aws-sdk-client-mock, asserting the exact requests: the upload command sent
 * once to the job's first instance, the wait on it, and the job's record read
 * back from the script's report, never silent when the upload did not happen.
 */
import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import { EC2Client } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import {
  GetCommandInvocationCommand,
  ListCommandsCommand,
  SendCommandCommand,
  SSMClient,
  SSMServiceException,
} from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { Ec2SsmCompute } from '../../lambdas/adapters/ec2-ssm-compute.js';
import { S3OutputsUpload } from '../../lambdas/adapters/s3-outputs-upload.js';
import { uploadScript } from '../../lambdas/core/outputs-upload.js';
import { JobState } from '../../lambdas/core/job.js';
import { awsError } from '../support/aws-errors.js';
import { launchingJob } from '../support/jobs.js';

const credentials = { accessKeyId: 'AKIDTEST', secretAccessKey: 'test' };
const ec2 = new EC2Client({ region: 'eu-west-1', credentials });
const ssm = new SSMClient({ region: 'eu-west-1', credentials });
const s3 = new S3Client({ region: 'eu-west-1', credentials });
const ssmMock = mockClient(ssm);
const NOW = new Date('2030-01-01T02:00:00.000Z');

function compute(withOutputs = true): Ec2SsmCompute {
  return new Ec2SsmCompute({
    ec2,
    ssm,
    launchTemplateId: 'lt-0123456789abcdef0',
    subnetIds: ['subnet-a'],
    pools: { a10g: { instanceTypes: ['g5.xlarge'], memory: '14g' } },
    now: () => NOW,
    ...(withOutputs
      ? { outputs: { upload: new S3OutputsUpload(s3, 'flare-outputs-1', 1000, () => NOW), maxBytes: 1000 } }
      : {}),
  });
}

const job = launchingJob({
  state: JobState.STOPPING,
  startedAt: '2030-01-01T01:00:00.000Z',
  instanceIds: ['i-0aaaaaaaaaaaaaaa1', 'i-0aaaaaaaaaaaaaaa2'],
  nodeCount: 2,
});

const LIST = {
  InstanceId: 'i-0aaaaaaaaaaaaaaa1',
  Filters: [{ key: 'DocumentName', value: 'AWS-RunShellScript' }],
  MaxResults: 50,
  NextToken: undefined,
};

beforeEach(() => ssmMock.reset());

describe('Ec2SsmCompute outputs upload', () => {
  test('sends the fixed upload script once, to the first instance only, under its own comment, bounded; the wait ends 11 min later', async () => {
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [{ CommandId: 'c-job', Comment: 'flare:job=job-7' }] });
    ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: 'c-up' } });
    const started = await compute().collectOutputs(job);
    assert.deepEqual(started, { until: '2030-01-01T02:11:00.000Z' });
    assert.deepEqual(
      ssmMock.commandCalls(ListCommandsCommand).map((c) => c.args[0].input),
      [LIST],
    );
    const sent = ssmMock.commandCalls(SendCommandCommand).map((c) => c.args[0].input);
    assert.equal(sent.length, 1);
    const form = await new S3OutputsUpload(s3, 'flare-outputs-1', 1000, () => NOW).request(job);
    assert.deepEqual(sent[0], {
      DocumentName: 'AWS-RunShellScript',
      InstanceIds: ['i-0aaaaaaaaaaaaaaa1'],
      Comment: 'flare:outputs=job-7',
      TimeoutSeconds: 60,
      Parameters: {
        commands: [uploadScript('job-7', '/var/lib/flare/outputs/job-7', form)],
        executionTimeout: ['600'],
      },
    });
  });

  test('a retried Stop finds the upload by its comment and sends nothing; its bound counts from when it was sent', async () => {
    ssmMock.on(ListCommandsCommand).resolves({
      Commands: [
        {
          CommandId: 'c-up',
          Comment: 'flare:outputs=job-7',
          Status: 'InProgress',
          RequestedDateTime: new Date('2030-01-01T01:59:00.000Z'),
        },
      ],
    });
    assert.deepEqual(await compute().collectOutputs(job), { until: '2030-01-01T02:10:00.000Z' });
    assert.equal(ssmMock.commandCalls(SendCommandCommand).length, 0);
  });

  test('an instance that takes no command (lost, agent gone) is not waited for; the record says nothing was uploaded', async () => {
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
    ssmMock.on(SendCommandCommand).rejects(awsError(SSMServiceException, 'InvalidInstanceId'));
    assert.equal(await compute().collectOutputs(job), undefined);
    assert.deepEqual(await compute().keptOutputs(job), {
      count: 0,
      bytes: 0,
      error: "outputs were not uploaded: the job's instance took no command",
    });
  });

  test('other SSM errors are thrown, so the workflow retries', async () => {
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
    ssmMock.on(SendCommandCommand).rejects(awsError(SSMServiceException, 'ThrottlingException', { status: 400 }));
    await assert.rejects(() => compute().collectOutputs(job), { name: 'ThrottlingException' });
  });

  test('the wait ends when the upload command ended, however it ended, not while SSM does not list it yet', async () => {
    for (const [status, ended] of [
      ['Pending', false],
      ['InProgress', false],
      ['Success', true],
      ['Failed', true],
      ['TimedOut', true],
      ['Cancelled', true],
    ] as const) {
      ssmMock.reset();
      ssmMock
        .on(ListCommandsCommand)
        .resolves({ Commands: [{ CommandId: 'c-up', Comment: 'flare:outputs=job-7', Status: status }] });
      assert.equal(await compute().outputsCollected(job), ended, status);
    }
    // Not listed yet, right after it was sent: still on its way, not ended.
    ssmMock.reset();
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
    assert.equal(await compute().outputsCollected(job), false);
  });

  test("the record is the script's report: the cap's message and failures said", async () => {
    ssmMock
      .on(ListCommandsCommand)
      .resolves({ Commands: [{ CommandId: 'c-up', Comment: 'flare:outputs=job-7', Status: 'Failed' }] });
    ssmMock.on(GetCommandInvocationCommand, { CommandId: 'c-up', InstanceId: 'i-0aaaaaaaaaaaaaaa1' }).resolves({
      Status: 'Failed',
      StandardOutputContent:
        'flare-outputs: {"kept": 2, "keptBytes": 900, "dropped": 1, "droppedBytes": 500, "failed": 1, "failedBytes": 7, "reason": "HTTP 403"}\n',
    });
    assert.deepEqual(await compute().keptOutputs(job), {
      count: 2,
      bytes: 900,
      truncated: true,
      error: 'over the 1000-byte cap: 1 files (500 bytes) were not kept; upload failed for 1 files (7 bytes): HTTP 403',
    });
  });

  test('an upload that never reported, or was still running at the bound, is recorded as such', async () => {
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [{ CommandId: 'c-up', Comment: 'flare:outputs=job-7' }] });
    ssmMock
      .on(GetCommandInvocationCommand)
      .resolvesOnce({ Status: 'TimedOut', StatusDetails: 'ExecutionTimedOut' })
      .resolvesOnce({
        Status: 'InProgress',
      });
    assert.deepEqual(await compute().keptOutputs(job), {
      count: 0,
      bytes: 0,
      error: 'outputs upload ended without a report (TimedOut, ExecutionTimedOut)',
    });
    assert.match((await compute().keptOutputs(job))!.error!, /^outputs upload did not end within 660 s \(InProgress\)/);
  });

  test('a deployment without an outputs bucket sends nothing and records nothing', async () => {
    assert.equal(await compute(false).collectOutputs(job), undefined);
    assert.equal(await compute(false).outputsCollected(job), true);
    assert.equal(await compute(false).keptOutputs(job), undefined);
    assert.equal(ssmMock.calls().length, 0);
  });
});
