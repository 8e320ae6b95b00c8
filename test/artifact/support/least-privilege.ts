/**
 * The least-privilege report in the test output: the grants that no call of
 * any artifact scenario used. Each test file adds its recorded calls beside the
 * out dir they ran against (so the union is per synthesized app) and prints the
 * report for the union so far: the last file of a run prints the whole of it.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Artifact } from './artifact.js';
import { formatUnusedGrants, unusedGrants } from './iam-check.js';
import type { RecordedCall } from './types.js';

export async function reportUnusedGrants(artifact: Artifact): Promise<string> {
  const dir = join(artifact.outdir, 'recorded-calls');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${basename(process.argv[1] ?? 'unknown')}.json`), JSON.stringify(artifact.fake.calls()));
  const calls = readdirSync(dir).flatMap((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as RecordedCall[]);
  // Instance tags are per file: a call recorded by another file is judged without them (they only narrow conditions).
  const report = formatUnusedGrants(await unusedGrants(artifact.template, calls, artifact.fake.tagsOf));
  return `granted, and used by no call of the artifact scenarios so far (${readdirSync(dir).length} files):\n${report}`;
}
