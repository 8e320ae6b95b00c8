/**
 * The deployed artifact keeps a project's secrets and hands them to a job's
 * instance: the bundled API puts, lists and checks them in Secrets Manager
 * under its deployment's prefix; the bundled tasks function copies a starting
 * job's values into a secret tagged with its instance's ARN and sends an SSM
 * command without a value; the copy is deleted when the job ends; served logs
 * show the value as ***. Every recorded call is allowed by the template's
 * policies (the IAM check), and by the IAM simulation the instance that was
 * launched, and no other, may read its copy.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { artifactPerFile } from './support/artifact.js';
import { assertCallsAllowed, rolePolicies } from './support/iam-check.js';
import { alice, callsSince, setUpCatalog, submit, tasksEnvironment, waitForState } from './support/scenario.js';
import { ARTIFACT_ACCOUNT } from './support/types.js';

const deployed = artifactPerFile();
const VALUE = 'sk-artifact-5e4d3c2b1a09';

describe('artifact: a job with a project secret', () => {
  it('gets the value only through its own instance, never in the command, the job or the served logs', async () => {
    const a = deployed();
    await setUpCatalog(a);
    const { deployment, logGroup } = tasksEnvironment(a);
    const put = await a.http.request('PUT', '/v1/projects/vision/secrets/openai-key', {
      caller: alice,
      body: { value: VALUE },
    });
    assert.equal(put.status, 204, JSON.stringify(put.body));
    const listed = await a.http.request('GET', '/v1/projects/vision/secrets', { caller: alice });
    assert.deepEqual(
      (listed.body as { items: { name: string }[] }).items.map((s) => s.name),
      ['openai-key'],
    );
    assert.ok(!JSON.stringify(listed.body).includes(VALUE));
    const [stored] = a.fake.secretsNamed(`flare/${deployment}/projects/vision/`);
    assert.equal(stored?.name, `flare/${deployment}/projects/vision/openai-key`);
    assert.deepEqual(stored?.tags, { 'flare:deployment': deployment, 'flare:project': 'vision' });

    const missing = await a.http.request('POST', '/v1/jobs', {
      caller: alice,
      body: { template: 'train', secrets: { HF_TOKEN: 'hf-token' } },
    });
    assert.equal(missing.status, 400);

    const from = a.mark().calls;
    const job = await submit(a, { template: 'train', secrets: { OPENAI_API_KEY: 'openai-key' } });
    const running = await waitForState(a, job.id, ['RUNNING', 'FAILED']);
    assert.equal(running.state, 'RUNNING', running.stateReason);

    const [sent] = callsSince(a, from, 'SendCommand', job.id);
    assert.ok(sent, 'the container was started');
    assert.ok(!JSON.stringify(sent.params).includes(VALUE), 'the SSM command carries no value');
    const [instanceId] = sent.params.InstanceIds as string[];
    const instanceArn = `arn:aws:ec2:${sent.region}:${ARTIFACT_ACCOUNT}:instance/${instanceId}`;
    const [copy] = a.fake.secretsNamed(`flare/${deployment}/jobs/${job.id}/`);
    assert.equal(copy?.name, `flare/${deployment}/jobs/${job.id}/${instanceId}`);
    assert.deepEqual(JSON.parse(copy!.value), { OPENAI_API_KEY: VALUE });
    assert.equal(copy?.tags?.['flare:instance'], instanceArn);

    // By the IAM simulation of the template's instance role: that instance reads its copy, another does not.
    const instanceRole = [...rolePolicies(a.template).values()].find((r) => r.role.startsWith('ComputeInstanceRole'))!;
    const mayRead = async (source: string) => {
      const result = await runSimulation(
        {
          request: {
            principal: instanceRole.roleArn,
            action: 'secretsmanager:GetSecretValue',
            resource: { resource: copy!.arn, accountId: ARTIFACT_ACCOUNT },
            contextVariables: { 'ec2:SourceInstanceARN': source, 'aws:ResourceTag/flare:instance': instanceArn },
          },
          identityPolicies: instanceRole.identityPolicies,
          serviceControlPolicies: [],
          resourceControlPolicies: [],
        },
        {},
      );
      if (result.resultType === 'error') throw new Error(JSON.stringify(result.errors));
      return result.overallResult;
    };
    assert.equal(await mayRead(instanceArn), 'Allowed');
    assert.equal(await mayRead(instanceArn.replace(instanceId, 'i-0ffffffffffffffff')), 'ImplicitlyDenied');

    a.fake.putLogLines(logGroup, job.id, [`key=${VALUE} step 1`]);
    const logs = await a.http.request('GET', `/v1/jobs/${job.id}/logs`, { caller: alice });
    assert.equal(logs.status, 200, JSON.stringify(logs.body));
    assert.deepEqual(
      (logs.body as { lines: { message: string }[] }).lines.map((l) => l.message),
      ['key=*** step 1'],
    );

    const [command] = a.fake.commands().filter((c) => c.comment === `flare:job=${job.id}`);
    await a.compute.finishCommand(command.commandId, instanceId, { status: 'Success', responseCode: 0 });
    const done = await waitForState(a, job.id, ['SUCCEEDED', 'FAILED', 'EXPIRED']);
    assert.equal(done.state, 'SUCCEEDED', done.stateReason);
    await a.settle();
    assert.deepEqual(done.secrets, { OPENAI_API_KEY: 'openai-key' });
    assert.ok(!JSON.stringify(done).includes(VALUE), 'the job record holds the name only');
    assert.deepEqual(a.fake.secretsNamed(`flare/${deployment}/jobs/${job.id}/`), [], 'the copy is deleted');

    const removed = await a.http.request('DELETE', '/v1/projects/vision/secrets/openai-key', { caller: alice });
    assert.equal(removed.status, 204);
    await assertCallsAllowed(a.template, a.fake.calls(), a.fake.tagsOf);
  });
});
