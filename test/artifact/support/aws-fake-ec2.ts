/**
 * EC2 in the local AWS fake: instances launched, described and terminated the
 * way the EC2 API does it (ClientToken idempotency, state names and codes,
 * tag and state filters, InvalidInstanceID.NotFound for ids it does not know),
 * answered in the query protocol's XML.
 */
import { randomBytes } from 'node:crypto';
import { AwsError, type XmlValue } from './aws-fake-wire.js';
import { ARTIFACT_ACCOUNT, ARTIFACT_PARTITION } from './types.js';

export type InstanceStateName = 'pending' | 'running' | 'shutting-down' | 'terminated' | 'stopping' | 'stopped';

const STATE_CODE: Record<InstanceStateName, number> = {
  pending: 0,
  running: 16,
  'shutting-down': 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
};

export interface FakeInstance {
  instanceId: string;
  reservationId: string;
  region: string;
  instanceType: string;
  subnetId?: string;
  launchTemplateId?: string;
  imageId: string;
  state: InstanceStateName;
  tags: Record<string, string>;
  launchTime: Date;
  privateIpAddress: string;
  amiLaunchIndex: number;
  clientToken?: string;
  /** RunInstances' BlockDeviceMapping, as decoded from the request. */
  blockDeviceMappings: Array<Record<string, unknown>>;
}

export interface Ec2Options {
  /** Launched instances are `running` at once; otherwise `pending` until setState. @default false */
  autoRun?: boolean;
  /**
   * The AMI's root snapshot size: a BlockDeviceMapping for the root device with a
   * smaller VolumeSize is refused (InvalidBlockDeviceMapping), as EC2 does.
   * @default no check
   */
  rootSnapshotGb?: number;
  /** The AMI's root device name. @default '/dev/sda1' */
  rootDeviceName?: string;
}

export const FAKE_IMAGE_ID = 'ami-0f1a2e3d4c5b6a798';
const ROOT_SNAPSHOT_ID = 'snap-0a1b2c3d4e5f60718';
const INSTANCE_ID = /^i-([0-9a-f]{8}|[0-9a-f]{17})$/;
const LIVE_FOR_AGENT: readonly InstanceStateName[] = ['running'];

type Params = Record<string, unknown>;

export function instanceArn(region: string, instanceId: string): string {
  return `arn:${ARTIFACT_PARTITION}:ec2:${region}:${ARTIFACT_ACCOUNT}:instance/${instanceId}`;
}

function ec2Arn(region: string, resource: string): string {
  return `arn:${ARTIFACT_PARTITION}:ec2:${region}:${ARTIFACT_ACCOUNT}:${resource}`;
}

export class Ec2Model {
  private readonly live = new Map<string, FakeInstance>();
  /** Every instance ever launched, vanished ones included: tags for the IAM check's resource conditions. */
  private readonly everLaunched = new Map<string, FakeInstance>();
  private readonly tokens = new Map<string, { request: string; instanceIds: string[] }>();
  private ipCounter = 10;
  /** Called when an instance enters a state, so SSM can follow (agent online when running, lost when not). */
  onStateChange: (instance: FakeInstance) => void = () => {};

  constructor(private readonly options: Ec2Options = {}) {}

  get autoRun(): boolean {
    return this.options.autoRun ?? false;
  }

  set autoRun(value: boolean) {
    this.options.autoRun = value;
  }

  /** The ARNs a request names, before it is answered; RunInstances authorizes on `instance/*` since its ids do not exist yet. */
  resources(action: string, params: Params, region: string): string[] {
    if (action === 'RunInstances') {
      const template = params.LaunchTemplate as Params | undefined;
      return [
        ec2Arn(region, 'instance/*'),
        ...(typeof template?.LaunchTemplateId === 'string'
          ? [ec2Arn(region, `launch-template/${template.LaunchTemplateId}`)]
          : []),
        ...(typeof params.SubnetId === 'string' ? [ec2Arn(region, `subnet/${params.SubnetId}`)] : []),
      ];
    }
    const ids = strings(params.InstanceId);
    return ids.length > 0 ? ids.map((id) => instanceArn(region, id)) : ['*'];
  }

