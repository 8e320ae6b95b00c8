/**
 * Puts the deployment's pools (`flare:pools`) into the pools table: a
 * CloudFormation custom resource through CDK's Provider framework, whose
 * properties are the table and the pools, so CloudFormation calls it on
 * create and whenever either changes. The handler upserts and keeps usage
 * counters; deleting the resource leaves the table alone.
 */
import { CustomResource, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { FlareFunction } from './lambda-defaults.js';
import type { PoolSetting } from './settings.js';

export const POOL_SEED_RESOURCE_TYPE = 'Custom::FlarePools';

export interface PoolSeedProps {
  /** The handler's entry file. */
  readonly entry: string;
  readonly table: dynamodb.ITable;
  readonly pools: readonly PoolSetting[];
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

export class PoolSeed extends Construct {
  public readonly handler: FlareFunction;
  public readonly provider: cr.Provider;
  public readonly resource: CustomResource;

  constructor(scope: Construct, id: string, props: PoolSeedProps) {
    super(scope, id);
    if (props.pools.length === 0) throw new Error(`${this.node.path}: pools must name at least one pool`);

    this.handler = new FlareFunction(this, 'Handler', {
      entry: props.entry,
      description: 'Flare pool seeding (CloudFormation custom resource): upserts the configured pools',
      timeout: Duration.seconds(60),
    });
    // putPool is two conditional-free UpdateItems; nothing else, on nothing else.
    props.table.grant(this.handler.role, 'dynamodb:UpdateItem');

    // The framework's own function: no managed policy, its own log group.
    const frameworkLogs = new logs.LogGroup(this, 'ProviderLogs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const frameworkRole = new iam.Role(this, 'ProviderRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'Flare pool seeding: CDK provider framework (invokes the seeding function only)',
    });
    frameworkLogs.grantWrite(frameworkRole);
    this.provider = new cr.Provider(this, 'Provider', {
      onEventHandler: this.handler.function,
      frameworkOnEventRole: frameworkRole,
      logGroup: frameworkLogs,
    });

    this.resource = new CustomResource(this, 'Pools', {
      serviceToken: this.provider.serviceToken,
      resourceType: POOL_SEED_RESOURCE_TYPE,
      // CloudFormation hands custom resources strings only: the pools travel as JSON.
      properties: {
        PoolsTable: props.table.tableName,
        Pools: JSON.stringify(
          props.pools.map((p) => ({
            name: p.name,
            instanceType: p.instanceType,
            gpusPerInstance: p.gpusPerInstance,
            maxGpus: p.maxGpus,
          })),
        ),
      },
    });

    // Function.grantInvoke (called by the Provider) names the function and its versions (`:*`).
    const seedArn = Stack.of(this).resolve(this.handler.function.functionArn) as { 'Fn::GetAtt': [string, string] };
    Validations.of(frameworkRole).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${seedArn['Fn::GetAtt'][0]}.Arn>:*]`,
      reason:
        'The CDK provider framework grants lambda:InvokeFunction on the seeding function and its versions (ARN:*); it invokes nothing else.',
    });
  }
}
