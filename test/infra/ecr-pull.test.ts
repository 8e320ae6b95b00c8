/**
 * Private images from Amazon ECR, on the infrastructure side: the job
 * instances' role may log docker in (ecr:GetAuthorizationToken, which takes no
 * resource) and pull only from the repositories `flare:ecrRepositories` names
 * (default: every repository of the account in the stack's region), with
 * cdk-nag clean; the setting is checked by key; the stack hands it to the
 * role. Also here: the SSM rule forwards every command status compute-events
 * acts on.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { App, type Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { FlareStack } from '../../lib/flare-stack.js';
import { InvalidSetting, readSettings } from '../../lib/settings.js';
import { COMMAND_ABORTED, FINAL_COMMAND_STATUSES } from '../../contract/compute-events.js';
import { computeStack } from '../support/cdk-synth.js';

const PULL_ACTIONS = ['ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer', 'ecr:BatchCheckLayerAvailability'];
const repositoryArn = (name: string) => ({
  'Fn::Join': [
    '',
    [
      'arn:',
      { Ref: 'AWS::Partition' },
      ':ecr:',
      { Ref: 'AWS::Region' },
      ':',
      { Ref: 'AWS::AccountId' },
      `:repository/${name}`,
    ],
  ],
});

function compute(ecrRepositories?: readonly string[]): { app: App; stack: Stack; role: string; template: Template } {
  const { app, stack, compute: flare } = computeStack({ ecrRepositories });
  return {
    app,
    stack,
    role: stack.getLogicalId(flare.instanceRole.node.defaultChild as never),
    template: Template.fromStack(stack),
  };
}

/** The instance role's own statements (its default policy). */
function roleStatements(template: Template, role: string): any[] {
  return Object.values(template.findResources('AWS::IAM::Policy', { Properties: { Roles: [{ Ref: role }] } })).flatMap(
    (p: any) => p.Properties.PolicyDocument.Statement,
  );
}

/** A template value as CloudFormation would make it in account 123456789012, eu-west-1. */
function resolve(value: any): string {
  const pseudo: Record<string, string> = {
    'AWS::Partition': 'aws',
    'AWS::Region': 'eu-west-1',
    'AWS::AccountId': '123456789012',
  };
  if (typeof value === 'string') return value;
  if (value?.Ref && pseudo[value.Ref]) return pseudo[value.Ref];
  if (value?.['Fn::Join']) return value['Fn::Join'][1].map(resolve).join(value['Fn::Join'][0]);
  throw new Error(`cannot resolve ${JSON.stringify(value)}`);
}

/** cdk-nag findings on the compute construct (the bare VPC around it is not Flare's). */
function nagFindings(app: App): string[] {
  const report = new AwsSolutionsChecks().validateScope(app);
  return report.violations.flatMap((v) =>
    v.violatingResources
      .filter((r) => (r.constructPath ?? '').startsWith('Compute/Compute/'))
      .map((r) => `${v.ruleName}: ${r.constructPath}`),
  );
}

