/**
 * What the local driver asks the job supervisor to run: a job's RunnerSpec
 * (local-supervisor/jobs.ts), written to its spec.json before the start, in
 * process mode the job's argv with its environment, in docker mode a
 * `docker run` (local-docker.ts); and its secret values, read from the
 * project's store at the start and never written into the spec.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Job } from '../core/job.js';
import type { ContainerSpec } from '../ports/compute.js';
import { arrayEnv, scratchPath } from '../core/container-command.js';
import { dockerCommand } from './local-docker.js';
import { writeAtomically, type RunnerSpec } from './local-supervisor/jobs.js';
import { baseEnv, LocalComputeError } from './local-supervisor/link.js';
import { localOutputDir } from './local-outputs.js';
import type { LocalComputeOptions, LocalDriver } from './local-compute.js';

export interface RunnerSpecOptions extends Pick<LocalComputeOptions, 'docker' | 'secrets'> {
  /** Resolved root of the data directory. */
  readonly dataDir: string;
  /** Resolved: never `auto`. */
  readonly driver: LocalDriver;
  /** 0: no GPUs on this machine, so docker is given no devices. */
  readonly hostGpus: number;
  readonly stopGraceMs: number;
}

/** The spec of `job`, run in `dir` on `devices`; makes its scratch and output directories and its secrets file. */
export async function runnerSpec(
  job: Job,
  dir: string,
  spec: ContainerSpec,
  devices: number[],
  options: RunnerSpecOptions,
): Promise<RunnerSpec> {
  const jobId = job.id;
  const outputDir = localOutputDir(options.dataDir, job);
  await mkdir(outputDir, { recursive: true, mode: 0o700 });
  const secretsPath = await writeSecrets(dir, spec, options.secrets);
  const common = {
    jobId,
    cwd: scratchPath(join(options.dataDir, 'scratch'), jobId),
    outputPath: join(dir, 'output.log'),
    pidPath: join(dir, 'pid'),
    exitPath: join(dir, 'exit.json'),
    statusPath: join(dir, 'exit-code'),
    expiresAt: spec.expiresAt,
    stopGraceMs: options.stopGraceMs,
    ...(secretsPath ? { secretsPath } : {}),
  };
  await mkdir(common.cwd, { recursive: true, mode: 0o700 });
  if (options.driver === 'docker') {
    const docker = await dockerCommand(jobId, spec, {
      cwd: common.cwd,
      devices: options.hostGpus > 0 ? devices : undefined,
      scratchDir: join(options.dataDir, 'scratch'),
      outputDir,
      stopGraceMs: options.stopGraceMs,
      ...(options.docker ? { options: options.docker } : {}),
    });
    return { ...common, ...docker };
  }
  return {
    ...common,
    argv: [...spec.command],
    env: {
      ...baseEnv(),
      ...spec.env,
      // Set last, so a job cannot widen its own GPUs; PCI order makes the
      // indices the ones nvidia-smi shows.
      CUDA_DEVICE_ORDER: 'PCI_BUS_ID',
      CUDA_VISIBLE_DEVICES: devices.join(','),
      FLARE_JOB_ID: jobId,
      FLARE_OUTPUT_DIR: outputDir,
      ...arrayEnv(spec),
    },
  };
}

/**
 * The job's secret values in a 0600 file of its 0700 directory, which the job runner reads into the job's
 * environment (docker's, which passes them on by name) and removes once the job is spawned.
 */
async function writeSecrets(
  dir: string,
  spec: ContainerSpec,
  secrets: RunnerSpecOptions['secrets'],
): Promise<string | undefined> {
  const mapping = spec.secrets ?? {};
  if (Object.keys(mapping).length === 0) return undefined;
  const path = join(dir, 'secrets.json');
  await writeAtomically(path, JSON.stringify(await secretEnv(secrets, spec.jobId, spec.project, mapping)));
  return path;
}

/** env name -> value of the secrets a job names, read from its project's store now. */
export async function secretEnv(
  secrets: RunnerSpecOptions['secrets'],
  jobId: string,
  project: string | undefined,
  mapping: Record<string, string>,
): Promise<Record<string, string>> {
  if (Object.keys(mapping).length === 0) return {};
  if (!secrets || !project)
    throw new LocalComputeError(`job ${jobId} names secrets, but no secret store is wired to the local driver`);
  const values = await secrets.values(project, Object.values(mapping));
  const gone = Object.values(mapping).filter((name) => !values.has(name));
  if (gone.length > 0)
    throw new LocalComputeError(`project ${project} has no secret named ${gone.map((n) => `'${n}'`).join(', ')}`);
  return Object.fromEntries(Object.entries(mapping).map(([env, name]) => [env, values.get(name)!]));
}
