/**
 * What AWS authorizes for each recorded call: the IAM action, resource ARN and
 * request context of every authorization a request makes (a RunInstances makes
 * a dozen, a TransactWriteItems one per item). The IAM check evaluates each.
 *
 * Modelled from the Service Authorization Reference and, where AWS is known to
 * differ from it, from what AWS does (those cases say so and are evaluated
 * without the reference's validation: `referenceDiffers`).
 */
import { arnOf, physicalName, refOf, resolveValue, secretArn, type CfnTemplate } from './cfn-resolve.js';
import { ARTIFACT_ACCOUNT, ARTIFACT_PARTITION, type RecordedCall, type TagLookup } from './types.js';

export interface AuthRequest {
  /** `service:Action`, as IAM names it. */
  action: string;
  resource: string;
  context: Record<string, string | string[]>;
  /** Why this request is evaluated as AWS does it rather than as the reference describes it. */
  referenceDiffers?: string;
}

type Params = Record<string, any>;

const P = ARTIFACT_PARTITION;
const A = ARTIFACT_ACCOUNT;

/** EC2's query protocol names list members in the singular (`InstanceId.1`); the SDK's shapes in the plural. */
function list(params: Params | undefined, ...names: string[]): any[] {
  for (const name of names) {
    const value = params?.[name];
    if (value !== undefined) return [value].flat();
  }
  return [];
}

function tagsFrom(specs: any[], resourceType: string): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const spec of specs.filter((s) => s?.ResourceType === resourceType)) {
    for (const tag of list(spec, 'Tag', 'Tags')) tags[tag.Key] = String(tag.Value ?? '');
  }
  return tags;
}

function requestTagContext(tags: Record<string, string>): Record<string, string | string[]> {
  const keys = Object.keys(tags);
  if (keys.length === 0) return {};
  return { ...Object.fromEntries(keys.map((k) => [`aws:RequestTag/${k}`, tags[k]])), 'aws:TagKeys': keys };
}

/** The resource-tag keys a service's policies may condition on, from the tags the fake knows. */
function resourceTagContext(service: string, tags: Record<string, string> | undefined): Record<string, string> {
  const context: Record<string, string> = {};
  for (const [k, v] of Object.entries(tags ?? {})) {
    context[`aws:ResourceTag/${k}`] = v;
    if (service === 'ec2') context[`ec2:ResourceTag/${k}`] = v;
    if (service === 'ssm') context[`ssm:resourceTag/${k}`] = v;
    // Secrets Manager's own secretsmanager:ResourceTag/<key> is not in iam-simulate's reference: aws:ResourceTag stands for it.
  }
  return context;
}

const ec2Arn = (region: string, resource: string) => `arn:${P}:ec2:${region}:${A}:${resource}`;

/** The template resource of a type whose Ref (or name) is `id`, if the stack created it. */
function byRef(template: CfnTemplate, type: string, id: string): string | undefined {
  return Object.keys(template.Resources).find(
    (logicalId) =>
      template.Resources[logicalId].Type === type &&
      (refOf(template, logicalId) === id || physicalName(template, logicalId) === id),
  );
}

/**
 * RunInstances with a launch template, as AWS authorizes it: the instance
 * (`instance/*`: its id does not exist yet), image, subnet, security groups,
 * network interface, volume and launch template, each with `ec2:LaunchTemplate`;
 * request tags on what is tagged at launch (the template's tags too), with an
 * ec2:CreateTags per tagged type under `ec2:CreateAction`; iam:PassRole of the
 * instance profile's role to EC2.
 * Skipped: snapshot (only a block device mapping naming a snapshot authorizes
 * one; Flare's name none), key-pair, placement-group, capacity-reservation,
 * elastic-gpu, license-configuration and spot requests (never used by Flare's
 * launch template or request); ec2:IsLaunchTemplateResource (no policy here
 * conditions on it).
 */
