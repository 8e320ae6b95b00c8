/**
 * One local HTTP server that answers, in each service's own wire protocol, the
 * AWS calls Flare's bundled Lambda handlers make: the real SDK v3 clients reach
 * it through the `AWS_ENDPOINT_URL_*` variables (`endpoints()`). It tells the
 * services apart by the SigV4 credential scope (signatures are never checked),
 * records every call as a RecordedCall for the IAM check, can answer any call
 * with an injected AWS error, and forwards DynamoDB to DynamoDB Local.
 *
 * EC2 and SSM are small models (aws-fake-ec2.ts, aws-fake-ssm.ts); EventBridge,
 * Secrets Manager and CloudWatch Logs answer from what the test puts
 * (aws-fake-services.ts); Step Functions' API is delegated to `onStates`. An
 * action nothing models is answered with an error naming it, never a hang.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dynamoResources, forwardToDynamo } from './aws-fake-dynamodb.js';
import { Ec2Model, type Ec2Options, type FakeInstance, type InstanceStateName } from './aws-fake-ec2.js';
import {
  EventsModel,
  LogsModel,
  SecretsModel,
  statesResources,
  type LogLineInput,
  type PutEvent,
  type StatesHandler,
} from './aws-fake-services.js';
import { S3Model, sendS3Error, type S3Object } from './aws-fake-s3.js';
import { SsmModel, type InvocationOutcome, type SentCommand } from './aws-fake-ssm.js';
import {
  AwsError,
  SERVICES,
  TARGET_PREFIX,
  decodeQuery,
  readBody,
  sendEc2Error,
  sendEc2Result,
  sendJson,
  sendJsonError,
  sendUnroutable,
  signerOf,
  type Signer,
} from './aws-fake-wire.js';
import type { AwsService, RecordedCall, TagLookup } from './types.js';

export { AwsError } from './aws-fake-wire.js';
export type { FakeInstance, InstanceStateName } from './aws-fake-ec2.js';
export type { LogLineInput, PutEvent, StatesHandler } from './aws-fake-services.js';
export type { InvocationOutcome, SentCommand } from './aws-fake-ssm.js';

export interface AwsFakeOptions extends Ec2Options {
  /** DynamoDB Local's endpoint (`http://127.0.0.1:port`): DynamoDB calls are forwarded there unchanged. */
  dynamodbUpstream?: string;
  /** An instance's SSM agent comes online as soon as the instance runs. @default false */
  autoAgent?: boolean;
}

/** An AWS error to answer instead of the model, for the calls it matches. */
export interface Fault {
  service: AwsService;
  action: string;
  /** The AWS error code: the SDK exception's `name`. */
  code: string;
  message?: string;
  /** @default the code's AWS status (500 for EC2 capacity errors, 503 for RequestLimitExceeded, else 400) */
  status?: number;
  /** How many matching calls fail, then the fault is spent. @default every matching call */
  times?: number;
  /** Only calls whose params (as recorded) satisfy this. */
  when?: (params: Record<string, unknown>) => boolean;
}

export interface Injection {
  /** How many calls it answered so far. */
  readonly hits: number;
  remove(): void;
}

export interface CallFilter {
  service?: AwsService;
  action?: string;
  principal?: string;
  /** true: only calls answered with an error; false: only the others; a code: only that error. */
  error?: boolean | string;
}

/** The SDK's service-specific endpoint variables, by signing name. */
const ENDPOINT_VARIABLES: Record<AwsService, string> = {
  ec2: 'AWS_ENDPOINT_URL_EC2',
  ssm: 'AWS_ENDPOINT_URL_SSM',
  states: 'AWS_ENDPOINT_URL_SFN',
  events: 'AWS_ENDPOINT_URL_EVENTBRIDGE',
  secretsmanager: 'AWS_ENDPOINT_URL_SECRETS_MANAGER',
  logs: 'AWS_ENDPOINT_URL_CLOUDWATCH_LOGS',
  dynamodb: 'AWS_ENDPOINT_URL_DYNAMODB',
  s3: 'AWS_ENDPOINT_URL_S3',
};

/** Starts the fake on 127.0.0.1 at a free port. */
export async function startAwsFake(options: AwsFakeOptions = {}): Promise<AwsFake> {
  const fake = new AwsFake(options);
  await fake.listen();
  return fake;
}

