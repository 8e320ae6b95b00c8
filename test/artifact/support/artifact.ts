/**
 * The deployed artifact on this machine: the synthesized template and its
 * bundles (./synth.ts), DynamoDB Local with the template's tables, the AWS fake
 * at every function's AWS_ENDPOINT_URL_*, the state machine from the template,
 * API Gateway, EventBridge rules, SQS and the jobs stream wired as the template
 * wires them, and a chat webhook on loopback. `artifactPerFile()` deploys once
 * per test file; each test reads what it caused from `mark()` on.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before } from 'node:test';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { startDynamoDbLocal, type DynamoDbLocal } from '../../../lambdas/local/dynamodb-local.js';
import { makeDynamoClients, makeStreamsClient } from '../../../lambdas/local/tables.js';
import { startAwsFake, type AwsFake, type AwsFakeOptions } from './aws-fake.js';
import { resolveValue, type CfnTemplate } from './cfn-resolve.js';
import { busEvent, EventRouter, StreamSource, mappingOf, sqsSources, type SqsSource } from './event-sources.js';
import { HttpApiGateway } from './http-api.js';
import { reportUnusedGrants } from './least-privilege.js';
import { functionSpecs, LambdaFunction } from './lambdas.js';
import { ComputeEventSource } from './compute-event-source.js';
import { InstanceUploads } from './instance-uploads.js';
import { synthesizedApp } from './synth.js';
import { WEBHOOK_SECRET_NAME } from './synth-context.js';
import { StreamReader } from '../../../lambdas/local/jobs-stream.js';
import { createTemplateTables } from './tables.js';
import { artifactWorkflow, type ArtifactWorkflow } from './workflow.js';

/** The functions by what they do, found from the template's wiring (not from their names). */
export interface ArtifactFunctions {
  api: LambdaFunction;
  tasks: LambdaFunction;
  computeEvents: LambdaFunction;
  streamPublisher: LambdaFunction;
  notifier: LambdaFunction;
  seedPools: LambdaFunction;
}

export interface WebhookPost {
  path: string;
  body: any;
}

export class Artifact {
  private chain: Promise<number> = Promise.resolve(0);
  private putCursor = 0;
  private readonly pumpErrors: unknown[] = [];
  private timer?: NodeJS.Timeout;
  /** Stopping jobs' instances running their outputs upload (give one files with `uploads.give`). */
  readonly uploads: InstanceUploads;

  constructor(
    readonly template: CfnTemplate,
    readonly outdir: string,
    readonly fake: AwsFake,
    readonly dynamo: { local: DynamoDbLocal; client: DynamoDBClient },
    readonly all: LambdaFunction[],
    readonly fns: ArtifactFunctions,
    readonly http: HttpApiGateway,
    readonly workflow: ArtifactWorkflow,
    readonly router: EventRouter,
    readonly queues: Map<string, SqsSource>,
    readonly stream: StreamSource,
    readonly compute: ComputeEventSource,
    readonly webhook: { server: Server; url: string; posts: WebhookPost[] },
  ) {
    this.uploads = new InstanceUploads(fake, compute);
  }

  /** Polls the stream, the bus and the queues in the background, as AWS's pollers do. */
  startPollers(intervalMs = 100): void {
    const tick = () => {
      void this.pump().finally(() => {
        if (this.timer) this.timer = setTimeout(tick, intervalMs);
      });
    };
    this.timer = setTimeout(tick, intervalMs);
  }

  /** One pass of every poller, serialized with the background ones; how much moved. */
  pump(): Promise<number> {
    this.chain = this.chain.then(
      () => this.pass(),
      () => this.pass(),
    );
    this.chain.catch((error: unknown) => this.pumpErrors.push(error));
    return this.chain.catch(() => 0);
  }

  /** Pumps until nothing moves: every stream record, event and message delivered. */
  async settle(): Promise<void> {
    for (let quiet = 0; quiet < 2; ) quiet = (await this.pump()) === 0 ? quiet + 1 : 0;
    // Reported once, to the test that settles: the next test starts clean.
    const [error] = this.pumpErrors.splice(0);
    if (error) throw error;
  }

  private async pass(): Promise<number> {
    let moved = await this.uploads.poll();
    moved += await this.compute.poll();
    moved += await this.stream.poll();
    const puts = this.fake.events().slice(this.putCursor);
    this.putCursor += puts.length;
    for (const put of puts) await this.router.put(put.EventBusName, busEvent(put));
    moved += puts.length;
    for (const queue of this.queues.values()) moved += await queue.poll();
    return moved;
  }

  /** Where a test's own calls, deliveries and posts start: read them with `since(mark)`. */
  mark() {
    return {
      calls: this.fake.calls().length,
      deliveries: this.router.deliveries.length,
      posts: this.webhook.posts.length,
    };
  }

  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.chain.catch(() => undefined);
    await this.workflow.workflows.close();
    await Promise.all(this.all.map((fn) => fn.close()));
    await this.fake.close();
    await new Promise<void>((resolve) => this.webhook.server.close(() => resolve()));
    this.dynamo.client.destroy();
    await this.dynamo.local.stop();
  }
}

