/**
 * The JSON services of the local AWS fake other than SSM: EventBridge
 * PutEvents (recorded), Secrets Manager GetSecretValue (from the test's
 * secrets), CloudWatch Logs reads (from the test's lines, with the service's
 * forward and backward tokens), and Step Functions' API, delegated to the
 * harness that runs the state machine.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { AwsError } from './aws-fake-wire.js';
import { ARTIFACT_ACCOUNT, ARTIFACT_PARTITION, ARTIFACT_REGION } from './types.js';

type Params = Record<string, unknown>;

const arn = (service: string, region: string, resource: string, account = ARTIFACT_ACCOUNT) =>
  `arn:${ARTIFACT_PARTITION}:${service}:${region}:${account}:${resource}`;

/** An event as EventBridge took it, Detail parsed. */
export interface PutEvent {
  EventId: string;
  EventBusName: string;
  Source: string;
  DetailType: string;
  Detail: unknown;
  Time?: Date;
  Resources: string[];
  /** Who put it (the access key id) and in which region. */
  principal: string;
  region: string;
}

/** PutEvents' limit on entries per request. */
const MAX_PUT_ENTRIES = 10;

export class EventsModel {
  readonly put: PutEvent[] = [];

  resources(params: Params, region: string): string[] {
    const entries = (Array.isArray(params.Entries) ? params.Entries : []) as Params[];
    const buses = new Set(
      entries.map((e) => busArn(typeof e.EventBusName === 'string' ? e.EventBusName : 'default', region)),
    );
    return buses.size > 0 ? [...buses] : ['*'];
  }

  handle(action: string, params: Params, call: { principal: string; region: string }): unknown {
    if (action !== 'PutEvents') throw new AwsError('UnknownOperationException', `aws-fake models no events:${action}`);
    const entries = params.Entries;
    if (!Array.isArray(entries) || entries.length < 1 || entries.length > MAX_PUT_ENTRIES) {
      throw new AwsError(
        'ValidationException',
        `1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length between 1 and ${MAX_PUT_ENTRIES}`,
      );
    }
    const results = (entries as Params[]).map((entry) => {
      for (const field of ['Source', 'DetailType', 'Detail'] as const) {
        if (typeof entry[field] !== 'string' || entry[field] === '')
          return {
            ErrorCode: 'InvalidArgument',
            ErrorMessage: `Parameter ${field} is not valid. Reason: ${field} is a required argument.`,
          };
      }
      let detail: unknown;
      try {
        detail = JSON.parse(entry.Detail as string);
      } catch {
        return { ErrorCode: 'MalformedDetail', ErrorMessage: 'Detail is malformed.' };
      }
      if (!detail || typeof detail !== 'object' || Array.isArray(detail))
        return { ErrorCode: 'MalformedDetail', ErrorMessage: 'Detail is malformed.' };
      const event: PutEvent = {
        EventId: randomUUID(),
        EventBusName: typeof entry.EventBusName === 'string' ? entry.EventBusName : 'default',
        Source: entry.Source as string,
        DetailType: entry.DetailType as string,
        Detail: detail,
        ...(typeof entry.Time === 'number' ? { Time: new Date(entry.Time * 1000) } : {}),
        Resources: Array.isArray(entry.Resources) ? (entry.Resources as string[]) : [],
        principal: call.principal,
        region: call.region,
      };
      this.put.push(event);
      return { EventId: event.EventId };
    });
    return { FailedEntryCount: results.filter((r) => 'ErrorCode' in r).length, Entries: results };
  }
}

function busArn(nameOrArn: string, region: string): string {
  return nameOrArn.startsWith('arn:') ? nameOrArn : arn('events', region, `event-bus/${nameOrArn}`);
}

interface Secret {
  arn: string;
  name: string;
  value: string;
  createdAt: Date;
  changedAt?: Date;
  tags?: Record<string, string>;
}

/** A secret ARN ends in its name, a hyphen and six random characters. */
const SECRET_ARN = /^arn:[^:]+:secretsmanager:[^:]+:[^:]+:secret:(.+?)(-[A-Za-z0-9]{6})?$/;

export class SecretsModel {
  private readonly secrets: Secret[] = [];

