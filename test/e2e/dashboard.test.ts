/**
 * The dashboard at /ui/ in a real browser (Debian's chromium, driven by
 * playwright-core) against `flare local` as a user runs it: one plane, one
 * browser, three jobs. Signs in with the token form and with a `#token=`
 * fragment, sees a pool and its chart, a waiting job's reason, a running
 * job's live log (its secret masked), cancels a job; checks the page's CSP,
 * that nothing is fetched from another origin, keyboard use, and axe-core
 * finds no serious or critical violation. Screenshots go to .cache/dashboard/.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { LocalPlane } from '../support/local-plane.js';
import { callApi, localTemplate, startLocalPlaneIn, stopLocalPlane, untilJobState } from '../support/local-plane.js';

const ALICE = 'alice-dashboard-0123456789abcdef';
const ROOT = 'root-dashboard-0123456789abcdefgh';
const SECRET = 'hunter2-dashboard-secret';
const CHROMIUM = process.env.FLARE_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = join(process.cwd(), '.cache', 'dashboard');
const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

let dir: string;
let plane: LocalPlane | undefined;
let browser: Browser | undefined;
const api = (method: string, path: string, token = ALICE, body?: unknown) =>
  callApi(plane!.url, method, path, token, body);

/** A page of its own (its own session storage) that records what it fetched and what the browser refused. */
async function openPage(): Promise<{ page: Page; requests: string[]; problems: string[] }> {
  const context = await browser!.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  const requests: string[] = [];
  const problems: string[] = [];
  page.on('request', (request) => requests.push(request.url()));
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) problems.push(message.text());
  });
  return { page, requests, problems };
}

/** axe-core run in the page: its serious and critical violations, by rule. */
async function accessibilityProblems(page: Page): Promise<string[]> {
  // evaluate() runs outside the page's CSP, which rightly refuses an injected inline script.
  await page.evaluate(await readFile(AXE, 'utf8'));
  const violations = await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run(): Promise<{ violations: any[] }> } }).axe;
    return (await axe.run()).violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length }));
  });
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}, ${v.nodes} elements)`);
}

/** A property of the element that has the focus (the test runs in Node: no DOM types here). */
function focused(page: Page, property: 'id' | 'textContent'): Promise<unknown> {
  return page.evaluate(`document.activeElement?.${property}`);
}

/** What the browser does when the tab goes to the background or comes back (headless tabs never do). */
async function setHidden(page: Page, hidden: boolean): Promise<void> {
  await page.evaluate((h) => {
    const doc = (globalThis as any).document;
    // A value, not a getter: tsx's keepNames would wrap a getter in a helper the page does not have.
    Object.defineProperty(doc, 'hidden', { configurable: true, value: h });
    doc.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}

async function shoot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flare-dashboard-'));
  await mkdir(SHOTS, { recursive: true });
  plane = await startLocalPlaneIn(dir, {
    users: [
      { name: 'alice', token: ALICE, projects: ['vision'] },
      { name: 'root', token: ROOT, admin: true },
    ],
    pools: [{ name: 'local', gpus: 2 }],
    quotas: [{ project: 'vision', resource: 'gpus', hardLimit: 4 }],
    templates: [
      localTemplate(
        'steps',
        [
          'sh',
          '-c',
          'printf "accuracy 0.93" > "$FLARE_OUTPUT_DIR/result.txt"; i=0; while true; do echo "step $i key=$API_KEY"; i=$((i+1)); sleep 0.5; done',
        ],
        { gpus: 2, maxLiveTimeoutMinutes: 120 },
      ),
    ],
  });
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)`);
  // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
  await stopLocalPlane(plane?.child, dir);
});

