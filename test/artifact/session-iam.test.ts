/**
 * Who may open a shell or a port forward on a job's instance on AWS: the
 * researchers' policy exactly as docs/operations.md gives it ("Shells and port
 * forwarding on AWS"), judged by the IAM simulation (@cloud-copilot/iam-simulate)
 * against instances tagged as the EC2 adapter tags them (jobTags). The job's
 * owner may, with the stack's own (logged) session documents only; not with
 * the account's default document nor AWS's; another member of its project, a
 * principal without its `flare-user` tag and any instance of another deployment
 * may not; the admins' variant (without the owner condition) may on any Flare
 * instance of the stack.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { runSimulation, runUnsafeSimulation } from '@cloud-copilot/iam-simulate';
import { jobTags } from '../../lambdas/adapters/ec2-instances.js';
import { launchingJob } from '../support/jobs.js';
import { ARTIFACT_ACCOUNT, ARTIFACT_REGION } from './support/types.js';

type Statement = { Sid: string; Condition?: { StringEquals?: Record<string, string> } } & Record<string, unknown>;

/** The first JSON block after the section's heading, with the deployment's region and account filled in. */
function documentedPolicy(): { Version: string; Statement: Statement[] } {
  const doc = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('## Shells and port forwarding on AWS'));
  const json = /```json\n([\s\S]*?)\n```/.exec(section)![1]!;
  return JSON.parse(json.replaceAll('REGION', ARTIFACT_REGION).replaceAll('ACCOUNT', ARTIFACT_ACCOUNT));
}

/** The admins' variant: the same policy without the owner condition. */
function adminPolicy(): { Version: string; Statement: Statement[] } {
  const policy = documentedPolicy();
  for (const statement of policy.Statement) delete statement.Condition?.StringEquals?.['ssm:resourceTag/flare:owner'];
  return policy;
}

const INSTANCE = `arn:aws:ec2:${ARTIFACT_REGION}:${ARTIFACT_ACCOUNT}:instance/i-0aaaaaaaaaaaaaaa1`;
/** The stack's documents (lib/session-documents.ts): the synthesized test stack is FlareStack too. */
const SHELL = `arn:aws:ssm:${ARTIFACT_REGION}:${ARTIFACT_ACCOUNT}:document/FlareStack-JobShell`;
const PORT_FORWARD = `arn:aws:ssm:${ARTIFACT_REGION}:${ARTIFACT_ACCOUNT}:document/FlareStack-JobPortForward`;
/** What a session without --document-name gets: the account's default, logged only if its preferences say so. */
const DEFAULT_SHELL = `arn:aws:ssm:${ARTIFACT_REGION}:${ARTIFACT_ACCOUNT}:document/SSM-SessionManagerRunShell`;
const AWS_DOCUMENTS = [
  `arn:aws:ssm:${ARTIFACT_REGION}::document/AWS-StartInteractiveCommand`,
  `arn:aws:ssm:${ARTIFACT_REGION}::document/AWS-StartPortForwardingSessionToRemoteHost`,
];
/** Set on StartSession when the request names its document, so that IAM checks the document too. */
const NAMED_DOCUMENT = { 'ssm:SessionDocumentAccessCheck': 'true' };

/** The instance's tags as `ssm:resourceTag/<key>` context: what IAM sees of the job's instance. */
function instanceOf(owner: string, deployment = 'FlareStack'): Record<string, string> {
  const tags = jobTags(launchingJob({ owner }), '2030-01-01T01:00:00.000Z', deployment);
  return Object.fromEntries(tags.map((t) => [`ssm:resourceTag/${t.Key}`, t.Value!]));
}

