/**
 * `POST /v1/jobs/{id}/exec` on AWS: the exact Run Command the adapter sends
 * (aws-sdk-client-mock), how it reads the invocation back, and the script
 * itself run for real with `sh` and a stand-in `docker` that records its argv
 * and runs the rest: job-supplied words reach docker as they are, never
 * through a shell, and the time and output bounds hold.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, describe, test } from 'node:test';
import { GetCommandInvocationCommand, SendCommandCommand, SSMClient, SSMServiceException } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { Ec2SsmCompute } from '../../lambdas/adapters/ec2-ssm-compute.js';
import { execComment, execThroughSsm, sessionThroughSsm } from '../../lambdas/adapters/ssm-exec.js';
import { Conflict } from '../../lambdas/core/errors.js';
import { containerAddressScript, execScript, readExecReport } from '../../lambdas/core/exec-script.js';
import { awsError } from '../support/aws-errors.js';
import { launchingJob } from '../support/jobs.js';

const ssm = new SSMClient({ region: 'eu-west-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
const ssmMock = mockClient(ssm);
const job = launchingJob({ state: 'RUNNING', instanceIds: ['i-0aaa', 'i-0bbb'] });
const LIMITS = { timeoutSeconds: 60, maxOutputBytes: 64 * 1024 };
const ARGV = ['sh', '-c', 'echo "$1"', 'x', "'; echo pwned #"];
const settings = { ssm, document: 'AWS-RunShellScript', sleep: async () => undefined };

beforeEach(() => ssmMock.reset());

describe('exec through SSM Run Command', () => {
  test('sends execScript to the first instance, bounded to 10 s and 20000 bytes, and waits for the invocation', async () => {
    ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-1' } });
    ssmMock
      .on(GetCommandInvocationCommand)
      .rejectsOnce(awsError(SSMServiceException, 'InvocationDoesNotExist'))
      .resolvesOnce({ Status: 'InProgress' })
      .resolves({
        Status: 'Failed',
        ResponseCode: 3,
        StandardOutputContent: 'out\n',
        StandardErrorContent: 'flare-exec: code=3 timedOut=0 stdout=4 stderr=4\nerr\n',
      });
    const result = await execThroughSsm(settings, job, ARGV, LIMITS);
    assert.deepEqual(result, { exitCode: 3, stdout: 'out\n', stderr: 'err\n', truncated: false, timedOut: false });
    assert.deepEqual(ssmMock.commandCalls(SendCommandCommand)[0]!.args[0].input, {
      DocumentName: 'AWS-RunShellScript',
      InstanceIds: ['i-0aaa'],
      Comment: execComment(job.id),
      TimeoutSeconds: 30,
      Parameters: {
        commands: [execScript(job.id, ARGV, { timeoutSeconds: 10, maxOutputBytes: 20_000 })],
        executionTimeout: ['15'],
      },
    });
    assert.equal(ssmMock.commandCalls(SendCommandCommand).length, 1);
    for (const call of ssmMock.commandCalls(GetCommandInvocationCommand))
      assert.deepEqual(call.args[0].input, { CommandId: 'cmd-1', InstanceId: 'i-0aaa' });
    assert.doesNotMatch(
      (ssmMock.commandCalls(SendCommandCommand)[0]!.args[0].input.Parameters!.commands as string[])[0]!,
      /pwned/,
      'the argv is only inside the base64 block',
    );
  });

  test('says truncated and timedOut as the script reported them; 124 for a command killed at the bound', async () => {
    ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-2' } });
    ssmMock.on(GetCommandInvocationCommand).resolves({
      Status: 'Failed',
      ResponseCode: 137,
      StandardOutputContent: 'x'.repeat(20_000),
      StandardErrorContent: 'flare-exec: code=137 timedOut=1 stdout=90000 stderr=0\n',
    });
    const result = await execThroughSsm(settings, job, ['yes'], LIMITS);
    assert.deepEqual(
      { ...result, stdout: result.stdout.length },
      {
        exitCode: 124,
        stdout: 20_000,
        stderr: '',
        truncated: true,
        timedOut: true,
      },
    );
  });

  test('a script that never ran says what SSM says; no answer in time is a timeout; no instance is a conflict', async () => {
    ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-3' } });
    ssmMock.on(GetCommandInvocationCommand).resolvesOnce({
      Status: 'Failed',
      StatusDetails: 'Undeliverable',
      ResponseCode: -1,
    });
    const lost = await execThroughSsm(settings, job, ['true'], LIMITS);
    assert.equal(lost.exitCode, 125);
    assert.match(lost.stderr, /did not run on the instance \(Failed, Undeliverable\)/);

    ssmMock.on(GetCommandInvocationCommand).resolves({ Status: 'InProgress' });
    let clock = 0;
    const late = await execThroughSsm({ ...settings, now: () => (clock += 1000) }, job, ['true'], LIMITS);
    assert.equal(late.timedOut, true);
    assert.match(late.stderr, /no answer from instance i-0aaa within 10 s \(SSM command cmd-3, InProgress\)/);

    await assert.rejects(execThroughSsm(settings, { ...job, instanceIds: [] }, ['true'], LIMITS), Conflict);
  });

  test('Ec2SsmCompute.exec is this path', async () => {
    ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-4' } });
    ssmMock.on(GetCommandInvocationCommand).resolves({
      Status: 'Success',
      ResponseCode: 0,
      StandardOutputContent: '',
      StandardErrorContent: 'flare-exec: code=0 timedOut=0 stdout=0 stderr=0\n',
    });
    const compute = new Ec2SsmCompute({
      ec2: {} as never,
      ssm,
      launchTemplateId: 'lt-1',
      subnetIds: ['subnet-a'],
      pools: { a10g: { instanceTypes: ['g5.xlarge'], memory: '14g' } },
    });
    assert.equal((await compute.exec(job, ['true'], { timeoutSeconds: 1, maxOutputBytes: 1 })).exitCode, 0);
    assert.match(
      (ssmMock.commandCalls(SendCommandCommand)[0]!.args[0].input.Parameters!.commands as string[])[0]!,
      /timeout --kill-after=2 1 python3/,
    );
  });
});

describe('sessions through Session Manager', () => {
  const withDocuments = {
    ...settings,
    sessionDocuments: { shell: 'FlareStack-JobShell', portForward: 'FlareStack-JobPortForward' },
  };

  test("a shell is the stack's logged shell document on the job's first instance, in the deployment's region", async () => {
    assert.deepEqual(await sessionThroughSsm(withDocuments, job, { kind: 'shell' }), {
      runtime: 'aws',
      kind: 'shell',
      region: 'eu-west-1',
      target: 'i-0aaa',
      documentName: 'FlareStack-JobShell',
      parameters: {},
    });
    assert.equal(ssmMock.calls().length, 0, 'nothing sent for a shell');
  });

  test("without the stack's documents no session is planned (AWS's own would not be logged)", async () => {
    await assert.rejects(sessionThroughSsm(settings, job, { kind: 'shell' }), (error: Error) => {
      assert.equal(error.name, 'Conflict');
      assert.match(error.message, /no Session Manager documents/);
      return true;
    });
  });

  test("a port forward goes to the container's address, asked with a fixed docker inspect", async () => {
    ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-5' } });
    ssmMock.on(GetCommandInvocationCommand).resolves({ Status: 'Success', StandardOutputContent: '172.17.0.5 \n' });
    assert.deepEqual(await sessionThroughSsm(withDocuments, job, { kind: 'port-forward', port: 8888 }), {
      runtime: 'aws',
      kind: 'port-forward',
      region: 'eu-west-1',
      target: 'i-0aaa',
      documentName: 'FlareStack-JobPortForward',
      parameters: { host: ['172.17.0.5'], portNumber: ['8888'], localPortNumber: ['8888'] },
    });
    assert.deepEqual(ssmMock.commandCalls(SendCommandCommand)[0]!.args[0].input.Parameters, {
      commands: [containerAddressScript(job.id)],
      executionTimeout: ['10'],
    });
  });
});

describe('execScript run for real', () => {
  const dir = mkdtempSync(join(tmpdir(), 'flare-exec-script-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  // Records docker's argv (one JSON line), then runs what follows `exec <container>`.
  writeFileSync(join(dir, 'docker'), `#!/bin/sh\nprintf '%s\\n' "$@" > ${dir}/docker-args\nshift 2\nexec "$@"\n`);
  chmodSync(join(dir, 'docker'), 0o755);

  const run = (argv: string[], timeoutSeconds = 10, maxOutputBytes = 1000) => {
    const script = execScript('job-7', argv, { timeoutSeconds, maxOutputBytes, stateDir: dir });
    const done = spawnSync('sh', ['-c', script], {
      encoding: 'utf8',
      env: { ...process.env, PATH: `${dir}:${process.env.PATH}` },
    });
    return { code: done.status, stdout: done.stdout, report: readExecReport(done.stderr) };
  };

  test('docker exec gets the container and every word as it is: nothing is read by a shell', () => {
    const words = ['$(id)', "'; echo pwned; '", '`uname`', 'a b', '"', '\\', 'ünï'];
    const ran = run(['printf', '%s|', ...words]);
    assert.equal(ran.stdout, `${words.join('|')}|`);
    assert.equal(ran.code, 0);
    assert.deepEqual(readFileSync(join(dir, 'docker-args'), 'utf8').split('\n').slice(0, 3), [
      'exec',
      'flare-job-7',
      'printf',
    ]);
    assert.deepEqual(ran.report, {
      code: 0,
      timedOut: false,
      stdoutBytes: Buffer.byteLength(ran.stdout),
      stderrBytes: 0,
      stderr: '',
    });
  });

  test('exits with the command code, cuts output at the bound and says how much there was, kills at the time bound', () => {
    const noisy = run(['sh', '-c', 'head -c 5000 /dev/zero | tr "\\0" a; echo bad >&2; exit 7'], 10, 100);
    assert.equal(noisy.code, 7);
    assert.equal(noisy.stdout, 'a'.repeat(100));
    assert.deepEqual(noisy.report, { code: 7, timedOut: false, stdoutBytes: 5000, stderrBytes: 4, stderr: 'bad\n' });

    const slow = run(['sleep', '30'], 1);
    assert.equal(slow.report?.timedOut, true);
    assert.equal(slow.code, 124);
  });
});
