/**
 * Where a deployment keeps its secrets in AWS Secrets Manager: lib/ grants
 * exactly these names, the adapters read and write exactly these.
 */

/** Every secret of deployment `deployment` (its stack name) is named under this. */
export function secretsPrefix(deployment: string): string {
  return `flare/${deployment}/`;
}

/** A project's secret. */
export function projectSecretName(deployment: string, project: string, name: string): string {
  return `${secretsPrefix(deployment)}projects/${project}/${name}`;
}

/**
 * The copy of a job's secret values made for one of its instances at the job's start: readable only
 * from that instance (tagged with its ARN, INSTANCE_TAG), deleted when the job stops.
 */
export function jobSecretName(deployment: string, jobId: string, instanceId: string): string {
  return `${secretsPrefix(deployment)}jobs/${jobId}/${instanceId}`;
}

/** The tag a job's copy carries: the ARN of the only instance that may read it (`${ec2:SourceInstanceARN}`). */
export const INSTANCE_TAG = 'flare:instance';
