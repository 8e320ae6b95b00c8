/**
 * What this machine offers the local driver: NVIDIA GPUs (`nvidia-smi -L`) and
 * a Docker engine (`docker info`). Both probes run real commands with a short
 * timeout; a missing tool means "none", never an error.
 */
import { execFile } from 'node:child_process';

export interface ProbeOptions {
  /** The executable to run. @default 'nvidia-smi' / 'docker' */
  command?: string;
  /** @default 5000 */
  timeoutMs?: number;
}

/** Number of GPUs `nvidia-smi -L` lists; 0 when it is absent or fails (no driver loaded). */
export async function discoverGpus(options: ProbeOptions = {}): Promise<number> {
  const result = await run(options.command ?? 'nvidia-smi', ['-L'], options.timeoutMs ?? 5000);
  if (!result.ok) return 0;
  return result.stdout.split('\n').filter((line) => /^GPU \d+:/.test(line.trim())).length;
}

/** True when a Docker engine answers `docker info` (a CLI without a daemon does not). */
export async function dockerEngineAvailable(options: ProbeOptions = {}): Promise<boolean> {
  const result = await run(
    options.command ?? 'docker',
    ['info', '--format', '{{.ServerVersion}}'],
    options.timeoutMs ?? 3000,
  );
  return result.ok && result.stdout.trim() !== '';
}

function run(command: string, args: string[], timeoutMs: number): Promise<{ ok: boolean; stdout: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: timeoutMs, killSignal: 'SIGKILL', windowsHide: true }, (error, stdout) => {
      resolve({ ok: error === null, stdout: String(stdout) });
    });
  });
}
