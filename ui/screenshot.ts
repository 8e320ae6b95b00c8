/**
 * The screenshot in docs/dashboard.md: a local plane with one 8-GPU pool and
 * two projects' jobs started over four minutes (one of them left waiting),
 * seen by an admin with the chart's window at 1 h. Needs chromium, as the
 * browser test does; takes about five minutes.
 *
 *   node --import tsx ui/screenshot.ts [out.png, default docs/dashboard-overview.png]
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { callApi, localTemplate, startLocalPlaneIn, stopLocalPlane } from '../test/support/local-plane.js';

const ALICE = 'alice-screenshot-0123456789abcdef';
const BOB = 'bob-screenshot-0123456789abcdef0';
const ROOT = 'root-screenshot-0123456789abcdef';
const out = resolve(process.argv[2] ?? 'docs/dashboard-overview.png');

/** A template whose job prints an epoch a second, `seconds` times. */
const template = (name: string, project: string, gpus: number, seconds: number) =>
  localTemplate(name, ['sh', '-c', `i=0; while [ $i -lt ${seconds} ]; do echo "epoch $i"; i=$((i+1)); sleep 1; done`], {
    project,
    pool: 'a100',
    gpus,
    maxLiveTimeoutMinutes: 240,
  });

const dir = await mkdtemp(join(tmpdir(), 'flare-screenshot-'));
const plane = await startLocalPlaneIn(dir, {
  users: [
    { name: 'alice', token: ALICE, projects: ['vision'] },
    { name: 'bob', token: BOB, projects: ['speech'] },
    { name: 'root', token: ROOT, admin: true },
  ],
  pools: [{ name: 'a100', gpus: 8 }],
  templates: [
    template('train', 'vision', 4, 100_000),
    template('sweep', 'vision', 2, 150),
    template('asr', 'speech', 2, 100_000),
    template('finetune', 'speech', 4, 100_000),
  ],
});
const submit = (token: string, body: object) => callApi(plane.url, 'POST', '/v1/jobs', token, body);
const minutes = (m: number) => new Promise((done) => setTimeout(done, m * 60_000));
try {
  await submit(BOB, { template: 'asr', name: 'asr-conformer', liveTimeoutMinutes: 90 });
  await minutes(1);
  await submit(ALICE, { template: 'sweep', name: 'lr-sweep', array: { size: 2 } });
  await minutes(1.5);
  await submit(ALICE, { template: 'train', name: 'resnet-152', liveTimeoutMinutes: 120 });
  await minutes(0.5);
  await submit(BOB, { template: 'finetune', name: 'whisper-ft', liveTimeoutMinutes: 180 });
  await minutes(1);
  const browser = await chromium.launch({
    executablePath: process.env.FLARE_CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox'],
  });
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  await page.goto(`${plane.url}/ui/#token=${ROOT}`);
  await page.getByLabel('Chart window').selectOption('1');
  await page.locator('tr[data-job] progress').first().waitFor();
  await page.locator('canvas').first().waitFor();
  await page.waitForTimeout(2_000);
  await page.screenshot({ path: out, fullPage: true });
  await browser.close();
  console.log(`screenshot: ${out}`);
} finally {
  await stopLocalPlane(plane.child, dir);
}
