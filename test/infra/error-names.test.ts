/**
 * The workflow routes errors by name: a Retry or Catch in the ASL matches a
 * Lambda's errorType, which is the thrown error's `name`. core/errors.ts sets
 * that name from the class, so it must survive the bundling every function
 * gets (minified class names once made every Retry and Catch miss on AWS).
 * Here core/errors.ts is bundled with the stack's own esbuild options and
 * each class is thrown from the bundle; test/artifact/ checks the same through
 * the deployed bundles and the synthesized state machine.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import * as dynamodb from '@aws-sdk/client-dynamodb';
import { build } from 'esbuild';
import { esbuildOptions, REPO_ROOT } from '../../lib/lambda-defaults.js';

/** Every name a Retry or Catch of the lifecycle workflow matches, but the service's own. */
function routedNames(): Set<string> {
  const names = new Set<string>();
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) {
      value.forEach(visit);
      return;
    }
    if (!value || typeof value !== 'object') return;
    for (const [key, inner] of Object.entries(value)) {
      if (key === 'ErrorEquals') for (const name of inner as string[]) names.add(name);
      else visit(inner);
    }
  };
  visit(JSON.parse(readFileSync(join(REPO_ROOT, 'statemachines/job-lifecycle.asl.json'), 'utf8')));
  return new Set([...names].filter((name) => !/^(States|Lambda)\./.test(name)));
}

/** Constructor arguments for the classes that do not take a message. */
const ARGS: Record<string, unknown[]> = {
  ValidationError: [[{ field: 'gpus', reason: 'must be positive' }]],
  PayloadTooLarge: [1024],
  NotFound: ['job', 'j-1'],
  JobNotFound: ['j-1'],
  QuotaExceeded: ['vision', 'gpus', 'over quota'],
  InvalidTransition: ['j-1', 'RUNNING', 'WAITING'],
  StaleJob: ['j-1'],
};

type ErrorClass = new (...args: unknown[]) => Error;

describe('error names in the bundles', () => {
  let dir: string;
  let bundled: Record<string, unknown>;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flare-error-names-'));
    const outfile = join(dir, 'errors.mjs');
    const result = await build({
      entryPoints: [join(REPO_ROOT, 'lambdas/core/errors.ts')],
      outfile,
      ...esbuildOptions(),
      sourcemap: false,
      write: false,
      logLevel: 'silent',
    });
    writeFileSync(outfile, result.outputFiles[0]!.contents);
    bundled = await import(pathToFileURL(outfile).href);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const classes = () =>
    Object.entries(bundled).filter(
      (entry): entry is [string, ErrorClass] => typeof entry[1] === 'function' && entry[1].prototype instanceof Error,
    );

  it('a thrown error from the bundle is named for its class', () => {
    const found = classes();
    assert.ok(found.length >= 10, `found only ${found.length} error classes in the bundle`);
    for (const [exported, Class] of found) {
      const error = new Class(...(ARGS[exported] ?? ['message']));
      assert.equal(error.name, exported, `${exported} thrown from the bundle is named "${error.name}"`);
    }
  });

  it('every name the workflow routes on is thrown by some class in the bundle', () => {
    const thrown = new Set(classes().map(([exported, Class]) => new Class(...(ARGS[exported] ?? ['message'])).name));
    // A NoCapacity only an operator can fix takes its own name, so Requeue can raise it.
    const { NoCapacity } = bundled as { NoCapacity: new (message: string, operatorProblem: boolean) => Error };
    thrown.add(new NoCapacity('vCPU limit', true).name);
    // The ASL also retries DynamoDB's own throttling and conflict errors, which the SDK names by string.
    const sdk = new Set(Object.keys(dynamodb).filter((name) => name.endsWith('Exception')));
    const unmatched = [...routedNames()].filter((name) => !thrown.has(name) && !sdk.has(name));
    assert.deepEqual(unmatched, [], `the ASL routes on names no bundled error carries: ${unmatched.join(', ')}`);
    for (const name of [
      'NoCapacity',
      'CapacityLimitReached',
      'LaunchFailed',
      'ComputeNotReady',
      'JobNotFound',
      'StoreUnavailable',
    ]) {
      assert.ok(routedNames().has(name), `the workflow no longer routes on ${name}: update this test with the ASL`);
    }
  });
});