  handle(action: string, params: Params, region: string): Record<string, XmlValue> {
    switch (action) {
      case 'RunInstances':
        return this.runInstances(params, region);
      case 'DescribeInstances':
        return this.describeInstances(params, region);
      case 'TerminateInstances':
        return this.terminateInstances(params, region);
      default:
        throw new AwsError(
          'InvalidAction',
          `The action ${action} is not valid for this web service. (aws-fake models no ec2:${action})`,
        );
    }
  }

  instance(instanceId: string): FakeInstance | undefined {
    return this.live.get(instanceId);
  }

  instances(includeVanished: boolean): FakeInstance[] {
    return [...(includeVanished ? this.everLaunched : this.live).values()];
  }

  tagsOf(instanceId: string): Record<string, string> | undefined {
    const instance = this.everLaunched.get(instanceId);
    return instance ? { ...instance.tags } : undefined;
  }

  setState(instanceId: string, state: InstanceStateName): void {
    const instance = this.require(instanceId);
    instance.state = state;
    this.onStateChange(instance);
  }

  /** EC2 forgets the instance: any call naming it fails with InvalidInstanceID.NotFound. */
  vanish(instanceId: string): void {
    const instance = this.require(instanceId);
    this.live.delete(instanceId);
    instance.state = 'terminated';
    this.onStateChange(instance);
  }

  isAgentCapable(instanceId: string): boolean {
    const instance = this.live.get(instanceId);
    return !!instance && LIVE_FOR_AGENT.includes(instance.state);
  }

  private require(instanceId: string): FakeInstance {
    const instance = this.live.get(instanceId);
    if (!instance)
      throw new Error(`aws-fake: no instance ${instanceId} (known: ${[...this.live.keys()].join(', ') || 'none'})`);
    return instance;
  }

  private runInstances(params: Params, region: string): Record<string, XmlValue> {
    const minCount = count(params, 'MinCount');
    const maxCount = count(params, 'MaxCount');
    if (minCount > maxCount)
      throw new AwsError(
        'InvalidParameterValue',
        `MinCount (${minCount}) must be less than or equal to MaxCount (${maxCount})`,
      );
    const instanceType = params.InstanceType;
    if (typeof instanceType !== 'string') {
      throw new AwsError(
        'MissingParameter',
        'The request must contain the parameter InstanceType (aws-fake models no launch template contents)',
      );
    }
    const token = typeof params.ClientToken === 'string' ? params.ClientToken : undefined;
    const request = canonical(params);
    if (token) {
      const earlier = this.tokens.get(token);
      if (earlier && earlier.request !== request) {
        throw new AwsError(
          'IdempotentParameterMismatch',
          'Arguments on this idempotent request are inconsistent with arguments used in previous request(s).',
        );
      }
      if (earlier) return this.reservation(earlier.instanceIds.map((id) => this.everLaunched.get(id)!));
    }
    const blockDeviceMappings = (Array.isArray(params.BlockDeviceMapping) ? params.BlockDeviceMapping : []) as Params[];
    this.checkRootVolume(blockDeviceMappings);

    const tags: Record<string, string> = {};
    for (const spec of (Array.isArray(params.TagSpecification) ? params.TagSpecification : []) as Params[]) {
      if (spec.ResourceType !== 'instance') continue;
      for (const tag of (Array.isArray(spec.Tag) ? spec.Tag : []) as Params[])
        tags[String(tag.Key)] = String(tag.Value ?? '');
    }
    const reservationId = `r-${randomBytes(9).toString('hex').slice(0, 17)}`;
    const launchTime = new Date(Math.floor(Date.now() / 1000) * 1000);
    const template = params.LaunchTemplate as Params | undefined;
    const launched: FakeInstance[] = [];
    for (let index = 0; index < maxCount; index++) {
      const n = this.ipCounter++;
      const instance: FakeInstance = {
        instanceId: `i-${randomBytes(9).toString('hex').slice(0, 17)}`,
        reservationId,
        region,
        instanceType,
        ...(typeof params.SubnetId === 'string' ? { subnetId: params.SubnetId } : {}),
        ...(typeof template?.LaunchTemplateId === 'string' ? { launchTemplateId: template.LaunchTemplateId } : {}),
        imageId: FAKE_IMAGE_ID,
        state: this.autoRun ? 'running' : 'pending',
        tags: { ...tags },
        launchTime,
        privateIpAddress: `10.0.${n >> 8}.${n & 255}`,
        amiLaunchIndex: index,
        ...(token ? { clientToken: token } : {}),
        blockDeviceMappings,
      };
      this.live.set(instance.instanceId, instance);
      this.everLaunched.set(instance.instanceId, instance);
      launched.push(instance);
    }
    if (token) this.tokens.set(token, { request, instanceIds: launched.map((i) => i.instanceId) });
    for (const instance of launched) this.onStateChange(instance);
    return this.reservation(launched);
  }

