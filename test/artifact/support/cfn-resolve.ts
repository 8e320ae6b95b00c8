/**
 * Resolves a synthesized CloudFormation template to the concrete names, ids and
 * ARNs the artifact tests use: the ONE rule the harness (environment variables,
 * tables, the state machine's substitutions), the AWS fake (target ARNs) and the
 * IAM check (policy resources) share, so a name can never mean two things.
 *
 * The rule: a resource is named by its name property when the template sets one
 * (`TableName`, `StateMachineName`, `Name`, `LogGroupName`...), else by its
 * logical id; EC2-style ids are `<prefix>-<17 hex of sha256(logicalId)>`; every
 * ARN is in ARTIFACT_PARTITION / ARTIFACT_REGION / ARTIFACT_ACCOUNT.
 */
import { createHash } from 'node:crypto';
import { ARTIFACT_ACCOUNT, ARTIFACT_PARTITION, ARTIFACT_REGION } from './types.js';

/** The parts of a template the resolver reads (no index signatures, so any template interface fits). */
export interface CfnResource {
  Type: string;
  Properties?: Record<string, any>;
}
export interface CfnTemplate {
  Resources: Record<string, CfnResource>;
  Parameters?: Record<string, { Type: string; Default?: unknown }>;
  Mappings?: Record<string, Record<string, Record<string, unknown>>>;
  Conditions?: Record<string, unknown>;
}

/** The stack name `AWS::StackName` resolves to (bin/app.ts names the stack this). */
export const ARTIFACT_STACK_NAME = 'FlareStack';
/** What an `AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>` parameter (the GPU AMI) resolves to: the image the EC2 fake describes. */
export const ARTIFACT_IMAGE_ID = 'ami-0f1a2e3d4c5b6a798';
/** The creation label of every DynamoDB stream ARN (AWS uses the stream's creation time). */
export const ARTIFACT_STREAM_LABEL = '2026-01-01T00:00:00.000';
/** Secrets Manager appends six random characters to a secret's name in its ARN; ours are fixed. */
export const ARTIFACT_SECRET_SUFFIX = 'AbC123';

const P = ARTIFACT_PARTITION;
const R = ARTIFACT_REGION;
const A = ARTIFACT_ACCOUNT;

/** The full ARN AWS gives the secret named `name` (what IAM authorizes GetSecretValue against). */
export const secretArn = (name: string): string =>
  `arn:${P}:secretsmanager:${R}:${A}:secret:${name}-${ARTIFACT_SECRET_SUFFIX}`;

/** The property that names a resource of each type, when the template sets it. */
const NAME_PROPERTY: Record<string, string> = {
  'AWS::DynamoDB::Table': 'TableName',
  'AWS::Lambda::Function': 'FunctionName',
  'AWS::StepFunctions::StateMachine': 'StateMachineName',
  'AWS::Events::EventBus': 'Name',
  'AWS::Events::Rule': 'Name',
  'AWS::Logs::LogGroup': 'LogGroupName',
  'AWS::SQS::Queue': 'QueueName',
  'AWS::SNS::Topic': 'TopicName',
  'AWS::IAM::Role': 'RoleName',
  'AWS::IAM::Policy': 'PolicyName',
  'AWS::IAM::ManagedPolicy': 'ManagedPolicyName',
  'AWS::IAM::InstanceProfile': 'InstanceProfileName',
  'AWS::SecretsManager::Secret': 'Name',
  'AWS::SSM::Parameter': 'Name',
  'AWS::SSM::Document': 'Name',
  'AWS::EC2::LaunchTemplate': 'LaunchTemplateName',
  'AWS::Cognito::UserPool': 'UserPoolName',
  'AWS::Cognito::UserPoolGroup': 'GroupName',
  'AWS::ApiGatewayV2::Api': 'Name',
  'AWS::ApiGatewayV2::Stage': 'StageName',
  'AWS::CloudWatch::Alarm': 'AlarmName',
};

