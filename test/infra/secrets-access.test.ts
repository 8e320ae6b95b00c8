/**
 * Project secrets on AWS, in the synthesized stack: the API's role may create,
 * change, describe, delete and read (to mask logs) only its deployment's
 * project secrets, and list (no resource-level permission); no other role gets
 * any of them; cdk-nag has nothing unacknowledged on the policy.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { AwsSolutionsChecks } from 'cdk-nag';
import { actionsOf, statements } from '../support/cdk-policies.js';
import { logicalId, render, synthStack, type SynthesizedStack } from '../support/cdk-synth.js';

let synth: SynthesizedStack;
before(() => {
  synth = synthStack();
});

const PROJECTS =
  'arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:flare/FlareStack/projects/*';

describe('project secrets in the stack', () => {
  it("lets the API role touch only this deployment's project secrets, and list", () => {
    const { stack, resources } = synth;
    const apiRole = logicalId(stack, stack.api.role);
    const secretStatements = statements(resources).filter(({ statement }) =>
      actionsOf(statement).some((a) => a.startsWith('secretsmanager:')),
    );
    const ofApi = secretStatements.filter(({ policy }) =>
      JSON.stringify(resources[policy].Properties.Roles).includes(apiRole),
    );
    const grants = ofApi.map(({ statement }) => [actionsOf(statement).sort(), [statement.Resource].flat().map(render)]);
    assert.deepEqual(grants, [
      [
        [
          'secretsmanager:CreateSecret',
          'secretsmanager:DeleteSecret',
          'secretsmanager:DescribeSecret',
          'secretsmanager:GetSecretValue',
          'secretsmanager:PutSecretValue',
          'secretsmanager:TagResource',
        ],
        [PROJECTS],
      ],
      [['secretsmanager:ListSecrets'], ['*']],
    ]);
    // Besides the API, only the tasks read project secrets (to copy a starting job's values); the notifier reads
    // its webhook secrets by their own ARNs.
    const tasksRole = logicalId(stack, stack.tasks.role);
    for (const { policy, statement } of secretStatements.filter((s) => !ofApi.includes(s))) {
      if (!JSON.stringify(statement.Resource).includes('projects/')) continue;
      assert.ok(JSON.stringify(resources[policy].Properties.Roles).includes(tasksRole), JSON.stringify(statement));
      assert.deepEqual(actionsOf(statement), ['secretsmanager:GetSecretValue']);
    }
  });

  it('lets the tasks write the per-instance copies, and an instance read only the copy tagged with its own ARN', () => {
    const { stack, resources } = synth;
    const grantsOfRole = (role: string) =>
      statements(resources)
        .filter(({ policy }) => JSON.stringify(resources[policy].Properties.Roles).includes(role))
        .map(({ statement }) => statement)
        .filter((statement) => actionsOf(statement).some((a) => a.startsWith('secretsmanager:')));
    const JOBS = PROJECTS.replace('projects/*', 'jobs/*');
    assert.deepEqual(
      grantsOfRole(logicalId(stack, stack.tasks.role)).map((st) => [
        actionsOf(st).sort(),
        [st.Resource].flat().map(render),
      ]),
      [
        [['secretsmanager:GetSecretValue'], [PROJECTS]],
        [
          [
            'secretsmanager:CreateSecret',
            'secretsmanager:DeleteSecret',
            'secretsmanager:PutSecretValue',
            'secretsmanager:TagResource',
          ],
          [JOBS],
        ],
      ],
    );
    const instance = grantsOfRole(logicalId(stack, stack.compute.instanceRole));
    assert.deepEqual(
      instance.map((st) => [actionsOf(st), [st.Resource].flat().map(render), st.Condition]),
      [
        [
          ['secretsmanager:GetSecretValue'],
          [JOBS],
          { StringEquals: { 'aws:ResourceTag/flare:instance': '${ec2:SourceInstanceARN}' } },
        ],
      ],
    );
  });

  it('leaves cdk-nag nothing unacknowledged on the policy', () => {
    const report = new AwsSolutionsChecks().validateScope(synth.app);
    const mine = report.violations.filter((v) =>
      v.violatingResources.some((r) =>
        /ProjectSecretsPolicy|JobSecretCopiesPolicy|OwnJobSecretsPolicy/.test(r.constructPath ?? ''),
      ),
    );
    assert.deepEqual(mine, []);
  });
});
