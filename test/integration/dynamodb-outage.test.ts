/**
 * DynamoDB Local SIGKILLed under a running local control plane (data on disk).
 * While it is down the plane stays up: store routes answer 503 `unavailable`
 * with Retry-After (never 500), health says the store is unavailable and
 * DynamoDB Local is restarting, the reconcile loop runs and fails without
 * dying. The plane restarts the JVM by itself on the same endpoint; the jobs
 * stored before are there, the expiry that fell in the outage is applied, the
 * queue moves, and cancels and submits work again.
 *
 * The outage is held open by a stand-in on the emulator's port (it accepts
 * and drops every connection, so restarts fail while the test looks) until
 * the test lets go: how long it lasts is the test's choice, not a race.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LocalConfig, parse } from '../../lambdas/core/schemas.js';
import { startControlPlane, type ControlPlane } from '../../lambdas/local/control-plane.js';
import { quietLog, waitFor } from '../support/harness.js';
import { callApi, localPlaneConfig, localTemplate } from '../support/local-plane.js';
import { ROOT_TOKEN, ALICE_TOKEN } from '../support/identities.js';

describe('DynamoDB Local killed under the local control plane', () => {
  let dir: string;
  let plane: ControlPlane;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flare-ddb-outage-'));
    const config = parse(
      LocalConfig,
      localPlaneConfig({
        dataDir: join(dir, 'data'),
        users: [
          { name: 'root', token: ROOT_TOKEN, admin: true },
          { name: 'alice', token: ALICE_TOKEN, projects: ['vision'] },
        ],
        pools: [{ name: 'local', gpus: 3 }],
        templates: [localTemplate('sleep', ['sleep', '120'])],
      }),
    );
    // On disk (no inMemory): what a restarted emulator finds is what was written before the kill.
    plane = await startControlPlane(config, { log: quietLog, compute: { pollMs: 100, stopGraceMs: 1000 } });
  });

  after(async () => {
    await plane?.stop();
    await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  });

  const api = (method: string, path: string, body?: unknown, token = ALICE_TOKEN) =>
    callApi(plane.url, method, path, token, body);
  const state = async (id: string) => (await api('GET', `/v1/jobs/${id}`, undefined, ROOT_TOKEN)).body?.state;
  const untilState = (id: string, states: string[], timeoutMs = 60_000) =>
    waitFor(
      `job ${id} in ${states.join('|')}`,
      async () => {
        const now = await state(id);
        return states.includes(now) && (now as string);
      },
      timeoutMs,
      200,
    );
  const submit = async (body: Record<string, unknown>) => {
    const response = await api('POST', '/v1/jobs', { template: 'sleep', ...body });
    assert.equal(response.status, 202, JSON.stringify(response.body));
    return response.body.id as string;
  };

  it('answers 503 while it is down, restarts it by itself, and applies what waited', async () => {
    // Arrange: one job that expires during the outage, one that exits (code 3) during it, one that runs on, one queued behind them.
    const expiring = await submit({ name: 'expiring', liveTimeoutMinutes: 0.1 });
    const exiting = await submit({ name: 'exiting', command: ['sh', '-c', 'sleep 3; exit 3'] });
    const running = await submit({ name: 'running' });
    await untilState(expiring, ['RUNNING']);
    await untilState(exiting, ['RUNNING']);
    await untilState(running, ['RUNNING']);
    const queued = await submit({ name: 'queued' });
    assert.equal(await state(queued), 'WAITING');
    const { expiresAt } = (await api('GET', `/v1/jobs/${expiring}`)).body;

    // Act: kill the JVM and keep its port taken.
    const pid = plane.dynamodb.pid()!;
    process.kill(pid, 'SIGKILL');
    const standIn = await holdPort(plane.dynamodb.port);

    try {
      const health = await waitFor('health to report the restart', async () => {
        const answer = await api('GET', '/v1/health');
        return answer.body.components?.dynamodb?.status === 'restarting' && answer;
      });
      assert.equal(health.status, 503);
      assert.equal(health.body.status, 'degraded');
      assert.equal(health.body.components.store.status, 'unavailable');
      assert.match(health.body.components.store.reason, /^DynamoDB is (unreachable|not answering)/);
      assert.equal(health.body.components.dynamodb.lastExit, 'signal SIGKILL');

      for (const [method, path, body] of [
        ['GET', `/v1/jobs/${running}`],
        ['GET', '/v1/jobs'],
        ['GET', '/v1/pools'],
        ['POST', '/v1/jobs', { template: 'sleep', name: 'during' }],
        ['DELETE', `/v1/jobs/${running}`],
        ['PATCH', `/v1/jobs/${running}`, { name: 'renamed' }],
      ] as const) {
        const answer = await api(method, path, body);
        assert.equal(answer.status, 503, `${method} ${path}: ${JSON.stringify(answer.body)}`);
        assert.equal(answer.body.error.code, 'unavailable');
        assert.equal(answer.headers.get('retry-after'), '5');
      }

      const failedRun = await plane.reconciler.runNow();
      assert.ok(
        failedRun && failedRun.errors.length > 0,
        'the reconcile loop ran, and failed, while the store was down',
      );

      // Keep it down until the expiry has passed and a restart attempt has failed on the taken port.
      await waitFor(
        'the expiry to pass during the outage',
        async () => Date.now() > Date.parse(expiresAt) + 1_000,
        30_000,
        200,
      );
      await waitFor(
        'a failed restart attempt',
        async () => (await api('GET', '/v1/health')).body.components.dynamodb.failedAttempts >= 1,
        60_000,
        200,
      );
    } finally {
      await release(standIn);
    }

    // Assert: back by itself, on the same endpoint, with the data written before the kill.
    const back = await waitFor(
      'DynamoDB Local to be restarted',
      async () => {
        const answer = await api('GET', '/v1/health');
        return answer.status === 200 && answer;
      },
      90_000,
      250,
    );
    assert.equal(back.body.components.store, 'ok');
    assert.equal(back.body.components.dynamodb.status, 'ok');
    assert.equal(back.body.components.dynamodb.restarts, 1);
    assert.notEqual(plane.dynamodb.pid(), pid);
    assert.equal(
      (await api('GET', `/v1/jobs/${running}`)).body.name,
      'running',
      'nothing was renamed while it was down',
    );

    assert.equal(await untilState(expiring, ['EXPIRED', 'FAILED', 'SUCCEEDED', 'CANCELLED'], 120_000), 'EXPIRED');
    // Its exit could not be written while the store was down: retried until it was, with its own code.
    assert.equal(await untilState(exiting, ['EXPIRED', 'FAILED', 'SUCCEEDED', 'CANCELLED'], 60_000), 'FAILED');
    assert.equal((await api('GET', `/v1/jobs/${exiting}`)).body.stateReason, 'exited with code 3');
    assert.equal(
      await untilState(queued, ['RUNNING']),
      'RUNNING',
      'the GPUs the expired job gave back went to the queue',
    );
    assert.equal(await state(running), 'RUNNING');
    const report = await plane.reconciler.runNow();
    assert.deepEqual(report?.errors, [], 'the reconcile loop succeeds again');

    // Cancels and submits work again; nothing was stored for the submit refused during the outage.
    const after = await submit({ name: 'after' });
    assert.ok(['LAUNCHING', 'RUNNING'].includes(await state(after)), 'the GPU the failed job gave back is free');
    assert.equal((await api('DELETE', `/v1/jobs/${running}`)).status, 202);
    assert.equal(await untilState(running, ['CANCELLED']), 'CANCELLED');
    assert.equal(await untilState(after, ['RUNNING']), 'RUNNING');
    const names = (await api('GET', '/v1/jobs')).body.items.map((j: { name: string }) => j.name);
    assert.deepEqual(names.sort(), ['after', 'exiting', 'expiring', 'queued', 'running']);

    for (const id of [queued, after]) assert.equal((await api('DELETE', `/v1/jobs/${id}`)).status, 202);
    for (const id of [queued, after]) await untilState(id, ['CANCELLED']);
    const pools = (await api('GET', '/v1/pools')).body.items;
    assert.deepEqual(
      pools.map((p: { name: string; usedGpus: number }) => [p.name, p.usedGpus]),
      [['local', 0]],
    );
  });
});

interface StandIn {
  server: Server;
  sockets: Set<Socket>;
}

/** Listens on `port` as soon as the killed JVM has let go of it, dropping every connection. */
async function holdPort(port: number): Promise<StandIn> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.destroy();
  });
  await waitFor(
    `port ${port} to be free`,
    () =>
      new Promise<boolean>((resolve) => {
        server.once('error', () => resolve(false));
        server.listen(port, '127.0.0.1', () => resolve(true));
      }),
    10_000,
    10,
  );
  return { server, sockets };
}

async function release({ server, sockets }: StandIn): Promise<void> {
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => server.close(resolve));
}
