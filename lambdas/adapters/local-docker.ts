/**
 * Docker mode of the local compute driver: the `docker run` a job's spec names
 * (hardened by core/container-command.ts), and the containers of this machine
 * that Flare started, found and removed by label and name.
 */
import { spawn } from 'node:child_process';
import { chmod } from 'node:fs/promises';
import { totalmem } from 'node:os';
import type { ContainerSpec } from '../ports/compute.js';
import { containerName, dockerRunArgs, JOB_ID_PATTERN, type DockerRunOptions } from '../core/container-command.js';
import { baseEnv, LocalComputeError, pick } from './local-supervisor/link.js';

/** What the docker CLI needs of our environment to reach its engine. */
const DOCKER_ENV = ['DOCKER_HOST', 'DOCKER_CONTEXT', 'DOCKER_CONFIG', 'DOCKER_CERT_PATH', 'DOCKER_TLS_VERIFY'];

export interface DockerJob {
  /** The job's scratch directory, mounted at /scratch. */
  readonly cwd: string;
  /** The machine's GPUs the job gets; undefined when its slots are plain numbers (no GPU to ask docker for). */
  readonly devices: number[] | undefined;
  readonly scratchDir: string;
  /** The job's output directory, mounted at /outputs ($FLARE_OUTPUT_DIR). */
  readonly outputDir: string;
  readonly stopGraceMs: number;
  readonly options?: Partial<Omit<DockerRunOptions, 'scratchDir' | 'outputDir' | 'detach'>>;
}

/** The argv, environment and stop command of a job run as a container (RunnerSpec's fields). */
export async function dockerCommand(
  jobId: string,
  spec: ContainerSpec,
  job: DockerJob,
): Promise<{ argv: string[]; env: Record<string, string>; stopArgv: string[] }> {
  const uid = process.getuid?.() ?? 0;
  const gpus = job.devices ? { gpus: job.devices.length, devices: job.devices } : { gpus: 0, devices: undefined };
  const options: DockerRunOptions = {
    memory: `${Math.floor((totalmem() * 0.8) / 2 ** 20)}m`,
    // Files in the scratch directory then belong to whoever runs Flare; root keeps docker's nobody default.
    ...(uid !== 0 ? { user: `${uid}:${process.getgid?.() ?? uid}` } : {}),
    ...job.options,
    ...(spec.allowRoot ? { allowRoot: true } : {}),
    scratchDir: job.scratchDir,
    outputDir: job.outputDir,
  };
  if (uid === 0) {
    await chmod(job.cwd, 0o777);
    await chmod(job.outputDir, 0o777);
  }
  return {
    argv: ['docker', ...dockerRunArgs({ ...spec, ...gpus }, options)],
    env: { ...baseEnv(), ...pick(process.env, DOCKER_ENV) },
    stopArgv: ['docker', 'stop', '--time', String(Math.ceil(job.stopGraceMs / 1000)), containerName(jobId)],
  };
}

/** Job ids of Flare's containers (their supervisor may be gone: the container outlives it). */
export async function containerJobIds(): Promise<string[]> {
  const result = await runQuiet('docker', ['ps', '--filter', 'label=flare.job', '--format', '{{.Label "flare.job"}}']);
  if (result.code !== 0) throw new LocalComputeError(`docker ps failed: ${result.stderr.trim()}`);
  return result.stdout
    .split('\n')
    .map((line) => line.trim())
    .filter((jobId) => JOB_ID_PATTERN.test(jobId));
}

/** `docker rm --force` of the job's container; one that is gone already is no error. */
export async function removeContainer(jobId: string): Promise<void> {
  const result = await runQuiet('docker', ['rm', '--force', containerName(jobId)]);
  if (result.code !== 0 && !/no such container/i.test(result.stderr)) {
    throw new LocalComputeError(`docker rm of job ${jobId} failed: ${result.stderr.trim()}`);
  }
}

function runQuiet(command: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...baseEnv(), ...pick(process.env, DOCKER_ENV) },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', (error) => resolve({ code: -1, stdout, stderr: error.message }));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
