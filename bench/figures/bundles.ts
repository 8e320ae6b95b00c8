/**
 * Figure 7: each Lambda entry that lib/flare-stack.ts deploys, bundled the way
 * its NodejsFunction bundles it (lib/lambda-defaults.ts: esbuild, ESM, node22,
 * minified, source map, AWS SDK inside), and the cold init of each bundle: a
 * fresh `node` that imports it, timed inside the process and as a whole.
 */
import { spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build, type Metafile } from 'esbuild';
import type { BundleFigure } from '../lib/results.js';
import { summarize } from '../lib/stats.js';

export async function runBundles(
  repoRoot: string,
  outDir: string,
  runs: number,
  say: (line: string) => void,
): Promise<BundleFigure[]> {
  // The stack's own list and banner: the figure follows whatever the stack deploys.
  const { HANDLER_ENTRIES } = await import('../../lib/flare-stack.js');
  const { esbuildOptions } = await import('../../lib/lambda-defaults.js');
  const figures: BundleFigure[] = [];
  for (const [name, entry] of Object.entries(HANDLER_ENTRIES)) {
    const outfile = join(outDir, name, 'index.mjs');
    const { metafile } = await build({
      entryPoints: [resolve(repoRoot, entry)],
      outfile,
      ...esbuildOptions(),
      logLevel: 'error',
      metafile: true,
    });
    const code = readFileSync(outfile);
    const initMs: number[] = [];
    const processMs: number[] = [];
    for (let i = 0; i < runs; i++) {
      const measured = await coldImport(outfile);
      initMs.push(measured.importMs);
      processMs.push(measured.processMs);
    }
    const figure: BundleFigure = {
      name,
      entry,
      bytes: statSync(outfile).size,
      gzipBytes: gzipSync(code).length,
      initMs: summarize(initMs),
      processMs: summarize(processMs),
    };
    say(
      `bundle ${name}: ${(figure.bytes / 1024).toFixed(0)} KiB, import p50 ${figure.initMs.p50.toFixed(1)} ms; SDK clients ${sdkClients(metafile).join(', ') || 'none'}`,
    );
    figures.push(figure);
  }
  return figures;
}

/** The @aws-sdk client and lib packages that made it into the bundle, largest first, with their KiB: what tree-shaking left. */
function sdkClients(metafile: Metafile): string[] {
  const bytes = new Map<string, number>();
  for (const output of Object.values(metafile.outputs)) {
    if (!output.entryPoint) continue;
    for (const [file, input] of Object.entries(output.inputs)) {
      const pkg = /node_modules\/@aws-sdk\/((?:client|lib)-[^/]+)\//.exec(file)?.[1];
      if (pkg && input.bytesInOutput > 0) bytes.set(pkg, (bytes.get(pkg) ?? 0) + input.bytesInOutput);
    }
  }
  return [...bytes].sort((a, b) => b[1] - a[1]).map(([pkg, n]) => `${pkg} ${(n / 1024).toFixed(0)}`);
}

const IMPORT_AND_TIME =
  'const t = performance.now(); await import(process.argv[1]); process.stdout.write(String(performance.now() - t));';

/** A new node process, as Lambda's runtime starts one: import the bundle, report how long that took. */
function coldImport(file: string): Promise<{ importMs: number; processMs: number }> {
  const started = performance.now();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', IMPORT_AND_TIME, pathToFileURL(file).href], {
      // What Lambda sets that matters here (lib/lambda-defaults.ts); nothing of this shell leaks in.
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', AWS_REGION: 'us-east-1', NODE_OPTIONS: '--enable-source-maps' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const processMs = performance.now() - started;
      const importMs = Number(out.trim());
      if (code !== 0 || !Number.isFinite(importMs))
        reject(new Error(`importing ${file} failed (exit ${code}): ${err.trim().slice(0, 500)}`));
      else resolvePromise({ importMs, processMs });
    });
  });
}
