/**
 * A starting job's secret values, for its instances on AWS: one secret per
 * instance (`flare/<stack>/jobs/<jobId>/<instanceId>`, contract/secrets.ts)
 * holding `{ ENV_NAME: value }`, tagged with that instance's ARN. The instance
 * role may read a copy only when the tag is its own ARN (lib/secrets-access.ts),
 * so an instance reads its own job's values and nothing else, and the SSM
 * command that starts the container carries no value, only where to fetch it.
 * The copies are deleted when the job stops; one left behind can be read by no
 * instance but the terminated one.
 */
import {
  CreateSecretCommand,
  DeleteSecretCommand,
  PutSecretValueCommand,
  type SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { INSTANCE_TAG, jobSecretName } from '../../contract/secrets.js';
import { LaunchFailed } from '../core/errors.js';
import type { Job } from '../core/job.js';
import type { ContainerSpec } from '../ports/compute.js';
import type { SecretStore } from '../ports/secrets.js';
import { DEPLOYMENT_TAG } from './secrets-manager-secrets.js';

const isNamed = (error: unknown, name: string) => (error as { name?: string }).name === name;

export interface JobSecretCopiesProps {
  readonly client: SecretsManagerClient;
  /** Where the project's values are read. */
  readonly projectSecrets: Pick<SecretStore, 'values'>;
  readonly deployment: string;
  /** `arn:<partition>:ec2:<region>:<account>:instance/`: what `${ec2:SourceInstanceARN}` is for this deployment's instances. */
  readonly instanceArnPrefix: string;
  readonly region: string;
}

export class JobSecretCopies {
  constructor(private readonly props: JobSecretCopiesProps) {}

  /** Where the instance script fetches its copy: this prefix and its own instance id. */
  sourceFor(job: Pick<Job, 'id'>): { secretIdPrefix: string; region: string } {
    return { secretIdPrefix: jobSecretName(this.props.deployment, job.id, ''), region: this.props.region };
  }

  /** One copy per instance of the job; a second call writes the same values again. */
  async copy(job: Job, spec: ContainerSpec): Promise<void> {
    const mapping = spec.secrets ?? {};
    const names = [...new Set(Object.values(mapping))];
    const values = await this.props.projectSecrets.values(job.project, names);
    const gone = names.filter((name) => !values.has(name));
    if (gone.length > 0)
      throw new LaunchFailed(`project ${job.project} has no secret named ${gone.map((n) => `'${n}'`).join(', ')}`);
    const text = JSON.stringify(Object.fromEntries(Object.entries(mapping).map(([env, n]) => [env, values.get(n)!])));
    for (const instanceId of job.instanceIds ?? []) {
      const name = jobSecretName(this.props.deployment, job.id, instanceId);
      try {
        await this.props.client.send(
          new CreateSecretCommand({
            Name: name,
            SecretString: text,
            Tags: [
              { Key: DEPLOYMENT_TAG, Value: this.props.deployment },
              { Key: 'flare:job', Value: job.id },
              { Key: INSTANCE_TAG, Value: `${this.props.instanceArnPrefix}${instanceId}` },
            ],
          }),
        );
      } catch (error) {
        if (!isNamed(error, 'ResourceExistsException')) throw error;
        await this.props.client.send(new PutSecretValueCommand({ SecretId: name, SecretString: text }));
      }
    }
  }

  /** Delete the job's copies at once; ones already gone are no error. */
  async remove(job: Job): Promise<void> {
    for (const instanceId of job.instanceIds ?? []) {
      try {
        await this.props.client.send(
          new DeleteSecretCommand({
            SecretId: jobSecretName(this.props.deployment, job.id, instanceId),
            ForceDeleteWithoutRecovery: true,
          }),
        );
      } catch (error) {
        if (!isNamed(error, 'ResourceNotFoundException')) throw error;
      }
    }
  }
}
