/**
 * Bundles the dashboard with the project's esbuild: ui/src/main.tsx (Preact,
 * uPlot and its CSS) into content-hashed files under assets/, and an
 * index.html that loads them (no inline script or style, for the page's CSP).
 *
 *   npm run build:ui [-- <dir>]    writes the bundle to <dir> (default ui/dist)
 *
 * The local plane calls buildUi() itself (in memory, on the first /ui/ request), so
 * `npm start` needs no build step; the AWS stack writes it beside the UI function.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const HERE = dirname(fileURLToPath(import.meta.url));

/** The bundle's files by name: `index.html` and `assets/<name>-<hash>.<ext>`. */
export async function buildUi(): Promise<Map<string, Buffer>> {
  const result = await build({
    entryPoints: { app: join(HERE, 'src', 'main.tsx') },
    bundle: true,
    format: 'esm',
    target: 'es2022',
    platform: 'browser',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    minify: true,
    legalComments: 'eof',
    entryNames: '[name]-[hash]',
    outdir: join(HERE, 'out'),
    write: false,
    logLevel: 'silent',
  });
  const files = new Map<string, Buffer>();
  for (const file of result.outputFiles) files.set(`assets/${basename(file.path)}`, Buffer.from(file.contents));
  const named = (ext: string) => [...files.keys()].find((n) => n.startsWith('assets/app-') && n.endsWith(ext));
  const script = named('.js');
  const style = named('.css');
  if (!script || !style) throw new Error(`the UI bundle has no app script or style: ${[...files.keys()].join(', ')}`);
  files.set('index.html', Buffer.from(indexHtml(`/ui/${script}`, `/ui/${style}`), 'utf8'));
  return files;
}

function indexHtml(script: string, style: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Flare</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${style}">
<script type="module" src="${script}"></script>
</head>
<body>
<div id="app"><noscript>The Flare dashboard needs JavaScript.</noscript></div>
</body>
</html>
`;
}

export async function writeUi(dir: string): Promise<void> {
  const files = await buildUi();
  await rm(dir, { recursive: true, force: true });
  for (const [name, body] of files) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), body);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = resolve(process.argv[2] ?? join(HERE, 'dist'));
  await writeUi(dir);
  console.log(`ui: bundle written to ${dir}`);
}
