import assert from 'node:assert/strict';
import { join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { destinationOf, humanBytes, outputsSummary, progressBar } from '../../cli/commands/outputs.js';
import { CliError } from '../../cli/errors.js';

describe('flare job outputs', () => {
  test('draws a bar of 30 cells with the percentage and sizes', () => {
    assert.equal(progressBar('m.bin', 0, 2_000_000), `[${'.'.repeat(30)}]   0%  0 B / 2.0 MB  m.bin`);
    assert.equal(
      progressBar('m.bin', 1_000_000, 2_000_000),
      `[${'#'.repeat(15)}${'.'.repeat(15)}]  50%  1.0 MB / 2.0 MB  m.bin`,
    );
    assert.equal(progressBar('m.bin', 2_000_000, 2_000_000), `[${'#'.repeat(30)}] 100%  2.0 MB / 2.0 MB  m.bin`);
    assert.match(progressBar('a\u001b[2Jb', 1, 1), /a\\x1b\[2Jb$/, 'no escape sequence from a file name');
  });

  test('sizes in decimal units', () => {
    assert.deepEqual([0, 999, 1000, 1_500_000, 27_000_000_000].map(humanBytes), [
      '0 B',
      '999 B',
      '1.0 kB',
      '1.5 MB',
      '27.0 GB',
    ]);
    assert.equal(outputsSummary({ count: 2, bytes: 1500 }), '2 files, 1.5 kB');
    assert.equal(
      outputsSummary({ count: 1, bytes: 10, truncated: true, error: 'over the cap' }),
      '1 files, 10 B; over the cap',
    );
  });

  test('saves a listed path under the download directory and refuses one that would leave it', () => {
    assert.equal(destinationOf('out', 'sub/n.txt'), join(resolve('out'), 'sub', 'n.txt'));
    for (const path of ['../x', 'sub/../../x', '/etc/passwd', '', '.'])
      assert.throws(() => destinationOf('out', path), CliError, JSON.stringify(path));
  });
});
