/** Reading IAM out of a synthesized template: every policy statement, and what one function's role may do. */
import type { FlareStack } from '../../lib/flare-stack.js';
import type { FlareFunction } from '../../lib/lambda-defaults.js';
import { logicalId, type Resources } from './cdk-synth.js';

/** Every policy statement in the template, with the policy's logical id. */
export function statements(resources: Resources): { policy: string; statement: any }[] {
  return Object.entries(resources)
    .filter(([, r]) => r.Type === 'AWS::IAM::Policy')
    .flatMap(([id, r]) =>
      (r.Properties.PolicyDocument.Statement as any[]).map((statement) => ({ policy: id, statement })),
    );
}

export const actionsOf = (statement: any): string[] => [statement.Action].flat();

/** The statements of every policy attached to this function's role. */
export function statementsOf(stack: FlareStack, resources: Resources, fn: FlareFunction): any[] {
  const role = logicalId(stack, fn.role);
  return statements(resources)
    .filter(({ policy }) => (resources[policy].Properties.Roles as any[]).some((r) => r.Ref === role))
    .map(({ statement }) => statement);
}

/** Every action a function's role may take, each with the resources it may take it on (JSON). */
export function grantsOf(stack: FlareStack, resources: Resources, fn: FlareFunction): Map<string, string[]> {
  const grants = new Map<string, string[]>();
  for (const statement of statementsOf(stack, resources, fn)) {
    for (const action of actionsOf(statement)) {
      grants.set(action, [...(grants.get(action) ?? []), ...[statement.Resource].flat().map((r) => JSON.stringify(r))]);
    }
  }
  return grants;
}

/** What every Flare function's role has whatever it does: its own logs and X-Ray. */
export const BASELINE_ACTIONS = [
  'logs:CreateLogStream',
  'logs:PutLogEvents',
  'xray:PutTraceSegments',
  'xray:PutTelemetryRecords',
];