/** EC2 (and similar) resources whose Ref is a generated id, by the id's prefix. */
const ID_PREFIX: Record<string, string> = {
  'AWS::EC2::VPC': 'vpc',
  'AWS::EC2::Subnet': 'subnet',
  'AWS::EC2::SecurityGroup': 'sg',
  'AWS::EC2::LaunchTemplate': 'lt',
  'AWS::EC2::InternetGateway': 'igw',
  'AWS::EC2::NatGateway': 'nat',
  'AWS::EC2::RouteTable': 'rtb',
  'AWS::EC2::VPCEndpoint': 'vpce',
  'AWS::EC2::FlowLog': 'fl',
  'AWS::EC2::Instance': 'i',
};

/** A deterministic AWS-looking id: `<prefix>-<17 hex>` (EC2's long id format). */
export function generatedId(prefix: string, logicalId: string): string {
  return `${prefix}-${createHash('sha256').update(logicalId).digest('hex').slice(0, 17)}`;
}

function resourceOf(template: CfnTemplate, logicalId: string): CfnResource {
  const resource = template.Resources[logicalId];
  if (!resource) throw new Error(`cfn-resolve: no resource ${logicalId} in the template`);
  return resource;
}

/** The physical name of a resource: its name property if set (resolved), else its logical id. */
export function physicalName(template: CfnTemplate, logicalId: string): string {
  const resource = resourceOf(template, logicalId);
  const property = NAME_PROPERTY[resource.Type];
  const set = property ? resource.Properties?.[property] : undefined;
  if (set !== undefined) return String(resolveValue(template, set));
  if (resource.Type === 'AWS::SQS::Queue' && resource.Properties?.FifoQueue) return `${logicalId}.fifo`;
  // CloudFormation names a bucket in lowercase (S3 refuses capitals).
  if (resource.Type === 'AWS::S3::Bucket') return logicalId.toLowerCase();
  return logicalId;
}

const iamPath = (resource: CfnResource, template: CfnTemplate): string =>
  resource.Properties?.Path !== undefined ? String(resolveValue(template, resource.Properties.Path)) : '/';

