/**
 * The operations dashboard (lib/dashboard.ts): it graphs the figures the functions write as EMF, by the
 * names, namespace and dimensions they write them with (test/unit/powertools.test.ts reads those off
 * stdout), beside the state of every alarm of the stack; and the functions are told the same namespace.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { FLARE_METRICS_NAMESPACE } from '../../lib/dashboard.js';
import type { FlareStack } from '../../lib/flare-stack.js';
import { METRIC } from '../../contract/metrics.js';
import { logicalId, removeStandIns, synthApp } from '../support/cdk-synth.js';

/** A Fn::Join body as text, every token written as its JSON (a Ref, a GetAtt). */
function bodyText(body: unknown): string {
  if (typeof body === 'string') return body;
  const [separator, parts] = (body as { 'Fn::Join': [string, unknown[]] })['Fn::Join'];
  return parts.map((part) => (typeof part === 'string' ? part : JSON.stringify(part))).join(separator);
}

describe('FlareDashboard in FlareStack', () => {
  let stack: FlareStack;
  let template: Template;
  let body: string;
  before(() => {
    [stack] = synthApp().stacks;
    template = Template.fromStack(stack);
    const dashboards = template.findResources('AWS::CloudWatch::Dashboard');
    assert.equal(Object.keys(dashboards).length, 1);
    body = bodyText(Object.values(dashboards)[0].Properties.DashboardBody);
  });
  after(removeStandIns);

  it('is named after the stack and graphs every figure core writes, in its namespace', () => {
    template.hasResourceProperties('AWS::CloudWatch::Dashboard', {
      DashboardName: 'FlareStack-flare',
      DashboardBody: Match.anyValue(),
    });
    for (const name of Object.values(METRIC))
      assert.ok(body.includes(`"${name}"`) || body.includes(`MetricName=\\"${name}\\"`), `dashboard lacks ${name}`);
    assert.ok(
      body.includes(`["${FLARE_METRICS_NAMESPACE}","${METRIC.admissions}","deployment","FlareStack","service","flare"`),
      'Admissions is not graphed by service and deployment',
    );
    assert.match(
      body,
      /SEARCH\('\{Flare,deployment,reason,service\} MetricName=\\"LaunchFailures\\" deployment=\\"FlareStack\\"'/,
    );
  });

  it('shows the state of every alarm of the stack', () => {
    assert.ok(stack.alarms.alarms.length > 0);
    for (const alarm of stack.alarms.alarms) {
      assert.ok(
        body.includes(JSON.stringify({ 'Fn::GetAtt': [logicalId(stack, alarm), 'Arn'] })),
        `dashboard lacks alarm ${alarm.node.path}`,
      );
    }
  });

  it('the functions that write the figures are told the namespace', () => {
    for (const fn of [stack.api, stack.tasks]) {
      template.hasResourceProperties('AWS::Lambda::Function', {
        FunctionName: Match.absent(),
        Role: { 'Fn::GetAtt': [logicalId(stack, fn.role), 'Arn'] },
        Environment: { Variables: Match.objectLike({ POWERTOOLS_METRICS_NAMESPACE: FLARE_METRICS_NAMESPACE }) },
      });
    }
  });
});