interface ActiveFault extends Fault {
  hits: number;
}

export class AwsFake {
  /** Step Functions' API (StartExecution, SendTaskSuccess, ListExecutions...): resolves to the response body, or throws an Error named for the AWS code. */
  onStates?: StatesHandler;
  /** The state machine ARN a task token belongs to, for the resources of SendTask* calls. */
  taskTokenArn?: (token: string) => string | undefined;
  /** Called with a copy of an instance each time it enters a state (launch, terminate, setInstanceState, vanish), for EC2's state change events. */
  onInstanceStateChange?: (instance: FakeInstance) => void;

  private readonly server: Server;
  private readonly ec2: Ec2Model;
  private readonly ssm: SsmModel;
  private readonly eventsModel = new EventsModel();
  private readonly secrets = new SecretsModel();
  private readonly logs = new LogsModel();
  private readonly s3 = new S3Model();
  private readonly recorded: RecordedCall[] = [];
  private faults: ActiveFault[] = [];
  private baseUrl = '';

  constructor(private readonly options: AwsFakeOptions = {}) {
    this.ec2 = new Ec2Model(options);
    this.ssm = new SsmModel(this.ec2, options.autoAgent ?? false);
    const followedBySsm = this.ec2.onStateChange;
    this.ec2.onStateChange = (instance) => {
      followedBySsm(instance);
      this.onInstanceStateChange?.({ ...instance, tags: { ...instance.tags } });
    };
    this.server = createServer((req, res) => {
      this.serve(req, res).catch((error: unknown) => {
        if (!res.headersSent) sendUnroutable(res, `aws-fake failed on this request: ${String(error)}`);
        else res.destroy(error as Error);
      });
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve());
    });
    this.baseUrl = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get url(): string {
    return this.baseUrl;
  }

  /** The `AWS_ENDPOINT_URL_*` variables that send each SDK client here. */
  endpoints(): Record<string, string> {
    return Object.fromEntries(SERVICES.map((service) => [ENDPOINT_VARIABLES[service], this.baseUrl]));
  }

  calls(filter: CallFilter = {}): RecordedCall[] {
    return this.recorded.filter(
      (c) =>
        (filter.service === undefined || c.service === filter.service) &&
        (filter.action === undefined || c.action === filter.action) &&
        (filter.principal === undefined || c.principal === filter.principal) &&
        (filter.error === undefined ||
          (typeof filter.error === 'string' ? c.error === filter.error : filter.error === (c.error !== undefined))),
    );
  }

  clearCalls(): void {
    this.recorded.length = 0;
  }

  /** Tags of an instance by its ARN, vanished ones included (the call that named it was made while it existed). */
  readonly tagsOf: TagLookup = (arn) => {
    if (arn.includes(':secretsmanager:')) return this.secrets.tagsOf(arn);
    const match = /^arn:[^:]+:ec2:[^:]+:[^:]*:instance\/(i-[0-9a-f]+)$/.exec(arn);
    return match ? this.ec2.tagsOf(match[1]) : undefined;
  };

  /** The secrets the fake holds whose names start with `prefix` (what the bundles created). */
  secretsNamed(prefix: string): { arn: string; name: string; value: string; tags?: Record<string, string> }[] {
    return this.secrets.named(prefix);
  }

  inject(fault: Fault): Injection {
    const active: ActiveFault = { ...fault, hits: 0 };
    this.faults.push(active);
    return {
      get hits() {
        return active.hits;
      },
      remove: () => {
        this.faults = this.faults.filter((f) => f !== active);
      },
    };
  }

  clearFaults(): void {
    this.faults = [];
  }

  // EC2
  get autoRun(): boolean {
    return this.ec2.autoRun;
  }
  set autoRun(value: boolean) {
    this.ec2.autoRun = value;
  }
  /** The instances EC2 knows (terminated ones included, as EC2 lists them for a while); `vanished: true` adds those it forgot. */
  instances(options: { vanished?: boolean } = {}): FakeInstance[] {
    return this.ec2.instances(options.vanished ?? false);
  }
  instance(instanceId: string): FakeInstance | undefined {
    return this.ec2.instance(instanceId);
  }
  setInstanceState(instanceId: string, state: InstanceStateName): void {
    this.ec2.setState(instanceId, state);
  }
  /** EC2 forgets the instance: calls naming it fail with InvalidInstanceID.NotFound, filters no longer list it. */
  vanish(instanceId: string): void {
    this.ec2.vanish(instanceId);
  }