  /** By name (an ARN is made up for it, in ARTIFACT_REGION) or by full ARN. */
  putSecret(nameOrArn: string, value: string): void {
    const match = SECRET_ARN.exec(nameOrArn);
    const name = match ? match[1] : nameOrArn;
    const secretArn = match
      ? nameOrArn
      : arn('secretsmanager', ARTIFACT_REGION, `secret:${name}-${randomBytes(3).toString('hex')}`);
    const existing = this.secrets.findIndex((s) => s.arn === secretArn || s.name === name);
    if (existing >= 0) this.secrets.splice(existing, 1);
    this.secrets.push({ arn: secretArn, name, value, createdAt: new Date() });
  }

  /** The tags a secret was created with, by its full ARN (deleted ones included: a call named it while it existed). */
  tagsOf(secretArn: string): Record<string, string> | undefined {
    return [...this.secrets, ...this.deleted].find((s) => s.arn === secretArn)?.tags;
  }

  /** The secrets whose names start with `prefix`, as they are now. */
  named(prefix: string): Readonly<Secret>[] {
    return this.secrets.filter((s) => s.name.startsWith(prefix));
  }

  private readonly deleted: Secret[] = [];

  resources(params: Params, region: string): string[] {
    const id = String(params.SecretId ?? params.Name ?? '');
    const found = this.find(id);
    if (found) return [found.arn];
    return [id.startsWith('arn:') ? id : arn('secretsmanager', region, `secret:${id}`)];
  }

  handle(action: string, params: Params): unknown {
    switch (action) {
      case 'GetSecretValue':
        break;
      case 'CreateSecret':
        return this.create(params);
      case 'ListSecrets':
        return this.list(params);
      case 'PutSecretValue':
      case 'DescribeSecret':
      case 'DeleteSecret':
        return this.change(action, params);
      default:
        throw new AwsError('UnknownOperationException', `aws-fake models no secretsmanager:${action}`);
    }
    const secret = this.find(String(params.SecretId ?? ''));
    if (!secret || (params.VersionStage !== undefined && params.VersionStage !== 'AWSCURRENT')) {
      throw new AwsError('ResourceNotFoundException', "Secrets Manager can't find the specified secret.");
    }
    return {
      ARN: secret.arn,
      Name: secret.name,
      VersionId: randomUUID(),
      SecretString: secret.value,
      VersionStages: ['AWSCURRENT'],
      CreatedDate: secret.createdAt,
    };
  }

  private create(params: Params): unknown {
    const name = String(params.Name ?? '');
    if (this.find(name))
      throw new AwsError('ResourceExistsException', `The operation failed because the secret ${name} already exists.`);
    const tags = Object.fromEntries(
      ((params.Tags ?? []) as { Key: string; Value: string }[]).map((t) => [t.Key, t.Value]),
    );
    const secret: Secret = {
      arn: arn('secretsmanager', ARTIFACT_REGION, `secret:${name}-${randomBytes(3).toString('hex')}`),
      name,
      value: String(params.SecretString ?? ''),
      createdAt: new Date(),
      tags,
    };
    this.secrets.push(secret);
    return { ARN: secret.arn, Name: secret.name, VersionId: randomUUID() };
  }

  /** ListSecrets with a `name` filter: the secrets whose names start with one of its values. */
  private list(params: Params): unknown {
    const filters = (params.Filters ?? []) as { Key: string; Values: string[] }[];
    const prefixes = filters.filter((f) => f.Key === 'name').flatMap((f) => f.Values);
    const found = this.secrets.filter((s) => prefixes.length === 0 || prefixes.some((p) => s.name.startsWith(p)));
    return {
      SecretList: found.map((s) => ({
        ARN: s.arn,
        Name: s.name,
        CreatedDate: s.createdAt,
        LastChangedDate: s.changedAt ?? s.createdAt,
      })),
    };
  }

