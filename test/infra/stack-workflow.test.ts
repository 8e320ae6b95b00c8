/**
 * The default FlareStack's job lifecycle: the state machine is the ASL file with the tasks
 * function's ARN filled in, logged and traced, with no dependency cycle; the instances it
 * launches come from a template and IAM that keep them on a short leash (and install the
 * dead-man switch that dead-man-switch.test.ts runs).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { deadManSwitchScript } from '../../lib/instance-user-data.js';
import type { FlareStack } from '../../lib/flare-stack.js';
import { DEFAULT_GPU_AMI_PARAMETER } from '../../lib/settings.js';
import { actionsOf, statements } from '../support/cdk-policies.js';
import { ASL_PATH, logicalId, removeStandIns, synthStack, type Resources } from '../support/cdk-synth.js';

after(removeStandIns);

describe('FlareStack (defaults: created VPC, Cognito)', () => {
  let stack: FlareStack;
  let template: Template;
  let resources: Resources;

  before(() => {
    ({ stack, template, resources } = synthStack({}));
  });

  describe('state machine', () => {
    it('is the ASL file with ${TasksFunctionArn} bound to the tasks function, and no other placeholder', () => {
      const props = resources[logicalId(stack, stack.workflow.stateMachine)].Properties;
      const asl = readFileSync(ASL_PATH, 'utf8');
      assert.equal(props.DefinitionString, asl, 'deployed inline from the file, not as an S3 asset');
      assert.deepEqual(props.DefinitionSubstitutions, {
        TasksFunctionArn: { 'Fn::GetAtt': [logicalId(stack, stack.tasks.function), 'Arn'] },
      });

      // What CloudFormation will do: replace each ${Key} with its substitution.
      const deployed = props.DefinitionString.replace(/\$\{([^}]*)\}/g, (whole: string, key: string) =>
        key in props.DefinitionSubstitutions ? '<TASKS_FUNCTION_ARN>' : whole,
      );
      assert.ok(!deployed.includes('${'), 'a placeholder is left unsubstituted');
      const definition = JSON.parse(deployed);
      const tasks: any[] = [];
      const walk = (states: Record<string, any>) => {
        for (const state of Object.values(states)) {
          if (state.Type === 'Task') tasks.push(state);
          for (const branch of state.Branches ?? []) walk(branch.States);
          if (state.Iterator) walk(state.Iterator.States);
          if (state.ItemProcessor) walk(state.ItemProcessor.States);
        }
      };
      walk(definition.States);
      assert.ok(tasks.length > 0);
      for (const task of tasks) {
        const target = task.Resource.startsWith('arn:aws:states:::lambda:invoke')
          ? task.Parameters?.FunctionName
          : task.Resource;
        assert.equal(
          target,
          '<TASKS_FUNCTION_ARN>',
          `task ${JSON.stringify(task).slice(0, 80)} targets the tasks function`,
        );
      }
    });

    it('is a STANDARD machine with ALL-level logging and X-Ray tracing', () => {
      template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
        StateMachineType: 'STANDARD',
        TracingConfiguration: { Enabled: true },
        LoggingConfiguration: Match.objectLike({
          Level: 'ALL',
          Destinations: [
            {
              CloudWatchLogsLogGroup: {
                LogGroupArn: { 'Fn::GetAtt': [logicalId(stack, stack.workflow.logGroup), 'Arn'] },
              },
            },
          ],
        }),
      });
    });

    it('leaves no dependency cycle between the machine, the functions and their policies', () => {
      const edges = new Map<string, Set<string>>();
      const refs = (value: unknown, out: Set<string>) => {
        if (Array.isArray(value)) {
          for (const v of value) refs(v, out);
        } else if (value && typeof value === 'object') {
          for (const [k, v] of Object.entries(value)) {
            if (k === 'Ref' && typeof v === 'string' && v in resources) out.add(v);
            else if (k === 'Fn::GetAtt') out.add((v as string[])[0]);
            else refs(v, out);
          }
        }
      };
      for (const [id, r] of Object.entries(resources)) {
        const out = new Set<string>([r.DependsOn ?? []].flat());
        refs(r.Properties, out);
        edges.set(id, out);
      }
      const state = new Map<string, 'open' | 'done'>();
      const visit = (id: string, trail: string[]) => {
        if (state.get(id) === 'done') return;
        assert.notEqual(state.get(id), 'open', `cycle: ${[...trail, id].join(' -> ')}`);
        state.set(id, 'open');
        for (const next of edges.get(id) ?? []) visit(next, [...trail, id]);
        state.set(id, 'done');
      };
      for (const id of edges.keys()) visit(id, []);
    });
  });

  describe('compute', () => {
    it('lets the nodes of a job reach each other on any port, and nothing else reach them', () => {
      const group = logicalId(stack, stack.compute.securityGroup);
      template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
        GroupId: { 'Fn::GetAtt': [group, 'GroupId'] },
        SourceSecurityGroupId: { 'Fn::GetAtt': [group, 'GroupId'] },
        IpProtocol: '-1',
      });
      const ingress = Object.values(resources).filter(
        (r) => r.Type === 'AWS::EC2::SecurityGroupIngress' && JSON.stringify(r.Properties.GroupId).includes(group),
      );
      assert.equal(ingress.length, 1, 'one ingress rule: the group itself');
      assert.equal(
        resources[group].Properties.SecurityGroupIngress,
        undefined,
        'no inline ingress (no CIDR, no other group)',
      );
    });

    it('user data lets only root reach the instance metadata service (multi-node jobs share the host network as non-root)', () => {
      const userData: string =
        resources[logicalId(stack, stack.compute.launchTemplate)].Properties.LaunchTemplateData.UserData['Fn::Base64'];
      const line = userData.split('\n').find((l) => l.includes('/etc/systemd/system/flare-imds-guard.service'));
      assert.ok(line, 'the user data writes the guard unit');
      const dir = mkdtempSync(path.join(tmpdir(), 'flare-imds-'));
      const unitFile = path.join(dir, 'guard.service');
      execFileSync('sh', ['-c', line.replace('/etc/systemd/system/flare-imds-guard.service', unitFile)]);
      const unit = readFileSync(unitFile, 'utf8');
      assert.match(unit, /^Before=docker\.service$/m, 'in place before any container starts');
      assert.match(unit, /^Type=oneshot$/m);
      assert.ok(unit.includes('iptables -C OUTPUT -d 169.254.169.254/32 -m owner ! --uid-owner 0 -j REJECT'), unit);
      assert.ok(unit.includes('iptables -I OUTPUT -d 169.254.169.254/32 -m owner ! --uid-owner 0 -j REJECT'), unit);
      assert.ok(
        userData.includes('systemctl enable --now flare-imds-guard.service'),
        'enabled, so it is back after a reboot',
      );
      rmSync(dir, { recursive: true, force: true });
    });

    it('user data installs the dead-man switch as a service, with the 15-minute default grace (test/infra/dead-man-switch.test.ts runs it)', () => {
      const userData: string =
        resources[logicalId(stack, stack.compute.launchTemplate)].Properties.LaunchTemplateData.UserData['Fn::Base64'];
      const match = /<<'FLARE_EOF'\n([\s\S]*?)\nFLARE_EOF/.exec(userData);
      assert.ok(match, 'the user data installs the switch from a quoted heredoc');
      assert.equal(match[1], deadManSwitchScript(15));
      assert.ok(userData.includes('systemctl enable --now flare-deadman.service'), 'the switch runs as a service');
    });

    it('launches from a template with IMDSv2 only, hop limit 1, encrypted EBS, and terminate on shutdown', () => {
      template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
        LaunchTemplateData: Match.objectLike({
          MetadataOptions: Match.objectLike({ HttpTokens: 'required', HttpPutResponseHopLimit: 1 }),
          InstanceInitiatedShutdownBehavior: 'terminate',
          BlockDeviceMappings: [Match.objectLike({ Ebs: Match.objectLike({ Encrypted: true }) })],
          // The adapter passes SubnetId per attempt; EC2 refuses that next to template interfaces.
          NetworkInterfaces: Match.absent(),
          SecurityGroupIds: [{ 'Fn::GetAtt': [logicalId(stack, stack.compute.securityGroup), 'GroupId'] }],
        }),
      });
    });

    it('resolves the GPU AMI from the Deep Learning Base AMI parameter', () => {
      const parameters = template.toJSON().Parameters as Record<string, any>;
      assert.ok(
        Object.values(parameters).some(
          (p) => p.Default === DEFAULT_GPU_AMI_PARAMETER && String(p.Type).includes('AWS::EC2::Image::Id'),
        ),
      );
    });

    it("gives instances SSM core, their log groups, ECR pulls and their own job's secret copy only", () => {
      const role = resources[logicalId(stack, stack.compute.instanceRole)].Properties;
      assert.equal(role.ManagedPolicyArns.length, 1);
      assert.match(JSON.stringify(role.ManagedPolicyArns[0]), /:iam::aws:policy\/AmazonSSMManagedInstanceCore/);
      const own = statements(resources).filter(({ policy }) =>
        JSON.stringify(resources[policy].Properties.Roles).includes(logicalId(stack, stack.compute.instanceRole)),
      );
      const writes = own.filter(({ statement }) => actionsOf(statement).some((a) => a === 'logs:PutLogEvents'));
      assert.deepEqual(
        writes.map(({ statement }) => statement.Resource),
        [
          { 'Fn::GetAtt': [logicalId(stack, stack.compute.jobLogGroup), 'Arn'] },
          // Shell sessions' input and output (lib/session-documents.ts, test/infra/session-documents.test.ts).
          { 'Fn::GetAtt': [logicalId(stack, stack.sessions.logGroup), 'Arn'] },
        ],
      );
      // The ECR statements themselves: test/infra/ecr-pull.test.ts.
      const others = own.filter(
        ({ statement }) => !actionsOf(statement).every((a) => a.startsWith('logs:') || a.startsWith('ecr:')),
      );
      // A job's secret values: only the copy tagged with the calling instance's own ARN (test/infra/secrets-access.test.ts).
      assert.deepEqual(
        others.map(({ statement }) => [actionsOf(statement), statement.Condition]),
        [
          [
            ['secretsmanager:GetSecretValue'],
            { StringEquals: { 'aws:ResourceTag/flare:instance': '${ec2:SourceInstanceARN}' } },
          ],
        ],
        'nothing else besides SSM core',
      );
    });

    it('lets the tasks function create only managed-by=flare instances from the Flare template', () => {
      const launchTemplateArn = Match.objectLike({
        'Fn::Join': [
          '',
          Match.arrayWith([':launch-template/', { Ref: logicalId(stack, stack.compute.launchTemplate) }]),
        ],
      });
      // Only this deployment's instances: those it tagged at launch.
      const ownInstances = {
        StringEquals: { 'aws:ResourceTag/managed-by': 'flare', 'aws:ResourceTag/flare:deployment': stack.stackName },
      };
      template.hasResourceProperties('AWS::IAM::Policy', {
        Roles: [{ Ref: logicalId(stack, stack.tasks.role) }],
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Action: 'ec2:RunInstances',
              Resource: Match.objectLike({ 'Fn::Join': ['', Match.arrayWith([':instance/*'])] }),
              Condition: {
                StringEquals: {
                  'aws:RequestTag/managed-by': 'flare',
                  'aws:RequestTag/flare:deployment': stack.stackName,
                },
                ArnEquals: { 'ec2:LaunchTemplate': launchTemplateArn },
              },
            }),
            Match.objectLike({
              Action: 'ec2:RunInstances',
              Condition: { ArnEquals: { 'ec2:LaunchTemplate': launchTemplateArn } },
            }),
            Match.objectLike({
              Action: 'ec2:CreateTags',
              Condition: { StringEquals: { 'ec2:CreateAction': 'RunInstances' } },
            }),
            Match.objectLike({
              Action: 'ec2:TerminateInstances',
              Condition: ownInstances,
            }),
            Match.objectLike({
              Action: 'ssm:SendCommand',
              Condition: ownInstances,
            }),
            Match.objectLike({
              Action: 'ssm:SendCommand',
              Resource: Match.objectLike({ 'Fn::Join': ['', Match.arrayWith(['::document/AWS-RunShellScript'])] }),
            }),
            Match.objectLike({
              Action: 'iam:PassRole',
              Resource: { 'Fn::GetAtt': [logicalId(stack, stack.compute.instanceRole), 'Arn'] },
              Condition: { StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } },
            }),
          ]),
        },
      });
    });

    it('grants no instance-changing action anywhere without its condition', () => {
      const guarded: Record<string, (s: any) => boolean> = {
        'ec2:RunInstances': (s) => !!s.Condition?.ArnEquals?.['ec2:LaunchTemplate'],
        'ec2:CreateTags': (s) => s.Condition?.StringEquals?.['ec2:CreateAction'] === 'RunInstances',
        'ec2:TerminateInstances': (s) => s.Condition?.StringEquals?.['aws:ResourceTag/managed-by'] === 'flare',
        'iam:PassRole': (s) => s.Condition?.StringEquals?.['iam:PassedToService'] === 'ec2.amazonaws.com',
        'ssm:SendCommand': (s) =>
          s.Condition?.StringEquals?.['aws:ResourceTag/managed-by'] === 'flare' ||
          /document\/AWS-RunShellScript/.test(JSON.stringify(s.Resource)),
      };
      const found = new Set<string>();
      for (const { policy, statement } of statements(resources)) {
        for (const action of actionsOf(statement)) {
          assert.ok(!action.includes('*'), `${policy} grants wildcard action ${action}`);
          if (!(action in guarded)) continue;
          found.add(action);
          assert.ok(
            guarded[action](statement),
            `${policy}: ${action} without its condition: ${JSON.stringify(statement)}`,
          );
          assert.notEqual(statement.Resource, '*', `${policy}: ${action} on *`);
        }
      }
      assert.deepEqual([...found].sort(), Object.keys(guarded).sort());
      const instanceRunStatement = statements(resources).find(
        ({ statement }) =>
          actionsOf(statement).includes('ec2:RunInstances') && /:instance\/\*/.test(JSON.stringify(statement.Resource)),
      );
      assert.equal(instanceRunStatement?.statement.Condition.StringEquals['aws:RequestTag/managed-by'], 'flare');
    });
  });
});
