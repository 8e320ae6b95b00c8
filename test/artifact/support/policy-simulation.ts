/**
 * The synthesized FlareStack's roles without its bundles (each handler a stub,
 * bundling skipped: only the policies matter), and iam-simulate's verdict on one
 * request of one of them: for the tests that prove who may do what by the IAM
 * simulation alone (secrets-iam, outputs-iam).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { FlareStack, HANDLER_ENTRIES, type HandlerKey } from '../../../lib/flare-stack.js';
import { REPO_ROOT } from '../../../lib/lambda-defaults.js';
import type { CfnTemplate } from './cfn-resolve.js';
import { rolePolicies, type RolePolicies } from './iam-check.js';
import { ARTIFACT_ACCOUNT } from './types.js';

export interface StackPolicies {
  template: CfnTemplate;
  /** The one role whose logical id starts with `prefix` (`TasksRole`, `ComputeInstanceRole`). */
  role(prefix: string): RolePolicies;
}

export function stackPolicies(): StackPolicies {
  mkdirSync(path.join(REPO_ROOT, '.cache'), { recursive: true });
  const scratch = mkdtempSync(path.join(REPO_ROOT, '.cache', 'policies-'));
  try {
    const handlerEntries: { [K in HandlerKey]?: string } = {};
    for (const key of Object.keys(HANDLER_ENTRIES) as HandlerKey[]) {
      handlerEntries[key] = path.join(scratch, `${key}.ts`);
      writeFileSync(handlerEntries[key]!, 'export const handler = async (event: unknown) => event;\n');
    }
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const template = Template.fromStack(new FlareStack(app, 'FlareStack', { handlerEntries })).toJSON() as CfnTemplate;
    const roles = rolePolicies(template);
    return {
      template,
      role(prefix) {
        const found = [...roles.values()].filter((r) => r.role.startsWith(prefix));
        assert.equal(found.length, 1, `one role named ${prefix}*`);
        return found[0]!;
      },
    };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** `Allowed`, `ImplicitlyDenied` or `ExplicitlyDenied`: what IAM answers `who` for one request. */
export async function decide(
  who: RolePolicies,
  action: string,
  resource: string,
  context: Record<string, string> = {},
): Promise<string> {
  const result = await runSimulation(
    {
      request: {
        principal: who.roleArn,
        action,
        resource: { resource, accountId: ARTIFACT_ACCOUNT },
        contextVariables: context,
      },
      identityPolicies: who.identityPolicies,
      serviceControlPolicies: [],
      resourceControlPolicies: [],
    },
    {},
  );
  if (result.resultType === 'error') throw new Error(JSON.stringify(result.errors));
  return result.overallResult;
}