function runInstances(template: CfnTemplate, call: RecordedCall): AuthRequest[] {
  const p: Params = call.params;
  const region = call.region;
  const ltParam = (p.LaunchTemplate ?? {}) as Params;
  const ltId = ltParam.LaunchTemplateId ?? ltParam.LaunchTemplateName;
  const ltLogical = ltId ? byRef(template, 'AWS::EC2::LaunchTemplate', String(ltId)) : undefined;
  if (ltId && !ltLogical)
    throw new Error(`iam-check: RunInstances names launch template ${ltId}, which the template does not create`);
  const data: Params = ltLogical
    ? (resolveValue(template, template.Resources[ltLogical].Properties?.LaunchTemplateData) ?? {})
    : {};
  const ltArn = ltLogical ? ec2Arn(region, `launch-template/${refOf(template, ltLogical)}`) : undefined;
  const base: Record<string, string> = ltArn ? { 'ec2:LaunchTemplate': ltArn } : {};

  const specs = [...list(data, 'TagSpecifications'), ...list(p, 'TagSpecification', 'TagSpecifications')];
  const taggedTypes = [...new Set(specs.map((s) => String(s.ResourceType)))];
  const imageId = p.ImageId ?? data.ImageId;
  const subnetId = p.SubnetId ?? list(p, 'NetworkInterface', 'NetworkInterfaces')[0]?.SubnetId;
  if (!imageId || !subnetId)
    throw new Error(`iam-check: RunInstances without an image or subnet (${JSON.stringify(p)})`);
  const subnetArn = ec2Arn(region, `subnet/${subnetId}`);
  const subnetLogical = byRef(template, 'AWS::EC2::Subnet', String(subnetId));
  const vpcId = subnetLogical ? resolveValue(template, template.Resources[subnetLogical].Properties?.VpcId) : undefined;
  const vpc: Record<string, string> = vpcId ? { 'ec2:Vpc': ec2Arn(region, `vpc/${vpcId}`) } : {};
  const groups = [...list(p, 'SecurityGroupId', 'SecurityGroupIds'), ...list(data, 'SecurityGroupIds')];
  const profile = p.IamInstanceProfile ?? data.IamInstanceProfile;
  const profileArn =
    profile?.Arn ?? (profile?.Name ? `arn:${P}:iam::${A}:instance-profile/${profile.Name}` : undefined);
  const instanceType = p.InstanceType ?? data.InstanceType;
  const volumeSize =
    list(p, 'BlockDeviceMapping', 'BlockDeviceMappings')[0]?.Ebs?.VolumeSize ??
    list(data, 'BlockDeviceMappings')[0]?.Ebs?.VolumeSize;

  const tagged = (type: string) =>
    requestTagContext({
      ...tagsFrom(list(data, 'TagSpecifications'), type),
      ...tagsFrom(list(p, 'TagSpecification', 'TagSpecifications'), type),
    });
  const run = (resource: string, context: Record<string, string | string[]> = {}): AuthRequest => ({
    action: 'ec2:RunInstances',
    resource,
    context: { ...base, ...context },
  });
  const requests: AuthRequest[] = [
    run(ec2Arn(region, 'instance/*'), {
      ...tagged('instance'),
      ...(instanceType ? { 'ec2:InstanceType': String(instanceType) } : {}),
      ...(profileArn ? { 'ec2:InstanceProfile': profileArn } : {}),
    }),
    run(`arn:${P}:ec2:${region}::image/${imageId}`),
    run(subnetArn, vpc),
    run(ec2Arn(region, 'network-interface/*'), { ...tagged('network-interface'), 'ec2:Subnet': subnetArn, ...vpc }),
    run(ec2Arn(region, 'volume/*'), {
      ...tagged('volume'),
      ...(volumeSize !== undefined ? { 'ec2:VolumeSize': String(volumeSize) } : {}),
    }),
    ...groups.map((g) => run(ec2Arn(region, `security-group/${g}`), vpc)),
    ...(ltArn ? [run(ltArn)] : []),
    ...taggedTypes.map((type) => ({
      action: 'ec2:CreateTags',
      resource: ec2Arn(region, `${type}/*`),
      context: { 'ec2:CreateAction': 'RunInstances', ...tagged(type) },
    })),
  ];
  if (profileArn)
    requests.push({
      action: 'iam:PassRole',
      resource: profileRole(template, profileArn),
      context: { 'iam:PassedToService': 'ec2.amazonaws.com' },
    });
  return requests;
}

/** The role an instance profile holds: what RunInstances passes to EC2. */
function profileRole(template: CfnTemplate, profileArn: string): string {
  const logical = Object.keys(template.Resources).find(
    (id) => template.Resources[id].Type === 'AWS::IAM::InstanceProfile' && arnOf(template, id) === profileArn,
  );
  if (!logical) throw new Error(`iam-check: instance profile ${profileArn} is not created by the template`);
  const [role] = resolveValue(template, template.Resources[logical].Properties?.Roles) as string[];
  const roleLogical = byRef(template, 'AWS::IAM::Role', role);
  return roleLogical ? arnOf(template, roleLogical) : `arn:${P}:iam::${A}:role/${role}`;
}

/** The account-less ARN AWS gives the documents it owns (AWS-RunShellScript). */
function documentArn(region: string, name: string): string {
  if (name.startsWith('arn:')) return name;
  return name.startsWith('AWS-') || name.startsWith('Amazon')
    ? `arn:${P}:ssm:${region}::document/${name}`
    : `arn:${P}:ssm:${region}:${A}:document/${name}`;
}