describe('the dashboard in a real browser', () => {
  let running = '';
  let waiting = '';

  it('serves the page under /ui/ without a token, with a strict CSP, for every client-side route', async () => {
    assert.match(plane!.output(), new RegExp(`flare: dashboard at ${plane!.url}/ui/`), 'the plane says where it is');
    for (const path of ['/ui/', '/ui/jobs/anything', '/ui/admin']) {
      const res = await fetch(`${plane!.url}${path}`);
      assert.equal(res.status, 200, path);
      assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
      const csp = res.headers.get('content-security-policy') ?? '';
      assert.match(csp, /default-src 'none'/);
      assert.match(csp, /script-src 'self'(;|$)/, 'no inline script, no eval, no other origin');
      assert.match(await res.text(), /<script type="module" src="\/ui\/assets\/app-[^"]+\.js"><\/script>/);
    }
    const bare = await fetch(`${plane!.url}/ui`, { redirect: 'manual' });
    assert.equal(bare.status, 308);
    assert.equal(bare.headers.get('location'), '/ui/');
    assert.equal((await fetch(`${plane!.url}/ui/assets/nothing.js`)).status, 404);
    assert.equal((await fetch(`${plane!.url}/ui/`, { method: 'POST' })).status, 405);
    // The API itself still wants its token.
    assert.equal((await fetch(`${plane!.url}/v1/pools`)).status, 401);
  });

  it('signs in with the token form, shows the pool, the waiting job and its reason, the running job', async () => {
    assert.equal((await api('PUT', '/v1/projects/vision/secrets/api-key', ALICE, { value: SECRET })).status, 204);
    const budget = { project: 'vision', resource: 'gpuHours', hardLimit: 100, period: 'month' };
    assert.equal((await api('POST', '/v1/quotas', ROOT, budget)).status, 201);
    const first = await api('POST', '/v1/jobs', ALICE, {
      template: 'steps',
      name: 'first',
      secrets: { API_KEY: 'api-key' },
    });
    assert.equal(first.status, 202, JSON.stringify(first.body));
    running = first.body.id;
    await untilJobState(plane!.url, ALICE, running, ['RUNNING']);
    const second = await api('POST', '/v1/jobs', ALICE, { template: 'steps', name: 'second' });
    waiting = second.body.id;
    const reason = (await untilJobState(plane!.url, ALICE, waiting, ['WAITING'])).stateReason as string;

    const { page, requests, problems } = await openPage();
    await page.goto(`${plane!.url}/ui/`);
    await page.getByLabel('API token').fill(ALICE);
    await page.getByRole('button', { name: 'Sign in' }).click();

    const pool = page.getByRole('article', { name: 'pool local' });
    await pool.getByText('of 2 GPUs free').waitFor();
    assert.match((await pool.textContent()) ?? '', /0\s+of 2 GPUs free/);
    await pool.locator('canvas').first().waitFor();
    assert.match((await pool.textContent()) ?? '', /next 2 free at/);
    const queued = page.locator(`tr[data-job="${waiting}"]`);
    await queued.waitFor();
    assert.equal(await queued.locator('.reason').textContent(), reason);
    await page.locator(`tr[data-job="${running}"] progress`).waitFor();
    await shoot(page, 'overview');

    assert.deepEqual(await accessibilityProblems(page), []);
    assert.deepEqual(problems, []);
    assert.deepEqual(
      requests.filter((url) => !url.startsWith(plane!.url)),
      [],
      'nothing is fetched from another origin',
    );

    // A hidden tab asks nothing (for longer than the 10 s between polls); shown again, it asks again.
    const apiCalls = () => requests.filter((url) => new URL(url).pathname.startsWith('/v1/')).length;
    await setHidden(page, true);
    const quiet = apiCalls();
    await new Promise((resolve) => setTimeout(resolve, 11_000));
    assert.equal(apiCalls(), quiet, 'no request while hidden');
    const asked = page.waitForRequest((r) => new URL(r.url()).pathname.startsWith('/v1/'), { timeout: 15_000 });
    await setHidden(page, false);
    await asked;
    await page.context().close();
  });

  it("follows a running job's log with its secret masked, runs a command in it, then cancels it from its page", async () => {
    const { page, problems } = await openPage();
    // A fragment signs in too, and leaves the address bar.
    await page.goto(`${plane!.url}/ui/#token=${ALICE}`);
    assert.equal(new URL(page.url()).hash, '');
    await page.getByRole('link', { name: 'first' }).click();
    await page.waitForURL(`**/ui/jobs/${running}`);
    const log = page.getByLabel('log of first');
    await log.getByText('step 1 ').waitFor();
    // Followed: lines written after the page opened arrive without a reload.
    const seen = ((await log.textContent()) ?? '').split('\n').length;
    // A function, not a string: the page's CSP refuses eval, which a string predicate needs.
    await page.waitForFunction(
      (n) => (globalThis as any).document.querySelector('pre.log').textContent.split('\n').length > n,
      seen + 2,
    );
    const text = (await log.textContent()) ?? '';
    assert.ok(!text.includes(SECRET), 'the secret value is masked as the API masks it');
    assert.match(text, /key=\*\*\*/);
    // A command run inside the job, its output shown (alice owns it).
    await page.getByLabel('Command, one argument per line').fill('echo\nhello from exec');
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await page.getByText('exit code 0').waitFor();
    assert.match((await page.locator('.exec-result').textContent()) ?? '', /hello from exec/);
    await shoot(page, 'job');
    assert.deepEqual(await accessibilityProblems(page), []);

    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByRole('button', { name: 'Cancel job' }).click();
    await page.locator('[data-state="CANCELLED"]').waitFor({ timeout: 30_000 });
    assert.equal((await api('GET', `/v1/jobs/${running}`)).body.state, 'CANCELLED');
    // Its GPUs went to the job that waited.
    await untilJobState(plane!.url, ALICE, waiting, ['RUNNING']);
    // What it kept, cancelled or not, downloads under its own name with the bytes it wrote.
    const downloaded = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Download result.txt' }).click();
    const file = await downloaded;
    assert.equal(file.suggestedFilename(), 'result.txt');
    assert.equal(await readFile((await file.path())!, 'utf8'), 'accuracy 0.93');

    // As on AWS: the API answers the link (a presigned S3 URL, here a loopback stand-in for S3 that
    // answers as S3 does, an attachment), and the page opens it as a download instead of fetching it.
    const s3 = createServer((req, res) => {
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-disposition': "attachment; filename*=UTF-8''result.txt",
      });
      res.end(`from s3 ${req.url}`);
    });
    await new Promise<void>((resolve) => s3.listen(0, '127.0.0.1', resolve));
    const s3Url = `http://127.0.0.1:${(s3.address() as AddressInfo).port}/vision/${running}/result.txt?X-Amz-Signature=x`;
    try {
      await page.route('**/outputs/result.txt?link=true', (route) =>
        route.fulfill({ json: { url: s3Url, expiresAt: new Date(Date.now() + 300_000).toISOString() } }),
      );
      const fromS3 = page.waitForEvent('download');
      await page.getByRole('button', { name: 'Download result.txt' }).click();
      const s3File = await fromS3;
      assert.equal(s3File.url(), s3Url);
      assert.equal(
        await readFile((await s3File.path())!, 'utf8'),
        `from s3 /vision/${running}/result.txt?X-Amz-Signature=x`,
      );
      assert.equal(new URL(page.url()).pathname, `/ui/jobs/${running}`, 'the page stays where it was');
    } finally {
      s3.close();
    }
    assert.deepEqual(problems, []);
    await page.context().close();
  });

  it('works from the keyboard: sign in, reach the admin view, its controls labelled', async () => {
    const { page, problems } = await openPage();
    await page.goto(`${plane!.url}/ui/admin`);
    await page.keyboard.press('Tab'); // the skip link
    await page.keyboard.press('Tab');
    assert.equal(await focused(page, 'id'), 'token');
    await page.keyboard.type(ROOT);
    await page.keyboard.press('Enter');
    const cap = page.getByLabel('Cap of pool local');
    await cap.waitFor();
    assert.equal(await cap.inputValue(), '2');
    await page.getByRole('cell', { name: 'gpus' }).first().waitFor();
    // The budget: its period, and the running job's reservation (2 GPUs x its 60 min live timeout).
    const budgetRow = page
      .locator('section', { has: page.getByRole('heading', { name: 'GPU-hour budgets' }) })
      .locator('tbody tr');
    await budgetRow.first().waitFor();
    assert.match((await budgetRow.first().textContent()) ?? '', /^vision\s*month, until .*\d\.\d\d.*100$/);
    await cap.focus();
    await page.keyboard.press('Tab');
    assert.equal(await focused(page, 'textContent'), 'Save cap');
    await shoot(page, 'admin');
    assert.deepEqual(await accessibilityProblems(page), []);
    assert.deepEqual(problems, []);
    await page.context().close();
    await api('DELETE', `/v1/jobs/${waiting}`, ROOT);
  });
});
