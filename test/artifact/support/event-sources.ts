/**
 * What AWS does between the functions, from the template's own wiring:
 * EventBridge rules (EventPattern, InputTransformer) delivering to a function
 * (asynchronous invoke, retried as Lambda retries) or an SQS queue; SQS event
 * source mappings (batches, partial batch failures, receive count, DLQ); the
 * jobs table's stream event source mapping (filter criteria, batches in order,
 * partial batch failures).
 */
import { createHash, randomUUID } from 'node:crypto';
import { arnOf, resolveValue, type CfnTemplate } from './cfn-resolve.js';
import { matchesPattern, transformInput } from './event-pattern.js';
import type { Invocation, LambdaFunction } from './lambdas.js';
import type { DynamoDBRecord } from 'aws-lambda';
import type { StreamReader } from '../../../lambdas/local/jobs-stream.js';
import { ARTIFACT_ACCOUNT, ARTIFACT_REGION } from './types.js';

/** An event as EventBridge delivers it to a target. */
export interface BusEvent {
  version: '0';
  id: string;
  'detail-type': string;
  source: string;
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: unknown;
}

export function busEvent(entry: {
  Source: string;
  DetailType: string;
  Detail: unknown;
  Resources?: string[];
  Time?: Date | string;
}): BusEvent {
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': entry.DetailType,
    source: entry.Source,
    account: ARTIFACT_ACCOUNT,
    time: new Date(entry.Time ?? Date.now()).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    region: ARTIFACT_REGION,
    resources: entry.Resources ?? [],
    detail: typeof entry.Detail === 'string' ? JSON.parse(entry.Detail) : entry.Detail,
  };
}

/** Lambda's asynchronous invoke retries a function error twice (EventInvokeConfig's default). */
const ASYNC_ATTEMPTS = 3;

export interface Delivery {
  rule: string;
  target: string;
  event: BusEvent;
  /** For a function target: each attempt's outcome. */
  attempts?: Invocation[];
}

interface SqsMessage {
  messageId: string;
  body: string;
  receiveCount: number;
  sentAt: number;
}

/** One SQS queue of the template and the function its event source mapping feeds. */
export class SqsSource {
  readonly messages: SqsMessage[] = [];
  /** Messages moved to the queue's dead-letter queue after maxReceiveCount receives. */
  readonly deadLettered: SqsMessage[] = [];

  constructor(
    readonly queueArn: string,
    private readonly fn: LambdaFunction | undefined,
    private readonly batchSize: number,
    private readonly maxReceiveCount: number,
  ) {}

  send(body: string): void {
    this.messages.push({ messageId: randomUUID(), body, receiveCount: 0, sentAt: Date.now() });
  }

  /** One pass: every message waiting is received once, in batches. Returns how many were received. */
  async poll(): Promise<number> {
    if (!this.fn) return 0;
    const batch = this.messages.splice(0, this.messages.length);
    for (let i = 0; i < batch.length; i += this.batchSize) {
      const slice = batch.slice(i, i + this.batchSize);
      for (const m of slice) m.receiveCount += 1;
      const outcome = await this.fn.invoke({ Records: slice.map((m) => this.record(m)) });
      const failed = outcome.ok ? failedIds(outcome.result) : new Set(slice.map((m) => m.messageId));
      for (const m of slice.filter((m) => failed.has(m.messageId)))
        (m.receiveCount >= this.maxReceiveCount ? this.deadLettered : this.messages).push(m);
    }
    return batch.length;
  }

  private record(m: SqsMessage) {
    return {
      messageId: m.messageId,
      receiptHandle: Buffer.from(`${m.messageId}:${m.receiveCount}`).toString('base64'),
      body: m.body,
      attributes: {
        ApproximateReceiveCount: String(m.receiveCount),
        SentTimestamp: String(m.sentAt),
        SenderId: 'AROAEVENTBRIDGE',
        ApproximateFirstReceiveTimestamp: String(m.sentAt),
      },
      messageAttributes: {},
      md5OfBody: createHash('md5').update(m.body).digest('hex'),
      eventSource: 'aws:sqs',
      eventSourceARN: this.queueArn,
      awsRegion: ARTIFACT_REGION,
    };
  }
}

