/**
 * The local AWS fake's EC2 and SSM, spoken to by the real SDK v3 clients configured only through the
 * environment (test/artifact/support/aws-fake-clients.ts): the parsed outputs, the recorded calls, EC2's
 * ClientToken idempotency, a vanished instance, an unmodelled action, agents and commands, and injected
 * faults as the SDK's typed exceptions.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DescribeInstancesCommand,
  DescribeVpcsCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  GetParameterCommand,
  InvalidInstanceId,
  ListCommandsCommand,
  SendCommandCommand,
} from '@aws-sdk/client-ssm';
import { ARTIFACT_REGION } from './support/types.js';
import { clients, fake, useAwsFake } from './support/aws-fake-clients.js';
import { ARN_PREFIX, PRINCIPAL, launchInput, launched, rejection } from './support/aws-fake-clients.js';

useAwsFake();

describe('EC2', () => {
  test('RunInstances launches tagged instances, and the same ClientToken returns them again', async () => {
    const first = await clients.ec2.send(new RunInstancesCommand(launchInput('job-a')));
    const ids = first.Instances!.map((i) => i.InstanceId!);
    assert.equal(ids.length, 2);
    for (const id of ids) assert.match(id, /^i-[0-9a-f]{17}$/);
    const [one] = first.Instances!;
    assert.equal(one.State?.Name, 'pending');
    assert.equal(one.InstanceType, 'g5.xlarge');
    assert.equal(one.SubnetId, 'subnet-0aaa');
    assert.ok(one.LaunchTime instanceof Date);
    assert.deepEqual(one.Tags, [
      { Key: 'managed-by', Value: 'flare' },
      { Key: 'flare:job', Value: 'job-a' },
    ]);

    const again = await clients.ec2.send(new RunInstancesCommand(launchInput('job-a')));
    assert.deepEqual(
      again.Instances!.map((i) => i.InstanceId),
      ids,
    );
    assert.equal(again.ReservationId, first.ReservationId);
    assert.equal(
      fake.instances().filter((i) => i.tags['flare:job'] === 'job-a').length,
      2,
      'the retried token launched nothing new',
    );

    const mismatch = await rejection(
      clients.ec2.send(new RunInstancesCommand(launchInput('job-a', { InstanceType: 'g5.2xlarge' }))),
    );
    assert.equal(mismatch.name, 'IdempotentParameterMismatch');

    const [call] = fake.calls({ service: 'ec2', action: 'RunInstances' });
    assert.equal(call.principal, PRINCIPAL);
    assert.equal(call.region, ARTIFACT_REGION);
    assert.equal(call.error, undefined);
    assert.deepEqual(call.resources, [
      `${ARN_PREFIX}:instance/*`,
      `${ARN_PREFIX}:launch-template/lt-0123456789abcdef0`,
      `${ARN_PREFIX}:subnet/subnet-0aaa`,
    ]);
    const params = call.params as {
      MinCount: string;
      ClientToken: string;
      TagSpecification: Array<{ ResourceType: string; Tag: Array<{ Key: string; Value: string }> }>;
    };
    assert.equal(params.MinCount, '2');
    assert.equal(params.ClientToken, 'job-a.0.0');
    assert.deepEqual(params.TagSpecification[0], {
      ResourceType: 'instance',
      Tag: [
        { Key: 'managed-by', Value: 'flare' },
        { Key: 'flare:job', Value: 'job-a' },
      ],
    });
    assert.equal(fake.calls({ error: 'IdempotentParameterMismatch' }).length, 1);
    assert.deepEqual(fake.tagsOf(`${ARN_PREFIX}:instance/${ids[0]}`), { 'managed-by': 'flare', 'flare:job': 'job-a' });
  });

  test('DescribeInstances filters by tag and state; TerminateInstances moves instances to shutting-down', async () => {
    const [id] = await launched('job-b');
    fake.setInstanceState(id, 'running');
    const live = {
      Filters: [
        { Name: 'tag:flare:job', Values: ['job-b'] },
        { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
      ],
    };
    const before = await clients.ec2.send(new DescribeInstancesCommand(live));
    assert.deepEqual(
      before.Reservations!.flatMap((r) => r.Instances!.map((i) => [i.InstanceId, i.State?.Name])),
      [[id, 'running']],
    );

    const terminated = await clients.ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
    assert.deepEqual(terminated.TerminatingInstances, [
      {
        InstanceId: id,
        CurrentState: { Code: 32, Name: 'shutting-down' },
        PreviousState: { Code: 16, Name: 'running' },
      },
    ]);
    const afterwards = await clients.ec2.send(new DescribeInstancesCommand(live));
    assert.deepEqual(afterwards.Reservations, []);
    const [call] = fake.calls({ action: 'TerminateInstances' });
    assert.deepEqual(call.resources, [`${ARN_PREFIX}:instance/${id}`]);
    assert.deepEqual(call.params, { InstanceId: [id] });
  });

  test('a vanished instance is InvalidInstanceID.NotFound for every call naming it', async () => {
    const [id] = await launched('job-c');
    const seen: string[] = [];
    fake.onInstanceStateChange = (instance) => seen.push(`${instance.instanceId}:${instance.state}`);
    fake.vanish(id);
    fake.onInstanceStateChange = undefined;
    assert.deepEqual(seen, [`${id}:terminated`], 'EC2 announces the end of an instance before it forgets it');
    assert.equal(fake.instance(id), undefined);
    assert.deepEqual(
      fake
        .instances({ vanished: true })
        .filter((i) => i.instanceId === id)
        .map((i) => i.state),
      ['terminated'],
    );
    const described = await rejection(clients.ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] })));
    assert.equal(described.name, 'InvalidInstanceID.NotFound');
    assert.match(described.message, new RegExp(id));
    assert.equal(described.$metadata?.httpStatusCode, 400);
    const terminate = await rejection(clients.ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] })));
    assert.equal(terminate.name, 'InvalidInstanceID.NotFound');
    const byTag = await clients.ec2.send(
      new DescribeInstancesCommand({ Filters: [{ Name: 'tag:flare:job', Values: ['job-c'] }] }),
    );
    assert.deepEqual(byTag.Reservations, []);
    assert.deepEqual(
      fake.tagsOf(`${ARN_PREFIX}:instance/${id}`)?.['flare:job'],
      'job-c',
      'a recorded call on it can still be checked against its tags',
    );
  });

  test('an action the fake does not model fails at once, naming it, and is recorded', async () => {
    const error = await rejection(clients.ec2.send(new DescribeVpcsCommand({})));
    assert.equal(error.name, 'InvalidAction');
    assert.match(error.message, /ec2:DescribeVpcs/);
    assert.equal(error.$metadata?.attempts, 1);
    const ssmError = await rejection(clients.ssm.send(new GetParameterCommand({ Name: '/x' })));
    assert.equal(ssmError.name, 'UnknownOperationException');
    assert.match(ssmError.message, /ssm:GetParameter/);
    assert.deepEqual(
      fake
        .calls({ error: true })
        .filter((c) => c.action === 'DescribeVpcs' || c.action === 'GetParameter')
        .map((c) => `${c.service}:${c.action}:${c.error}`),
      ['ec2:DescribeVpcs:InvalidAction', 'ssm:GetParameter:UnknownOperationException'],
    );
  });
});

describe('SSM', () => {
  test('an agent comes online when the test says so; SendCommand reaches only online instances', async () => {
    const [id] = await launched('job-d');
    const query = new DescribeInstanceInformationCommand({
      Filters: [{ Key: 'InstanceIds', Values: [id] }],
      MaxResults: 50,
    });
    assert.deepEqual((await clients.ssm.send(query)).InstanceInformationList, []);
    const offline = await rejection(
      clients.ssm.send(
        new SendCommandCommand({
          DocumentName: 'AWS-RunShellScript',
          InstanceIds: [id],
          Parameters: { commands: ['true'] },
        }),
      ),
    );
    assert.ok(offline instanceof InvalidInstanceId, `typed InvalidInstanceId, got ${offline.name}`);

    fake.agentOnline(id);
    const info = (await clients.ssm.send(query)).InstanceInformationList!;
    assert.deepEqual(
      info.map((i) => [i.InstanceId, i.PingStatus]),
      [[id, 'Online']],
    );
    assert.equal(fake.instance(id)?.state, 'running', 'an agent reports only from a running instance');

    const sent = await clients.ssm.send(
      new SendCommandCommand({
        DocumentName: 'AWS-RunShellScript',
        InstanceIds: [id],
        Comment: 'flare:job=job-d',
        Parameters: { commands: ['docker run x'], executionTimeout: ['172800'] },
      }),
    );
    const commandId = sent.Command!.CommandId!;
    assert.ok(sent.Command!.RequestedDateTime instanceof Date);
    const [recorded] = fake.commands().filter((c) => c.commandId === commandId);
    assert.deepEqual(recorded.parameters, { commands: ['docker run x'], executionTimeout: ['172800'] });
    const call = fake.calls({ service: 'ssm', action: 'SendCommand', error: false }).at(-1)!;
    assert.deepEqual(call.resources, [
      `arn:aws:ssm:${ARTIFACT_REGION}::document/AWS-RunShellScript`,
      `${ARN_PREFIX}:instance/${id}`,
    ]);

    const listed = await clients.ssm.send(
      new ListCommandsCommand({
        InstanceId: id,
        Filters: [{ key: 'DocumentName', value: 'AWS-RunShellScript' }],
        MaxResults: 50,
      }),
    );
    assert.deepEqual(
      listed.Commands!.map((c) => [c.CommandId, c.Comment, c.Status]),
      [[commandId, 'flare:job=job-d', 'InProgress']],
    );

    const running = await clients.ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: id }));
    assert.deepEqual([running.Status, running.ResponseCode, running.ExecutionEndDateTime], ['InProgress', -1, '']);
    fake.setInvocation(commandId, id, {
      status: 'TimedOut',
      statusDetails: 'DeliveryTimedOut',
      endedAt: new Date('2026-01-02T03:04:05.000Z'),
    });
    const timedOut = await clients.ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: id }));
    assert.deepEqual(
      [timedOut.Status, timedOut.StatusDetails, timedOut.ResponseCode, timedOut.ExecutionEndDateTime, timedOut.Comment],
      ['TimedOut', 'DeliveryTimedOut', -1, '2026-01-02T03:04:05.000Z', 'flare:job=job-d'],
    );

    fake.setInstanceState(id, 'shutting-down');
    assert.deepEqual(
      (await clients.ssm.send(query)).InstanceInformationList!.map((i) => i.PingStatus),
      ['ConnectionLost'],
    );
  });
});

describe('fault injection', () => {
  test('InsufficientInstanceCapacity for one instance type: the SDK throws it (after its own retries, as on AWS), other types launch', async () => {
    const capacity = fake.inject({
      service: 'ec2',
      action: 'RunInstances',
      code: 'InsufficientInstanceCapacity',
      when: (params) => params.InstanceType === 'p4d.24xlarge',
    });
    try {
      const error = await rejection(
        clients.ec2.send(
          new RunInstancesCommand(launchInput('job-g', { InstanceType: 'p4d.24xlarge', ClientToken: 'job-g.0.0' })),
        ),
      );
      assert.equal(error.name, 'InsufficientInstanceCapacity');
      assert.equal(error.$metadata?.httpStatusCode, 500);
      assert.equal(capacity.hits, error.$metadata?.attempts, 'every attempt the SDK made was refused');
      assert.equal(fake.calls({ action: 'RunInstances', error: 'InsufficientInstanceCapacity' }).length, capacity.hits);
      assert.equal(fake.instances().filter((i) => i.tags['flare:job'] === 'job-g').length, 0);

      const fallback = await clients.ec2.send(
        new RunInstancesCommand(launchInput('job-g', { InstanceType: 'p5.48xlarge', ClientToken: 'job-g.0.1' })),
      );
      assert.equal(fallback.Instances!.length, 2);
    } finally {
      capacity.remove();
    }
  });

  test('a throttle that clears: the SDK retries RequestLimitExceeded and gets through; both calls are recorded', async () => {
    fake.inject({ service: 'ec2', action: 'DescribeInstances', code: 'RequestLimitExceeded', times: 1 });
    const output = await clients.ec2.send(
      new DescribeInstancesCommand({ Filters: [{ Name: 'tag:flare:job', Values: ['job-a'] }] }),
    );
    assert.equal(output.$metadata.attempts, 2);
    assert.equal(output.Reservations![0].Instances!.length, 2);
    const [throttled, answered] = fake.calls({ action: 'DescribeInstances' }).slice(-2);
    assert.deepEqual([throttled.error, answered.error], ['RequestLimitExceeded', undefined]);
  });

  test('a JSON service fault carries its code and status: ThrottlingException on SendCommand', async () => {
    const throttle = fake.inject({
      service: 'ssm',
      action: 'SendCommand',
      code: 'ThrottlingException',
      message: 'Rate exceeded',
      status: 400,
    });
    try {
      const error = await rejection(
        clients.ssm.send(
          new SendCommandCommand({ DocumentName: 'AWS-RunShellScript', InstanceIds: ['i-0123456789abcdef0'] }),
        ),
      );
      assert.equal(error.name, 'ThrottlingException');
      assert.equal(error.message, 'Rate exceeded');
      assert.equal(error.$metadata?.httpStatusCode, 400);
      assert.ok(throttle.hits >= 1);
    } finally {
      throttle.remove();
    }
  });
});
