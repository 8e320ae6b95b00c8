/**
 * The `flare` command. This issue ships `flare local`; the API commands of
 * DESIGN.md's CLI section come with issue 4.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ValidationError } from '../lambdas/core/errors.js';
import { LocalConfig, parse } from '../lambdas/core/schemas.js';
import { startControlPlane } from '../lambdas/local/control-plane.js';

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

function loadConfig(path: string | undefined): { config: LocalConfig; baseDir: string } {
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
    if (error instanceof ValidationError) fail(`config ${file} is invalid:\n${error.details.map((d) => `  ${d.field}: ${d.reason}`).join('\n')}`);
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
  const { config, baseDir } = loadConfig(configPath);
  const plane = await startControlPlane(config, { baseDir });
  process.stdout.write(`flare: control plane listening on ${plane.url} (data in ${plane.dataDir})\n`);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`flare: ${signal}, stopping (running jobs keep running and are re-attached on the next start)\n`);
    await plane.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

const [command, ...rest] = process.argv.slice(2);
if (command === 'local') {
  local(rest).catch((error: Error) => fail(error.message, 1));
} else if (!command || command === '--help' || command === '-h') {
  process.stdout.write(`${USAGE}\n`);
} else {
  fail(`unknown command '${command}' (this version has 'flare local')\n${USAGE}`);
}