  private checkRootVolume(mappings: Params[]): void {
    const snapshotGb = this.options.rootSnapshotGb;
    if (snapshotGb === undefined) return;
    const rootDevice = this.options.rootDeviceName ?? '/dev/sda1';
    for (const mapping of mappings) {
      const size = Number((mapping.Ebs as Params | undefined)?.VolumeSize);
      if (mapping.DeviceName === rootDevice && Number.isFinite(size) && size < snapshotGb) {
        throw new AwsError(
          'InvalidBlockDeviceMapping',
          `Volume of size ${size}GB is smaller than snapshot '${ROOT_SNAPSHOT_ID}', expect size >= ${snapshotGb}GB`,
        );
      }
    }
  }

  private reservation(instances: FakeInstance[]): Record<string, XmlValue> {
    return {
      reservationId: instances[0]?.reservationId,
      ownerId: ARTIFACT_ACCOUNT,
      groupSet: [],
      instancesSet: instances.map(instanceXml),
    };
  }

  private describeInstances(params: Params, region: string): Record<string, XmlValue> {
    const ids = strings(params.InstanceId);
    let selected: FakeInstance[];
    if (ids.length > 0) {
      this.checkKnown(ids, region);
      selected = ids.map((id) => this.live.get(id)!);
    } else {
      selected = [...this.live.values()].filter((i) => i.region === region);
    }
    for (const filter of (Array.isArray(params.Filter) ? params.Filter : []) as Params[]) {
      const matches = filterMatcher(String(filter.Name), strings(filter.Value));
      selected = selected.filter(matches);
    }
    const maxResults = params.MaxResults === undefined ? undefined : Number(params.MaxResults);
    const from = typeof params.NextToken === 'string' ? Number(params.NextToken) : 0;
    if (!Number.isInteger(from) || from < 0)
      throw new AwsError('InvalidParameterValue', `Invalid value '${String(params.NextToken)}' for nextToken`);
    const page = maxResults === undefined ? selected.slice(from) : selected.slice(from, from + maxResults);
    const next =
      maxResults !== undefined && from + maxResults < selected.length ? String(from + maxResults) : undefined;
    const byReservation = new Map<string, FakeInstance[]>();
    for (const instance of page)
      byReservation.set(instance.reservationId, [...(byReservation.get(instance.reservationId) ?? []), instance]);
    return { reservationSet: [...byReservation.values()].map((group) => this.reservation(group)), nextToken: next };
  }

  private terminateInstances(params: Params, region: string): Record<string, XmlValue> {
    const ids = strings(params.InstanceId);
    if (ids.length === 0) throw new AwsError('MissingParameter', 'The request must contain the parameter InstanceId');
    this.checkKnown(ids, region);
    const changes = ids.map((id) => {
      const instance = this.live.get(id)!;
      const previous = instance.state;
      if (previous !== 'terminated') instance.state = 'shutting-down';
      if (previous !== instance.state) this.onStateChange(instance);
      return { instanceId: id, currentState: stateXml(instance.state), previousState: stateXml(previous) };
    });
    return { instancesSet: changes };
  }