function failedIds(result: unknown): Set<string> {
  const failures =
    (result as { batchItemFailures?: Array<{ itemIdentifier: string }> } | null)?.batchItemFailures ?? [];
  return new Set(failures.map((f) => f.itemIdentifier));
}

/** The stream event source mapping: filter, batches in order, retry from the first failed record. */
export class StreamSource {
  private pending: DynamoDBRecord[] = [];
  private failures = 0;
  /** Records given up after MaximumRetryAttempts (the mapping's on-failure destination). */
  readonly deadLettered: DynamoDBRecord[] = [];

  constructor(
    private readonly reader: StreamReader,
    private readonly fn: LambdaFunction,
    private readonly mapping: Record<string, any>,
    private readonly streamArn: string,
  ) {}

  async poll(): Promise<number> {
    const filters = ((this.mapping.FilterCriteria?.Filters ?? []) as Array<{ Pattern: string }>).map(
      (f) => JSON.parse(f.Pattern) as Record<string, unknown>,
    );
    const fresh = (await this.reader.read()).map((r) => ({
      ...r,
      awsRegion: ARTIFACT_REGION,
      eventSourceARN: this.streamArn,
    }));
    // Lambda drops records no filter matches before batching.
    this.pending.push(...fresh.filter((r) => filters.length === 0 || filters.some((f) => matchesPattern(f, r))));
    let delivered = 0;
    while (this.pending.length > 0) {
      const batch = this.pending.slice(0, Number(this.mapping.BatchSize ?? 100));
      const outcome = await this.fn.invoke({ Records: batch });
      const failed = outcome.ok ? [...failedIds(outcome.result)] : [batch[0].dynamodb!.SequenceNumber!];
      const from =
        failed.length === 0
          ? batch.length
          : Math.min(
              ...failed.map((id) => batch.findIndex((r) => r.dynamodb?.SequenceNumber === id)).filter((i) => i >= 0),
            );
      delivered += from;
      this.pending.splice(0, from);
      if (from === batch.length) {
        this.failures = 0;
        continue;
      }
      if (++this.failures > Number(this.mapping.MaximumRetryAttempts ?? 10)) {
        this.deadLettered.push(...this.pending.splice(0, 1));
        this.failures = 0;
      }
      break; // retried on the next poll, from the first failed record
    }
    return delivered + fresh.length;
  }
}

interface Rule {
  id: string;
  bus: string;
  /** Absent for a schedule rule. */
  pattern?: Record<string, unknown>;
  schedule?: string;
  arn: string;
  targets: Array<{
    id: string;
    arnOf: string;
    transformer?: { InputPathsMap?: Record<string, string>; InputTemplate: string };
    input?: string;
  }>;
}

/** The template's event rules by bus, and the targets behind them. */
export class EventRouter {
  private readonly rules: Rule[];
  readonly deliveries: Delivery[] = [];

  constructor(
    template: CfnTemplate,
    private readonly functions: Map<string, LambdaFunction>,
    private readonly queues: Map<string, SqsSource>,
  ) {
    this.rules = Object.entries(template.Resources)
      .filter(([, r]) => r.Type === 'AWS::Events::Rule' && r.Properties?.State !== 'DISABLED')
      .map(([id, r]) => {
        const p = r.Properties!;
        return {
          id,
          bus: p.EventBusName ? busName(String(resolveValue(template, p.EventBusName))) : 'default',
          pattern: p.EventPattern ? (resolveValue(template, p.EventPattern) as Record<string, unknown>) : undefined,
          schedule: p.ScheduleExpression ? String(p.ScheduleExpression) : undefined,
          arn: arnOf(template, id),
          targets: (p.Targets as any[]).map((t) => ({
            id: String(t.Id),
            arnOf: String(t.Arn['Fn::GetAtt']?.[0] ?? ''),
            transformer: t.InputTransformer,
            input: t.Input,
          })),
        };
      });
  }

