/**
 * `flare local` as a user runs it: a child process started from a config file,
 * driven over real HTTP, posting Slack webhooks to a real loopback receiver,
 * killed with SIGKILL and started again.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../support/harness.js';
import {
  callApi,
  localTemplate,
  startLocalPlane,
  startLocalPlaneIn,
  stopLocalPlane,
  type LocalPlane,
} from '../support/local-plane.js';
import { ROOT_TOKEN, ALICE_TOKEN, BOB_TOKEN, LOCAL_USERS } from '../support/identities.js';

let dir: string;
let plane: LocalPlane | undefined;
let hooks: Server;
const posts: Array<{ text: string }> = [];

const api = (method: string, path: string, token?: string, body?: unknown) =>
  callApi(plane!.url, method, path, token, body);

const job = async (id: string, token = ALICE_TOKEN) => (await api('GET', `/v1/jobs/${id}`, token)).body;
const untilState = (id: string, states: string[], timeoutMs = 30_000) =>
  waitFor(
    `job ${id} in ${states.join('|')}`,
    async () => {
      const j = await job(id, ROOT_TOKEN);
      return states.includes(j?.state) ? j : undefined;
    },
    timeoutMs,
    100,
  );

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flare-e2e-'));
  hooks = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      posts.push(JSON.parse(body));
      res.end('ok');
    });
  });
  await new Promise<void>((r) => hooks.listen(0, '127.0.0.1', r));
  const hookPort = (hooks.address() as { port: number }).port;
  const sleeper = (name: string, command: string[], project = 'vision') =>
    localTemplate(name, command, { project, gpus: 1 });
  plane = await startLocalPlaneIn(dir, {
    users: LOCAL_USERS,
    pools: [{ name: 'local', gpus: 2 }],
    quotas: [{ project: 'vision', resource: 'gpus', hardLimit: 1 }],
    templates: [
      sleeper('sleep', ['sleep', '30']),
      sleeper('quick', ['sleep', '2']),
      sleeper('audio', ['sleep', '30'], 'audio'),
    ],
    notifications: [{ type: 'slack', url: `http://127.0.0.1:${hookPort}/hook`, projects: ['vision'] }],
  });
});

after(async () => {
  hooks.close();
  await stopLocalPlane(plane?.child, dir);
});

describe('local control plane over HTTP', () => {
  it('serves the public routes and refuses missing tokens', async () => {
    assert.deepEqual((await api('GET', '/')).body, { versions: [{ id: 'v1', status: 'CURRENT' }] });
    assert.equal((await api('GET', '/v1/health')).body.status, 'ok');
    assert.equal((await api('GET', '/v1/jobs')).status, 401);
    assert.equal((await api('GET', '/v1/jobs', 'wrong-token-0123456789')).status, 401);
  });

  it('says at start how jobs run here (the driver, and the GPUs found)', () => {
    assert.match(
      plane!.output(),
      /^flare: jobs run as plain processes \(the image is recorded, not run\) \(compute\.driver "process"\); (no GPU found|\d+ GPU\(s\) found)/m,
    );
  });

  it('refuses bad input naming the field, storing nothing', async () => {
    const bad = await api('POST', '/v1/jobs', ALICE_TOKEN, { template: 'sleep', gpus: 1.5, privileged: true });
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body.error.details.map((d: { field: string }) => d.field).sort(), ['gpus', 'privileged']);
    assert.equal((await api('POST', '/v1/jobs', ALICE_TOKEN, '{"template":')).status, 400);
    assert.equal(
      (await api('POST', '/v1/jobs', ALICE_TOKEN, { template: 'sleep', liveTimeoutMinutes: 0 })).status,
      400,
    );
    assert.equal((await api('POST', '/v1/jobs', ALICE_TOKEN, { template: 'x'.repeat(70_000) })).status, 413);
    assert.deepEqual((await api('GET', '/v1/jobs', ALICE_TOKEN)).body.items, []);
  });

  it('queues on the project quota, drains FIFO, expires, cancels, and hides other projects', async () => {
    const first = (await api('POST', '/v1/jobs', ALICE_TOKEN, { template: 'quick', name: 'first' })).body;
    assert.equal(first.state, 'LAUNCHING', 'an idle pool admits at the submit');
    await untilState(first.id, ['RUNNING']);
    const second = (
      await api('POST', '/v1/jobs', ALICE_TOKEN, { template: 'sleep', name: 'second', liveTimeoutMinutes: 0.05 })
    ).body;
    const waiting = await untilState(second.id, ['WAITING']);
    assert.equal(waiting.stateReason, 'project vision has 0 of 1 GPUs free, needs 1');
    assert.equal(waiting.queuePosition, 0);
    // Another project is not blocked by vision's quota.
    const other = (await api('POST', '/v1/jobs', BOB_TOKEN, { template: 'audio' })).body;
    await untilState(other.id, ['RUNNING']);
    assert.equal((await api('GET', `/v1/jobs/${other.id}`, ALICE_TOKEN)).status, 404);
    // first ends (2 s), second is drained, then expires after 3 s.
    assert.equal((await untilState(first.id, ['SUCCEEDED', 'FAILED'])).state, 'SUCCEEDED');
    const expired = await untilState(second.id, ['EXPIRED', 'FAILED', 'SUCCEEDED'], 30_000);
    assert.equal(expired.state, 'EXPIRED');
    // Cancel the running audio job, then remove it.
    assert.equal((await api('DELETE', `/v1/jobs/${other.id}`, BOB_TOKEN)).status, 202);
    assert.equal((await untilState(other.id, ['CANCELLED'])).state, 'CANCELLED');
    assert.equal((await api('DELETE', `/v1/jobs/${other.id}`, BOB_TOKEN)).status, 204);
    assert.equal((await api('GET', `/v1/jobs/${other.id}`, BOB_TOKEN)).status, 404);
    const pools = (await api('GET', '/v1/pools', ALICE_TOKEN)).body.items;
    assert.deepEqual(
      pools.map((p: { name: string; usedGpus: number }) => [p.name, p.usedGpus]),
      [['local', 0]],
    );
    // Slack-format posts for vision's jobs only.
    await waitFor('webhook posts', async () => posts.some((p) => p.text.includes('Job second is now *EXPIRED*')));
    assert.ok(!posts.some((p) => p.text.includes('project audio')), 'audio is not routed to the vision webhook');
    assert.ok(posts.some((p) => p.text.includes('Job first is now *SUCCEEDED*')));
  });

  it('returns the same job for a reused Idempotency-Key, 409 for another body', async () => {
    const headers = (key: string) => ({
      authorization: `Bearer ${ALICE_TOKEN}`,
      'content-type': 'application/json',
      'idempotency-key': key,
    });
    const post = (body: unknown) =>
      fetch(`${plane!.url}/v1/jobs`, { method: 'POST', headers: headers('k-1'), body: JSON.stringify(body) });
    const a = (await (await post({ template: 'quick' })).json()) as { id: string };
    const b = (await (await post({ template: 'quick' })).json()) as { id: string };
    assert.equal(a.id, b.id);
    assert.equal((await post({ template: 'sleep' })).status, 409);
    await untilState(a.id, ['SUCCEEDED']);
  });

  it('expiry wins across a crash: the supervisor stops a job at expiresAt with the plane down, and the job ends EXPIRED, not by its exit code', async () => {
    // Would exit 0 after 6 s; its live timeout is 1.5 s, which passes while the plane is down.
    const doomed = (
      await api('POST', '/v1/jobs', ALICE_TOKEN, {
        template: 'quick',
        name: 'doomed',
        command: ['sleep', '6'],
        liveTimeoutMinutes: 0.025,
      })
    ).body;
    const running = await untilState(doomed.id, ['RUNNING']);
    plane!.child.kill('SIGKILL');
    await new Promise((r) => plane!.child.once('exit', r));
    const exitPath = join(dir, 'data', 'jobs', doomed.id, 'exit.json');
    await waitFor('the supervisor to stop the job', async () => existsSync(exitPath), 10_000, 100);
    const record = JSON.parse(await readFile(exitPath, 'utf8'));
    assert.equal(record.reason, 'expired');
    assert.equal(record.exitCode, 143);
    const overshoot = Date.parse(record.finishedAt) - Date.parse(running.expiresAt);
    assert.ok(overshoot >= 0 && overshoot < 1000, `stopped ${overshoot} ms after expiresAt`);
    await new Promise((r) => setTimeout(r, 6000 - (Date.now() - Date.parse(running.startedAt)))); // past the time it would have exited 0

    plane = await startLocalPlane(plane!.configPath);
    const ended = await untilState(doomed.id, ['SUCCEEDED', 'FAILED', 'EXPIRED'], 30_000);
    assert.equal(ended.state, 'EXPIRED');
    assert.match(ended.stateReason, /live timeout reached/);
    await waitFor('the EXPIRED notification', async () =>
      posts.some((p) => p.text.includes('Job doomed is now *EXPIRED*')),
    );
    const stats = (await api('GET', '/v1/stats?project=vision', ALICE_TOKEN)).body;
    assert.ok(JSON.stringify(stats).includes('EXPIRED'), JSON.stringify(stats));
  });

  it('a SIGKILLed job supervisor is replaced, and its running job runs on to its own end', async () => {
    const job1 = (
      await api('POST', '/v1/jobs', ALICE_TOKEN, { template: 'quick', command: ['sh', '-c', 'sleep 3; exit 4'] })
    ).body;
    await untilState(job1.id, ['RUNNING']);
    const lock = join(dir, 'data', 'supervisor.pid');
    const first = Number((await readFile(lock, 'utf8')).split('\n')[0]);
    process.kill(first, 'SIGKILL');

    const ended = await untilState(job1.id, ['SUCCEEDED', 'FAILED', 'EXPIRED'], 30_000);
    assert.equal(ended.state, 'FAILED');
    assert.equal(ended.stateReason, 'exited with code 4', 'its own exit, not "instance lost"');
    assert.notEqual(
      Number((await readFile(lock, 'utf8')).split('\n')[0]),
      first,
      'a new supervisor serves the data directory',
    );
  });

  it('survives SIGKILL: every job is still there and driven on, nothing held', async () => {
    const running = (await api('POST', '/v1/jobs', ALICE_TOKEN, { template: 'quick', command: ['sleep', '4'] })).body;
    await untilState(running.id, ['RUNNING']);
    const queued = (await api('POST', '/v1/jobs', ALICE_TOKEN, { template: 'quick' })).body;
    await untilState(queued.id, ['WAITING']);
    plane!.child.kill('SIGKILL');
    await new Promise((r) => plane!.child.once('exit', r));
    plane = await startLocalPlane(plane!.configPath);
    assert.ok(['RUNNING', 'STOPPING', 'SUCCEEDED'].includes((await job(running.id, ROOT_TOKEN)).state));
    assert.equal((await untilState(running.id, ['SUCCEEDED', 'FAILED'], 30_000)).state, 'SUCCEEDED');
    assert.equal((await untilState(queued.id, ['SUCCEEDED', 'FAILED'], 30_000)).state, 'SUCCEEDED');
    const pools = (await api('GET', '/v1/pools', ROOT_TOKEN)).body.items;
    assert.equal(pools[0].usedGpus, 0);
    const quota = (await api('GET', '/v1/quotas/vision/gpus', ALICE_TOKEN)).body;
    assert.equal(quota.used, 0);
  });
});