  private change(action: string, params: Params): unknown {
    const secret = this.find(String(params.SecretId ?? ''));
    if (!secret) throw new AwsError('ResourceNotFoundException', "Secrets Manager can't find the specified secret.");
    if (action === 'PutSecretValue') {
      secret.value = String(params.SecretString ?? '');
      secret.changedAt = new Date();
      return { ARN: secret.arn, Name: secret.name, VersionId: randomUUID() };
    }
    if (action === 'DeleteSecret') {
      this.secrets.splice(this.secrets.indexOf(secret), 1);
      this.deleted.push(secret);
      return { ARN: secret.arn, Name: secret.name, DeletionDate: new Date() };
    }
    return {
      ARN: secret.arn,
      Name: secret.name,
      CreatedDate: secret.createdAt,
      LastChangedDate: secret.changedAt ?? secret.createdAt,
      Tags: Object.entries(secret.tags ?? {}).map(([Key, Value]) => ({ Key, Value })),
    };
  }

  /** By full ARN, by name, or by partial ARN (without the random suffix), as Secrets Manager resolves a SecretId. */
  private find(id: string): Secret | undefined {
    return this.secrets.find(
      (s) =>
        s.arn === id ||
        s.name === id ||
        (id.startsWith('arn:') && s.arn.startsWith(`${id}-`) && s.arn.length === id.length + 7),
    );
  }
}

export interface LogLineInput {
  message: string;
  /** Epoch milliseconds. @default now */
  timestamp?: number;
}

interface LogEvent {
  timestamp: number;
  message: string;
  ingestionTime: number;
  eventId: string;
}

/** GetLogEvents answers at most 10,000 events or 1 MB (messages plus 26 bytes each) per call. */
const PAGE_EVENTS = 10_000;
const PAGE_BYTES = 1_048_576;
const EVENT_OVERHEAD_BYTES = 26;
const TOKEN = /^([fb])\/(\d+)$/;

export class LogsModel {
  private readonly groups = new Map<string, Map<string, LogEvent[]>>();
  private eventCount = 0;

  putLogLines(group: string, stream: string, lines: ReadonlyArray<string | LogLineInput>): void {
    const streams = this.groups.get(group) ?? new Map<string, LogEvent[]>();
    this.groups.set(group, streams);
    const events = streams.get(stream) ?? [];
    streams.set(stream, events);
    const now = Date.now();
    for (const line of lines) {
      const { message, timestamp = now } = typeof line === 'string' ? { message: line } : line;
      events.push({ timestamp, message, ingestionTime: now, eventId: String(++this.eventCount).padStart(56, '0') });
    }
    // A stream reads in timestamp order; equal timestamps keep their order.
    events.sort((a, b) => a.timestamp - b.timestamp);
  }

  resources(action: string, params: Params, region: string): string[] {
    const group = groupName(params);
    if (!group) return ['*'];
    if (action === 'GetLogEvents' && typeof params.logStreamName === 'string')
      return [arn('logs', region, `log-group:${group}:log-stream:${params.logStreamName}`)];
    return [arn('logs', region, `log-group:${group}:*`)];
  }

  handle(action: string, params: Params): unknown {
    if (action === 'GetLogEvents') return this.getLogEvents(params);
    if (action === 'FilterLogEvents') return this.filterLogEvents(params);
    throw new AwsError('UnknownOperationException', `aws-fake models no logs:${action}`);
  }

  private streamsOf(params: Params): Map<string, LogEvent[]> {
    const streams = this.groups.get(groupName(params) ?? '');
    if (!streams) throw new AwsError('ResourceNotFoundException', 'The specified log group does not exist.');
    return streams;
  }

  private getLogEvents(params: Params): unknown {
    const stream = this.streamsOf(params).get(String(params.logStreamName));
    if (!stream) throw new AwsError('ResourceNotFoundException', 'The specified log stream does not exist.');
    const events = stream.filter(inWindow(params));
    const limit = typeof params.limit === 'number' ? Math.min(params.limit, PAGE_EVENTS) : PAGE_EVENTS;
    let forward = params.startFromHead === true;
    let at = forward ? 0 : events.length;
    if (params.nextToken !== undefined) {
      const token = TOKEN.exec(String(params.nextToken));
      if (!token || Number(token[2]) > events.length)
        throw new AwsError('InvalidParameterException', 'The specified nextToken is invalid.');
      forward = token[1] === 'f';
      at = Number(token[2]);
    }
    // Tokens are positions in the stream: a forward page is [at, end), a backward one [start, at).
    let start = at;
    let end = at;
    let bytes = 0;
    const fits = (event: LogEvent) =>
      end - start < limit && bytes + Buffer.byteLength(event.message) + EVENT_OVERHEAD_BYTES <= PAGE_BYTES;
    if (forward) {
      while (end < events.length && fits(events[end]))
        bytes += Buffer.byteLength(events[end++].message) + EVENT_OVERHEAD_BYTES;
    } else {
      while (start > 0 && fits(events[start - 1]))
        bytes += Buffer.byteLength(events[--start].message) + EVENT_OVERHEAD_BYTES;
    }
    return {
      events: events
        .slice(start, end)
        .map(({ timestamp, message, ingestionTime }) => ({ timestamp, message, ingestionTime })),
      nextForwardToken: logToken('f', end),
      nextBackwardToken: logToken('b', start),
    };
  }