/** The ARN of a resource (what `Fn::GetAtt [id, Arn]` gives, or Ref for types whose Ref is the ARN). */
export function arnOf(template: CfnTemplate, logicalId: string): string {
  const resource = resourceOf(template, logicalId);
  const name = physicalName(template, logicalId);
  switch (resource.Type) {
    case 'AWS::DynamoDB::Table':
      return `arn:${P}:dynamodb:${R}:${A}:table/${name}`;
    case 'AWS::Lambda::Function':
      return `arn:${P}:lambda:${R}:${A}:function:${name}`;
    case 'AWS::StepFunctions::StateMachine':
      return `arn:${P}:states:${R}:${A}:stateMachine:${name}`;
    case 'AWS::Events::EventBus':
      return `arn:${P}:events:${R}:${A}:event-bus/${name}`;
    case 'AWS::Events::Rule': {
      const bus = resource.Properties?.EventBusName;
      const busName = bus === undefined ? 'default' : String(resolveValue(template, bus)).split('/').pop();
      return `arn:${P}:events:${R}:${A}:rule/${busName === 'default' ? '' : `${busName}/`}${name}`;
    }
    case 'AWS::Logs::LogGroup':
      // CloudFormation's Arn attribute of a log group ends in `:*`.
      return `arn:${P}:logs:${R}:${A}:log-group:${name}:*`;
    case 'AWS::SQS::Queue':
      return `arn:${P}:sqs:${R}:${A}:${name}`;
    case 'AWS::S3::Bucket':
      return `arn:${P}:s3:::${name}`;
    case 'AWS::SNS::Topic':
      return `arn:${P}:sns:${R}:${A}:${name}`;
    case 'AWS::IAM::Role':
      return `arn:${P}:iam::${A}:role${iamPath(resource, template)}${name}`;
    case 'AWS::IAM::InstanceProfile':
      return `arn:${P}:iam::${A}:instance-profile${iamPath(resource, template)}${name}`;
    case 'AWS::IAM::ManagedPolicy':
      return `arn:${P}:iam::${A}:policy${iamPath(resource, template)}${name}`;
    case 'AWS::KMS::Key':
      return `arn:${P}:kms:${R}:${A}:key/${keyId(logicalId)}`;
    case 'AWS::SecretsManager::Secret':
      return secretArn(name);
    case 'AWS::SSM::Parameter':
      return `arn:${P}:ssm:${R}:${A}:parameter/${name.replace(/^\//, '')}`;
    case 'AWS::SSM::Document':
      return `arn:${P}:ssm:${R}:${A}:document/${name}`;
    case 'AWS::EC2::LaunchTemplate':
      return `arn:${P}:ec2:${R}:${A}:launch-template/${generatedId('lt', logicalId)}`;
    case 'AWS::EC2::Subnet':
      return `arn:${P}:ec2:${R}:${A}:subnet/${generatedId('subnet', logicalId)}`;
    case 'AWS::EC2::SecurityGroup':
      return `arn:${P}:ec2:${R}:${A}:security-group/${generatedId('sg', logicalId)}`;
    case 'AWS::EC2::VPC':
      return `arn:${P}:ec2:${R}:${A}:vpc/${generatedId('vpc', logicalId)}`;
    case 'AWS::Cognito::UserPool':
      return `arn:${P}:cognito-idp:${R}:${A}:userpool/${userPoolId(logicalId)}`;
    // The dashboard's alarm-status widget names every alarm by ARN.
    case 'AWS::CloudWatch::Alarm':
      return `arn:${P}:cloudwatch:${R}:${A}:alarm:${name}`;
    default:
      throw new Error(`cfn-resolve: no ARN rule for ${resource.Type} (${logicalId})`);
  }
}

const keyId = (logicalId: string): string => {
  const h = createHash('sha256').update(logicalId).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
};
const userPoolId = (logicalId: string): string => `${R}_${generatedId('x', logicalId).slice(2, 11)}`;
const shortId = (logicalId: string): string => createHash('sha256').update(logicalId).digest('hex').slice(0, 10);

/** What `{ Ref: logicalId }` gives for a resource (not a parameter or pseudo parameter). */
export function refOf(template: CfnTemplate, logicalId: string): string {
  const resource = resourceOf(template, logicalId);
  const prefix = ID_PREFIX[resource.Type];
  if (prefix) return generatedId(prefix, logicalId);
  switch (resource.Type) {
    case 'AWS::StepFunctions::StateMachine':
    case 'AWS::SNS::Topic':
    case 'AWS::SecretsManager::Secret':
    case 'AWS::IAM::ManagedPolicy':
      return arnOf(template, logicalId);
    case 'AWS::SQS::Queue':
      return `https://sqs.${R}.amazonaws.com/${A}/${physicalName(template, logicalId)}`;
    case 'AWS::KMS::Key':
      return keyId(logicalId);
    case 'AWS::Cognito::UserPool':
      return userPoolId(logicalId);
    case 'AWS::Cognito::UserPoolClient':
    case 'AWS::ApiGatewayV2::Api':
    case 'AWS::ApiGatewayV2::Integration':
    case 'AWS::ApiGatewayV2::Authorizer':
    case 'AWS::ApiGatewayV2::Route':
      return shortId(logicalId);
    case 'AWS::EC2::EIP':
      return '198.51.100.1';
    case 'AWS::Events::Rule': {
      // A rule on a custom bus is `bus|rule`.
      const bus = resource.Properties?.EventBusName;
      const busName = bus === undefined ? 'default' : String(resolveValue(template, bus)).split('/').pop();
      return busName === 'default'
        ? physicalName(template, logicalId)
        : `${busName}|${physicalName(template, logicalId)}`;
    }
    default:
      // Tables, functions, buses, rules, log groups, roles, profiles, parameters: their name.
      return physicalName(template, logicalId);
  }
}

