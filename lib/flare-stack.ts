/**
 * The whole Flare control plane on AWS, wired from the constructs in this
 * folder. Settings come from CDK context (./settings.ts) and are checked
 * before anything is built. Handlers and the workflow are named by path:
 * lib/ never imports lambdas/.
 */
import { CfnOutput, Duration, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { FlareAlarms } from './alarms.js';
import { FLARE_METRICS_NAMESPACE, FlareDashboard } from './dashboard.js';
import { ComputeEvents } from './compute-events.js';
import { FlareCompute } from './compute.js';
import { FlareEvents } from './events.js';
import { FlareHttpApi } from './http-api.js';
import { grantExecInJobs } from './job-exec-access.js';
import { JobEventStream } from './job-event-stream.js';
import { JobWorkflow } from './job-workflow.js';
import { FlareFunction } from './lambda-defaults.js';
import { FlareNetwork } from './network.js';
import { OutputsBucket } from './outputs-bucket.js';
import { ChatNotifier } from './notifier.js';
import { grantJobSecretCopies, grantProjectSecrets, grantReadOwnJobSecrets } from './secrets-access.js';
import { PoolSeed } from './pool-seed.js';
import { Reconciler } from './reconciler.js';
import { JobSessions } from './session-documents.js';
import { readSettings, type FlareSettings } from './settings.js';
import {
  API_TABLE_ACCESS,
  COMPUTE_EVENTS_TABLE_ACCESS,
  RECONCILER_TABLE_ACCESS,
  TASKS_TABLE_ACCESS,
} from './table-access.js';
import { FlareTables } from './tables.js';
import { FlareWebUi } from './web-ui.js';

/** Every Lambda's entry file, by role: the contract with lambdas/handlers/. */
export const HANDLER_ENTRIES = {
  api: 'lambdas/handlers/http/api.ts',
  tasks: 'lambdas/handlers/workflow/tasks.ts',
  computeEvents: 'lambdas/handlers/events/compute-events.ts',
  reconciler: 'lambdas/handlers/events/reconciler.ts',
  streamPublisher: 'lambdas/handlers/events/stream-publisher.ts',
  notifier: 'lambdas/handlers/events/notifier.ts',
  seedPools: 'lambdas/handlers/custom-resources/seed-pools.ts',
  ui: 'lambdas/handlers/http/ui.ts',
} as const;
export type HandlerKey = keyof typeof HANDLER_ENTRIES;

export interface FlareStackProps extends StackProps {
  /**
   * Handler entry files (relative to the repository root or absolute).
   * Tests point these at stand-ins; deployments keep the defaults.
   * @default HANDLER_ENTRIES
   */
  readonly handlerEntries?: { readonly [K in HandlerKey]?: string };
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
  /** The dashboard at <API URL>/ui/. */
  public readonly webUi: FlareWebUi;
  /** What jobs keep of $FLARE_OUTPUT_DIR, under <project>/<jobId>/. */
  public readonly outputs: OutputsBucket;
  public readonly alarms: FlareAlarms;
  public readonly dashboard: FlareDashboard;
  public readonly computeEvents: ComputeEvents;
  public readonly reconciler: Reconciler;
  public readonly jobEvents: JobEventStream;
  /** Only when `flare:notifications` names a channel. */
  public readonly notifier?: ChatNotifier;
  public readonly poolSeed: PoolSeed;
  /** The Session Manager documents of `flare job shell` and `port-forward`, and the shell sessions' log group. */
  public readonly sessions: JobSessions;

  constructor(scope: Construct, id: string, props: FlareStackProps = {}) {
    super(scope, id, { description: 'Flare: serverless GPU job control plane', ...props });
    // First, so a bad setting fails synth before anything is bundled.
    this.settings = readSettings(this);

    this.tables = new FlareTables(this, 'Tables', { schemaPath: props.tableSchemaPath });
    this.events = new FlareEvents(this, 'Events');
    this.network = new FlareNetwork(this, 'Network', {
      existing: this.settings.network,
      interfaceEndpoints: this.settings.vpcEndpoints,
    });
    this.compute = new FlareCompute(this, 'Compute', {
      vpc: this.network.vpc,
      subnetIds: this.network.subnetIds,
      pools: this.settings.pools,
      gpuAmiParameter: this.settings.gpuAmiParameter,
      minVolumeSizeGb: this.settings.minVolumeSizeGb,
      ecrRepositories: this.settings.ecrRepositories,
    });
    // Private DNS sends the SSM agent to the endpoints (when there are any): let the instances in.
    this.network.allowEndpointAccessFrom(this.compute.securityGroup);

    this.alarms = new FlareAlarms(this, 'Alarms', { email: this.settings.alarmEmail });
    const entry = (key: HandlerKey) => props.handlerEntries?.[key] ?? HANDLER_ENTRIES[key];

    const stateMachineName = `${this.stackName}-job-lifecycle`;
    const stateMachineArn = JobWorkflow.arnFor(this, stateMachineName);
    // What api, tasks, compute-events and the reconciler share (lib/README.md).
    const environment = {
      ...this.tables.environment(),
      ...this.events.environment(),
      ...this.compute.environment(),
      STATE_MACHINE_ARN: stateMachineArn,
      DEFAULT_QUOTAS: JSON.stringify(this.settings.defaultQuotas),
      AGENT_TIMEOUT_SECONDS: String(this.settings.agentTimeoutMinutes * 60),
      POWERTOOLS_METRICS_NAMESPACE: FLARE_METRICS_NAMESPACE,
    };

    this.tasks = new FlareFunction(this, 'Tasks', {
      entry: entry('tasks'),
      description: 'Flare workflow tasks: admit, launch, start, finalize, drain',
      environment,
      // Under the shortest Task TimeoutSeconds in the ASL (60 s), so a slow call
      // ends as the function's own error rather than a States.Timeout race.
      timeout: Duration.seconds(55),
    });
    this.api = new FlareFunction(this, 'Api', {
      entry: entry('api'),
      description: 'Flare HTTP API router (v1)',
      environment: {
        ...environment,
        AUTH_GROUPS_CLAIM: this.settings.groupsClaim,
        AUTH_ADMIN_GROUP: this.settings.adminGroup,
      },
      timeout: Duration.seconds(15),
    });

    this.workflow = new JobWorkflow(this, 'Workflow', {
      tasksFunction: this.tasks.function,
      definitionPath: props.workflowDefinitionPath,
      stateMachineName,
    });

    // Table access sized to what each function's code sends (lib/table-access.ts).
    this.tables.grantAccess(this.api.role, API_TABLE_ACCESS);
    this.tables.grantAccess(this.tasks.role, TASKS_TABLE_ACCESS);
    for (const fn of [this.api, this.tasks]) {
      this.events.grantPublish(fn.role);
      this.workflow.grantStartExecution(fn.role);
      this.workflow.grantTaskSuccess(fn.role);
    }
    this.compute.grantManageInstances(this.tasks.role);
    this.compute.grantReadJobLogs(this.api.role);
    this.outputs = new OutputsBucket(this, 'Outputs', { retentionDays: this.settings.outputsRetentionDays });
    this.outputs.grantReadAndRemove(this.api.role);
    this.api.function.addEnvironment('OUTPUTS_BUCKET', this.outputs.bucket.bucketName);
    // A stopping job's instance uploads its outputs with a form the tasks function signs.
    this.outputs.grantSignUploads(this.tasks.role);
    this.tasks.function.addEnvironment('OUTPUTS_BUCKET', this.outputs.bucket.bucketName);
    this.tasks.function.addEnvironment('OUTPUTS_MAX_BYTES', String(this.settings.outputsMaxBytes));
    grantProjectSecrets(this, this.api.role);
    grantJobSecretCopies(this, this.tasks.role);
    grantReadOwnJobSecrets(this, this.compute.instanceRole);
    grantExecInJobs(this.compute, this.api.role);
    // Shells and port forwards: the API names Flare's own documents, the only ones researchers may start (logged).
    this.sessions = new JobSessions(this, 'Sessions', { instanceRole: this.compute.instanceRole });
    for (const [name, value] of Object.entries(this.sessions.environment()))
      this.api.function.addEnvironment(name, value);

    this.httpApi = new FlareHttpApi(this, 'Http', {
      handler: this.api.function,
      auth: this.settings.auth,
      adminGroup: this.settings.adminGroup,
    });
    this.webUi = new FlareWebUi(this, 'WebUi', { entry: entry('ui'), signIn: this.httpApi.webSignIn });
    this.httpApi.addUiRoutes(this.webUi.handler.function);
    new CfnOutput(this, 'DashboardUrl', { value: `${this.httpApi.url}/ui/`, description: 'The Flare dashboard' });

    // Completion: SSM command and EC2 state events end a job's wait.
    this.computeEvents = new ComputeEvents(this, 'ComputeEvents', {
      entry: entry('computeEvents'),
      environment,
      alarms: this.alarms,
    });
    this.tables.grantAccess(this.computeEvents.handler.role, COMPUTE_EVENTS_TABLE_ACCESS);
    this.workflow.grantTaskSuccess(this.computeEvents.handler.role);
    this.compute.grantObserveInstances(
      this.computeEvents.handler.role,
      { commandResults: true },
      'ComputeEventsObservePolicy',
    );

    // Nothing leaks: orphans, lost instances, stuck jobs, usage counters, the queue.
    this.reconciler = new Reconciler(this, 'Reconciler', {
      entry: entry('reconciler'),
      environment,
      alarms: this.alarms,
      periodMinutes: this.settings.reconcilePeriodMinutes,
    });
    const reconcilerRole = this.reconciler.handler.role;
    this.tables.grantAccess(reconcilerRole, RECONCILER_TABLE_ACCESS);
    this.events.grantPublish(reconcilerRole);
    this.workflow.grantStartExecution(reconcilerRole);
    this.workflow.grantListExecutions(reconcilerRole);
    // A job whose instances are lost is reported as compute-events does: its Run wait ends by its task token.
    this.workflow.grantTaskSuccess(reconcilerRole);
    this.compute.grantObserveInstances(reconcilerRole, {}, 'ReconcilerObservePolicy');
    this.compute.grantTerminateManagedInstances(reconcilerRole, 'ReconcilerTerminatePolicy');

    // The at-least-once outbox for Job State Change events.
    this.jobEvents = new JobEventStream(this, 'JobEvents', {
      entry: entry('streamPublisher'),
      table: this.tables.jobs,
      bus: this.events.bus,
      alarms: this.alarms,
    });

    if (this.settings.notifications.length > 0) {
      this.notifier = new ChatNotifier(this, 'Notifier', {
        entry: entry('notifier'),
        channels: this.settings.notifications,
        bus: this.events.bus,
        idempotencyTable: this.tables.idempotency,
        alarms: this.alarms,
      });
    }

    this.poolSeed = new PoolSeed(this, 'PoolSeed', {
      entry: entry('seedPools'),
      table: this.tables.pools,
      pools: this.settings.pools,
    });

    // Last: every alarm has been added by now.
    this.dashboard = new FlareDashboard(this, 'Dashboard', { alarms: this.alarms.alarms });

    new CfnOutput(this, 'StateMachineArn', { value: stateMachineArn });
    new CfnOutput(this, 'EventBusName', { value: this.events.bus.eventBusName });
    // What docs/operations.md reads a stuck job with.
    const outputs: Record<string, string> = {
      AlarmTopicArn: this.alarms.topic.topicArn,
      JobsTableName: this.tables.jobs.tableName,
      PoolsTableName: this.tables.pools.tableName,
      QuotasTableName: this.tables.quotas.tableName,
      JobLogGroupName: this.compute.jobLogGroup.logGroupName,
      SessionLogGroupName: this.sessions.logGroup.logGroupName,
      SessionShellDocument: this.sessions.shellDocumentName,
      SessionPortForwardDocument: this.sessions.portForwardDocumentName,
      WorkflowLogGroupName: this.workflow.logGroup.logGroupName,
      ApiLogGroupName: this.api.logGroup.logGroupName,
      TasksLogGroupName: this.tasks.logGroup.logGroupName,
      ComputeEventsLogGroupName: this.computeEvents.handler.logGroup.logGroupName,
      ComputeEventsFunctionName: this.computeEvents.handler.function.functionName,
      ReconcilerLogGroupName: this.reconciler.handler.logGroup.logGroupName,
      ReconcilerFunctionName: this.reconciler.handler.function.functionName,
      StreamPublisherLogGroupName: this.jobEvents.handler.logGroup.logGroupName,
      StreamPublisherFunctionName: this.jobEvents.handler.function.functionName,
      ComputeEventsDlqUrl: this.computeEvents.deadLetters.queue.queueUrl,
      StreamPublisherDlqUrl: this.jobEvents.deadLetters.queue.queueUrl,
    };
    if (this.notifier) {
      Object.assign(outputs, {
        NotifierLogGroupName: this.notifier.handler.logGroup.logGroupName,
        NotifierFunctionName: this.notifier.handler.function.functionName,
        NotifierQueueUrl: this.notifier.queue.queueUrl,
        NotifierDlqUrl: this.notifier.deadLetters.queue.queueUrl,
        NotifierDlqArn: this.notifier.deadLetters.queue.queueArn,
        NotifierUndeliverableDlqUrl: this.notifier.undeliverable.queue.queueUrl,
      });
    }
    for (const [id, value] of Object.entries(outputs)) new CfnOutput(this, id, { value });
  }
}
