/**
 * superviseDynamoDbLocal over stand-in JVMs (the real one is killed under a
 * running plane in test/integration/dynamodb-outage.test.ts): what it
 * restarts, on which port, what it reports meanwhile and what it logs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DynamoDbLocal, JvmExit, StartDynamoDbLocalOptions } from '../../lambdas/local/dynamodb-local.js';
import { DynamoDbLocalStartError } from '../../lambdas/local/dynamodb-local-errors.js';
import { superviseDynamoDbLocal } from '../../lambdas/local/dynamodb-supervisor.js';
import { waitFor } from '../support/harness.js';
import { recordingLog } from '../support/fakes.js';

const PORT = 8123;

/** Stand-in JVMs: each start either fails (while `failing` > 0) or gives one that `kill()` ends. */
class Jvms {
  starts: StartDynamoDbLocalOptions[] = [];
  failing = 0;
  last?: DynamoDbLocal & { kill(): void };

  start = async (options: StartDynamoDbLocalOptions): Promise<DynamoDbLocal> => {
    this.starts.push(options);
    if (this.failing > 0) {
      this.failing -= 1;
      throw new DynamoDbLocalStartError(
        'DynamoDB Local exited before it was ready (code 2, signal null):\njava.net.BindException: Address already in use',
      );
    }
    let exit!: (e: JvmExit) => void;
    const exited = new Promise<JvmExit>((resolve) => (exit = resolve));
    const port = options.port || PORT;
    this.last = {
      endpoint: `http://127.0.0.1:${port}`,
      port,
      pid: 1000 + this.starts.length,
      startupMs: 1,
      exited,
      stop: async () => exit({ code: 143, signal: null }),
      kill: () => exit({ code: null, signal: 'SIGKILL' }),
    };
    return this.last;
  };
}

describe('superviseDynamoDbLocal', () => {
  it('starts a JVM that died again, on the same port and data directory, and tells the listeners', async () => {
    const jvms = new Jvms();
    const { log, count } = recordingLog();
    const db = await superviseDynamoDbLocal({ dataDir: '/data/dynamodb', log, start: jvms.start, firstDelayMs: 1 });
    let restarted = 0;
    db.onRestart(async () => void restarted++);
    const first = db.pid();
    assert.deepEqual(db.health(), { status: 'ok', pid: first, restarts: 0 });

    jvms.last!.kill();
    await waitFor('the restart', async () => db.health().restarts === 1);

    assert.deepEqual(
      jvms.starts.map((s) => [s.port, s.dataDir]),
      [
        [0, '/data/dynamodb'],
        [PORT, '/data/dynamodb'],
      ],
      'first a free port, then that same one',
    );
    assert.equal(db.endpoint, `http://127.0.0.1:${PORT}`);
    assert.notEqual(db.pid(), first);
    await waitFor('the listener', async () => restarted === 1);
    assert.equal(count('DynamoDB Local exited unexpectedly'), 1);
    assert.equal(count('DynamoDB Local restarted'), 1);
    await db.stop();
  });

  it('reports restarting while attempts fail, logs the first failure and every tenth, and comes back', async () => {
    const jvms = new Jvms();
    const { log, count } = recordingLog();
    const db = await superviseDynamoDbLocal({ inMemory: true, log, start: jvms.start, firstDelayMs: 1, maxDelayMs: 2 });
    jvms.failing = 1_000;

    jvms.last!.kill();
    const down = await waitFor('failed attempts', async () => {
      const health = db.health();
      return (health.failedAttempts ?? 0) >= 25 && health;
    });
    assert.equal(down.status, 'restarting');
    assert.equal(down.lastExit, 'signal SIGKILL');
    assert.match(down.lastError ?? '', /^DynamoDbLocalStartError: DynamoDB Local exited before it was ready/);
    assert.equal(db.pid(), undefined);
    jvms.failing = 0;
    await waitFor('the restart', async () => db.health().status === 'ok');

    const failures = 1 + (jvms.starts.length - 2); // the exit, then every failed start
    assert.equal(count('DynamoDB Local exited unexpectedly'), 1);
    assert.equal(count('DynamoDB Local could not be restarted'), Math.floor(failures / 10), `${failures} failures`);
    assert.equal(count('DynamoDB Local restarted'), 1);
    await db.stop();
  });

  it('a JVM ended by stop() is not started again', async () => {
    const jvms = new Jvms();
    const db = await superviseDynamoDbLocal({
      inMemory: true,
      log: recordingLog().log,
      start: jvms.start,
      firstDelayMs: 1,
    });

    await db.stop();
    await new Promise((resolve) => setTimeout(resolve, 50));

    assert.equal(jvms.starts.length, 1);
    assert.equal(db.pid(), undefined);
  });
});