  private filterLogEvents(params: Params): unknown {
    const streams = this.streamsOf(params);
    const names = Array.isArray(params.logStreamNames) ? (params.logStreamNames as string[]) : [...streams.keys()];
    const prefix = typeof params.logStreamNamePrefix === 'string' ? params.logStreamNamePrefix : '';
    const matches = termMatcher(typeof params.filterPattern === 'string' ? params.filterPattern : '');
    const window = inWindow(params);
    const all = names
      .filter((name) => name.startsWith(prefix))
      .flatMap((name) =>
        (streams.get(name) ?? [])
          .filter((e) => window(e) && matches(e.message))
          .map((e) => ({ logStreamName: name, ...e })),
      )
      .sort((a, b) => a.timestamp - b.timestamp);
    const limit = typeof params.limit === 'number' ? params.limit : PAGE_EVENTS;
    const from = params.nextToken === undefined ? 0 : Number(params.nextToken);
    if (!Number.isInteger(from) || from < 0)
      throw new AwsError('InvalidParameterException', 'The specified nextToken is invalid.');
    const next = from + limit < all.length ? String(from + limit) : undefined;
    return {
      events: all.slice(from, from + limit),
      searchedLogStreams: names.map((logStreamName) => ({ logStreamName, searchedCompletely: true })),
      ...(next ? { nextToken: next } : {}),
    };
  }
}

function groupName(params: Params): string | undefined {
  if (typeof params.logGroupName === 'string') return params.logGroupName;
  if (typeof params.logGroupIdentifier !== 'string') return undefined;
  // An identifier is the name or the group's ARN.
  return (
    /^arn:[^:]+:logs:[^:]+:[^:]+:log-group:([^:]+)/.exec(params.logGroupIdentifier)?.[1] ?? params.logGroupIdentifier
  );
}

function inWindow(params: Params): (event: LogEvent) => boolean {
  const from = typeof params.startTime === 'number' ? params.startTime : Number.NEGATIVE_INFINITY;
  const to = typeof params.endTime === 'number' ? params.endTime : Number.POSITIVE_INFINITY;
  return (event) => event.timestamp >= from && event.timestamp < to;
}

/** The service's tokens look like `f/<56 digits>`; here the digits are a position in the stream. */
function logToken(direction: 'f' | 'b', position: number): string {
  return `${direction}/${String(position).padStart(56, '0')}`;
}

/** Term patterns only (every term, or quoted phrase, must occur); JSON and space-delimited patterns are not modelled. */
function termMatcher(pattern: string): (message: string) => boolean {
  if (/^\s*[{[]/.test(pattern))
    throw new AwsError('InvalidParameterException', `aws-fake models only term filter patterns, not ${pattern}`);
  const terms = [...pattern.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]);
  return (message) => terms.every((term) => message.includes(term));
}

/** What the harness answers for Step Functions' API; throw an Error whose `name` is the AWS code to answer with an error. */
export type StatesHandler = (
  action: string,
  params: Params,
  call: { principal: string; region: string },
) => Promise<unknown>;

/** The resources a Step Functions call names; a task token resolves through the harness's lookup. */
export function statesResources(
  params: Params,
  taskTokenArn: ((token: string) => string | undefined) | undefined,
): string[] {
  const arns: string[] = [];
  for (const key of ['stateMachineArn', 'executionArn'] as const)
    if (typeof params[key] === 'string') arns.push(params[key]);
  if (typeof params.taskToken === 'string') {
    const owner = taskTokenArn?.(params.taskToken);
    if (owner) arns.push(owner);
  }
  return arns.length > 0 ? arns : ['*'];
}