  /** Delivers an event put on `bus` (a name or an ARN) to every rule it matches. */
  async put(bus: string, event: BusEvent): Promise<Delivery[]> {
    const rules = this.rules.filter((r) => r.pattern && r.bus === busName(bus) && matchesPattern(r.pattern, event));
    return this.deliver(rules, event);
  }

  /** The schedule rules' time has come: EventBridge's Scheduled Event to each of their targets. */
  async tick(): Promise<Delivery[]> {
    const deliveries: Delivery[] = [];
    for (const rule of this.rules.filter((r) => r.schedule)) {
      deliveries.push(
        ...(await this.deliver(
          [rule],
          busEvent({ Source: 'aws.events', DetailType: 'Scheduled Event', Detail: {}, Resources: [rule.arn] }),
        )),
      );
    }
    return deliveries;
  }

  private async deliver(rules: Rule[], event: BusEvent): Promise<Delivery[]> {
    const deliveries: Delivery[] = [];
    for (const rule of rules) {
      for (const target of rule.targets) {
        const body = target.transformer
          ? transformInput(target.transformer, event)
          : (target.input ?? JSON.stringify(event));
        const delivery: Delivery = { rule: rule.id, target: target.arnOf, event };
        const fn = this.functions.get(target.arnOf);
        const queue = this.queues.get(target.arnOf);
        if (fn) {
          delivery.attempts = [];
          for (let i = 0; i < ASYNC_ATTEMPTS; i++) {
            const outcome = await fn.invoke(JSON.parse(body));
            delivery.attempts.push(outcome);
            if (outcome.ok) break;
          }
        } else if (queue) {
          queue.send(body);
        } else {
          throw new Error(`rule ${rule.id} targets ${target.arnOf}, which the artifact harness does not deliver to`);
        }
        deliveries.push(delivery);
      }
    }
    this.deliveries.push(...deliveries);
    return deliveries;
  }
}

function busName(nameOrArn: string): string {
  const match = /:event-bus\/(.+)$/.exec(nameOrArn);
  return match ? match[1] : nameOrArn;
}

/** Every SQS queue of the template with the function its event source mapping feeds (if any). */
export function sqsSources(template: CfnTemplate, functions: Map<string, LambdaFunction>): Map<string, SqsSource> {
  const sources = new Map<string, SqsSource>();
  for (const [id, r] of Object.entries(template.Resources)) {
    if (r.Type !== 'AWS::SQS::Queue') continue;
    const mapping = mappingOf(template, id, 'Arn');
    const fn = mapping ? functions.get(String(mapping.FunctionName.Ref)) : undefined;
    const maxReceiveCount = Number(r.Properties?.RedrivePolicy?.maxReceiveCount ?? Infinity);
    sources.set(id, new SqsSource(arnOf(template, id), fn, Number(mapping?.BatchSize ?? 10), maxReceiveCount));
  }
  return sources;
}

/** The event source mapping reading `Fn::GetAtt [sourceId, attribute]`. */
export function mappingOf(template: CfnTemplate, sourceId: string, attribute: string): Record<string, any> | undefined {
  const found = Object.values(template.Resources).filter(
    (r) =>
      r.Type === 'AWS::Lambda::EventSourceMapping' &&
      r.Properties?.EventSourceArn?.['Fn::GetAtt']?.[0] === sourceId &&
      r.Properties.EventSourceArn['Fn::GetAtt'][1] === attribute,
  );
  if (found.length > 1)
    throw new Error(`${sourceId} feeds ${found.length} event source mappings; the harness expects at most one`);
  return found[0]?.Properties;
}