/** SendCommand authorizes its document and each target instance (with the instance's tags). */
function sendCommand(call: RecordedCall, tagsOf: TagLookup): AuthRequest[] {
  const p: Params = call.params;
  if (p.Targets) throw new Error('iam-check: SendCommand by Targets is not modelled (Flare names instances)');
  const document = documentArn(call.region, String(p.DocumentName));
  const requests: AuthRequest[] = [
    {
      action: 'ssm:SendCommand',
      resource: document,
      context: {},
      // The reference's document ARN always has an account; AWS's own documents have none.
      ...(document.includes('::document/')
        ? { referenceDiffers: 'AWS-owned SSM documents have no account in their ARN' }
        : {}),
    },
  ];
  for (const id of list(p, 'InstanceIds')) {
    const arn = ec2Arn(call.region, `instance/${id}`);
    requests.push({ action: 'ssm:SendCommand', resource: arn, context: resourceTagContext('ssm', tagsOf(arn)) });
  }
  if (p.ServiceRoleArn)
    requests.push({
      action: 'iam:PassRole',
      resource: String(p.ServiceRoleArn),
      context: { 'iam:PassedToService': 'ssm.amazonaws.com' },
    });
  return requests;
}

const TABLE_ITEM_ACTIONS: Record<string, string> = {
  Put: 'PutItem',
  Update: 'UpdateItem',
  Delete: 'DeleteItem',
  ConditionCheck: 'ConditionCheckItem',
  Get: 'GetItem',
};

/** DynamoDB: per table (an index is its own resource); a transaction authorizes each item's own action. */
function dynamodb(call: RecordedCall): AuthRequest[] {
  const p: Params = call.params;
  const table = (name: string) =>
    name.startsWith('arn:') ? name : `arn:${P}:dynamodb:${call.region}:${A}:table/${name}`;
  const req = (action: string, resource: string): AuthRequest => ({
    action: `dynamodb:${action}`,
    resource,
    context: {},
  });
  switch (call.action) {
    case 'TransactWriteItems':
    case 'TransactGetItems':
      return list(p, 'TransactItems').map((item) => {
        const [kind, body] = Object.entries(item as Params)[0] as [string, Params];
        return req(TABLE_ITEM_ACTIONS[kind] ?? kind, table(body.TableName));
      });
    case 'BatchWriteItem':
    case 'BatchGetItem':
      return Object.keys(p.RequestItems ?? {}).map((name) => req(call.action, table(name)));
    case 'Query':
    case 'Scan':
      return [req(call.action, p.IndexName ? `${table(p.TableName)}/index/${p.IndexName}` : table(p.TableName))];
    case 'ListTables':
      return [req(call.action, '*')];
    default:
      if (typeof p.TableName !== 'string')
        throw new Error(`iam-check: dynamodb:${call.action} without a TableName is not modelled`);
      return [req(call.action, table(p.TableName))];
  }
}

/** PutEvents authorizes each entry on its bus, with the entry's source and detail-type. */
function putEvents(call: RecordedCall): AuthRequest[] {
  return list(call.params, 'Entries').map((entry) => {
    const bus = String(entry.EventBusName ?? 'default');
    return {
      action: 'events:PutEvents',
      resource: bus.startsWith('arn:') ? bus : `arn:${P}:events:${call.region}:${A}:event-bus/${bus}`,
      context: {
        ...(entry.Source ? { 'events:source': String(entry.Source) } : {}),
        ...(entry.DetailType ? { 'events:detail-type': String(entry.DetailType) } : {}),
      },
    };
  });
}

/**
 * CloudWatch Logs authorizes log-group actions on `log-group:NAME:*`, not on the
 * reference's `log-group:NAME` (a policy naming the bare group denies
 * FilterLogEvents), and stream actions on `log-group:NAME:log-stream:STREAM`.
 */
function logs(call: RecordedCall): AuthRequest[] {
  const p: Params = call.params;
  const groupName = String(p.logGroupIdentifier ?? p.logGroupName ?? '')
    .replace(/^arn:[^:]*:logs:[^:]*:[^:]*:log-group:/, '')
    .replace(/:\*$/, '');
  const group = `arn:${P}:logs:${call.region}:${A}:log-group:${groupName}`;
  const action = `logs:${call.action}`;
  if (!groupName) return call.resources.map((resource) => ({ action, resource, context: {} }));
  if (p.logStreamName) return [{ action, resource: `${group}:log-stream:${p.logStreamName}`, context: {} }];
  return [{ action, resource: `${group}:*`, context: {} }];
}

/**
 * The only state machine the template creates: SendTaskSuccess/Failure/Heartbeat
 * name a task token, and AWS authorizes them on the state machine that issued it.
 */
