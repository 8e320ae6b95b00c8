/**
 * The Session Manager documents `flare job shell` and `flare job port-forward`
 * start their sessions with, and the log group every shell session is written
 * to. Researchers' IAM allows StartSession only with these documents
 * (docs/operations.md, `ssm:SessionDocumentAccessCheck`), so a shell into a
 * Flare instance is logged by construction, whatever the account's Session
 * Manager preferences say.
 *
 * Port forwarding carries no shell I/O that Session Manager could log: what is
 * recorded of it is its start and end in CloudTrail (StartSession,
 * TerminateSession) and the API's own line for `POST /v1/jobs/{id}/session`.
 * Its document only lets the forward reach a container address on the instance.
 */
import { ArnFormat, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { JOB_CONTAINER_LABEL } from './instance-user-data.js';

export interface JobSessionsProps {
  /** The job instances' role: their SSM agent writes the session logs. */
  readonly instanceRole: iam.IRole;
  /** @default logs.RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * What a shell session runs first: `docker exec -it` into the instance's job
 * container (an instance runs one job), as the former AWS-StartInteractiveCommand
 * command did; leaving the container ends the session.
 */
export const SHELL_PROFILE = [
  `container=$(sudo docker ps --quiet --filter label=${JOB_CONTAINER_LABEL} | head -n 1)`,
  'if [ -z "$container" ]; then echo "flare: no job container runs on this instance"; exit 1; fi',
  `exec sudo docker exec --interactive --tty "$container" sh -c 'if command -v bash > /dev/null; then exec bash; else exec sh; fi'`,
].join('\n');

/**
 * A container's address on a docker network of the instance (the ranges docker allocates from), or localhost
 * for the host network: not the instance metadata service, nor the VPC's other hosts (10.0.0.0/16 by default).
 */
export const CONTAINER_HOST_PATTERN =
  '^(localhost|172\\.(1[6-9]|2[0-9]|3[01])\\.[0-9]{1,3}\\.[0-9]{1,3}|192\\.168\\.[0-9]{1,3}\\.[0-9]{1,3})$';
const PORT_PATTERN = '^([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$';

export class JobSessions extends Construct {
  /** Every shell session's input and output, one stream per session: `/flare/<stack name>/sessions`. */
  public readonly logGroup: logs.LogGroup;
  /** The session log group's own key (rotated), which only CloudWatch Logs may use, for that group only. */
  public readonly logKey: kms.Key;
  public readonly shellDocumentName: string;
  public readonly portForwardDocumentName: string;

  constructor(scope: Construct, id: string, props: JobSessionsProps) {
    super(scope, id);
    const stackName = Stack.of(this).stackName;
    // Fixed names: the researchers' policy in docs/operations.md names them as <stack>-JobShell and <stack>-JobPortForward.
    this.shellDocumentName = `${stackName}-JobShell`;
    this.portForwardDocumentName = `${stackName}-JobPortForward`;

    // Named, so that the key's policy can name the group without a dependency cycle.
    const logGroupName = `/flare/${stackName}/sessions`;
    this.logKey = new kms.Key(this, 'SessionLogsKey', {
      description: `Flare ${stackName}: shell session logs`,
      enableKeyRotation: true,
      // Goes with the log group (DESTROY below), after KMS's shortest pending window.
      removalPolicy: RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(7),
    });
    // CloudWatch Logs encrypts and decrypts the group's events with the key; for this group only.
    this.logKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'SessionLogGroupOnly',
        principals: [new iam.ServicePrincipal(`logs.${Stack.of(this).region}.amazonaws.com`)],
        actions: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
        resources: ['*'],
        conditions: {
          ArnEquals: {
            'kms:EncryptionContext:aws:logs:arn': Stack.of(this).formatArn({
              service: 'logs',
              resource: 'log-group',
              resourceName: logGroupName,
              arnFormat: ArnFormat.COLON_RESOURCE_NAME,
            }),
          },
        },
      }),
    );
    this.logGroup = new logs.LogGroup(this, 'SessionLogs', {
      logGroupName,
      encryptionKey: this.logKey,
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    new ssm.CfnDocument(this, 'ShellDocument', {
      name: this.shellDocumentName,
      documentType: 'Session',
      documentFormat: 'JSON',
      // A named document cannot be replaced in place; a new version becomes the default one.
      updateMethod: 'NewVersion',
      content: {
        schemaVersion: '1.0',
        description: "Flare: a shell in a job's container, streamed to the session log group",
        sessionType: 'Standard_Stream',
        inputs: {
          cloudWatchLogGroupName: this.logGroup.logGroupName,
          // The agent streams only to an encrypted group (the group's key above); it checks with DescribeLogGroups.
          cloudWatchEncryptionEnabled: true,
          cloudWatchStreamingEnabled: true,
          s3EncryptionEnabled: true,
          // ssm-user, which may sudo docker; a run-as user would need one OS user per researcher.
          runAsEnabled: false,
          idleSessionTimeout: '20',
          shellProfile: { linux: SHELL_PROFILE, windows: '' },
        },
      },
    });

    new ssm.CfnDocument(this, 'PortForwardDocument', {
      name: this.portForwardDocumentName,
      documentType: 'Session',
      documentFormat: 'JSON',
      updateMethod: 'NewVersion',
      content: {
        schemaVersion: '1.0',
        description: "Flare: forward a local port to a port of a job's container on its instance",
        sessionType: 'Port',
        parameters: {
          host: {
            type: 'String',
            description: "The container's address on the instance",
            allowedPattern: CONTAINER_HOST_PATTERN,
          },
          portNumber: { type: 'String', description: "The job's port", allowedPattern: PORT_PATTERN },
          localPortNumber: { type: 'String', description: 'The local port', allowedPattern: PORT_PATTERN },
        },
        properties: {
          type: 'LocalPortForwarding',
          host: '{{ host }}',
          portNumber: '{{ portNumber }}',
          localPortNumber: '{{ localPortNumber }}',
        },
      },
    });

    // The agent writes the session's stream; DescribeLogGroups is granted account-wide in compute.ts already.
    props.instanceRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'],
        resources: [this.logGroup.logGroupArn],
      }),
    );
  }

  /** What the API function reads (lambdas/handlers/aws-env.ts) to answer POST /v1/jobs/{id}/session. */
  public environment(): Record<string, string> {
    return {
      SESSION_SHELL_DOCUMENT: this.shellDocumentName,
      SESSION_PORT_DOCUMENT: this.portForwardDocumentName,
    };
  }
}
