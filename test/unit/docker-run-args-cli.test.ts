/**
 * dockerRunArgs read by the real docker CLI against a fake Engine API socket.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { dockerRunArgs } from '../../lambdas/core/container-command.js';
import { IMAGE, PAYLOADS, nastySpec } from '../support/container-specs.js';

/**
 * The real docker CLI parses the argv against a fake Engine API socket: what it
 * would send the daemon is what the container gets.
 */
describe('dockerRunArgs read by the real docker CLI', () => {
  const hasDocker = spawnSync('docker', ['--version']).status === 0;

  test('creates exactly the hardened container: command and env verbatim, no privilege, no host access', {
    skip: !hasDocker && 'docker CLI not installed',
  }, async () => {
    const sandbox = fs.mkdtempSync(path.join(os.tmpdir(), 'flare-docker-'));
    try {
      const nasty = nastySpec();
      nasty.gpus = 2;
      nasty.devices = [0, 1];
      const argv = dockerRunArgs(nasty, { memory: '2g', scratchDir: '/var/lib/flare/scratch' });
      const { url, body } = await captureCreate(sandbox, argv);

      assert.equal(new URL(url, 'http://docker').searchParams.get('name'), 'flare-job-1');
      assert.equal(body.Image, IMAGE);
      assert.deepEqual(body.Cmd, PAYLOADS);
      assert.equal(body.Entrypoint, null);
      assert.equal(body.User, '65534:65534');
      assert.deepEqual(body.Labels, { 'flare.job': 'job-1' });
      const expectedEnv = [
        'NVIDIA_VISIBLE_DEVICES=0,1',
        'FLARE_JOB_ID=job-1',
        'HOME=/scratch',
        ...Object.keys(nasty.env)
          .sort()
          .map((k) => `${k}=${nasty.env[k]}`),
      ];
      // The CLI gathers env into a map, so order is not kept; each entry must arrive whole and unchanged.
      assert.deepEqual([...body.Env].sort(), expectedEnv.sort());

      const host = body.HostConfig;
      assert.equal(host.Privileged, false);
      assert.deepEqual(host.CapDrop, ['ALL']);
      assert.equal(host.CapAdd, null);
      assert.deepEqual(host.SecurityOpt, ['no-new-privileges']);
      assert.equal(host.PidsLimit, 4096);
      assert.equal(host.Memory, 2 * 1024 ** 3);
      assert.equal(host.ShmSize, 1024 ** 3);
      assert.equal(host.NetworkMode, 'default');
      assert.equal(host.PidMode, '');
      assert.equal(host.IpcMode, '');
      assert.equal(host.UTSMode, '');
      assert.equal(host.UsernsMode, '');
      assert.equal(host.Binds, null);
      assert.deepEqual(host.Devices, []);
      assert.deepEqual(host.Mounts, [{ Type: 'bind', Source: '/var/lib/flare/scratch/job-1', Target: '/scratch' }]);
      assert.deepEqual(host.DeviceRequests, [
        { Driver: '', Count: 0, DeviceIDs: ['0', '1'], Capabilities: [['gpu']], Options: {} },
      ]);
      assert.equal(host.Init, true);
      assert.equal(host.AutoRemove, true);
    } finally {
      fs.rmSync(sandbox, { recursive: true, force: true });
    }
  });
});

/** Serves just enough of the Engine API for `docker run` to send its create request, records it, and refuses it. */
async function captureCreate(sandbox: string, argv: string[]): Promise<{ url: string; body: any }> {
  const socket = path.join(sandbox, 'docker.sock');
  let captured: { url: string; body: any } | undefined;
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (chunk) => (raw += chunk));
    req.on('end', () => {
      if (req.url?.endsWith('/_ping')) {
        res.writeHead(200, { 'Api-Version': '1.45', 'Content-Type': 'text/plain' });
        res.end('OK');
        return;
      }
      if (req.method === 'POST' && /\/containers\/create/.test(req.url ?? ''))
        captured = { url: req.url!, body: JSON.parse(raw) };
      res.writeHead(400, { 'Content-Type': 'application/json' });
      res.end('{"message":"refused by the test daemon"}');
    });
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn('docker', argv, {
        env: {
          PATH: process.env.PATH,
          HOME: sandbox,
          DOCKER_HOST: `unix://${socket}`,
          DOCKER_CONFIG: path.join(sandbox, 'config'),
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      child.on('error', reject);
      child.on('exit', resolve);
    });
    assert.equal(code, 125, 'docker gave up after the refused create');
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
  assert.ok(captured, 'docker sent a create request');
  return captured;
}