function theStateMachine(template: CfnTemplate): string {
  const machines = Object.keys(template.Resources).filter(
    (id) => template.Resources[id].Type === 'AWS::StepFunctions::StateMachine',
  );
  if (machines.length !== 1)
    throw new Error(`iam-check: a task response names no state machine and the template has ${machines.length}`);
  return arnOf(template, machines[0]);
}

function states(template: CfnTemplate, call: RecordedCall): AuthRequest[] {
  const action = `states:${call.action}`;
  const p: Params = call.params;
  if (['SendTaskSuccess', 'SendTaskFailure', 'SendTaskHeartbeat'].includes(call.action)) {
    const machines = call.resources.filter((r) => r.includes(':stateMachine:'));
    return (machines.length > 0 ? machines : [theStateMachine(template)]).map((resource) => ({
      action,
      resource,
      context: {},
      // The reference lists no resource type (so `*` only); AWS checks the token's state machine (CDK grantTaskResponse relies on it).
      referenceDiffers: 'task responses are authorized on the state machine that issued the token',
    }));
  }
  const resource = p.stateMachineArn ?? p.executionArn ?? call.resources[0];
  if (!resource) throw new Error(`iam-check: states:${call.action} names no state machine or execution`);
  return [{ action, resource: String(resource), context: {} }];
}

function secretsManager(call: RecordedCall, tagsOf: TagLookup): AuthRequest[] {
  const id = String(call.params.SecretId ?? call.params.Name ?? '');
  // IAM sees the full ARN (name, `-`, six characters): the caller's if it gave one, else the one the fake
  // resolved the name or partial ARN to, else (a secret the fake does not hold) our fixed suffix.
  const full = (arn: string) => /^arn:.*:secret:.+-[A-Za-z0-9]{6}$/.test(arn);
  const resource =
    (full(id) ? id : call.resources.find(full)) ??
    secretArn(id.replace(/^arn:[^:]*:secretsmanager:[^:]*:[^:]*:secret:/, ''));
  const requests: AuthRequest[] = [
    {
      action: `secretsmanager:${call.action}`,
      resource,
      context: resourceTagContext('secretsmanager', tagsOf(resource)),
    },
  ];
  // Tags given to CreateSecret are authorized as a TagResource on the new secret too.
  const tags = call.params.Tags;
  if (call.action === 'CreateSecret' && Array.isArray(tags) && tags.length > 0)
    requests.push({ action: 'secretsmanager:TagResource', resource, context: {} });
  return requests;
}

/** Every authorization AWS makes for this call. `wildcardOnly` says which actions take no resource. */
export function authRequestsFor(
  template: CfnTemplate,
  call: RecordedCall,
  tagsOf: TagLookup,
  wildcardOnly: (action: string) => boolean,
): AuthRequest[] {
  if (call.service === 's3') return s3(call);
  const action = `${call.service}:${call.action}`;
  if (
    wildcardOnly(action) &&
    !['states:SendTaskSuccess', 'states:SendTaskFailure', 'states:SendTaskHeartbeat'].includes(action)
  ) {
    return [{ action, resource: '*', context: {} }];
  }
  switch (call.service) {
    case 'ec2':
      if (call.action === 'RunInstances') return runInstances(template, call);
      return list(call.params, 'InstanceId', 'InstanceIds').map((id) => {
        const resource = ec2Arn(call.region, `instance/${id}`);
        return { action, resource, context: resourceTagContext('ec2', tagsOf(resource)) };
      });
    case 'ssm':
      if (call.action === 'SendCommand') return sendCommand(call, tagsOf);
      break;
    case 'dynamodb':
      return dynamodb(call);
    case 'events':
      if (call.action === 'PutEvents') return putEvents(call);
      break;
    case 'logs':
      return logs(call);
    case 'states':
      return states(template, call);
    case 'secretsmanager':
      return secretsManager(call, tagsOf);
  }
  // Anything else: the ARNs the fake resolved, with their tags.
  const resources = call.resources.filter((r) => r !== '*');
  if (resources.length === 0) throw new Error(`iam-check: ${action} names no resource and is not modelled here`);
  return resources.map((resource) => ({
    action,
    resource,
    context: resourceTagContext(call.service, tagsOf(resource)),
  }));
}

/** S3's API actions as IAM authorizes them: a form upload is its signer's PutObject of the key. */
const S3_ACTIONS: Record<string, string> = {
  PutObject: 's3:PutObject',
  ListObjectsV2: 's3:ListBucket',
  HeadObject: 's3:GetObject',
  DeleteObjects: 's3:DeleteObject',
};

function s3(call: RecordedCall): AuthRequest[] {
  const action = S3_ACTIONS[call.action];
  if (!action) throw new Error(`iam-check: s3:${call.action} is not modelled here`);
  return call.resources.map((resource) => ({ action, resource, context: {} }));
}
