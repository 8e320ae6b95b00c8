/**
 * SSM in the local AWS fake: which instances' agents are online, Run Command
 * (SendCommand, ListCommands, GetCommandInvocation, ListCommandInvocations),
 * with each invocation's outcome set by the test as the instance would report it.
 */
import { randomUUID } from 'node:crypto';
import { AwsError } from './aws-fake-wire.js';
import { instanceArn, strings, type Ec2Model, type FakeInstance } from './aws-fake-ec2.js';
import { ARTIFACT_ACCOUNT, ARTIFACT_PARTITION } from './types.js';

export interface SentCommand {
  commandId: string;
  region: string;
  documentName: string;
  instanceIds: string[];
  comment?: string;
  parameters: Record<string, string[]>;
  /** The request as sent (CloudWatchOutputConfig, TimeoutSeconds...). */
  request: Record<string, unknown>;
  requestedAt: Date;
}

/** How an invocation ended, as the agent reports it. */
export interface InvocationOutcome {
  /** `Success`, `Failed`, `TimedOut`, `Cancelled`, or still `InProgress`/`Pending`/`Delayed`. */
  status: string;
  /** SSM's finer status (`Undeliverable`, `DeliveryTimedOut`, `ExecutionTimedOut`...). @default status */
  statusDetails?: string;
  /** The script's exit code. @default 0 on Success, 1 on Failed, -1 otherwise */
  responseCode?: number;
  /** When the script ended. @default now for a settled status */
  endedAt?: Date;
  stdout?: string;
  stderr?: string;
}

interface Invocation extends Required<Pick<InvocationOutcome, 'status' | 'statusDetails' | 'responseCode'>> {
  startedAt?: Date;
  endedAt?: Date;
  stdout: string;
  stderr: string;
}

type Params = Record<string, unknown>;

const SETTLED = ['Success', 'Failed', 'TimedOut', 'Cancelled'];

export function documentArn(region: string, name: string): string {
  // AWS-owned documents (AWS-*) have no account in their ARN.
  const account = name.startsWith('AWS-') ? '' : ARTIFACT_ACCOUNT;
  return `arn:${ARTIFACT_PARTITION}:ssm:${region}:${account}:document/${name}`;
}

export class SsmModel {
  private readonly online = new Set<string>();
  private readonly sent: SentCommand[] = [];
  private readonly invocations = new Map<string, Invocation>();

  constructor(
    private readonly ec2: Ec2Model,
    /** An instance's agent comes online as soon as it runs. */
    public autoAgent = false,
  ) {
    ec2.onStateChange = (instance) => this.follow(instance);
  }

  resources(action: string, params: Params, region: string): string[] {
    const instanceIds = [
      ...strings(params.InstanceIds),
      ...(typeof params.InstanceId === 'string' ? [params.InstanceId] : []),
    ];
    const arns = instanceIds.map((id) => instanceArn(region, id));
    if (action === 'SendCommand' && typeof params.DocumentName === 'string')
      arns.unshift(documentArn(region, params.DocumentName));
    return arns.length > 0 ? arns : ['*'];
  }

  handle(action: string, params: Params, region: string): unknown {
    switch (action) {
      case 'DescribeInstanceInformation':
        return this.describeInstanceInformation(params, region);
      case 'SendCommand':
        return { Command: this.commandJson(this.sendCommand(params, region)) };
      case 'ListCommands':
        return this.listCommands(params, region);
      case 'GetCommandInvocation':
        return this.getCommandInvocation(params);
      case 'ListCommandInvocations':
        return this.listCommandInvocations(params, region);
      default:
        throw new AwsError('UnknownOperationException', `aws-fake models no ssm:${action}`);
    }
  }

  agentOnline(instanceId: string): void {
    const instance = this.ec2.instance(instanceId);
    if (!instance) throw new Error(`aws-fake: no instance ${instanceId} to bring its agent online`);
    // An agent reports only from a booted instance.
    if (instance.state === 'pending') this.ec2.setState(instanceId, 'running');
    this.online.add(instanceId);
  }

  agentOffline(instanceId: string): void {
    this.online.delete(instanceId);
  }

  commands(): SentCommand[] {
    return this.sent.map((c) => ({ ...c, instanceIds: [...c.instanceIds] }));
  }

  setInvocation(commandId: string, instanceId: string, outcome: InvocationOutcome): void {
    const invocation = this.invocations.get(invocationKey(commandId, instanceId));
    if (!invocation) throw new Error(`aws-fake: command ${commandId} was not sent to ${instanceId}`);
    const settled = SETTLED.includes(outcome.status);
    Object.assign(invocation, {
      status: outcome.status,
      statusDetails: outcome.statusDetails ?? outcome.status,
      responseCode: outcome.responseCode ?? (outcome.status === 'Success' ? 0 : outcome.status === 'Failed' ? 1 : -1),
      endedAt: outcome.endedAt ?? (settled ? new Date() : undefined),
      stdout: outcome.stdout ?? '',
      stderr: outcome.stderr ?? '',
    });
  }

