/**
 * The whole Flare control plane on AWS, wired from the constructs in this
 * folder. Settings come from CDK context (./settings.ts) and are checked
 * before anything is built. Handlers and the workflow are named by path:
 * lib/ never imports lambdas/.
 */
import { CfnOutput, Duration, Stack, type StackProps } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { FlareCompute } from './compute.js';
import { FlareEvents } from './events.js';
import { FlareHttpApi } from './http-api.js';
import { JobWorkflow } from './job-workflow.js';
import { FlareFunction } from './lambda-defaults.js';
import { FlareNetwork } from './network.js';
import { readSettings, type FlareSettings } from './settings.js';
import { FlareTables } from './tables.js';

export const HANDLER_ENTRIES = {
  api: 'lambdas/handlers/http/api.ts',
  tasks: 'lambdas/handlers/workflow/tasks.ts',
} as const;

export interface FlareStackProps extends StackProps {
  /**
   * Handler entry files (relative to the repository root or absolute).
   * Tests point these at stand-ins; deployments keep the defaults.
   * @default HANDLER_ENTRIES
   */
  readonly handlerEntries?: { readonly api?: string; readonly tasks?: string };
  /** @default statemachines/job-lifecycle.asl.json */
  readonly workflowDefinitionPath?: string;
  /** @default schema/tables.json */
  readonly tableSchemaPath?: string;
}

export class FlareStack extends Stack {
  public readonly settings: FlareSettings;
  public readonly tables: FlareTables;
  public readonly events: FlareEvents;
  public readonly network: FlareNetwork;
  public readonly compute: FlareCompute;
  public readonly api: FlareFunction;
  public readonly tasks: FlareFunction;
  public readonly workflow: JobWorkflow;
  public readonly httpApi: FlareHttpApi;

  constructor(scope: Construct, id: string, props: FlareStackProps = {}) {
    super(scope, id, { description: 'Flare: serverless GPU job control plane', ...props });
    // First, so a bad setting fails synth before anything is bundled.
    this.settings = readSettings(this);

    this.tables = new FlareTables(this, 'Tables', { schemaPath: props.tableSchemaPath });
    this.events = new FlareEvents(this, 'Events');
    this.network = new FlareNetwork(this, 'Network', { existing: this.settings.network, interfaceEndpoints: this.settings.vpcEndpoints });
    this.compute = new FlareCompute(this, 'Compute', {
      vpc: this.network.vpc,
      subnetIds: this.network.subnetIds,
      pools: this.settings.pools,
      gpuAmiParameter: this.settings.gpuAmiParameter,
    });

    const stateMachineName = `${this.stackName}-job-lifecycle`;
    const stateMachineArn = JobWorkflow.arnFor(this, stateMachineName);
    const environment = {
      ...this.tables.environment(),
      ...this.events.environment(),
      ...this.compute.environment(),
      STATE_MACHINE_ARN: stateMachineArn,
    };

    this.tasks = new FlareFunction(this, 'Tasks', {
      entry: props.handlerEntries?.tasks ?? HANDLER_ENTRIES.tasks,
      description: 'Flare workflow tasks: admit, launch, start, finalize, drain',
      environment,
      // Under the shortest Task TimeoutSeconds in the ASL (60 s), so a slow call
      // ends as the function's own error rather than a States.Timeout race.
      timeout: Duration.seconds(55),
    });
    this.api = new FlareFunction(this, 'Api', {
      entry: props.handlerEntries?.api ?? HANDLER_ENTRIES.api,
      description: 'Flare HTTP API router (v1)',
      environment,
      timeout: Duration.seconds(15),
    });

    this.workflow = new JobWorkflow(this, 'Workflow', {
      tasksFunction: this.tasks.function,
      definitionPath: props.workflowDefinitionPath,
      stateMachineName,
    });

    for (const fn of [this.api, this.tasks]) {
      this.tables.grantData(fn.role);
      this.events.grantPublish(fn.role);
      this.workflow.grantStartExecution(fn.role);
      this.workflow.grantTaskResponse(fn.role);
    }
    this.compute.grantManageInstances(this.tasks.role);
    this.compute.grantReadJobLogs(this.api.role);

    this.httpApi = new FlareHttpApi(this, 'Http', { handler: this.api.function, auth: this.settings.auth });

    new CfnOutput(this, 'StateMachineArn', { value: stateMachineArn });
    new CfnOutput(this, 'EventBusName', { value: this.events.bus.eventBusName });
  }
}
