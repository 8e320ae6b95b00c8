/**
 * Requests per minute one open dashboard tab makes, per view, against a local
 * plane with one pool, one running job and one waiting job (the figures in
 * docs/dashboard.md come from here). Needs chromium, as the browser test does.
 *
 *   node --import tsx ui/measure-requests.ts [seconds per view, default 120]
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import {
  callApi,
  localTemplate,
  startLocalPlaneIn,
  stopLocalPlane,
  untilJobState,
} from '../test/support/local-plane.js';

const TOKEN = 'measure-dashboard-0123456789abcdef';
const seconds = Number(process.argv[2] ?? 120);

const dir = await mkdtemp(join(tmpdir(), 'flare-ui-measure-'));
const plane = await startLocalPlaneIn(dir, {
  users: [{ name: 'alice', token: TOKEN, projects: ['vision'], admin: true }],
  pools: [{ name: 'local', gpus: 1 }],
  templates: [localTemplate('steps', ['sh', '-c', 'while true; do date; sleep 1; done'], { gpus: 1 })],
});
const browser = await chromium.launch({
  executablePath: process.env.FLARE_CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox'],
});
try {
  const running = (await callApi(plane.url, 'POST', '/v1/jobs', TOKEN, { template: 'steps' })).body.id as string;
  await untilJobState(plane.url, TOKEN, running, ['RUNNING']);
  await callApi(plane.url, 'POST', '/v1/jobs', TOKEN, { template: 'steps' });
  const rows: string[] = [];
  for (const [view, path] of [
    ['pools and queue', '/ui/'],
    ['a running job', `/ui/jobs/${running}`],
    ['quotas and caps', '/ui/admin'],
  ] as const) {
    const page = await browser.newPage();
    const calls: string[] = [];
    page.on('request', (r) => {
      const url = new URL(r.url());
      if (url.pathname.startsWith('/v1/')) calls.push(url.pathname.replace(/\/j-[a-z0-9]+/, '/{id}'));
    });
    await page.goto(`${plane.url}/ui/#token=${TOKEN}`);
    await page.goto(`${plane.url}${path}`);
    await page.waitForTimeout(3_000);
    calls.length = 0; // the first load of each view is not the steady state
    await page.waitForTimeout(seconds * 1000);
    const perMinute = (n: number) => ((n * 60) / seconds).toFixed(1);
    const byPath = new Map<string, number>();
    for (const c of calls) byPath.set(c, (byPath.get(c) ?? 0) + 1);
    rows.push(
      `| ${view} | ${perMinute(calls.length)} | ${[...byPath].map(([p, n]) => `${p} ${perMinute(n)}`).join(', ')} |`,
    );
    await page.close();
  }
  console.log(`| view | requests per minute | by path (per minute) |\n| --- | --- | --- |\n${rows.join('\n')}`);
} finally {
  await browser.close();
  await stopLocalPlane(plane.child, dir);
}
