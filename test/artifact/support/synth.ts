/**
 * The synthesized app, as `cdk synth` makes it: bin/app.ts run with the CLI's
 * CDK_OUTDIR and CDK_CONTEXT_JSON (cdk.json's context plus the artifact tests'),
 * cdk-nag and esbuild bundling included. Once per change of what goes into it:
 * the out dir is cached under node_modules/.cache/flare-artifact/<hash of bin/,
 * lib/, lambdas/, statemachines/, schema/, package-lock.json, cdk.json and the
 * context>, and a lock directory keeps parallel test files from synthesizing
 * the same hash twice.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ARTIFACT_STACK_NAME, type CfnTemplate } from './cfn-resolve.js';
import { ARTIFACT_CONTEXT } from './synth-context.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const CACHE = join(REPO, 'node_modules', '.cache', 'flare-artifact');
const INPUTS = [
  'bin/app.ts',
  'lib',
  'lambdas',
  'statemachines',
  'schema',
  'package-lock.json',
  'cdk.json',
  'test/artifact/support/synth-context.ts',
];
/** A lock older than this is taken to be left by a killed run. */
const STALE_LOCK_MS = 5 * 60_000;
const KEEP = 3;

export interface SynthesizedApp {
  outdir: string;
  template: CfnTemplate;
}

/** FLARE_ARTIFACT_OUT names an out dir to use as it is (e.g. `cdk synth -o`), for debugging the harness. */
export function synthesizedApp(): SynthesizedApp {
  const outdir = process.env.FLARE_ARTIFACT_OUT ?? join(CACHE, inputsHash());
  if (!existsSync(join(outdir, 'manifest.json'))) synthesizeLocked(outdir);
  const template = JSON.parse(
    readFileSync(join(outdir, `${ARTIFACT_STACK_NAME}.template.json`), 'utf8'),
  ) as CfnTemplate;
  return { outdir, template };
}

function inputsHash(): string {
  const hash = createHash('sha256');
  for (const file of INPUTS.flatMap((p) => files(join(REPO, p))).sort()) {
    hash.update(relative(REPO, file)).update('\0').update(readFileSync(file)).update('\0');
  }
  return hash.digest('hex').slice(0, 24);
}

function files(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path, { withFileTypes: true }).flatMap((e) =>
    e.name === 'node_modules' ? [] : files(join(path, e.name)),
  );
}

function synthesizeLocked(outdir: string): void {
  mkdirSync(CACHE, { recursive: true });
  const lock = `${outdir}.lock`;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (existsSync(join(outdir, 'manifest.json'))) return;
      if (Date.now() - statSync(lock).mtimeMs > STALE_LOCK_MS) rmSync(lock, { recursive: true, force: true });
      else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 250);
    }
  }
  try {
    if (existsSync(join(outdir, 'manifest.json'))) return;
    const staging = `${outdir}.tmp-${process.pid}`;
    rmSync(staging, { recursive: true, force: true });
    try {
      const context = {
        ...(JSON.parse(readFileSync(join(REPO, 'cdk.json'), 'utf8')) as { context?: object }).context,
        ...ARTIFACT_CONTEXT,
      };
      execFileSync(process.execPath, ['--import', 'tsx', join(REPO, 'bin/app.ts')], {
        cwd: REPO,
        env: { ...process.env, CDK_OUTDIR: staging, CDK_CONTEXT_JSON: JSON.stringify(context) },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
    } catch (error) {
      rmSync(staging, { recursive: true, force: true });
      throw error;
    }
    writeFileSync(join(staging, 'synthesized-at'), new Date().toISOString());
    // A run that took our lock for stale may have finished first: its out dir is as good as ours.
    if (existsSync(outdir)) rmSync(staging, { recursive: true, force: true });
    else renameSync(staging, outdir);
    prune(outdir);
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** Keeps the newest few out dirs: every change to lambdas/ makes a new one. */
function prune(current: string): void {
  const dirs = readdirSync(CACHE)
    .filter((name) => /^[0-9a-f]{24}$/.test(name) && join(CACHE, name) !== current)
    .map((name) => ({ path: join(CACHE, name), at: statSync(join(CACHE, name)).mtimeMs }))
    .sort((a, b) => b.at - a.at);
  for (const old of dirs.slice(KEEP - 1)) rmSync(old.path, { recursive: true, force: true });
}
