/**
 * The template's state machine, run from its own DefinitionString (resolved,
 * substitutions filled) in aws-local-stepfunctions through LocalWorkflows,
 * every Lambda ARN bound to that function's bundle; and the Step Functions
 * API the AWS fake delegates to it (StartExecution, SendTaskSuccess,
 * ListExecutions, DescribeExecution: what the handlers call).
 */
import { substitute } from '../../../lambdas/local/asl.js';
import { LocalWorkflows, type TaskRunner } from '../../../lambdas/local/local-workflows.js';
import type { WorkflowInput } from '../../../lambdas/core/workflow.js';
import type { StatesHandler } from './aws-fake.js';
import { getAtt, refOf, resolveValue, type CfnTemplate } from './cfn-resolve.js';
import type { LambdaFunction } from './lambdas.js';

/** How long a Retry waits between attempts: the intervals are AWS's business, not the behaviour under test. */
const RETRY_INTERVAL_MS = 10;
/** WaitForCompute polls the agent every 5 s, WaitForOutputs the upload every 10 s on AWS; here the fake's state moves at once. */
const WAIT_OVERRIDES_MS = { WaitForCompute: 50, WaitForOutputs: 50 };

export interface ArtifactWorkflow {
  workflows: LocalWorkflows;
  stateMachineArn: string;
  /** The fake's Step Functions API. */
  onStates: StatesHandler;
  /** The machine a task token belongs to (the fake names it as the SendTask* resource). */
  taskTokenArn(token: string): string | undefined;
  /** Every StartExecution that started one: name and input. */
  started: Array<{ name: string; input: WorkflowInput }>;
}

const quiet = { info() {}, warn() {}, error() {} };

export function artifactWorkflow(template: CfnTemplate, functions: readonly LambdaFunction[]): ArtifactWorkflow {
  const machines = Object.entries(template.Resources).filter(([, r]) => r.Type === 'AWS::StepFunctions::StateMachine');
  if (machines.length !== 1) throw new Error(`expected one state machine in the template, found ${machines.length}`);
  const [logicalId, machine] = machines[0];
  const p = machine.Properties ?? {};
  const substitutions = Object.fromEntries(
    Object.entries((p.DefinitionSubstitutions ?? {}) as Record<string, unknown>).map(([k, v]) => [
      k,
      String(resolveValue(template, v)),
    ]),
  );
  const definition = JSON.parse(
    substitute(String(resolveValue(template, p.DefinitionString)), substitutions),
  ) as Record<string, unknown>;
  const stateMachineArn = refOf(template, logicalId);
  if (stateMachineArn !== getAtt(template, logicalId, 'Arn')) throw new Error(`${logicalId}: Ref and Arn disagree`);

  const runners: Record<string, TaskRunner> = Object.fromEntries(
    functions.map((fn) => [fn.spec.arn, (event: unknown) => fn.invokeOrThrow(event)]),
  );
  const retryIntervalOverrides = Object.fromEntries(
    Object.entries(definition.States as Record<string, { Retry?: unknown[] }>)
      .filter(([, s]) => s.Retry)
      .map(([name]) => [name, RETRY_INTERVAL_MS]),
  );
  const workflows = new LocalWorkflows(
    async () => {
      throw new Error('every Task names a function of the template');
    },
    quiet,
    { definition, runners, overrides: { retryIntervalOverrides, waitTimeOverrides: WAIT_OVERRIDES_MS } },
  );

  const machineName = stateMachineArn.split(':').pop()!;
  const executionArn = (name: string) => `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;
  const inputs = new Map<string, string>();
  const startDates = new Map<string, number>();
  const started: ArtifactWorkflow['started'] = [];
  const aws = (code: string, message: string) => Object.assign(new Error(message), { name: code });
  const record = (name: string) => workflows.list().find((e) => e.name === name);
  const view = (name: string) => {
    const e = record(name)!;
    return {
      executionArn: executionArn(name),
      stateMachineArn,
      name,
      status: e.status,
      startDate: startDates.get(name),
    };
  };

  const onStates: StatesHandler = async (action, params) => {
    const machineParam = params.stateMachineArn;
    if (machineParam !== undefined && machineParam !== stateMachineArn)
      throw aws('StateMachineDoesNotExist', `State Machine Does Not Exist: '${String(machineParam)}'`);
    switch (action) {
      case 'StartExecution': {
        const name = String(params.name);
        const input = String(params.input ?? '{}');
        const existing = record(name);
        // Step Functions: the same name and input while it runs is the same execution; anything else is refused.
        if (existing && (existing.status !== 'RUNNING' || inputs.get(name) !== input))
          throw aws('ExecutionAlreadyExists', `Execution Already Exists: '${executionArn(name)}'`);
        if (!existing) {
          inputs.set(name, input);
          startDates.set(name, Date.now() / 1000);
          started.push({ name, input: JSON.parse(input) as WorkflowInput });
          await workflows.start(name, JSON.parse(input) as WorkflowInput);
        }
        return { executionArn: executionArn(name), startDate: startDates.get(name) };
      }
      case 'SendTaskSuccess':
        await workflows.sendTaskSuccess(String(params.taskToken), JSON.parse(String(params.output ?? '{}')));
        return {};
      case 'ListExecutions': {
        const status = params.statusFilter as string | undefined;
        const executions = workflows
          .list()
          .filter((e) => status === undefined || e.status === status)
          .map((e) => view(e.name));
        return { executions };
      }
      case 'DescribeExecution': {
        const name = String(params.executionArn).split(':').pop()!;
        if (!record(name) || String(params.executionArn) !== executionArn(name))
          throw aws('ExecutionDoesNotExist', `Execution Does Not Exist: '${String(params.executionArn)}'`);
        return { ...view(name), input: inputs.get(name) };
      }
      default:
        throw aws(
          'UnknownOperationException',
          `the artifact harness does not model states:${action} (machine ${machineName})`,
        );
    }
  };
  return {
    workflows,
    stateMachineArn,
    onStates,
    taskTokenArn: (token) => (token.startsWith('local-token:') ? stateMachineArn : undefined),
    started,
  };
}
