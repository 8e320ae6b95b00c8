/**
 * scripts/check-imports.ts (run by `npm run lint`): the layer rules on small
 * trees written to a temp dir, and on the real tree.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { checkImports } from '../../scripts/check-imports.js';

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCRIPT = join(REPO_ROOT, 'scripts', 'check-imports.ts');
const roots: string[] = [];
after(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

/** A tree of `path → source` in a fresh temp dir. */
function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'flare-imports-'));
  roots.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

/** file:line imports 'specifier', the part of a finding a reader acts on. */
const found = (root: string) => checkImports(root).map((v) => `${v.file}:${v.line} ${v.specifier}`);

describe('import boundaries', () => {
  test('core importing an adapter, a handler, the local runner, lib or the AWS SDK is reported', () => {
    const root = tree({
      'lambdas/core/jobs.ts': [
        "import { store } from '../adapters/dynamo/job-store.js';",
        "import type { Deps } from '../handlers/aws-deps.js';",
        "import { DynamoDBClient } from '@aws-sdk/client-dynamodb';",
        "export { x } from '../../lib/settings.js';",
        "const local = await import('../local/control-plane.js');",
        "type Cdk = typeof import('aws-cdk-lib');",
      ].join('\n'),
      'lambdas/ports/job-store.ts': "import type { AttributeValue } from '@aws-sdk/client-dynamodb';\n",
    });
    assert.deepEqual(found(root), [
      'lambdas/core/jobs.ts:1 ../adapters/dynamo/job-store.js',
      'lambdas/core/jobs.ts:2 ../handlers/aws-deps.js',
      'lambdas/core/jobs.ts:3 @aws-sdk/client-dynamodb',
      'lambdas/core/jobs.ts:4 ../../lib/settings.js',
      'lambdas/core/jobs.ts:5 ../local/control-plane.js',
      'lambdas/core/jobs.ts:6 aws-cdk-lib',
      'lambdas/ports/job-store.ts:1 @aws-sdk/client-dynamodb',
    ]);
  });

  test('lib importing lambdas, and lambdas importing lib or the CDK, are reported', () => {
    const root = tree({
      'lib/flare-stack.ts': "import { JOB_STATES } from '../lambdas/core/job.js';\n",
      'lambdas/handlers/http/api.ts': "import { readSettings } from '../../../lib/settings.js';\n",
      'lambdas/adapters/ec2.ts': "import { aws_ec2 } from 'aws-cdk-lib';\n",
    });
    assert.deepEqual(found(root), [
      'lambdas/adapters/ec2.ts:1 aws-cdk-lib',
      'lambdas/handlers/http/api.ts:1 ../../../lib/settings.js',
      'lib/flare-stack.ts:1 ../lambdas/core/job.js',
    ]);
  });

  test('cli may import only node:, its own files, contract/ and the HTTP API types as types', () => {
    const root = tree({
      'cli/main.ts': [
        "import { submit } from '../lambdas/core/jobs.js';",
        "import type { Job } from '../lambdas/core/job.js';",
        "import { JobView } from '../lambdas/core/views.js';",
        "import { z } from 'zod';",
        "import type { JobView as View } from '../lambdas/core/views.js';",
        "import type { SubmitJob } from '../lambdas/core/schemas.js';",
        "import { JOB_STATES } from '../contract/vocabulary.js';",
        "import { parseArgs } from 'node:util';",
        "import { table } from './output.js';",
      ].join('\n'),
    });
    assert.deepEqual(found(root), [
      'cli/main.ts:1 ../lambdas/core/jobs.js',
      'cli/main.ts:2 ../lambdas/core/job.js',
      'cli/main.ts:3 ../lambdas/core/views.js',
      'cli/main.ts:4 zod',
    ]);
  });

  test('what the layers may import passes', () => {
    const root = tree({
      'lambdas/core/jobs.ts': [
        "import { createHash } from 'node:crypto';",
        "import { z } from 'zod';",
        "import type { JobStore } from '../ports/job-store.js';",
        "import { JOB_STATES } from '../../contract/vocabulary.js';",
        "import { transition } from './job.js';",
      ].join('\n'),
      'lambdas/adapters/store.ts':
        "import { DynamoDBClient } from '@aws-sdk/client-dynamodb';\nimport { jobOf } from '../core/job.js';\n",
      'lambdas/local/plane.ts':
        "import { store } from '../adapters/store.js';\nimport { handler } from '../handlers/http/api.js';\n",
      'lib/flare-stack.ts':
        "import { Stack } from 'aws-cdk-lib';\nimport { NAME_PATTERN } from '../contract/vocabulary.js';\n",
      'contract/vocabulary.ts': 'export const JOB_STATES = [] as const;\n',
    });
    assert.deepEqual(found(root), []);
  });

  test('npm run lint fails on a bad import, naming the file, the line and the import', () => {
    const root = tree({
      'lambdas/core/queue.ts': "\nimport { sfn } from '../../lambdas/adapters/sfn-workflows.js';\n",
    });
    const run = spawnSync(process.execPath, ['--import', 'tsx', SCRIPT, root], { cwd: REPO_ROOT, encoding: 'utf8' });
    assert.equal(run.status, 1);
    assert.match(
      run.stderr,
      /^lambdas\/core\/queue\.ts:2: imports '\.\.\/\.\.\/lambdas\/adapters\/sfn-workflows\.js': core and ports/m,
    );
  });

  test('the real tree keeps its layers', () => {
    assert.deepEqual(checkImports(REPO_ROOT), []);
  });
});
