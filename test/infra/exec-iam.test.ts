/**
 * POST /v1/jobs/{id}/exec on AWS (lambdas/adapters/ssm-exec.ts): the API
 * function may send AWS-RunShellScript to this deployment's instances only,
 * and read the invocation back; it gets no other SSM or EC2 power.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { removeStandIns, synthStack, type SynthesizedStack } from '../support/cdk-synth.js';
import { actionsOf, statementsOf } from '../support/cdk-policies.js';

let synth: SynthesizedStack;
before(() => {
  synth = synthStack();
});
after(() => removeStandIns());

describe('the API function and Run Command', () => {
  it("may SendCommand only AWS-RunShellScript, only to instances tagged as this deployment's, and read the result", () => {
    const { stack, resources } = synth;
    const mine = statementsOf(stack, resources, stack.api);
    const send = mine.filter((s) => actionsOf(s).includes('ssm:SendCommand'));
    assert.equal(send.length, 2, JSON.stringify(send));
    const onInstances = send.find((s) => JSON.stringify(s.Resource).includes(':instance/*'));
    assert.deepEqual(onInstances?.Condition, {
      StringEquals: { 'aws:ResourceTag/managed-by': 'flare', 'aws:ResourceTag/flare:deployment': stack.stackName },
    });
    const onDocument = send.find((s) => s !== onInstances);
    assert.match(JSON.stringify(onDocument?.Resource), /:document\/AWS-RunShellScript"/);
    assert.deepEqual(
      mine.filter((s) => actionsOf(s).includes('ssm:GetCommandInvocation')).map((s) => actionsOf(s)),
      [['ssm:GetCommandInvocation']],
    );
    const ssmOrEc2 = new Set(mine.flatMap(actionsOf).filter((a) => /^(ssm|ec2):/.test(a)));
    assert.deepEqual([...ssmOrEc2].sort(), ['ssm:GetCommandInvocation', 'ssm:SendCommand']);
  });
});
