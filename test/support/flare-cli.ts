/**
 * The `flare` CLI as a user runs it, for the end-to-end tests: `bin/flare.ts`
 * as a subprocess, with none of the test runner's FLARE_* variables, so that
 * only what a test gives (HOME, FLARE_API_URL, FLARE_TOKEN) reaches it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { startLocalPlaneIn, type LocalPlane } from './local-plane.js';

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Added to the environment; a variable given as undefined is left unset. */
  env: NodeJS.ProcessEnv;
  /** Written to the CLI's stdin, then closed; none: no stdin. */
  input?: string;
}

/** A running `flare <args>`: its process, its result once it exits, and its stdout so far. */
export function startFlare(
  args: string[],
  options: CliOptions,
): { child: ChildProcess; result: Promise<CliRun>; stdout: () => string } {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FLARE_')));
  const child = spawn(process.execPath, ['--import', 'tsx', 'bin/flare.ts', ...args], {
    env: { ...inherited, ...options.env },
    stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (options.input !== undefined) child.stdin!.end(options.input);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const result = new Promise<CliRun>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  return { child, result, stdout: () => stdout };
}

/**
 * A plane started in `dir` as startLocalPlaneIn does, and `home`, an empty HOME
 * for the CLI under `dir`: no profile of the machine's user is read.
 */
export async function startLocalPlaneWithHome(
  dir: string,
  config: Record<string, unknown>,
): Promise<LocalPlane & { home: string }> {
  const home = join(dir, 'home');
  await mkdir(home);
  return { home, ...(await startLocalPlaneIn(dir, config)) };
}

/** `flare <args>` to its end. */
export function runFlare(args: string[], options: CliOptions): Promise<CliRun> {
  return startFlare(args, options).result;
}
