/**
 * Where job instances live: the operator's VPC and private subnets, or a
 * small VPC this construct creates (two AZs, private subnets with one NAT
 * gateway for image pulls, free gateway endpoints for S3 and DynamoDB, a
 * flow log of rejected traffic). Optionally, in either, interface endpoints
 * so the SSM agent and log shipping never leave the VPC. Instances need one
 * of the two ways out (a NAT or the endpoints); where CDK can tell that the
 * given subnets have neither, synth warns (docs/operations.md, "Egress").
 */
import { Annotations, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import type { NetworkSetting } from './settings.js';

/** What the SSM agent and log shipping reach: without a NAT, these endpoints are their only way out. */
export const INTERFACE_ENDPOINT_SERVICES = {
  Ssm: ec2.InterfaceVpcEndpointAwsService.SSM,
  SsmMessages: ec2.InterfaceVpcEndpointAwsService.SSM_MESSAGES,
  Ec2Messages: ec2.InterfaceVpcEndpointAwsService.EC2_MESSAGES,
  Logs: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
} as const;

/** Warning ids (acknowledge with `Annotations.of(network).acknowledgeWarning(id, reason)`). */
export const EGRESS_WARNINGS = {
  /** The VPC says these subnets are isolated: no route to a NAT or internet gateway. */
  none: '@flare/network:subnetsWithoutEgress',
  /** Subnets named by id only: CDK cannot see their route tables. */
  unchecked: '@flare/network:egressUnchecked',
} as const;

export interface FlareNetworkProps {
  /** An existing VPC and its private subnets. @default create a VPC */
  readonly existing?: NetworkSetting;
  /**
   * With `existing`: the app's own view of that VPC (e.g. `Vpc.fromLookup`),
   * whose subnet types let synth check the subnets' egress.
   * @default imported by id, so the check cannot tell and says so
   */
  readonly existingVpc?: ec2.IVpc;
  /**
   * Interface endpoints for SSM, SSM messages, EC2 messages and Logs in the
   * job subnets (with `existing`, those subnets must be in different AZs).
   * Reachable only from what `allowEndpointAccessFrom` names.
   * @default false
   */
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
  /** The interface endpoints' group: HTTPS in from `allowEndpointAccessFrom` only. Only with `interfaceEndpoints`. */
  public readonly endpointSecurityGroup?: ec2.SecurityGroup;
  public readonly endpoints: ec2.CfnVPCEndpoint[] = [];

  constructor(scope: Construct, id: string, props: FlareNetworkProps = {}) {
    super(scope, id);
    if (props.existingVpc && !props.existing)
      throw new Error(`${this.node.path}: existingVpc needs existing (the subnet ids)`);
    if (props.existing) {
      // Only the id is needed (for the security groups); the subnets are named explicitly.
      this.vpc =
        props.existingVpc ??
        ec2.Vpc.fromVpcAttributes(this, 'Vpc', {
          vpcId: props.existing.vpcId,
          availabilityZones: Stack.of(this).availabilityZones,
        });
      this.subnetIds = props.existing.subnetIds;
      if (!props.interfaceEndpoints) this.checkEgress();
    } else {
      const vpc = this.createVpc(props);
      this.vpc = vpc;
      this.subnetIds = vpc.selectSubnets({ subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }).subnetIds;
    }
    if (props.interfaceEndpoints) {
      this.endpointSecurityGroup = new ec2.SecurityGroup(this, 'EndpointSecurityGroup', {
        vpc: this.vpc,
        description:
          'Flare interface endpoints (SSM, SSM messages, EC2 messages, Logs): HTTPS from Flare instances only',
        allowAllOutbound: false,
      });
      for (const [name, service] of Object.entries(INTERFACE_ENDPOINT_SERVICES)) {
        // L1, not addInterfaceEndpoint: subnets given by id have no known AZ, and the
        // L2's default ingress (the VPC CIDR as a token) is what cdk-nag EC23 cannot check.
        this.endpoints.push(
          new ec2.CfnVPCEndpoint(this, name, {
            vpcId: this.vpc.vpcId,
            serviceName: service.name,
            vpcEndpointType: 'Interface',
            subnetIds: [...this.subnetIds],
            securityGroupIds: [this.endpointSecurityGroup.securityGroupId],
            privateDnsEnabled: true,
          }),
        );
      }
    }
  }

  /** Lets `peer` (the instances' security group) reach the interface endpoints over HTTPS; nothing else may. No-op without endpoints. */
  public allowEndpointAccessFrom(peer: ec2.IConnectable): void {
    this.endpointSecurityGroup?.connections.allowFrom(
      peer,
      ec2.Port.tcp(443),
      'Flare instances reach SSM, SSM messages, EC2 messages and Logs',
    );
  }

  private createVpc(props: FlareNetworkProps): ec2.Vpc {
    const flowLogs = new logs.LogGroup(this, 'FlowLogs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    return new ec2.Vpc(this, 'Vpc', {
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
        rejected: {
          destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs),
          trafficType: ec2.FlowLogTrafficType.REJECT,
        },
      },
    });
  }

  /**
   * Without endpoints, instances reach SSM and Logs only through a NAT (or
   * internet) gateway. Isolated subnets have none; subnets the VPC does not
   * describe (imported by id) cannot be checked, and the warning says so.
   */
  private checkEgress(): void {
    const isolated = new Set(this.vpc.isolatedSubnets.map((s) => s.subnetId));
    const withEgress = new Set(this.vpc.privateSubnets.map((s) => s.subnetId));
    const none = this.subnetIds.filter((s) => isolated.has(s));
    const unknown = this.subnetIds.filter((s) => !isolated.has(s) && !withEgress.has(s));
    const needs =
      'Job instances there need a NAT gateway, or the SSM, SSM messages, EC2 messages and CloudWatch Logs interface endpoints (flare:vpcEndpoints=true creates them); ' +
      'without either the SSM agent never comes online and every job fails after flare:agentTimeoutMinutes (docs/operations.md, "Egress").';
    if (none.length > 0) {
      Annotations.of(this).addWarningV2(
        EGRESS_WARNINGS.none,
        `Subnets ${none.join(', ')} are isolated: no route to a NAT or internet gateway. ${needs}`,
      );
    }
    if (unknown.length > 0) {
      Annotations.of(this).addWarningV2(
        EGRESS_WARNINGS.unchecked,
        `Cannot check the egress of subnets ${unknown.join(', ')}: CDK does not see their route tables. ${needs}`,
      );
    }
  }
}
