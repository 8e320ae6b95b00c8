/**
 * Loaded into every test file's process (`--import`, see package.json): once the
 * file's tests are done, a process still alive minutes later is holding a
 * handle it leaked. It then prints what keeps it alive and exits 1, so the file
 * fails by name instead of the whole run hanging until CI's timeout. The grace
 * is long because the root hook this starts from can run before describe-level
 * `after` hooks (stopping a plane or DynamoDB Local) have finished.
 */
import { after } from 'node:test';

const GRACE_MS = 180_000;

// Only in the processes that run test files, not in the runner that spawns them.
if (process.env.NODE_TEST_CONTEXT !== undefined) {
  after(() => {
    setTimeout(() => {
      const resources = process.getActiveResourcesInfo().join(', ');
      process.stderr.write(
        `exit guard: this test file's process is still alive ${GRACE_MS / 1000} s after its tests ended, ` +
          `held by: ${resources}\n`,
      );
      process.exit(1);
    }, GRACE_MS).unref();
  });
}
