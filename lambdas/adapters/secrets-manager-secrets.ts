/**
 * Project secrets in AWS Secrets Manager, one secret each, named
 * `flare/<stack>/projects/<project>/<name>` (contract/secrets.ts) and tagged
 * with the deployment and the project. The API's role may touch only names
 * under its deployment's prefix (lib/secrets-access.ts grants it). Deletion
 * is immediate (no recovery window), so a name can be put again at once.
 */
import {
  CreateSecretCommand,
  DeleteSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  ListSecretsCommand,
  PutSecretValueCommand,
  type SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { projectSecretName } from '../../contract/secrets.js';
import type { SecretStore, SecretSummary } from '../ports/secrets.js';

/** Tags every project secret carries: which deployment and project it belongs to. */
export const DEPLOYMENT_TAG = 'flare:deployment';
export const PROJECT_TAG = 'flare:project';

const isNotFound = (error: unknown) => (error as { name?: string }).name === 'ResourceNotFoundException';

export class SecretsManagerSecrets implements SecretStore {
  constructor(
    private readonly client: SecretsManagerClient,
    /** The stack name: every secret this store reads or writes is under its prefix (contract/secrets.ts). */
    private readonly deployment: string,
  ) {}

  async put(project: string, name: string, value: string): Promise<void> {
    const id = projectSecretName(this.deployment, project, name);
    try {
      await this.client.send(
        new CreateSecretCommand({
          Name: id,
          SecretString: value,
          Tags: [
            { Key: DEPLOYMENT_TAG, Value: this.deployment },
            { Key: PROJECT_TAG, Value: project },
          ],
        }),
      );
    } catch (error) {
      if ((error as { name?: string }).name !== 'ResourceExistsException') throw error;
      await this.client.send(new PutSecretValueCommand({ SecretId: id, SecretString: value }));
    }
  }

  async list(project: string): Promise<SecretSummary[]> {
    const under = projectSecretName(this.deployment, project, '');
    const found: SecretSummary[] = [];
    let NextToken: string | undefined;
    do {
      const page = await this.client.send(
        new ListSecretsCommand({
          Filters: [{ Key: 'name', Values: [under] }],
          MaxResults: 100,
          ...(NextToken ? { NextToken } : {}),
        }),
      );
      for (const s of page.SecretList ?? []) {
        // The name filter matches prefixes of words too: keep only this project's names.
        if (!s.Name?.startsWith(under) || s.Name.slice(under.length).includes('/')) continue;
        const updated = s.LastChangedDate ?? s.CreatedDate;
        found.push({ name: s.Name.slice(under.length), updatedAt: (updated ?? new Date(0)).toISOString() });
      }
      NextToken = page.NextToken;
    } while (NextToken);
    return found;
  }

  async delete(project: string, name: string): Promise<boolean> {
    try {
      await this.client.send(
        new DeleteSecretCommand({
          SecretId: projectSecretName(this.deployment, project, name),
          ForceDeleteWithoutRecovery: true,
        }),
      );
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  async missing(project: string, names: readonly string[]): Promise<string[]> {
    const found = await Promise.all(
      names.map((name) =>
        this.client
          .send(new DescribeSecretCommand({ SecretId: projectSecretName(this.deployment, project, name) }))
          // A secret whose deletion is under way is as good as gone.
          .then((s) => s.DeletedDate === undefined)
          .catch((error: unknown) => {
            if (isNotFound(error)) return false;
            throw error;
          }),
      ),
    );
    return names.filter((_, i) => !found[i]);
  }

  async values(project: string, names: readonly string[]): Promise<Map<string, string>> {
    const read = await Promise.all(
      names.map((name) =>
        this.client
          .send(new GetSecretValueCommand({ SecretId: projectSecretName(this.deployment, project, name) }))
          .then((s) => s.SecretString)
          .catch((error: unknown) => {
            if (isNotFound(error)) return undefined;
            throw error;
          }),
      ),
    );
    return new Map(names.flatMap((name, i) => (read[i] === undefined ? [] : [[name, read[i]!] as const])));
  }
}
