/**
 * The EC2 client's retries, over real HTTP: EC2 answers InsufficientInstanceCapacity
 * with a server error, which the SDK would resend to the same subnet; Flare's
 * strategy hands it straight back to the launch loop, and keeps retrying
 * throttling. The local AWS fake answers in EC2's own wire format.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { CapacityFailsFast, EC2_MAX_ATTEMPTS } from '../../lambdas/adapters/ec2-retry.js';
import { startAwsFake, type AwsFake } from '../artifact/support/aws-fake.js';

describe('EC2 retries (CapacityFailsFast)', () => {
  let fake: AwsFake;
  let ec2: EC2Client;
  before(async () => {
    fake = await startAwsFake();
    ec2 = new EC2Client({
      region: 'us-east-1',
      endpoint: fake.endpoints().AWS_ENDPOINT_URL_EC2,
      credentials: { accessKeyId: 'TasksRole', secretAccessKey: 'x' },
      retryStrategy: new CapacityFailsFast(),
    });
  });
  after(async () => {
    ec2.destroy();
    await fake.close();
  });

  const launch = (token: string) =>
    ec2.send(
      new RunInstancesCommand({
        MinCount: 1,
        MaxCount: 1,
        InstanceType: 'g5.xlarge',
        LaunchTemplate: { LaunchTemplateId: 'lt-0123456789abcdef0' },
        ClientToken: token,
      }),
    );

  it('sends a RunInstances that met no capacity once, and throws the EC2 error itself', async () => {
    const fault = fake.inject({
      service: 'ec2',
      action: 'RunInstances',
      code: 'InsufficientInstanceCapacity',
      message: 'We currently do not have sufficient g5.xlarge capacity.',
    });
    await assert.rejects(launch('job-1.0.0'), (error: Error) => error.name === 'InsufficientInstanceCapacity');
    fault.remove();
    assert.equal(fault.hits, 1, 'not resent to the subnet that just refused it');
  });

  it('still retries throttling, with the same client token, until it goes through', async () => {
    const fault = fake.inject({
      service: 'ec2',
      action: 'RunInstances',
      code: 'RequestLimitExceeded',
      message: 'Request limit exceeded.',
      times: EC2_MAX_ATTEMPTS - 1,
    });
    const launched = await launch('job-2.0.0');
    assert.equal(launched.Instances?.length, 1);
    assert.equal(fault.hits, EC2_MAX_ATTEMPTS - 1);
    const sent = fake
      .calls({ service: 'ec2', action: 'RunInstances' })
      .filter((c) => c.params.ClientToken === 'job-2.0.0');
    assert.equal(sent.length, EC2_MAX_ATTEMPTS);
  });
});
