/**
 * Every AWS call the bundled handlers made, evaluated by a real IAM evaluator
 * (@cloud-copilot/iam-simulate) against the synthesized identity policies of the
 * role that made it; and the reverse, the grants no call used (least privilege).
 */
import { AssertionError } from 'node:assert';
import {
  isWildcardOnlyAction,
  runSimulation,
  runUnsafeSimulation,
  type EvaluationResult,
  type Simulation,
} from '@cloud-copilot/iam-simulate';
import { arnOf, refOf, resolveValue, type CfnTemplate } from './cfn-resolve.js';
import { authRequestsFor, type AuthRequest } from './iam-requests.js';
import { ARTIFACT_ACCOUNT, type RecordedCall, type TagLookup } from './types.js';

export type { AuthRequest } from './iam-requests.js';

interface NamedPolicy {
  name: string;
  policy: { Statement: any[] | any; [key: string]: unknown };
}

export interface RolePolicies {
  /** The role's logical id: what the harness signs its function's calls with. */
  role: string;
  roleArn: string;
  identityPolicies: NamedPolicy[];
  permissionBoundary?: NamedPolicy;
  /** Managed policies the template does not define (AWS managed): their text is not here to evaluate. */
  unevaluable: string[];
}

/** The identity policies of every role the template creates: inline, attached AWS::IAM::Policy / ManagedPolicy, managed ARNs. */
export function rolePolicies(template: CfnTemplate): Map<string, RolePolicies> {
  const resources = template.Resources;
  const managed = new Map<string, NamedPolicy>();
  for (const [id, r] of Object.entries(resources)) {
    if (r.Type === 'AWS::IAM::ManagedPolicy')
      managed.set(arnOf(template, id), { name: id, policy: resolveValue(template, r.Properties?.PolicyDocument) });
  }
  const roles = new Map<string, RolePolicies>();
  for (const [id, r] of Object.entries(resources)) {
    if (r.Type !== 'AWS::IAM::Role') continue;
    const props = r.Properties ?? {};
    const entry: RolePolicies = { role: id, roleArn: arnOf(template, id), identityPolicies: [], unevaluable: [] };
    for (const inline of (resolveValue(template, props.Policies) ?? []) as {
      PolicyName: string;
      PolicyDocument: any;
    }[]) {
      entry.identityPolicies.push({ name: `${id}/${inline.PolicyName}`, policy: inline.PolicyDocument });
    }
    for (const arn of (resolveValue(template, props.ManagedPolicyArns) ?? []) as string[]) {
      const policy = managed.get(arn);
      if (policy) entry.identityPolicies.push(policy);
      else entry.unevaluable.push(arn);
    }
    if (props.PermissionsBoundary) {
      const arn = String(resolveValue(template, props.PermissionsBoundary));
      const boundary = managed.get(arn);
      if (boundary) entry.permissionBoundary = boundary;
      else entry.unevaluable.push(`${arn} (permissions boundary)`);
    }
    roles.set(id, entry);
  }
  // Policies attach by role name (a Ref to a role is its name).
  const byName = new Map([...roles.keys()].map((id) => [refOf(template, id), id]));
  for (const [id, r] of Object.entries(resources)) {
    if (r.Type !== 'AWS::IAM::Policy' && r.Type !== 'AWS::IAM::ManagedPolicy') continue;
    const policy: NamedPolicy =
      r.Type === 'AWS::IAM::ManagedPolicy'
        ? managed.get(arnOf(template, id))!
        : { name: id, policy: resolveValue(template, r.Properties?.PolicyDocument) };
    for (const name of (resolveValue(template, r.Properties?.Roles) ?? []) as string[]) {
      const role = roles.get(byName.get(name) ?? '');
      if (role && !role.identityPolicies.includes(policy)) role.identityPolicies.push(policy);
    }
  }
  return roles;
}

/** Which `service:Action`s take no resource (the reference's "*" only), asked once per action. */
async function wildcardOnlyActions(calls: RecordedCall[]): Promise<Set<string>> {
  const actions = [...new Set(calls.map((c) => `${c.service}:${c.action}`))];
  // An API that is no IAM action (TransactWriteItems authorizes per item) is not wildcard-only.
  const flags = await Promise.all(
    actions.map((a) => isWildcardOnlyAction(a.split(':')[0], a.split(':')[1]).catch(() => false)),
  );
  return new Set(actions.filter((_, i) => flags[i]));
}

/** The call's authorizations; a call that maps to none is a gap in the model, never a pass. */
function requestsOf(
  template: CfnTemplate,
  call: RecordedCall,
  tagsOf: TagLookup,
  wildcardOnly: Set<string>,
): AuthRequest[] {
  const requests = authRequestsFor(template, call, tagsOf, (a) => wildcardOnly.has(a));
  if (requests.length === 0)
    throw new Error(
      `iam-check: ${call.service}:${call.action} maps to no authorization (params ${JSON.stringify(call.params)})`,
    );
  return requests;
}

async function evaluate(role: RolePolicies, request: AuthRequest): Promise<EvaluationResult> {
  const simulation: Simulation = {
    request: {
      principal: role.roleArn,
      action: request.action,
      resource: { resource: request.resource, accountId: ARTIFACT_ACCOUNT },
      contextVariables: request.context,
    },
    identityPolicies: role.identityPolicies,
    ...(role.permissionBoundary ? { permissionBoundaryPolicies: [role.permissionBoundary] } : {}),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
  };
  if (request.referenceDiffers) return runUnsafeSimulation(simulation, {});
  const result = await runSimulation(simulation, {});
  if (result.resultType === 'error') {
    throw new Error(
      `iam-check: iam-simulate cannot evaluate ${request.action} on ${request.resource} (${role.role}): ${result.errors.message} ${JSON.stringify(result.errors)}`,
    );
  }
  return result.overallResult;
}

