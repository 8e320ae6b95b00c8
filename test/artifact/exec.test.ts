/**
 * The deployed artifact runs `POST /v1/jobs/{id}/exec`: the bundled API, as
 * its own role, sends the exec script with Run Command to the running job's
 * instance, polls the invocation, and answers the command's code and output
 * from the script's report. The command's own status event reaches the bundled
 * compute-events function and is not taken for the job's end. Every recorded
 * call passes the IAM check against the synthesized policies.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { artifactPerFile } from './support/artifact.js';
import { assertCallsAllowed } from './support/iam-check.js';
import { alice, callsSince, getJob, submitUntilRunning, waitFor } from './support/scenario.js';

const deployed = artifactPerFile();

describe('artifact: exec in a running job', () => {
  it('sends the exec script as the API role, waits for the invocation and answers its code and output', async () => {
    const a = deployed();
    const job = await submitUntilRunning(a);
    const from = a.mark().calls;

    const answer = a.http.request('POST', `/v1/jobs/${job.id}/exec`, {
      caller: alice,
      body: { command: ['sh', '-c', 'echo out; echo err >&2; exit 3'] },
    });
    let answered: unknown;
    void answer.then((r) => (answered = r));
    const command = await waitFor('the exec command', () => {
      if (answered) throw new Error(`the API answered before sending: ${JSON.stringify(answered)}`);
      return a.fake.commands().find((c) => c.comment === `flare:exec=${job.id}`);
    });
    const [instanceId] = command.instanceIds;
    assert.deepEqual(command.instanceIds, (job as { instanceIds?: string[] }).instanceIds?.slice(0, 1));
    assert.match(command.parameters.commands![0]!, /^# Flare exec in job /m);
    assert.ok(!command.request.CloudWatchOutputConfig, 'exec output is not sent to the job log group');
    await a.compute.finishCommand(command.commandId, instanceId!, {
      status: 'Failed',
      responseCode: 3,
      stdout: 'out\n',
      stderr: 'flare-exec: code=3 timedOut=0 stdout=4 stderr=4\nerr\n',
    });
    const response = await answer;
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.deepEqual(response.body, {
      exitCode: 3,
      stdout: 'out\n',
      stderr: 'err\n',
      truncated: false,
      timedOut: false,
    });

    await a.settle();
    assert.equal((await getJob(a, job.id)).state, 'RUNNING', "the exec's end is not the job's");
    const sent = callsSince(a, from, 'SendCommand');
    assert.equal(sent.length, 1);
    assert.match(sent[0]!.principal, /^ApiRole/, 'sent by the API function, as its own role');
    await assertCallsAllowed(a.template, a.fake.calls(), a.fake.tagsOf);
  });
});