  // SSM
  get autoAgent(): boolean {
    return this.ssm.autoAgent;
  }
  set autoAgent(value: boolean) {
    this.ssm.autoAgent = value;
  }
  /** The instance's agent reports Online (a pending instance becomes running). */
  agentOnline(instanceId: string): void {
    this.ssm.agentOnline(instanceId);
  }
  agentOffline(instanceId: string): void {
    this.ssm.agentOffline(instanceId);
  }
  commands(): SentCommand[] {
    return this.ssm.commands();
  }
  /** What the agent reports for one instance of a sent command (GetCommandInvocation answers it). */
  setInvocation(commandId: string, instanceId: string, outcome: InvocationOutcome): void {
    this.ssm.setInvocation(commandId, instanceId, outcome);
  }

  // EventBridge, Secrets Manager, CloudWatch Logs
  events(filter: { source?: string; detailType?: string; busName?: string } = {}): PutEvent[] {
    return this.eventsModel.put.filter(
      (e) =>
        (filter.source === undefined || e.Source === filter.source) &&
        (filter.detailType === undefined || e.DetailType === filter.detailType) &&
        (filter.busName === undefined || e.EventBusName === filter.busName),
    );
  }
  putSecret(nameOrArn: string, value: string): void {
    this.secrets.putSecret(nameOrArn, value);
  }
  putLogLines(group: string, stream: string, lines: ReadonlyArray<string | LogLineInput>): void {
    this.logs.putLogLines(group, stream, lines);
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const signer = signerOf(req);
    // A form upload is signed inside its form, not in a header.
    const form = req.method === 'POST' && String(req.headers['content-type']).startsWith('multipart/form-data');
    if (signer?.service === 's3' || (!signer && form)) return this.serveS3(req, res, body, signer);
    const target = String(req.headers['x-amz-target'] ?? '');
    const service = SERVICES.find((s) => s === signer?.service);
    if (!signer || !service) {
      sendUnroutable(
        res,
        `aws-fake: cannot tell the service of ${req.method} ${req.url} (credential scope service ${signer?.service ?? 'missing: the request is not SigV4-signed'}, X-Amz-Target ${target || 'none'})`,
      );
      return;
    }
    const parsed = this.parse(service, target, body);
    const params = parsed.params;
    const call: RecordedCall = {
      service,
      action: parsed.action,
      params,
      resources: this.resourcesOf(service, parsed.action, params, signer.region),
      principal: signer.accessKeyId,
      region: signer.region,
      at: Date.now(),
    };
    this.recorded.push(call);
    let error: AwsError | undefined = parsed.error ?? this.injected(call);
    if (!error && service === 'dynamodb') return forwardToDynamo(this.options.dynamodbUpstream, req, res, body, call);

    let answer: unknown;
    if (!error) {
      try {
        answer = await this.answer(service, call);
      } catch (thrown) {
        error = asAwsError(thrown, call);
      }
    }
    if (error) {
      call.error = error.code;
      if (service === 'ec2') sendEc2Error(res, error);
      else if (service !== 's3') sendJsonError(res, service, error);
      return;
    }
    if (service === 'ec2') sendEc2Result(res, call.action, answer as Parameters<typeof sendEc2Result>[2]);
    else if (service !== 's3') sendJson(res, service, answer);
  }

  /** S3's REST calls and form uploads: recorded like the others (a form as its signer's PutObject), then answered. */
  private serveS3(req: IncomingMessage, res: ServerResponse, body: Buffer, signer?: Signer): void {
    const request = this.s3.parse(req, body);
    const by = request.signer ?? signer;
    const call: RecordedCall = {
      service: 's3',
      action: request.action,
      params: request.params,
      resources: this.s3.resources(request),
      principal: by?.accessKeyId ?? '',
      region: by?.region ?? '',
      at: Date.now(),
    };
    this.recorded.push(call);
    const error = request.refusal ?? this.injected(call);
    if (error) {
      call.error = error.code;
      sendS3Error(res, error, req.method);
    } else this.s3.answer(request, res);
  }

