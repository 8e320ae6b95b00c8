/**
 * Where job instances live: the operator's VPC and private subnets, or a
 * small VPC this construct creates (two AZs, private subnets with one NAT
 * gateway for image pulls, free gateway endpoints for S3 and DynamoDB, a
 * flow log of rejected traffic, and optionally interface endpoints so the
 * SSM agent and log shipping never leave the VPC).
 */
import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { NetworkSetting } from './settings.js';

export interface FlareNetworkProps {
  /** An existing VPC and its private subnets. @default create a VPC */
  readonly existing?: NetworkSetting;
  /** Interface endpoints for SSM, SSM messages, EC2 messages and Logs (created VPC only). @default false */
  readonly interfaceEndpoints?: boolean;
  /** @default 2 */
  readonly maxAzs?: number;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

export class FlareNetwork extends Construct {
  public readonly vpc: ec2.IVpc;
  /** The private subnets job instances launch in, in the order the adapter tries them. */
  public readonly subnetIds: readonly string[];

  constructor(scope: Construct, id: string, props: FlareNetworkProps = {}) {
    super(scope, id);
    if (props.existing) {
      if (props.interfaceEndpoints) throw new Error(`${this.node.path}: interfaceEndpoints only applies to a VPC this construct creates`);
      // Only the id is needed (for the instances' security group); the subnets are named explicitly.
      this.vpc = ec2.Vpc.fromVpcAttributes(this, 'Vpc', {
        vpcId: props.existing.vpcId,
        availabilityZones: Stack.of(this).availabilityZones,
      });
      this.subnetIds = props.existing.subnetIds;
      return;
    }

    const flowLogs = new logs.LogGroup(this, 'FlowLogs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: props.maxAzs ?? 2,
      natGateways: 1,
      restrictDefaultSecurityGroup: false,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24, mapPublicIpOnLaunch: false },
        { name: 'jobs', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
      ],
      gatewayEndpoints: {
        S3: { service: ec2.GatewayVpcEndpointAwsService.S3 },
        DynamoDB: { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB },
      },
      flowLogs: {
        rejected: { destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs), trafficType: ec2.FlowLogTrafficType.REJECT },
      },
    });
    if (props.interfaceEndpoints) {
      const services = {
        Ssm: ec2.InterfaceVpcEndpointAwsService.SSM,
        SsmMessages: ec2.InterfaceVpcEndpointAwsService.SSM_MESSAGES,
        Ec2Messages: ec2.InterfaceVpcEndpointAwsService.EC2_MESSAGES,
        Logs: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
      };
      for (const [name, service] of Object.entries(services)) {
        vpc.addInterfaceEndpoint(name, { service, subnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }, privateDnsEnabled: true });
      }
    }
    this.vpc = vpc;
    this.subnetIds = vpc.selectSubnets({ subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }).subnetIds;
  }
}
