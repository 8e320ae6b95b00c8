/**
 * The `flare` command. `flare local` runs the control plane on this machine;
 * every other command is the API client in cli/ (cli/main.ts). Each side is
 * loaded only when used, so `flare job list` never loads the control plane.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { LocalCompute } from '../lambdas/adapters/local-compute.js';
import type { LocalConfig } from '../lambdas/core/schemas.js';

const USAGE = `usage: flare local [--config FILE]

  Runs the Flare control plane on this machine (DynamoDB Local, the job
  workflow, the HTTP API on 127.0.0.1). FILE defaults to ./flare.local.json
  when present, else built-in defaults.

example:
  flare local --config flare.local.json`;

function fail(message: string, code = 2): never {
  process.stderr.write(`flare: ${message}\n`);
  process.exit(code);
}

async function loadConfig(path: string | undefined): Promise<{ config: LocalConfig; baseDir: string }> {
  const { ValidationError } = await import('../lambdas/core/errors.js');
  const { LocalConfig, parse } = await import('../lambdas/core/schemas.js');
  const file = path ?? (existsSync('flare.local.json') ? 'flare.local.json' : undefined);
  if (!file) return { config: parse(LocalConfig, {}), baseDir: process.cwd() };
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    fail(`cannot read config ${file}: ${(error as Error).message}`);
  }
  try {
    return { config: parse(LocalConfig, raw), baseDir: dirname(resolve(file)) };
  } catch (error) {
    if (error instanceof ValidationError)
      fail(`config ${file} is invalid:\n${error.details.map((d) => `  ${d.field}: ${d.reason}`).join('\n')}`);
    throw error;
  }
}

async function local(args: string[]): Promise<void> {
  let configPath: string | undefined;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--config') configPath = args[++i] ?? fail('--config needs a file');
    else if (args[i].startsWith('--config=')) configPath = args[i].slice('--config='.length);
    else if (args[i] === '--help' || args[i] === '-h') {
      process.stdout.write(`${USAGE}\n`);
      return;
    } else fail(`unknown argument '${args[i]}'\n${USAGE}`);
  }
  const { config, baseDir } = await loadConfig(configPath);
  const { startControlPlane } = await import('../lambdas/local/control-plane.js');
  const plane = await startControlPlane(config, { baseDir });
  process.stdout.write(`flare: control plane listening on ${plane.url} (data in ${plane.dataDir})\n`);
  process.stdout.write(`flare: dashboard at ${plane.url}/ui/\n`);
  process.stdout.write(`flare: ${await computeLine(plane.compute, config.compute.driver)}\n`);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(
      `flare: ${signal}, stopping (running jobs keep running and are re-attached on the next start)\n`,
    );
    await plane.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

async function client(argv: string[]): Promise<void> {
  // `flare job list | head`: a closed pipe ends the command quietly.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
  });
  const { main } = await import('../cli/main.js');
  process.exitCode = await main(argv, {
    stdout: (text) => void process.stdout.write(text),
    stderr: (text) => void process.stderr.write(text),
    env: process.env,
    now: () => new Date(),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  });
}

const argv = process.argv.slice(2);
if (argv[0] === 'local') {
  local(argv.slice(1)).catch((error: Error) => fail(error.message, 1));
} else {
  client(argv).catch((error: Error) => fail(`internal error: ${error.message}`, 1));
}

/** How jobs run on this machine, said once at start: nobody should have to guess what `auto` picked. */
async function computeLine(compute: LocalCompute, configured: string): Promise<string> {
  const driver = await compute.driverInUse();
  const how = driver === 'docker' ? 'in Docker containers' : 'as plain processes (the image is recorded, not run)';
  const why = configured === 'auto' ? `: ${driver === 'docker' ? 'a' : 'no'} Docker engine answered` : '';
  const gpus =
    compute.machineGpus > 0
      ? `${compute.machineGpus} GPU(s) found by nvidia-smi`
      : "no GPU found: pools' gpus are plain slots";
  return `jobs run ${how} (compute.driver "${configured}"${why}); ${gpus}`;
}