  /** The injected fault the call meets, if any, as the error to answer with (the fault counts the hit). */
  private injected(call: RecordedCall): AwsError | undefined {
    const fault = this.faults.find(
      (f) =>
        f.service === call.service &&
        f.action === call.action &&
        (f.times === undefined || f.hits < f.times) &&
        (!f.when || f.when(call.params)),
    );
    if (!fault) return undefined;
    fault.hits++;
    return new AwsError(fault.code, fault.message ?? `injected by aws-fake: ${fault.code}`, fault.status);
  }

  /** What the outputs bucket (or any) holds under `prefix`. */
  objects(bucket: string, prefix = ''): S3Object[] {
    return this.s3.objects(bucket, prefix);
  }

  /** The action and params as the contract records them; a request that does not parse becomes the error AWS would give. */
  private parse(
    service: AwsService,
    target: string,
    body: Buffer,
  ): { action: string; params: Record<string, unknown>; error?: AwsError } {
    if (service === 'ec2') {
      const form = new URLSearchParams(body.toString('utf8'));
      const action = form.get('Action') ?? '';
      return {
        action,
        params: decodeQuery(form),
        ...(action ? {} : { error: new AwsError('MissingAction', 'The request must contain the parameter Action') }),
      };
    }
    const [prefix, action = ''] = target.split('.');
    if (service === 's3' || prefix !== TARGET_PREFIX[service]) {
      return {
        action: target || '(no X-Amz-Target)',
        params: {},
        error: new AwsError(
          'UnknownOperationException',
          `aws-fake: X-Amz-Target ${target || 'missing'} is not a ${service} operation`,
        ),
      };
    }
    try {
      const params = body.length > 0 ? (JSON.parse(body.toString('utf8')) as Record<string, unknown>) : {};
      return { action, params };
    } catch {
      return { action, params: {}, error: new AwsError('SerializationException', 'The request body is not JSON') };
    }
  }

  private resourcesOf(service: AwsService, action: string, params: Record<string, unknown>, region: string): string[] {
    switch (service) {
      case 'ec2':
        return this.ec2.resources(action, params, region);
      case 'ssm':
        return this.ssm.resources(action, params, region);
      case 'states':
        return statesResources(params, this.taskTokenArn);
      case 'events':
        return this.eventsModel.resources(params, region);
      case 'secretsmanager':
        return this.secrets.resources(params, region);
      case 'logs':
        return this.logs.resources(action, params, region);
      case 'dynamodb':
        return dynamoResources(params, region);
      case 's3':
        throw new Error('S3 is answered by serveS3');
    }
  }

  private async answer(service: AwsService, call: RecordedCall): Promise<unknown> {
    const { action, params, region } = call;
    switch (service) {
      case 'ec2':
        return this.ec2.handle(action, params, region);
      case 'ssm':
        return this.ssm.handle(action, params, region);
      case 'states':
        if (!this.onStates)
          throw new AwsError(
            'AwsFakeNotConfigured',
            `aws-fake: states:${action} was called but no Step Functions handler is set (fake.onStates)`,
          );
        return this.onStates(action, params, { principal: call.principal, region });
      case 'events':
        return this.eventsModel.handle(action, params, call);
      case 'secretsmanager':
        return this.secrets.handle(action, params);
      case 'logs':
        return this.logs.handle(action, params);
      case 'dynamodb':
        throw new Error('DynamoDB is proxied, never answered');
      case 's3':
        throw new Error('S3 is answered by serveS3');
    }
  }
}

/**
 * An Error from a model or from `onStates`: one named for an AWS code (`ExecutionAlreadyExists`)
 * is that error on the wire; a plain Error or TypeError is a bug in the harness or the fake,
 * answered with a code no SDK retries and the message that says where.
 */
function asAwsError(thrown: unknown, call: RecordedCall): AwsError {
  if (thrown instanceof AwsError) return thrown;
  const error = thrown instanceof Error ? thrown : new Error(String(thrown));
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  if (
    /^[A-Z][A-Za-z0-9.]*$/.test(error.name) &&
    !['Error', 'TypeError', 'RangeError', 'ReferenceError', 'SyntaxError', 'AssertionError'].includes(error.name)
  ) {
    return new AwsError(error.name, error.message, status);
  }
  return new AwsError(
    'AwsFakeHandlerError',
    `aws-fake: answering ${call.service}:${call.action} threw ${error.stack ?? error.message}`,
  );
}