  private follow(instance: FakeInstance): void {
    if (instance.state === 'running' && this.autoAgent) this.online.add(instance.instanceId);
  }

  /** Online while the instance runs; a stopped or terminated one shows ConnectionLost, one EC2 forgot is gone. */
  private pingStatus(instanceId: string): string | undefined {
    if (!this.online.has(instanceId) || !this.ec2.instance(instanceId)) return undefined;
    return this.ec2.isAgentCapable(instanceId) ? 'Online' : 'ConnectionLost';
  }

  private describeInstanceInformation(params: Params, region: string): unknown {
    let ids = [...this.online].filter((id) => this.ec2.instance(id)?.region === region);
    const filters = [
      ...(Array.isArray(params.Filters) ? params.Filters : []),
      ...(Array.isArray(params.InstanceInformationFilterList) ? params.InstanceInformationFilterList : []),
    ] as Params[];
    for (const filter of filters) {
      const key = String(filter.Key ?? filter.key);
      const values = strings(filter.Values ?? filter.valueSet);
      if (key === 'InstanceIds' || key === 'InstanceId') ids = ids.filter((id) => values.includes(id));
      else if (key === 'PingStatus') ids = ids.filter((id) => values.includes(this.pingStatus(id) ?? ''));
      else
        throw new AwsError(
          'InvalidInstanceInformationFilterValue',
          `aws-fake models no DescribeInstanceInformation filter ${key}`,
        );
    }
    const list = ids.flatMap((id) => {
      const status = this.pingStatus(id);
      const instance = this.ec2.instance(id);
      if (!status || !instance) return [];
      return [
        {
          InstanceId: id,
          PingStatus: status,
          LastPingDateTime: new Date(),
          AgentVersion: '3.3.0.0',
          IsLatestVersion: true,
          PlatformType: 'Linux',
          PlatformName: 'Ubuntu',
          ResourceType: 'EC2Instance',
          IPAddress: instance.privateIpAddress,
          ComputerName: `ip-${instance.privateIpAddress.replace(/\./g, '-')}`,
        },
      ];
    });
    return paged(list, params, 'InstanceInformationList', 50);
  }

  private sendCommand(params: Params, region: string): SentCommand {
    if (typeof params.DocumentName !== 'string')
      throw new AwsError(
        'ValidationException',
        "1 validation error detected: Value null at 'documentName' failed to satisfy constraint: Member must not be null",
      );
    const instanceIds = strings(params.InstanceIds);
    if (instanceIds.length === 0)
      throw new AwsError('ValidationException', 'aws-fake models SendCommand by InstanceIds only (no Targets)');
    const unmanaged = instanceIds.filter(
      (id) => this.pingStatus(id) !== 'Online' || this.ec2.instance(id)?.region !== region,
    );
    if (unmanaged.length > 0)
      throw new AwsError(
        'InvalidInstanceId',
        `Instances [[${unmanaged.join(', ')}]] not in a valid state for account ${ARTIFACT_ACCOUNT}`,
      );
    const command: SentCommand = {
      commandId: randomUUID(),
      region,
      documentName: params.DocumentName,
      instanceIds,
      ...(typeof params.Comment === 'string' ? { comment: params.Comment } : {}),
      parameters: (params.Parameters ?? {}) as Record<string, string[]>,
      request: params,
      requestedAt: new Date(),
    };
    this.sent.push(command);
    for (const id of instanceIds) {
      this.invocations.set(invocationKey(command.commandId, id), {
        status: 'InProgress',
        statusDetails: 'InProgress',
        responseCode: -1,
        startedAt: new Date(),
        stdout: '',
        stderr: '',
      });
    }
    return command;
  }

  private commandStatus(command: SentCommand): {
    Status: string;
    StatusDetails: string;
    CompletedCount: number;
    ErrorCount: number;
  } {
    const all = command.instanceIds.map((id) => this.invocations.get(invocationKey(command.commandId, id))!);
    const completed = all.filter((i) => SETTLED.includes(i.status));
    const errors = completed.filter((i) => i.status !== 'Success');
    const status = completed.length < all.length ? 'InProgress' : (errors[0]?.status ?? 'Success');
    return { Status: status, StatusDetails: status, CompletedCount: completed.length, ErrorCount: errors.length };
  }

  private commandJson(command: SentCommand): unknown {
    return {
      CommandId: command.commandId,
      DocumentName: command.documentName,
      DocumentVersion: '$DEFAULT',
      Comment: command.comment,
      Parameters: command.parameters,
      InstanceIds: command.instanceIds,
      Targets: [],
      RequestedDateTime: command.requestedAt,
      ExpiresAfter: new Date(command.requestedAt.getTime() + 3600_000),
      TargetCount: command.instanceIds.length,
      DeliveryTimedOutCount: 0,
      CloudWatchOutputConfig: command.request.CloudWatchOutputConfig,
      TimeoutSeconds: command.request.TimeoutSeconds ?? 3600,
      ...this.commandStatus(command),
    };
  }