/** What `Fn::GetAtt [logicalId, attribute]` gives. */
export function getAtt(template: CfnTemplate, logicalId: string, attribute: string): string {
  const resource = resourceOf(template, logicalId);
  const type = resource.Type;
  if (attribute === 'Arn' || attribute === 'TopicArn') return arnOf(template, logicalId);
  const key = `${type}.${attribute}`;
  switch (key) {
    case 'AWS::DynamoDB::Table.StreamArn':
      return `${arnOf(template, logicalId)}/stream/${ARTIFACT_STREAM_LABEL}`;
    case 'AWS::StepFunctions::StateMachine.Name':
    case 'AWS::Events::EventBus.Name':
    case 'AWS::SQS::Queue.QueueName':
    case 'AWS::SNS::Topic.TopicName':
    case 'AWS::IAM::Role.RoleName':
      return physicalName(template, logicalId);
    case 'AWS::SQS::Queue.QueueUrl':
      return refOf(template, logicalId);
    case 'AWS::IAM::Role.RoleId':
      return `AROA${createHash('sha256').update(logicalId).digest('hex').slice(0, 17).toUpperCase()}`;
    case 'AWS::KMS::Key.KeyId':
      return keyId(logicalId);
    case 'AWS::EC2::SecurityGroup.GroupId':
    case 'AWS::EC2::LaunchTemplate.LaunchTemplateId':
    case 'AWS::EC2::Subnet.SubnetId':
    case 'AWS::EC2::VPC.VpcId':
      return refOf(template, logicalId);
    case 'AWS::EC2::LaunchTemplate.LatestVersionNumber':
    case 'AWS::EC2::LaunchTemplate.DefaultVersionNumber':
      return '1';
    case 'AWS::EC2::EIP.AllocationId':
      return generatedId('eipalloc', logicalId);
    case 'AWS::EC2::EIP.PublicIp':
      return refOf(template, logicalId);
    case 'AWS::Cognito::UserPool.UserPoolId':
      return userPoolId(logicalId);
    case 'AWS::Cognito::UserPool.ProviderName':
      return `cognito-idp.${R}.amazonaws.com/${userPoolId(logicalId)}`;
    case 'AWS::Cognito::UserPool.ProviderURL':
      return `https://cognito-idp.${R}.amazonaws.com/${userPoolId(logicalId)}`;
    case 'AWS::ApiGatewayV2::Api.ApiEndpoint':
      return `https://${refOf(template, logicalId)}.execute-api.${R}.amazonaws.com`;
    case 'AWS::ApiGatewayV2::Api.ApiId':
      return refOf(template, logicalId);
    default:
      throw new Error(`cfn-resolve: no rule for Fn::GetAtt ${logicalId}.${attribute} (${type})`);
  }
}

function pseudo(name: string): string | undefined {
  switch (name) {
    case 'AWS::AccountId':
      return A;
    case 'AWS::Region':
      return R;
    case 'AWS::Partition':
      return P;
    case 'AWS::URLSuffix':
      return 'amazonaws.com';
    case 'AWS::StackName':
      return ARTIFACT_STACK_NAME;
    case 'AWS::StackId':
      return `arn:${P}:cloudformation:${R}:${A}:stack/${ARTIFACT_STACK_NAME}/00000000-0000-4000-8000-000000000000`;
    default:
      return undefined;
  }
}

/** What a Ref to a name gives: a pseudo parameter, a template parameter, or a resource. */
function ref(template: CfnTemplate, name: string): unknown {
  const p = pseudo(name);
  if (p !== undefined) return p;
  if (name === 'AWS::NoValue') return NO_VALUE;
  const parameter = template.Parameters?.[name];
  if (parameter) {
    if (parameter.Type === 'AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>') return ARTIFACT_IMAGE_ID;
    if (parameter.Default === undefined) throw new Error(`cfn-resolve: parameter ${name} has no default`);
    return parameter.Default;
  }
  return refOf(template, name);
}

