/**
 * `flare local` as a user runs it, for the end-to-end tests: a child process
 * started from a config file, its URL read from what it prints, and a small
 * HTTP client for arranging and checking.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { waitFor } from './harness.js';

export interface LocalPlane {
  child: ChildProcess;
  url: string;
  /** The config it was started from: start it again from the same. */
  configPath: string;
  /** Everything the plane printed on stdout so far. */
  output(): string;
}

export async function startLocalPlane(configPath: string, timeoutMs = 60_000): Promise<LocalPlane> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bin/flare.ts', 'local', '--config', configPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', () => undefined);
  const url = await waitFor(
    'control plane to listen',
    async () => /listening on (http:\/\/\S+)/.exec(out)?.[1],
    timeoutMs,
    100,
  );
  return { child, url, configPath, output: () => out };
}

/** The image the tests' templates name: the process driver runs commands on the host and pulls nothing. */
export const TOOLS_IMAGE = {
  name: 'tools',
  reference: 'docker.io/library/busybox:1.36',
  digest: `sha256:${'b'.repeat(64)}`,
};

/** A template of vision's on the `local` pool with the tools image; `fields` add to it or override. */
export function localTemplate(name: string, command: string[], fields: Record<string, unknown> = {}) {
  return { name, project: 'vision', pool: 'local', image: 'tools', command, ...fields };
}

/**
 * A local plane's config: a free port, data under `data` (beside the config file),
 * the process driver and the tools image unless `config` says otherwise; `config`
 * gives the rest (users, pools, templates).
 */
export function localPlaneConfig(config: Record<string, unknown>): Record<string, unknown> {
  return { port: 0, dataDir: 'data', images: [TOOLS_IMAGE], compute: { driver: 'process' }, ...config };
}

/** Write `dir/flare.local.json` from `localPlaneConfig(config)` and start `flare local` from it. */
export async function startLocalPlaneIn(dir: string, config: Record<string, unknown>): Promise<LocalPlane> {
  const configPath = join(dir, 'flare.local.json');
  await writeFile(configPath, JSON.stringify(localPlaneConfig(config)));
  return startLocalPlane(configPath);
}

export interface HttpAnswer {
  status: number;
  headers: Headers;
  // Whatever JSON the API answered: tests read into it freely.
  body: any;
}

/** One request; a string body is sent as it is (malformed JSON on purpose), anything else as JSON. */
export async function callApi(
  baseUrl: string,
  method: string,
  path: string,
  token?: string,
  body?: unknown,
): Promise<HttpAnswer> {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

/**
 * Stop the plane, end every job process it started under `dir` (jobs run
 * detached, like instances), and remove `dir`: nothing is left behind.
 */
export async function stopLocalPlane(child: ChildProcess | undefined, dir: string): Promise<void> {
  if (child && child.exitCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
  }
  await new Promise((resolve) => spawn('pkill', ['-f', dir]).on('exit', resolve).on('error', resolve));
  // A runner killed a moment ago may still be closing its log file.
  await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
}

const TERMINAL_STATES = ['SUCCEEDED', 'FAILED', 'EXPIRED', 'CANCELLED'];

/** The job once it is in one of `states` (polled as `token`). */
export function untilJobState(baseUrl: string, token: string, id: string, states: string[]): Promise<any> {
  return waitFor(
    `job ${id} in ${states.join('|')}`,
    async () => {
      const { body } = await callApi(baseUrl, 'GET', `/v1/jobs/${id}`, token);
      return states.includes(body?.state) ? body : undefined;
    },
    60_000,
    100,
  );
}

/** Cancel every active job (they run detached from the plane) and wait for each to end. */
export async function endActiveJobs(baseUrl: string, adminToken: string): Promise<void> {
  const { body } = await callApi(baseUrl, 'GET', '/v1/jobs?limit=1000', adminToken);
  const active = (body?.items ?? []).filter((j: { state: string }) => !TERMINAL_STATES.includes(j.state));
  for (const job of active) await callApi(baseUrl, 'DELETE', `/v1/jobs/${job.id}`, adminToken);
  for (const job of active) await untilJobState(baseUrl, adminToken, job.id, TERMINAL_STATES).catch(() => undefined);
}
