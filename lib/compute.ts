/**
 * What the EC2+SSM compute adapter launches and is allowed to touch: a launch
 * template for GPU job instances, the instances' role and log group, and the
 * narrow IAM the tasks function needs to run, command and terminate them.
 *
 * Every instance Flare creates is tagged `managed-by=flare` at launch; the
 * policies below only allow creating instances that carry that tag, and only
 * allow commanding or terminating instances that do.
 */
import { ArnFormat, Fn, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { grantEcrPull } from './ecr-pull.js';
import { instanceBootCommands, MAX_DEAD_MAN_GRACE_MINUTES } from './instance-user-data.js';
import type { PoolSetting } from './settings.js';

export const MANAGED_BY_TAG = { key: 'managed-by', value: 'flare' } as const;
/** Tagged with the stack name at launch: IAM and the reconciler keep to their own deployment's instances. */
export const DEPLOYMENT_TAG_KEY = 'flare:deployment';
export const RUN_COMMAND_DOCUMENT = 'AWS-RunShellScript';

export interface FlareComputeProps {
  readonly vpc: ec2.IVpc;
  /** Private subnets instances launch in; the adapter tries them in order. */
  readonly subnetIds: readonly string[];
  readonly pools: readonly PoolSetting[];
  /** SSM parameter holding the GPU AMI id, resolved at deploy time. */
  readonly gpuAmiParameter: string;
  /** Root volume size; RunInstances may ask for more per template. @default 100, or minVolumeSizeGb when larger */
  readonly rootVolumeGb?: number;
  /** The GPU AMI's root snapshot in GB: no root volume may be smaller (the API's floor for volumeSizeGb). @default 75 */
  readonly minVolumeSizeGb?: number;
  /** Root device of the AMI; the adapter resizes it per job. @default '/dev/sda1' (Ubuntu) */
  readonly rootDeviceName?: string;
  /**
   * Minutes after the job's deadline (EXPIRES_AT_FILE in instance-user-data.ts, else the `flare:expires-at`
   * tag) before the instance powers itself off. The dead-man switch stops the
   * job's container at the deadline itself; this grace leaves the control plane
   * time to record the exit, collect the logs and terminate the instance the
   * normal way, and bounds how long the instance idles when the plane is away.
   * 0: power off right after the container is stopped. 0 to MAX_DEAD_MAN_GRACE_MINUTES.
   * @default 15
   */
  readonly deadManGraceMinutes?: number;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** ECR repositories (names or ARNs) instances may pull private images from; [] for none. @default every repository of the account in the stack's region */
  readonly ecrRepositories?: readonly string[];
}

export class FlareCompute extends Construct {
  public readonly launchTemplate: ec2.LaunchTemplate;
  public readonly instanceRole: iam.Role;
  public readonly securityGroup: ec2.SecurityGroup;
  /** Container output of every job, one stream per job. */
  public readonly jobLogGroup: logs.LogGroup;
  public readonly subnetIds: readonly string[];
  public readonly pools: readonly PoolSetting[];
  public readonly rootDeviceName: string;
  /** The ECR repositories the instances may pull from (flare:ecrRepositories), as ARNs. */
  public readonly ecrRepositoryArns: readonly string[];
  /** The GPU AMI id the launch template starts, resolved from `gpuAmiParameter` at deploy time. */
  public readonly imageId: string;
  public readonly minVolumeSizeGb: number;

  constructor(scope: Construct, id: string, props: FlareComputeProps) {
    super(scope, id);
    if (props.subnetIds.length === 0) throw new Error(`${this.node.path}: subnetIds must name at least one subnet`);
    if (props.pools.length === 0) throw new Error(`${this.node.path}: pools must name at least one pool`);
    this.minVolumeSizeGb = props.minVolumeSizeGb ?? 75;
    const rootVolumeGb = props.rootVolumeGb ?? Math.max(100, this.minVolumeSizeGb);
    if (!Number.isInteger(rootVolumeGb) || rootVolumeGb < this.minVolumeSizeGb || rootVolumeGb > 16384) {
      throw new Error(
        `${this.node.path}: rootVolumeGb must be an integer from minVolumeSizeGb (${this.minVolumeSizeGb}, the AMI's root snapshot) to 16384, got ${rootVolumeGb}`,
      );
    }
    const grace = props.deadManGraceMinutes ?? 15;
    if (!Number.isInteger(grace) || grace < 0 || grace > MAX_DEAD_MAN_GRACE_MINUTES) {
      throw new Error(
        `${this.node.path}: deadManGraceMinutes must be an integer from 0 to ${MAX_DEAD_MAN_GRACE_MINUTES}, got ${grace}`,
      );
    }
    this.subnetIds = props.subnetIds;
    this.pools = props.pools;
    this.rootDeviceName = props.rootDeviceName ?? '/dev/sda1';
    if (!/^\/dev\/[a-z0-9]+$/.test(this.rootDeviceName))
      throw new Error(
        `${this.node.path}: rootDeviceName must be a device like /dev/sda1, got '${this.rootDeviceName}'`,
      );

    this.jobLogGroup = new logs.LogGroup(this, 'JobLogs', {
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    this.instanceRole = new iam.Role(this, 'InstanceRole', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      description: 'Flare GPU job instances: SSM agent, the job log group and ECR pulls, nothing else',
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('AmazonSSMManagedInstanceCore')],
    });
    // The awslogs driver and the SSM agent's command output write one stream per job.
    this.instanceRole.addToPolicy(
      new iam.PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'],
        resources: [this.jobLogGroup.logGroupArn],
      }),
    );
    // The SSM agent looks its output group up before writing; DescribeLogGroups is scoped by account, not group.
    this.instanceRole.addToPolicy(
      new iam.PolicyStatement({
        actions: ['logs:DescribeLogGroups'],
        resources: [
          Stack.of(this).formatArn({
            service: 'logs',
            resource: 'log-group',
            resourceName: '*',
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        ],
      }),
    );
    // Private images in the catalog: the instance logs docker in to ECR before it pulls one.
    this.ecrRepositoryArns = grantEcrPull(this.instanceRole, props.ecrRepositories);
    Validations.of(this.instanceRole).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]',
      reason:
        'The SSM agent on job instances needs exactly AmazonSSMManagedInstanceCore (Run Command is how Flare starts containers); AWS maintains it as the agent changes.',
    });
    Validations.of(this.instanceRole).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:*]',
      reason:
        'logs:DescribeLogGroups (read-only) authorizes on the account, not on a group; the SSM agent calls it before shipping command output. Writes are limited to the job log group.',
    });

    this.securityGroup = new ec2.SecurityGroup(this, 'InstanceSecurityGroup', {
      vpc: props.vpc,
      description: 'Flare GPU job instances: inbound only from each other; outbound for SSM, image pulls and logs',
      allowAllOutbound: true,
    });
    // The nodes of a multi-node job rendezvous and run NCCL/Gloo on ports they
    // pick at run time, so members of this group accept anything from each
    // other, and nothing from anywhere else.
    this.securityGroup.addIngressRule(
      this.securityGroup,
      ec2.Port.allTraffic(),
      'Nodes of a multi-node job (torch distributed, NCCL) talk to each other',
    );

    const userData = ec2.UserData.forLinux();
    userData.addCommands(...instanceBootCommands(grace));

    const machineImage = ec2.MachineImage.fromSsmParameter(props.gpuAmiParameter, {
      os: ec2.OperatingSystemType.LINUX,
    });
    // The same deploy-time value the launch template gets: the adapter reads its root snapshot (volumeSizeGb's floor).
    this.imageId = machineImage.getImage(this).imageId;
    this.launchTemplate = new ec2.LaunchTemplate(this, 'LaunchTemplate', {
      machineImage,
      userData,
      role: this.instanceRole,
      securityGroup: this.securityGroup,
      // No network interfaces here: the adapter picks the subnet per attempt with
      // RunInstances' SubnetId, which EC2 refuses next to template interfaces. No
      // public IP comes from the subnets being private (see lib/README.md).
      // Containers run on the docker bridge, one hop away: hop limit 1 keeps the
      // instance credentials out of their reach.
      requireImdsv2: true,
      httpTokens: ec2.LaunchTemplateHttpTokens.REQUIRED,
      httpPutResponseHopLimit: 1,
      httpEndpoint: true,
      // The dead-man switch falls back to the instance's own flare:expires-at tag.
      instanceMetadataTags: true,
      instanceInitiatedShutdownBehavior: ec2.InstanceInitiatedShutdownBehavior.TERMINATE,
      detailedMonitoring: true,
      ebsOptimized: true,
      blockDevices: [
        {
          deviceName: this.rootDeviceName,
          volume: ec2.BlockDeviceVolume.ebs(rootVolumeGb, {
            encrypted: true,
            volumeType: ec2.EbsDeviceVolumeType.GP3,
            deleteOnTermination: true,
          }),
        },
      ],
    });
  }

  /** The environment variables the EC2+SSM adapter reads. */
  public environment(): Record<string, string> {
    const pools = Object.fromEntries(
      this.pools.map((p) => [
        p.name,
        {
          instanceTypes: [p.instanceType, ...p.fallbackInstanceTypes],
          gpusPerInstance: p.gpusPerInstance,
          ...(p.containerMemory ? { memory: p.containerMemory } : {}),
        },
      ]),
    );
    return {
      LAUNCH_TEMPLATE_ID: this.launchTemplate.launchTemplateId as string,
      SUBNET_IDS: Fn.join(',', [...this.subnetIds]),
      POOLS: JSON.stringify(pools),
      LOG_GROUP_NAME: this.jobLogGroup.logGroupName,
      ROOT_DEVICE_NAME: this.rootDeviceName,
      GPU_IMAGE_ID: this.imageId,
      MIN_VOLUME_SIZE_GB: String(this.minVolumeSizeGb),
      DEPLOYMENT_NAME: Stack.of(this).stackName,
      // POST /v1/images refuses an ECR image outside them: every job of it would fail at its pull.
      ECR_REPOSITORIES: Stack.of(this).toJsonString(this.ecrRepositoryArns),
    };
  }

  /**
   * Run Command with AWS-RunShellScript, on this deployment's tagged instances only: the tasks'
   * container commands and the API's exec (job-exec-access.ts) share these two statements.
   */
  public runCommandStatements(): iam.PolicyStatement[] {
    const stack = Stack.of(this);
    return [
      new iam.PolicyStatement({
        sid: 'CommandFlareInstances',
        actions: ['ssm:SendCommand'],
        resources: [stack.formatArn({ service: 'ec2', resource: 'instance', resourceName: '*' })],
        conditions: { StringEquals: this.ownTags('aws:ResourceTag') },
      }),
      new iam.PolicyStatement({
        sid: 'CommandWithRunShellScriptOnly',
        actions: ['ssm:SendCommand'],
        resources: [
          stack.formatArn({ service: 'ssm', account: '', resource: 'document', resourceName: RUN_COMMAND_DOCUMENT }),
        ],
      }),
    ];
  }

  /** The tags that make an instance this deployment's, as IAM condition entries on `prefix` (aws:RequestTag or aws:ResourceTag). */
  private ownTags(prefix: 'aws:RequestTag' | 'aws:ResourceTag'): Record<string, string> {
    return {
      [`${prefix}/${MANAGED_BY_TAG.key}`]: MANAGED_BY_TAG.value,
      [`${prefix}/${DEPLOYMENT_TAG_KEY}`]: Stack.of(this).stackName,
    };
  }

  /**
   * Everything the tasks function does to instances: launch from this
   * template only, tagged `managed-by=flare`; tag only while launching;
   * command and terminate only instances so tagged; pass only the instance
   * role, only to EC2. Kept in its own policy so its acknowledgements cover
   * nothing else.
   */
  public grantManageInstances(role: iam.IRole, id = 'ManageInstancesPolicy'): iam.Policy {
    const stack = Stack.of(this);
    const ec2Arn = (resource: string, resourceName: string) =>
      stack.formatArn({ service: 'ec2', resource, resourceName });
    const launchTemplateArn = ec2Arn('launch-template', this.launchTemplate.launchTemplateId as string);
    const instances = ec2Arn('instance', '*');
    const tagged = this.ownTags('aws:ResourceTag');
    // A request may override the template's type and image: allow only the pools' types and the deployed AMI.
    const instanceTypes = [...new Set(this.pools.flatMap((p) => [p.instanceType, ...p.fallbackInstanceTypes]))];

    const statements = [
      new iam.PolicyStatement({
        sid: 'RunTaggedInstancesFromTheTemplate',
        actions: ['ec2:RunInstances'],
        resources: [instances],
        conditions: {
          StringEquals: { ...this.ownTags('aws:RequestTag'), 'ec2:InstanceType': instanceTypes },
          ArnEquals: { 'ec2:LaunchTemplate': launchTemplateArn },
        },
      }),
      new iam.PolicyStatement({
        sid: 'RunInstancesUsingTheTemplate',
        actions: ['ec2:RunInstances'],
        resources: [
          launchTemplateArn,
          ...this.subnetIds.map((id) => ec2Arn('subnet', id)),
          ec2Arn('security-group', this.securityGroup.securityGroupId),
          ec2Arn('network-interface', '*'),
          ec2Arn('volume', '*'),
          stack.formatArn({ service: 'ec2', account: '', resource: 'image', resourceName: this.imageId }),
        ],
        conditions: { ArnEquals: { 'ec2:LaunchTemplate': launchTemplateArn } },
      }),
      new iam.PolicyStatement({
        sid: 'TagOnlyWhileLaunching',
        actions: ['ec2:CreateTags'],
        resources: [instances, ec2Arn('volume', '*'), ec2Arn('network-interface', '*')],
        conditions: { StringEquals: { 'ec2:CreateAction': 'RunInstances' } },
      }),
      new iam.PolicyStatement({
        sid: 'TerminateFlareInstances',
        actions: ['ec2:TerminateInstances'],
        resources: [instances],
        conditions: { StringEquals: tagged },
      }),
      ...this.runCommandStatements(),
      new iam.PolicyStatement({
        sid: 'PassTheInstanceRoleToEc2',
        actions: ['iam:PassRole'],
        resources: [this.instanceRole.roleArn],
        conditions: { StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } },
      }),
      new iam.PolicyStatement({
        sid: 'ReadInstanceAndCommandState',
        actions: [
          'ssm:DescribeInstanceInformation',
          'ssm:ListCommands',
          'ssm:ListCommandInvocations',
          'ssm:GetCommandInvocation',
          'ec2:DescribeInstances',
          'ec2:DescribeImages',
        ],
        resources: ['*'],
      }),
    ];
    const policy = new iam.Policy(this, id, { statements, roles: [role] });

    const acknowledge = (finding: string, reason: string) =>
      Validations.of(policy).acknowledge({ id: `AwsSolutions-IAM5[${finding}]`, reason });
    acknowledge(
      'Resource::*',
      'ssm:DescribeInstanceInformation, ssm:ListCommands, ssm:ListCommandInvocations, ssm:GetCommandInvocation, ec2:DescribeInstances and ec2:DescribeImages support no resource-level permissions; all are read-only.',
    );
    acknowledge(
      'Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*',
      'Instance ids do not exist before RunInstances; every statement on instance/* is conditioned on the managed-by=flare tag (request tag to create, resource tag to command or terminate) or on ec2:CreateAction=RunInstances.',
    );
    acknowledge(
      'Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:network-interface/*',
      'RunInstances creates the network interface; the statement requires the Flare launch template (ec2:LaunchTemplate) or ec2:CreateAction=RunInstances.',
    );
    acknowledge(
      'Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:volume/*',
      'RunInstances creates the root volume; the statement requires the Flare launch template (ec2:LaunchTemplate) or ec2:CreateAction=RunInstances.',
    );
    return policy;
  }

  /**
   * Read-only views of instances (`ec2:DescribeInstances`) and, with
   * `commandResults`, of Run Command results (`ssm:GetCommandInvocation`):
   * what event handlers and the reconciler need to map an instance or a
   * command back to its job. Neither action supports resource-level
   * permissions, so the policy names `*` and is acknowledged as such.
   */
  public grantObserveInstances(
    role: iam.IRole,
    options: { readonly commandResults?: boolean } = {},
    id = 'ObserveInstancesPolicy',
  ): iam.Policy {
    const actions = ['ec2:DescribeInstances', ...(options.commandResults ? ['ssm:GetCommandInvocation'] : [])];
    const policy = new iam.Policy(this, id, {
      statements: [new iam.PolicyStatement({ sid: 'ReadInstanceState', actions, resources: ['*'] })],
      roles: [role],
    });
    Validations.of(policy).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: `${actions.join(' and ')} support no resource-level permissions; both are read-only.`,
    });
    return policy;
  }

  /** `ec2:TerminateInstances` on instances tagged `managed-by=flare` only (the reconciler's orphans). */
  public grantTerminateManagedInstances(role: iam.IRole, id = 'TerminateManagedInstancesPolicy'): iam.Policy {
    const instances = Stack.of(this).formatArn({ service: 'ec2', resource: 'instance', resourceName: '*' });
    const policy = new iam.Policy(this, id, {
      statements: [
        new iam.PolicyStatement({
          sid: 'TerminateFlareInstances',
          actions: ['ec2:TerminateInstances'],
          resources: [instances],
          conditions: { StringEquals: this.ownTags('aws:ResourceTag') },
        }),
      ],
      roles: [role],
    });
    Validations.of(policy).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*]',
      reason:
        'Orphans are found at run time, so no instance id is known here; the statement is conditioned on the managed-by=flare resource tag.',
    });
    return policy;
  }

  /** Reading job output for GET /v1/jobs/{id}/logs. */
  public grantReadJobLogs(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['logs:GetLogEvents', 'logs:FilterLogEvents', 'logs:DescribeLogStreams'],
      resourceArns: [this.jobLogGroup.logGroupArn],
    });
  }
}
