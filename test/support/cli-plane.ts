/**
 * What the CLI's end-to-end tests (test/e2e/cli-*.test.ts) share: `flare local` started as a child
 * process from a config (process driver: jobs are real processes, no docker), with carol in a project of
 * one GPU, and the `flare` CLI run as a subprocess against it with an empty HOME.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { startFlare, startLocalPlaneWithHome, type CliRun as Run } from './flare-cli.js';
import { callApi, endActiveJobs, localTemplate, stopLocalPlane, untilJobState } from './local-plane.js';
import { ROOT_TOKEN, ALICE_TOKEN, LOCAL_USERS } from './identities.js';

export const CAROL = 'carol-token-0123456789abcdef';
export const TERMINAL = ['SUCCEEDED', 'FAILED', 'EXPIRED', 'CANCELLED'];

export let dir: string;
/** HOME of the CLI: empty, so no profile of the machine's user is read. */
export let home: string;
let plane: ChildProcess | undefined;
export let url: string;

export interface RunOptions {
  /** FLARE_TOKEN; null: none. @default ALICE_TOKEN */
  token?: string | null;
  /** FLARE_API_URL; null: none. @default the plane */
  apiUrl?: string | null;
  env?: Record<string, string>;
}

export function start(args: string[], options: RunOptions = {}) {
  const token = options.token === undefined ? ALICE_TOKEN : options.token;
  const apiUrl = options.apiUrl === undefined ? url : options.apiUrl;
  return startFlare(args, {
    env: { HOME: home, FLARE_TOKEN: token ?? undefined, FLARE_API_URL: apiUrl ?? undefined, ...options.env },
  });
}

export const flare = (args: string[], options?: RunOptions) => start(args, options).result;

/** The API directly, to arrange and to check what the CLI did. */
export const api = (method: string, path: string, token = ROOT_TOKEN, body?: unknown) =>
  callApi(url, method, path, token, body);

export const untilState = (id: string, states: string[]) => untilJobState(url, ROOT_TOKEN, id, states);

/** Submit through the CLI with --output json and return the job. */
export async function submit(
  args: string[],
  options?: RunOptions,
): Promise<{ id: string; state: string; name: string }> {
  const run = await flare(['job', 'create', '--output', 'json', ...args], options);
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout);
}

/** A shell loop that ends once `file` exists: a job the test lets go when it wants. */
export const gate = (file: string) => ['sh', '-c', `while [ ! -e '${file}' ]; do sleep 0.1; done`];

export function assertUsage(run: Run, command: string, message: RegExp): void {
  assert.equal(run.code, 2, `${run.stdout}${run.stderr}`);
  assert.match(run.stderr, message);
  assert.match(run.stderr, new RegExp(`usage: flare ${command}`));
  assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
}

/** Starts the plane before the file's tests; after them, ends its jobs and stops it. */
export function useCliPlane(): void {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flare-cli-'));
    const started = await startLocalPlaneWithHome(dir, {
      users: [...LOCAL_USERS, { name: 'carol', token: CAROL, projects: ['queue'] }],
      pools: [{ name: 'local', gpus: 4 }],
      quotas: [{ project: 'queue', resource: 'gpus', hardLimit: 1 }],
      templates: [localTemplate('sh', ['true']), localTemplate('q', ['true'], { project: 'queue' })],
    });
    ({ home, child: plane, url } = started);
  });

  after(async () => {
    if (url) await endActiveJobs(url, ROOT_TOKEN);
    await stopLocalPlane(plane, dir);
  });
}
