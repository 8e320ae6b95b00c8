/**
 * The local control plane runs the reconciler on its own, every
 * `reconcileSeconds`: a usage counter corrupted behind its back is repaired
 * after two runs, and the repair is an operator event.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { LocalConfig, parse } from '../../lambdas/core/schemas.js';
import { startControlPlane, type ControlPlane } from '../../lambdas/local/control-plane.js';
import type { OperatorEvent } from '../../lambdas/ports/events.js';
import { quietLog, waitFor } from '../support/harness.js';

describe('the local reconcile loop', () => {
  let plane: ControlPlane;
  let dataDir: string;
  const operatorEvents: OperatorEvent[] = [];

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'flare-reconcile-loop-'));
    const config = parse(LocalConfig, {
      port: 0,
      dataDir,
      pools: [{ name: 'local', gpus: 2 }],
      reconcileSeconds: 5,
      compute: { driver: 'process' },
    });
    plane = await startControlPlane(config, {
      inMemory: true,
      log: quietLog,
      compute: { pollMs: 100, stopGraceMs: 1000 },
    });
    plane.events.subscribeOperatorEvents((event) => void operatorEvents.push(event));
  });

  after(async () => {
    await plane?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('repairs a pool counter that drifted, on the second sighting, by itself', async () => {
    const store = plane.deps.limits as unknown as {
      doc: { send(c: unknown): Promise<unknown> };
      tables: { pools: string };
    };
    await store.doc.send(
      new UpdateCommand({
        TableName: store.tables.pools,
        Key: { name: 'local' },
        UpdateExpression: 'ADD used :two, available :minus',
        ExpressionAttributeValues: { ':two': 2, ':minus': -2 },
      }),
    );
    assert.equal((await plane.deps.limits.getPool('local'))?.availableGpus, 0);

    // Two scheduled runs (5 s apart) are needed: one to see the drift, one to confirm and repair it.
    const pool = await waitFor(
      'the pool counter to be repaired',
      async () => {
        const p = await plane.deps.limits.getPool('local');
        return p?.usedGpus === 0 ? p : undefined;
      },
      30_000,
      250,
    );
    assert.equal(pool.availableGpus, 2);
    const repaired = operatorEvents.find((e) => e.kind === 'usage-repaired');
    assert.ok(repaired, `a usage-repaired operator event (got ${operatorEvents.map((e) => e.kind).join(', ')})`);
    assert.match(repaired.subject, /local/);
    assert.match(repaired.reason, /2/);
  });
});