export async function deployArtifact(options: AwsFakeOptions = {}): Promise<Artifact> {
  const { template, outdir } = synthesizedApp();
  const local = await startDynamoDbLocal({ inMemory: true });
  const { client } = makeDynamoClients(local.endpoint);
  const tables = await createTemplateTables(client, template);
  const fake = await startAwsFake({ autoRun: true, autoAgent: true, ...options, dynamodbUpstream: local.endpoint });
  const all = functionSpecs(template, outdir, (v) => resolveValue(template, v), fake.endpoints()).map(
    (spec) => new LambdaFunction(spec),
  );
  const byId = new Map(all.map((fn) => [fn.spec.logicalId, fn]));
  const fns = wiring(template, all);

  const workflow = artifactWorkflow(template, all);
  fake.onStates = workflow.onStates;
  fake.taskTokenArn = (token) => workflow.taskTokenArn(token);

  const webhook = await startWebhook();
  fake.putSecret(WEBHOOK_SECRET_NAME, webhook.url);

  const queues = sqsSources(template, byId);
  const router = new EventRouter(template, byId, queues);
  const [jobsTable] = Object.values(tables).filter((t) => t.streamArn && mappingOf(template, t.logicalId, 'StreamArn'));
  const mapping = mappingOf(template, jobsTable.logicalId, 'StreamArn')!;
  const stream = new StreamSource(
    new StreamReader(makeStreamsClient(local.endpoint), jobsTable.localStreamArn!),
    fns.streamPublisher,
    mapping,
    jobsTable.streamArn!,
  );
  const compute = new ComputeEventSource(fake, router);
  const artifact = new Artifact(
    template,
    outdir,
    fake,
    { local, client },
    all,
    fns,
    new HttpApiGateway(template, fns.api),
    workflow,
    router,
    queues,
    stream,
    compute,
    webhook,
  );
  try {
    await seedPools(template, fns.seedPools);
  } catch (error) {
    await artifact.close();
    throw error;
  }
  artifact.startPollers();
  return artifact;
}

/** One deployment per test file: started before its tests, closed after them. */
export function artifactPerFile(options: AwsFakeOptions = {}): () => Artifact {
  let artifact: Artifact | undefined;
  before(async () => {
    artifact = await deployArtifact(options);
  });
  after(async () => {
    if (artifact) console.log(await reportUnusedGrants(artifact));
    await artifact?.close();
  });
  return () => {
    if (!artifact) throw new Error('the artifact is not deployed yet: call this inside a test or hook');
    return artifact;
  };
}

function wiring(template: CfnTemplate, all: LambdaFunction[]): ArtifactFunctions {
  const resources = Object.entries(template.Resources);
  const byId = (id: unknown, what: string) => {
    const fn = all.find((f) => f.spec.logicalId === id);
    if (!fn) throw new Error(`the template wires no function as ${what}`);
    return fn;
  };
  const getAttOf = (v: any) => v?.['Fn::GetAtt']?.[0];
  const integration = resources.find(([, r]) => r.Type === 'AWS::ApiGatewayV2::Integration')?.[1];
  const machine = resources.find(([, r]) => r.Type === 'AWS::StepFunctions::StateMachine')?.[1];
  const computeRule = resources.find(
    ([, r]) => r.Type === 'AWS::Events::Rule' && r.Properties?.EventPattern?.source?.includes('aws.ssm'),
  )?.[1];
  const mappings = resources
    .filter(([, r]) => r.Type === 'AWS::Lambda::EventSourceMapping')
    .map(([, r]) => r.Properties!);
  const fromMapping = (attribute: string) =>
    mappings.find((m) => m.EventSourceArn?.['Fn::GetAtt']?.[1] === attribute)?.FunctionName?.Ref;
  const provider = resources.find(([, r]) => r.Type === 'Custom::FlarePools')?.[1];
  const onEvent = byId(getAttOf(provider?.Properties?.ServiceToken), 'the pools custom resource provider');
  const userArn = onEvent.spec.environment.USER_ON_EVENT_FUNCTION_ARN;
  return {
    api: byId(getAttOf(integration?.Properties?.IntegrationUri), 'the HTTP API integration'),
    tasks: byId(getAttOf(machine?.Properties?.DefinitionSubstitutions?.TasksFunctionArn), "the state machine's tasks"),
    computeEvents: byId(getAttOf(computeRule?.Properties?.Targets?.[0]?.Arn), 'the SSM command rule target'),
    streamPublisher: byId(fromMapping('StreamArn'), 'the jobs stream consumer'),
    notifier: byId(fromMapping('Arn'), 'the notification queue consumer'),
    seedPools: all.find((f) => f.spec.arn === userArn) ?? byId(undefined, 'the pools custom resource handler'),
  };
}

/** CloudFormation creating the pools custom resource: the Provider framework hands its handler this event. */
async function seedPools(template: CfnTemplate, fn: LambdaFunction): Promise<void> {
  const [logicalId, resource] = Object.entries(template.Resources).find(([, r]) => r.Type === 'Custom::FlarePools')!;
  const outcome = await fn.invoke({
    RequestType: 'Create',
    ServiceToken: resolveValue(template, resource.Properties!.ServiceToken),
    ResponseURL: 'https://cloudformation-custom-resource-response.example/',
    StackId: `arn:aws:cloudformation:us-east-1:123456789012:stack/FlareStack/${'0'.repeat(8)}`,
    RequestId: 'create-pools',
    LogicalResourceId: logicalId,
    ResourceType: resource.Type,
    ResourceProperties: resolveValue(template, resource.Properties),
  });
  if (!outcome.ok)
    throw new Error(`seeding the pools failed: ${outcome.error.errorType}: ${outcome.error.errorMessage}`);
}

async function startWebhook(): Promise<{ server: Server; url: string; posts: WebhookPost[] }> {
  const posts: WebhookPost[] = [];
  const server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => {
      posts.push({ path: req.url ?? '', body: text.startsWith('{') ? JSON.parse(text) : text });
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    server,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/services/T000/B000/artifact`,
    posts,
  };
}
