/**
 * The job lifecycle state machine, deployed from the very ASL file the local
 * mode runs (statemachines/job-lifecycle.asl.json). CDK reads the text and
 * CloudFormation fills `${TasksFunctionArn}` through DefinitionSubstitutions;
 * nothing about the workflow is written here.
 *
 * The machine's ARN is built from its explicit name instead of read from the
 * resource: the tasks function names the machine in its environment and
 * policy while the machine names the function in its definition, and a
 * reference both ways would be a dependency cycle.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { ArnFormat, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { REPO_ROOT } from './lambda-defaults.js';

/** The placeholders the ASL may use, and nothing else. */
export const WORKFLOW_SUBSTITUTIONS = ['TasksFunctionArn'] as const;

export interface JobWorkflowProps {
  /** The Lambda behind every Task state (`{ task, ... }` in, result out). */
  readonly tasksFunction: lambda.IFunction;
  /** @default statemachines/job-lifecycle.asl.json in the repository */
  readonly definitionPath?: string;
  /** @default `${stackName}-job-lifecycle` */
  readonly stateMachineName?: string;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

export class JobWorkflow extends Construct {
  /** The ARN a machine named `stateMachineName` gets in this stack's account and region. */
  public static arnFor(scope: Construct, stateMachineName: string): string {
    return Stack.of(scope).formatArn({
      service: 'states',
      resource: 'stateMachine',
      resourceName: stateMachineName,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
  }

  public readonly stateMachine: sfn.StateMachine;
  public readonly stateMachineName: string;
  /** The machine's ARN as a plain string built from its name: safe to hand to the tasks function. */
  public readonly stateMachineArn: string;
  public readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: JobWorkflowProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.stateMachineName = props.stateMachineName ?? `${stack.stackName}-job-lifecycle`;
    if (!/^[A-Za-z0-9_-]{1,80}$/.test(this.stateMachineName)) {
      throw new Error(
        `${this.node.path}: stateMachineName must be 1-80 letters, digits, '_' or '-', got '${this.stateMachineName}'`,
      );
    }
    const definitionPath = props.definitionPath ?? path.join(REPO_ROOT, 'statemachines', 'job-lifecycle.asl.json');
    const definition = readDefinition(definitionPath);

    this.stateMachineArn = JobWorkflow.arnFor(this, this.stateMachineName);
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      // The vendedlogs prefix keeps the log group resource policy small (Step Functions' advice).
      logGroupName: `/aws/vendedlogs/states/${this.stateMachineName}`,
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      stateMachineName: this.stateMachineName,
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromString(definition),
      definitionSubstitutions: { TasksFunctionArn: props.tasksFunction.functionArn },
      tracingEnabled: true,
      // Execution data carries job env and commands; keep it out of the logs.
      logs: { destination: this.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
    });
    // The ASL names the unqualified function ARN (plain Task and lambda:invoke.waitForTaskToken),
    // so invoke on that ARN alone: no ':*' version wildcard.
    this.stateMachine.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [props.tasksFunction.functionArn] }),
    );

    const role = this.stateMachine.role;
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Added by CDK for logging and tracing: the CloudWatch Logs delivery actions (CreateLogDelivery, GetLogDelivery, ...) and X-Ray PutTraceSegments/GetSamplingRules support no resource-level permissions.',
    });
  }

  /** `states:StartExecution` on this machine (the API submits, drain admits). */
  public grantStartExecution(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['states:StartExecution'],
      resourceArns: [this.stateMachineArn],
    });
  }

  /**
   * `states:SendTaskSuccess` only, for this machine's task tokens: every wake-up
   * (an outcome, a cancel, a changed live timeout) is a success carrying what
   * happened; nothing sends a failure or a heartbeat.
   */
  public grantTaskSuccess(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['states:SendTaskSuccess'],
      resourceArns: [this.stateMachineArn],
    });
  }

  /** `states:ListExecutions` on this machine (the reconciler looks for jobs with no live workflow). */
  public grantListExecutions(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['states:ListExecutions'],
      resourceArns: [this.stateMachineArn],
    });
  }

  public environment(): Record<string, string> {
    return { STATE_MACHINE_ARN: this.stateMachineArn };
  }
}

/** The ASL text, checked to be JSON and to use only the placeholders CDK fills. */
export function readDefinition(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new Error(`cannot read the state machine definition ${file}: ${(cause as Error).message}`, { cause });
  }
  try {
    JSON.parse(text);
  } catch (cause) {
    throw new Error(`${file} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  const placeholders = new Set([...text.matchAll(/\$\{([^}]*)\}/g)].map((m) => m[1]));
  const unknown = [...placeholders].filter((p) => !(WORKFLOW_SUBSTITUTIONS as readonly string[]).includes(p));
  if (unknown.length > 0) {
    throw new Error(
      `${file} uses \${${unknown.join('}, ${')}}; the stack substitutes only \${${WORKFLOW_SUBSTITUTIONS.join('}, ${')}}`,
    );
  }
  return text;
}