  /** EC2 fails the whole call when one id is malformed or unknown, naming them. */
  private checkKnown(ids: string[], region: string): void {
    const malformed = ids.find((id) => !INSTANCE_ID.test(id));
    if (malformed) throw new AwsError('InvalidInstanceID.Malformed', `Invalid id: "${malformed}"`);
    const unknown = ids.filter((id) => this.live.get(id)?.region !== region);
    if (unknown.length === 1)
      throw new AwsError('InvalidInstanceID.NotFound', `The instance ID '${unknown[0]}' does not exist`);
    if (unknown.length > 1)
      throw new AwsError('InvalidInstanceID.NotFound', `The instance IDs '${unknown.join(', ')}' do not exist`);
  }
}

function filterMatcher(name: string, values: string[]): (instance: FakeInstance) => boolean {
  const patterns = values.map(globPattern);
  const any = (value: string | undefined) => value !== undefined && patterns.some((p) => p.test(value));
  if (name.startsWith('tag:')) return (i) => any(i.tags[name.slice(4)]);
  switch (name) {
    case 'tag-key':
      return (i) => Object.keys(i.tags).some((k) => any(k));
    case 'instance-state-name':
      return (i) => any(i.state);
    case 'instance-state-code':
      return (i) => any(String(STATE_CODE[i.state]));
    case 'instance-id':
      return (i) => any(i.instanceId);
    case 'instance-type':
      return (i) => any(i.instanceType);
    case 'subnet-id':
      return (i) => any(i.subnetId);
    case 'reservation-id':
      return (i) => any(i.reservationId);
    case 'private-ip-address':
      return (i) => any(i.privateIpAddress);
    case 'client-token':
      return (i) => any(i.clientToken);
    default:
      throw new AwsError('InvalidParameterValue', `The filter '${name}' is invalid (or aws-fake does not model it)`);
  }
}

/** EC2 filter values take `*` and `?` wildcards. */
function globPattern(value: string): RegExp {
  const body = value
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

function instanceXml(instance: FakeInstance): XmlValue {
  const az = `${instance.region}a`;
  return {
    instanceId: instance.instanceId,
    imageId: instance.imageId,
    instanceState: stateXml(instance.state),
    privateDnsName: `ip-${instance.privateIpAddress.replace(/\./g, '-')}.ec2.internal`,
    amiLaunchIndex: instance.amiLaunchIndex,
    instanceType: instance.instanceType,
    launchTime: instance.launchTime,
    placement: { availabilityZone: az, tenancy: 'default' },
    monitoring: { state: 'disabled' },
    subnetId: instance.subnetId,
    vpcId: instance.subnetId ? 'vpc-0a1b2c3d4e5f60718' : undefined,
    privateIpAddress: instance.privateIpAddress,
    clientToken: instance.clientToken,
    architecture: 'x86_64',
    rootDeviceType: 'ebs',
    rootDeviceName: '/dev/sda1',
    tagSet:
      Object.keys(instance.tags).length > 0
        ? Object.entries(instance.tags).map(([key, value]) => ({ key, value }))
        : undefined,
  };
}

function stateXml(state: InstanceStateName): XmlValue {
  return { code: STATE_CODE[state], name: state };
}

function count(params: Params, name: string): number {
  if (params[name] === undefined)
    throw new AwsError('MissingParameter', `The request must contain the parameter ${name}`);
  const value = Number(params[name]);
  if (!Number.isInteger(value) || value < 1)
    throw new AwsError(
      'InvalidParameterValue',
      `Value (${String(params[name])}) for parameter ${name} is invalid. Must be a positive integer`,
    );
  return value;
}

/** A query-protocol list (`InstanceId.1`, `Value.2`) as its string members. */
export function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

/** The request without its order-irrelevant encoding, to tell a retried RunInstances from a different one under the same token. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Params)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}