const NO_VALUE = Symbol('AWS::NoValue');

function condition(template: CfnTemplate, name: string): boolean {
  const expression = template.Conditions?.[name];
  if (expression === undefined) throw new Error(`cfn-resolve: no condition ${name}`);
  return Boolean(resolve(template, expression));
}

function sub(template: CfnTemplate, text: string, variables: Record<string, unknown>): string {
  return text.replace(/\$\{(!?)([^}]+)\}/g, (whole, bang: string, name: string) => {
    if (bang) return `\${${name}}`;
    if (name in variables) return String(resolve(template, variables[name]));
    if (name.includes('.')) {
      const [id, ...attribute] = name.split('.');
      return getAtt(template, id, attribute.join('.'));
    }
    return String(ref(template, name));
  });
}

function resolve(template: CfnTemplate, value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => resolve(template, v)).filter((v) => v !== NO_VALUE);
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 1) {
    const [fn, arg] = entries[0] as [string, any];
    switch (fn) {
      case 'Ref':
        return ref(template, arg);
      case 'Fn::GetAtt': {
        const [id, attribute] = typeof arg === 'string' ? [arg.split('.')[0], arg.split('.').slice(1).join('.')] : arg;
        return getAtt(template, id, String(resolve(template, attribute)));
      }
      case 'Fn::Join':
        return (resolve(template, arg[1]) as unknown[]).join(arg[0]);
      case 'Fn::Sub':
        return typeof arg === 'string' ? sub(template, arg, {}) : sub(template, arg[0], arg[1] ?? {});
      case 'Fn::Select':
        return (resolve(template, arg[1]) as unknown[])[Number(resolve(template, arg[0]))];
      case 'Fn::Split':
        return String(resolve(template, arg[1])).split(arg[0]);
      case 'Fn::GetAZs':
        return [`${R}a`, `${R}b`, `${R}c`];
      case 'Fn::Base64':
        return Buffer.from(String(resolve(template, arg))).toString('base64');
      case 'Fn::FindInMap': {
        const [map, top, second] = (arg as unknown[]).map((v) => String(resolve(template, v)));
        const found = template.Mappings?.[map]?.[top]?.[second];
        if (found === undefined) throw new Error(`cfn-resolve: no mapping ${map}.${top}.${second}`);
        return found;
      }
      case 'Fn::If':
        return resolve(template, condition(template, arg[0]) ? arg[1] : arg[2]);
      case 'Fn::Equals':
        return JSON.stringify(resolve(template, arg[0])) === JSON.stringify(resolve(template, arg[1]));
      case 'Fn::Not':
        return !resolve(template, arg[0]);
      case 'Fn::And':
        return (arg as unknown[]).every((c) => resolve(template, c));
      case 'Fn::Or':
        return (arg as unknown[]).some((c) => resolve(template, c));
      case 'Condition':
        return condition(template, arg);
      case 'Fn::ImportValue':
      case 'Fn::Transform':
        throw new Error(`cfn-resolve: ${fn} cannot be resolved from one template`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of entries) {
    const resolved = resolve(template, v);
    if (resolved !== NO_VALUE) out[k] = resolved;
  }
  return out;
}

/**
 * A template value with every intrinsic function resolved (Ref, Fn::GetAtt,
 * Fn::Join, Fn::Sub, Fn::Select, Fn::Split, Fn::GetAZs, Fn::Base64,
 * Fn::FindInMap, Fn::If and conditions; AWS::NoValue drops the entry).
 */
export function resolveValue(template: CfnTemplate, value: unknown): any {
  const resolved = resolve(template, value);
  return resolved === NO_VALUE ? undefined : resolved;
}