async function decide(
  policy: unknown,
  resource: string,
  context: Record<string, string>,
  principalTags: Record<string, string> = {},
): Promise<string> {
  const simulation = {
    request: {
      principal: `arn:aws:iam::${ARTIFACT_ACCOUNT}:role/researcher`,
      action: 'ssm:StartSession',
      resource: { resource, accountId: ARTIFACT_ACCOUNT },
      contextVariables: {
        ...context,
        ...Object.fromEntries(Object.entries(principalTags).map(([k, v]) => [`aws:PrincipalTag/${k}`, v])),
      },
    },
    identityPolicies: [{ name: 'researcher', policy }],
    serviceControlPolicies: [],
    resourceControlPolicies: [],
  };
  // AWS's own documents have no account in their ARN, which iam-simulate's reference always has.
  if (resource.includes('::document/')) return runUnsafeSimulation(simulation, {});
  const result = await runSimulation(simulation, {});
  if (result.resultType === 'error') throw new Error(JSON.stringify(result.errors));
  return result.overallResult;
}

describe('sessions into jobs on AWS, by the documented policy and the IAM simulation', () => {
  it("tags each instance with its job's owner", () => {
    assert.equal(instanceOf('alice')['ssm:resourceTag/flare:owner'], 'alice');
  });

  it("lets the job's owner start a session on its instance, and no other member of its project", async () => {
    const policy = documentedPolicy();
    const alicesJob = { ...instanceOf('alice'), ...NAMED_DOCUMENT };
    assert.equal(await decide(policy, INSTANCE, alicesJob, { 'flare-user': 'alice' }), 'Allowed');
    assert.equal(await decide(policy, SHELL, NAMED_DOCUMENT, { 'flare-user': 'alice' }), 'Allowed');
    assert.equal(await decide(policy, PORT_FORWARD, NAMED_DOCUMENT, { 'flare-user': 'alice' }), 'Allowed');
    assert.equal(await decide(policy, INSTANCE, alicesJob, { 'flare-user': 'bob' }), 'ImplicitlyDenied');
    assert.equal(await decide(policy, INSTANCE, alicesJob), 'ImplicitlyDenied', 'no flare-user tag: no session');
    assert.equal(
      await decide(policy, INSTANCE, instanceOf('alice', 'OtherStack'), { 'flare-user': 'alice' }),
      'ImplicitlyDenied',
      "another deployment's instance",
    );
  });

  it("refuses the owner a session with the default document or AWS's, which the stack does not log", async () => {
    const policy = documentedPolicy();
    const owner = { 'flare-user': 'alice' };
    // No --document-name: the request carries no document check, and the instance statement needs it.
    assert.equal(await decide(policy, INSTANCE, instanceOf('alice'), owner), 'ImplicitlyDenied', 'default document');
    assert.equal(
      await decide(policy, INSTANCE, { ...instanceOf('alice'), 'ssm:SessionDocumentAccessCheck': 'false' }, owner),
      'ImplicitlyDenied',
    );
    // A named document that is not the stack's: the document itself is refused.
    assert.equal(await decide(policy, DEFAULT_SHELL, NAMED_DOCUMENT, owner), 'ImplicitlyDenied', DEFAULT_SHELL);
    for (const document of AWS_DOCUMENTS)
      assert.equal(await decide(policy, document, NAMED_DOCUMENT, owner), 'ImplicitlyDenied', document);
    const otherStacks = SHELL.replace('FlareStack-', 'OtherStack-');
    assert.equal(await decide(policy, otherStacks, NAMED_DOCUMENT, owner), 'ImplicitlyDenied', otherStacks);
  });

  it("lets an admin (the same policy without the owner condition) into any job of this deployment's", async () => {
    const policy = adminPolicy();
    const alicesJob = { ...instanceOf('alice'), ...NAMED_DOCUMENT };
    assert.equal(await decide(policy, INSTANCE, alicesJob, { 'flare-user': 'root' }), 'Allowed');
    assert.equal(await decide(policy, INSTANCE, instanceOf('alice'), { 'flare-user': 'root' }), 'ImplicitlyDenied');
    assert.equal(
      await decide(policy, INSTANCE, { ...instanceOf('alice', 'OtherStack'), ...NAMED_DOCUMENT }),
      'ImplicitlyDenied',
    );
  });
});