function roleOf(roles: Map<string, RolePolicies>, call: RecordedCall): RolePolicies {
  const role = roles.get(call.principal);
  if (!role)
    throw new AssertionError({
      message: `${call.service}:${call.action} was signed by ${call.principal}, which is no IAM role of the template`,
    });
  if (role.unevaluable.length > 0) {
    throw new Error(
      `iam-check: role ${role.role} has managed policies the template does not define (${role.unevaluable.join(', ')}); its calls cannot be evaluated`,
    );
  }
  return role;
}

/**
 * Throws an AssertionError listing every authorization IAM would deny (implicitly
 * or explicitly): role, IAM action, ARN, and the recorded call it came from.
 * `tagsOf` gives the tags of the resources the calls name (resource-tag conditions).
 */
export async function assertCallsAllowed(
  template: CfnTemplate,
  calls: RecordedCall[],
  tagsOf: TagLookup = () => undefined,
): Promise<void> {
  const roles = rolePolicies(template);
  const wildcardOnly = await wildcardOnlyActions(calls);
  const denials: string[] = [];
  for (const call of calls) {
    const role = roleOf(roles, call);
    for (const request of requestsOf(template, call, tagsOf, wildcardOnly)) {
      const result = await evaluate(role, request);
      if (result === 'Allowed') continue;
      const context = Object.keys(request.context).length > 0 ? ` with ${JSON.stringify(request.context)}` : '';
      denials.push(
        `${role.role} may not ${request.action} on ${request.resource} (${result}${context}), needed by ${call.service}:${call.action}`,
      );
    }
  }
  if (denials.length > 0)
    throw new AssertionError({ message: `IAM denies ${denials.length} request(s):\n  ${denials.join('\n  ')}` });
}

/**
 * Grants the Lambda service uses on the function's behalf (its own log stream,
 * tracing, event source mappings and failure destinations): handler code never
 * calls these, so no recorded call can show them used.
 */
const USED_BY_LAMBDA_SERVICE = [
  'logs:CreateLogStream',
  'logs:PutLogEvents',
  'xray:PutTraceSegments',
  'xray:PutTelemetryRecords',
  'sqs:*',
  'dynamodb:ListStreams',
  'dynamodb:DescribeStream',
  'dynamodb:GetRecords',
  'dynamodb:GetShardIterator',
];

export interface UnusedGrant {
  role: string;
  /** The granted action pattern, as the policy writes it. */
  action: string;
  /** The granted resource patterns no recorded call used this action on. */
  resources: string[];
}

const glob = (pattern: string, flags = '') =>
  new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    flags,
  );

/** The roles that run Lambda handlers: the ones the harness signs calls with. */
function functionRoles(template: CfnTemplate): string[] {
  return Object.values(template.Resources)
    .filter((r) => r.Type === 'AWS::Lambda::Function')
    .map((r) => r.Properties?.Role?.['Fn::GetAtt']?.[0])
    .filter((id): id is string => typeof id === 'string');
}

/**
 * For each function role (or `roles`), the granted action/resource pairs that
 * no authorization of the recorded calls matched, grouped by action (wildcards
 * in actions and ARNs are matched as IAM does). For the least-privilege report:
 * print, do not fail.
 */
export async function unusedGrants(
  template: CfnTemplate,
  calls: RecordedCall[],
  tagsOf: TagLookup = () => undefined,
  roles: string[] = functionRoles(template),
): Promise<UnusedGrant[]> {
  const all = rolePolicies(template);
  const wildcardOnly = await wildcardOnlyActions(calls);
  const used = new Map<string, AuthRequest[]>();
  for (const call of calls)
    used.set(call.principal, [
      ...(used.get(call.principal) ?? []),
      ...requestsOf(template, call, tagsOf, wildcardOnly),
    ]);
  const unused: UnusedGrant[] = [];
  for (const role of [...new Set(roles)].sort()) {
    const requests = used.get(role) ?? [];
    const byAction = new Map<string, Set<string>>();
    for (const { policy } of all.get(role)?.identityPolicies ?? []) {
      // NotAction statements grant what they do not name: not listable here, and the stack has none.
      for (const statement of [policy.Statement].flat().filter((s) => s.Effect === 'Allow' && s.Action)) {
        const resources: string[] = statement.NotResource ? ['*'] : [statement.Resource].flat();
        for (const action of [statement.Action].flat() as string[]) {
          if (USED_BY_LAMBDA_SERVICE.some((a) => glob(a, 'i').test(action))) continue;
          const actionMatches = glob(action, 'i');
          for (const resource of resources) {
            const resourceMatches = glob(resource);
            if (requests.some((r) => actionMatches.test(r.action) && resourceMatches.test(r.resource))) continue;
            byAction.set(action, (byAction.get(action) ?? new Set()).add(resource));
          }
        }
      }
    }
    for (const [action, resources] of byAction) unused.push({ role, action, resources: [...resources] });
  }
  return unused;
}

/** The least-privilege report: per role, the unused actions that share the same resources on one line. */
export function formatUnusedGrants(unused: UnusedGrant[]): string {
  if (unused.length === 0) return 'every granted action was used';
  const lines = new Map<string, string[]>();
  for (const u of unused) {
    const key = `${u.role}\0${u.resources.join(', ')}`;
    lines.set(key, [...(lines.get(key) ?? []), u.action]);
  }
  return [...lines]
    .map(([key, actions]) => {
      const [role, resources] = key.split('\0');
      return `${role}: ${actions.join(', ')} on ${resources}`;
    })
    .join('\n');
}