describe('the instance role reads ECR', () => {
  it("by default: logs in, and pulls from every repository of the account in the stack's region; cdk-nag clean", () => {
    const { app, role, template } = compute();
    template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: role }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          { Sid: 'EcrLogin', Effect: 'Allow', Action: 'ecr:GetAuthorizationToken', Resource: '*' },
          { Sid: 'EcrPullFromListedRepositories', Effect: 'Allow', Action: PULL_ACTIONS, Resource: repositoryArn('*') },
        ]),
      },
    });
    const ecr = roleStatements(template, role).filter((s) => JSON.stringify(s.Action).includes('ecr:'));
    assert.equal(ecr.length, 2, 'login and pull, nothing else of ECR (no push, no delete)');
    assert.deepEqual(nagFindings(app), []);
  });

  it('scoped to the repositories flare:ecrRepositories names: names in this account and region, ARNs as given, wildcards acknowledged', () => {
    const other = 'arn:aws:ecr:us-east-1:210987654321:repository/shared/base';
    const { app, role, template } = compute(['team/trainer', 'vision/*', other]);
    template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: role }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          {
            Sid: 'EcrPullFromListedRepositories',
            Effect: 'Allow',
            Action: PULL_ACTIONS,
            Resource: [repositoryArn('team/trainer'), repositoryArn('vision/*'), other],
          },
        ]),
      },
    });
    assert.deepEqual(nagFindings(app), []);
  });

  it('not at all with an empty list', () => {
    const { app, role, template } = compute([]);
    assert.deepEqual(
      roleStatements(template, role).filter((s) => JSON.stringify(s.Action).includes('ecr:')),
      [],
    );
    assert.deepEqual(nagFindings(app), []);
  });

  it('as the stack is told: flare:ecrRepositories reaches the instance role', () => {
    const app = new App({
      context: { 'aws:cdk:bundling-stacks': [], 'flare:ecrRepositories': 'team/trainer,team/eval' },
    });
    const stack = new FlareStack(app, 'FlareStack');
    const role = stack.getLogicalId(stack.compute.instanceRole.node.defaultChild as never);
    const template = Template.fromStack(stack);
    const pull = roleStatements(template, role).find((s) => s.Sid === 'EcrPullFromListedRepositories');
    assert.deepEqual(pull?.Resource, [repositoryArn('team/trainer'), repositoryArn('team/eval')]);
    // The API refuses catalog images outside them: it gets the same ARNs, resolved at deploy.
    const api = template.toJSON().Resources[stack.getLogicalId(stack.api.function.node.defaultChild as never)];
    assert.deepEqual(JSON.parse(resolve(api.Properties.Environment.Variables.ECR_REPOSITORIES)), [
      'arn:aws:ecr:eu-west-1:123456789012:repository/team/trainer',
      'arn:aws:ecr:eu-west-1:123456789012:repository/team/eval',
    ]);
  });
});

describe('flare:ecrRepositories', () => {
  const read = (value: unknown) =>
    readSettings(new App({ context: { 'flare:ecrRepositories': value } })).ecrRepositories;

  it('takes names, prefixes and ARNs, as an array, JSON or comma-separated; absent means the default', () => {
    assert.equal(readSettings(new App()).ecrRepositories, undefined);
    assert.deepEqual(read(['team/trainer', 'team/*', '*']), ['team/trainer', 'team/*', '*']);
    assert.deepEqual(read('a-b.c_d, x/y'), ['a-b.c_d', 'x/y']);
    assert.deepEqual(read('["arn:aws-cn:ecr:cn-north-1:210987654321:repository/base"]'), [
      'arn:aws-cn:ecr:cn-north-1:210987654321:repository/base',
    ]);
    assert.deepEqual(read([]), []);
  });

  for (const [what, value, key] of [
    ['an uppercase name', ['Team/Trainer'], 'flare:ecrRepositories[0]'],
    ['a name with shell syntax', ['ok', 'x;rm -rf'], 'flare:ecrRepositories[1]'],
    ['an ARN of another service', ['arn:aws:s3:::bucket'], 'flare:ecrRepositories[0]'],
    ['an ARN without an account', ['arn:aws:ecr:eu-west-1::repository/x'], 'flare:ecrRepositories[0]'],
    ['a repeated repository', ['x', 'x'], 'flare:ecrRepositories'],
    ['a number', 5, 'flare:ecrRepositories'],
  ] as const) {
    it(`refuses ${what}, naming the key`, () => {
      assert.throws(
        () => read(value),
        (error: unknown) => error instanceof InvalidSetting && error.key === key,
      );
    });
  }
});

it('the SSM command rule forwards every status compute-events acts on', () => {
  const forwarded: readonly string[] = FINAL_COMMAND_STATUSES;
  assert.deepEqual(
    [...COMMAND_ABORTED, 'Success', 'Failed'].filter((s) => !forwarded.includes(s)),
    [],
  );
});
