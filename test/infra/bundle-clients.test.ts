/**
 * esbuild keeps an SDK client in a Lambda's bundle whenever a module the entry
 * imports uses it, whether or not the function ever calls it: about 100 KiB and
 * tens of ms of cold start for the S3 client. Here each entry lib/flare-stack.ts
 * deploys is bundled with the stack's own esbuild options and the S3 client must
 * be in exactly the functions that call S3: the API (list, download, remove
 * outputs) and the tasks function (signs the upload a stopping job's instance posts).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { build, type Metafile } from 'esbuild';
import { HANDLER_ENTRIES } from '../../lib/flare-stack.js';
import { esbuildOptions, REPO_ROOT } from '../../lib/lambda-defaults.js';

const S3_CLIENT = /node_modules\/@aws-sdk\/client-s3\//;

/** Whether any code of the S3 client is left in the bundle after tree-shaking (read, not only imported). */
function carriesS3(metafile: Metafile): boolean {
  return Object.values(metafile.outputs).some((output) =>
    Object.entries(output.inputs).some(([file, input]) => S3_CLIENT.test(file) && input.bytesInOutput > 0),
  );
}

describe('SDK clients in the Lambda bundles', () => {
  it('only the API and the tasks function carry the S3 client', async () => {
    const carrying: string[] = [];
    for (const [name, entry] of Object.entries(HANDLER_ENTRIES)) {
      const { metafile } = await build({
        entryPoints: [join(REPO_ROOT, entry)],
        outfile: join(REPO_ROOT, 'cdk.out', 'bundle-clients', name, 'index.mjs'),
        ...esbuildOptions(),
        sourcemap: false,
        write: false,
        metafile: true,
        logLevel: 'silent',
      });
      if (carriesS3(metafile)) carrying.push(name);
    }
    assert.deepEqual(carrying.sort(), ['api', 'tasks']);
  });
});