  private listCommands(params: Params, region: string): unknown {
    let commands = this.sent.filter((c) => c.region === region);
    if (typeof params.CommandId === 'string') {
      commands = commands.filter((c) => c.commandId === params.CommandId);
      if (commands.length === 0) throw new AwsError('InvalidCommandId', `no command ${params.CommandId}`);
    }
    if (typeof params.InstanceId === 'string')
      commands = commands.filter((c) => c.instanceIds.includes(params.InstanceId as string));
    for (const filter of (Array.isArray(params.Filters) ? params.Filters : []) as Params[]) {
      if (filter.key === 'DocumentName') commands = commands.filter((c) => c.documentName === filter.value);
      else if (filter.key === 'Status')
        commands = commands.filter((c) => this.commandStatus(c).Status === filter.value);
      else throw new AwsError('InvalidFilterKey', `aws-fake models no ListCommands filter ${String(filter.key)}`);
    }
    // Newest first, as SSM lists them.
    return paged(
      [...commands].reverse().map((c) => this.commandJson(c)),
      params,
      'Commands',
      50,
    );
  }

  private getCommandInvocation(params: Params): unknown {
    const commandId = String(params.CommandId);
    const instanceId = String(params.InstanceId);
    const command = this.sent.find((c) => c.commandId === commandId);
    if (!command) throw new AwsError('InvalidCommandId', `no command ${commandId}`);
    const invocation = this.invocations.get(invocationKey(commandId, instanceId));
    if (!invocation)
      throw new AwsError('InvocationDoesNotExist', `command ${commandId} has no invocation on ${instanceId}`);
    return {
      CommandId: commandId,
      InstanceId: instanceId,
      Comment: command.comment,
      DocumentName: command.documentName,
      DocumentVersion: '$DEFAULT',
      PluginName: typeof params.PluginName === 'string' ? params.PluginName : 'aws:runShellScript',
      ResponseCode: invocation.responseCode,
      ExecutionStartDateTime: invocation.startedAt?.toISOString() ?? '',
      ExecutionElapsedTime:
        invocation.endedAt && invocation.startedAt
          ? elapsed(invocation.endedAt.getTime() - invocation.startedAt.getTime())
          : '',
      ExecutionEndDateTime: invocation.endedAt?.toISOString() ?? '',
      Status: invocation.status,
      StatusDetails: invocation.statusDetails,
      StandardOutputContent: invocation.stdout,
      StandardOutputUrl: '',
      StandardErrorContent: invocation.stderr,
      StandardErrorUrl: '',
      CloudWatchOutputConfig: command.request.CloudWatchOutputConfig ?? {
        CloudWatchLogGroupName: '',
        CloudWatchOutputEnabled: false,
      },
    };
  }

  private listCommandInvocations(params: Params, region: string): unknown {
    const list = this.sent
      .filter((c) => c.region === region && (params.CommandId === undefined || c.commandId === params.CommandId))
      .flatMap((c) =>
        c.instanceIds
          .filter((id) => params.InstanceId === undefined || id === params.InstanceId)
          .map((id) => {
            const invocation = this.invocations.get(invocationKey(c.commandId, id))!;
            return {
              CommandId: c.commandId,
              InstanceId: id,
              Comment: c.comment,
              DocumentName: c.documentName,
              DocumentVersion: '$DEFAULT',
              RequestedDateTime: c.requestedAt,
              Status: invocation.status,
              StatusDetails: invocation.statusDetails,
              CommandPlugins: params.Details
                ? [
                    {
                      Name: 'aws:runShellScript',
                      Status: invocation.status,
                      StatusDetails: invocation.statusDetails,
                      ResponseCode: invocation.responseCode,
                      Output: invocation.stdout,
                    },
                  ]
                : [],
            };
          }),
      );
    return paged(list.reverse(), params, 'CommandInvocations', 50);
  }
}

function invocationKey(commandId: string, instanceId: string): string {
  return `${commandId}/${instanceId}`;
}

/** `HH:MM:SS`, as SSM reports an invocation's elapsed time. */
function elapsed(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return [Math.floor(s / 3600), Math.floor(s / 60) % 60, s % 60].map((n) => String(n).padStart(2, '0')).join(':');
}

/** A JSON list answered page by page: NextToken is the offset of the next page. */
export function paged(items: unknown[], params: Params, member: string, defaultMax: number): Record<string, unknown> {
  const max =
    typeof params.MaxResults === 'number'
      ? params.MaxResults
      : typeof params.maxResults === 'number'
        ? params.maxResults
        : defaultMax;
  const token = params.NextToken ?? params.nextToken;
  const from = token === undefined ? 0 : Number(token);
  if (!Number.isInteger(from) || from < 0)
    throw new AwsError('InvalidNextToken', `The specified token is not valid: ${String(token)}`);
  const next = from + max < items.length ? String(from + max) : undefined;
  return { [member]: items.slice(from, from + max), ...(next ? { NextToken: next } : {}) };
}
