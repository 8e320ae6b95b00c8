/**
 * The dashboard's sign-in on AWS, in a real browser: the OIDC issuer's login
 * with authorization code and PKCE. A small issuer stands in for Cognito (or
 * any OIDC provider): it checks the client, the redirect URI and that the
 * code_verifier hashes to the code_challenge, and answers with an ID token
 * the server then accepts as a bearer token, and a refresh token that renews
 * it once the API refuses it as expired. The page is the bundled one,
 * served by lambdas/handlers/http/ui.ts with an OIDC setting, behind the local
 * HTTP server (which plays API Gateway's authorizer); the API behind it only
 * records what reached it.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { createUiHandler } from '../../lambdas/handlers/http/ui.js';
import { startHttpServer, type HttpServer } from '../../lambdas/local/http-server.js';
import { buildUi } from '../../ui/build.js';

const ID_TOKEN = `id-token-${randomUUID()}`;
/** What the issuer gives for the refresh token; the first ID token expires when a test says so. */
const RENEWED_TOKEN = `id-token-renewed-${randomUUID()}`;
const REFRESH_TOKEN = `refresh-${randomUUID()}`;
const CLIENT_ID = 'flare-dashboard';
const CHROMIUM = process.env.FLARE_CHROMIUM ?? '/usr/bin/chromium';

let issuer: Server;
let issuerUrl: string;
let server: HttpServer;
/** The same page configured as the stack configures it for its Cognito pool: endpoints given, `/logout` for sign-out. */
let cognitoStyle: HttpServer;
let browser: Browser;
/** Codes the issuer gave, with the PKCE challenge and redirect URI they were asked with. */
const codes = new Map<string, { challenge: string; redirectUri: string }>();
const exchanges: { ok: boolean; why?: string }[] = [];
const renewals: { ok: boolean; why?: string }[] = [];
/** Set by a test: the API (its authorizer) refuses ID_TOKEN as expired; `refuseRenewal`: so does the issuer. */
const expiry = { expired: false, refuseRenewal: false };
const logouts: Record<string, string>[] = [];
const apiCalls: string[] = [];
const apiTokens: string[] = [];

const base64Url = (b: Buffer) => b.toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

before(async () => {
  issuer = createServer((req, res) => {
    const url = new URL(req.url ?? '/', issuerUrl);
    const cors = { 'access-control-allow-origin': '*' };
    if (url.pathname === '/.well-known/openid-configuration') {
      res.writeHead(200, { 'content-type': 'application/json', ...cors });
      res.end(
        JSON.stringify({
          issuer: issuerUrl,
          authorization_endpoint: `${issuerUrl}/authorize`,
          token_endpoint: `${issuerUrl}/token`,
          end_session_endpoint: `${issuerUrl}/end-session`,
        }),
      );
      return;
    }
    if (url.pathname === '/authorize') {
      const p = url.searchParams;
      assert.equal(p.get('response_type'), 'code');
      assert.equal(p.get('client_id'), CLIENT_ID);
      assert.equal(p.get('code_challenge_method'), 'S256');
      const code = randomUUID();
      codes.set(code, { challenge: p.get('code_challenge')!, redirectUri: p.get('redirect_uri')! });
      const back = new URL(p.get('redirect_uri')!);
      back.search = new URLSearchParams({ code, state: p.get('state')! }).toString();
      res.writeHead(302, { location: back.toString() });
      res.end();
      return;
    }
    // Sign-out: OIDC RP-initiated logout, and Cognito's /logout; each sends the browser back where it is told.
    if (url.pathname === '/end-session' || url.pathname === '/logout') {
      const p = Object.fromEntries(url.searchParams);
      logouts.push({ at: url.pathname, ...p });
      res.writeHead(302, { location: p.post_logout_redirect_uri ?? p.logout_uri ?? '/' });
      res.end();
      return;
    }
    if (url.pathname === '/token' && req.method === 'POST') {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        const form = new URLSearchParams(body);
        const answer = (why: string | undefined, tokens: object) => {
          res.writeHead(why ? 400 : 200, { 'content-type': 'application/json', ...cors });
          res.end(JSON.stringify(why ? { error: 'invalid_grant' } : { ...tokens, token_type: 'Bearer' }));
        };
        if (form.get('grant_type') === 'refresh_token') {
          const why =
            form.get('client_id') !== CLIENT_ID
              ? 'client_id'
              : form.get('refresh_token') !== REFRESH_TOKEN
                ? 'refresh_token'
                : expiry.refuseRenewal
                  ? 'revoked'
                  : undefined;
          renewals.push({ ok: why === undefined, why });
          answer(why, { id_token: RENEWED_TOKEN });
          return;
        }
        const asked = codes.get(form.get('code') ?? '');
        const verifier = form.get('code_verifier') ?? '';
        const why = !asked
          ? 'unknown code'
          : form.get('grant_type') !== 'authorization_code'
            ? 'grant_type'
            : form.get('client_id') !== CLIENT_ID
              ? 'client_id'
              : form.get('redirect_uri') !== asked.redirectUri
                ? 'redirect_uri'
                : base64Url(createHash('sha256').update(verifier).digest()) !== asked.challenge
                  ? 'code_verifier'
                  : undefined;
        exchanges.push({ ok: why === undefined, why });
        codes.delete(form.get('code') ?? '');
        answer(why, { id_token: ID_TOKEN, refresh_token: REFRESH_TOKEN });
      });
      return;
    }
    res.writeHead(404, cors);
    res.end();
  });
  await new Promise<void>((resolve) => issuer.listen(0, '127.0.0.1', resolve));
  issuerUrl = `http://127.0.0.1:${(issuer.address() as AddressInfo).port}`;

  server = await startHttpServer({
    host: '127.0.0.1',
    port: 0,
    users: [
      { name: 'alice', token: ID_TOKEN, projects: ['vision'] },
      { name: 'alice', token: RENEWED_TOKEN, projects: ['vision'] },
    ],
    // Reached only with an ID token (the server plays the authorizer): it records the path and lists nothing,
    // and refuses the first token once a test has it expire, as API Gateway's JWT authorizer would.
    handler: async (event) => {
      const token = (event.headers.authorization ?? '').replace(/^Bearer /, '');
      apiCalls.push(event.rawPath);
      apiTokens.push(token);
      if (expiry.expired && token === ID_TOKEN)
        return { statusCode: 401, headers: { 'content-type': 'application/json' }, body: '{"message":"Unauthorized"}' };
      return { statusCode: 200, headers: { 'content-type': 'application/json' }, body: '{"items":[]}' };
    },
    ui: createUiHandler(buildUi, { oidc: { issuer: issuerUrl, clientId: CLIENT_ID, scopes: ['openid', 'email'] } }),
  });
  cognitoStyle = await startHttpServer({
    host: '127.0.0.1',
    port: 0,
    users: [
      { name: 'alice', token: ID_TOKEN, projects: ['vision'] },
      { name: 'alice', token: RENEWED_TOKEN, projects: ['vision'] },
    ],
    handler: async () => ({ statusCode: 200, headers: { 'content-type': 'application/json' }, body: '{"items":[]}' }),
    ui: createUiHandler(buildUi, {
      oidc: {
        issuer: issuerUrl,
        authorizationEndpoint: `${issuerUrl}/authorize`,
        tokenEndpoint: `${issuerUrl}/token`,
        logoutEndpoint: `${issuerUrl}/logout`,
        clientId: CLIENT_ID,
        scopes: ['openid'],
      },
    }),
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
  await server?.close();
  await cognitoStyle?.close();
  await new Promise((resolve) => issuer?.close(resolve));
});

describe("the dashboard's OIDC sign-in (authorization code with PKCE)", () => {
  it("signs in through the issuer's login, calls the API with the ID token, and leaves no code in the address bar", async () => {
    const page = await browser.newPage();
    await page.goto(`${server.url}/ui/admin`);
    await page.getByRole('button', { name: "Sign in with your organisation's login" }).click();
    await page.getByRole('heading', { name: 'Quotas', exact: true }).waitFor();
    assert.equal(page.url(), `${server.url}/ui/admin`, 'back where it started, code and state gone');
    assert.deepEqual(exchanges, [{ ok: true, why: undefined }]);
    assert.ok(apiCalls.includes('/v1/quotas'), `the API was reached with the ID token: ${apiCalls.join(', ')}`);
    const csp = (await fetch(`${server.url}/ui/`)).headers.get('content-security-policy') ?? '';
    assert.match(csp, new RegExp(`connect-src 'self' ${issuerUrl.replace(/\./g, '\\.')}(;|$)`));
    await page.close();
  });

  it('refuses a return it did not ask for: no token, the form says why', async () => {
    const page = await browser.newPage();
    const before = apiCalls.length;
    await page.goto(`${server.url}/ui/?code=forged&state=forged`);
    await page.getByText('the login answered a request this tab did not make').waitFor();
    await page.getByLabel('API token').waitFor();
    assert.equal(new URL(page.url()).search, '');
    assert.equal(apiCalls.length, before);
    await page.close();
  });

  it('signs out of the issuer too (its end_session_endpoint), so that Sign in asks for the login again', async () => {
    expiry.expired = false;
    const page = await browser.newPage();
    await page.goto(`${server.url}/ui/admin`);
    await page.getByRole('button', { name: "Sign in with your organisation's login" }).click();
    await page.getByRole('heading', { name: 'Quotas', exact: true }).waitFor();
    const from = logouts.length;

    await page.getByRole('button', { name: 'Sign out' }).click();

    await page.getByRole('button', { name: "Sign in with your organisation's login" }).waitFor();
    await waitUntil(() => page.url() === `${server.url}/ui/`, 'the way back from the issuer');
    assert.deepEqual(logouts.slice(from), [
      {
        at: '/end-session',
        client_id: CLIENT_ID,
        post_logout_redirect_uri: `${server.url}/ui/`,
        id_token_hint: ID_TOKEN,
      },
    ]);
    assert.equal(await page.evaluate('sessionStorage.length'), 0, 'nothing of the session kept');
    await page.close();
  });

  it("signs out of Cognito's hosted login with its /logout, as the stack configures the page", async () => {
    const page = await browser.newPage();
    await page.goto(`${cognitoStyle.url}/ui/admin`);
    await page.getByRole('button', { name: "Sign in with your organisation's login" }).click();
    await page.getByRole('heading', { name: 'Quotas', exact: true }).waitFor();
    const from = logouts.length;

    await page.getByRole('button', { name: 'Sign out' }).click();

    await page.getByRole('button', { name: "Sign in with your organisation's login" }).waitFor();
    await waitUntil(() => logouts.length > from, 'the sign-out at the issuer');
    assert.deepEqual(logouts.slice(from), [
      { at: '/logout', client_id: CLIENT_ID, logout_uri: `${cognitoStyle.url}/ui/` },
    ]);
    await page.close();
  });

  it('renews an ID token the API refuses as expired with the refresh token: no new login, the page stays', async () => {
    const page = await browser.newPage();
    await page.goto(`${server.url}/ui/admin`);
    await page.getByRole('button', { name: "Sign in with your organisation's login" }).click();
    await page.getByRole('heading', { name: 'Quotas', exact: true }).waitFor();
    const logins = exchanges.length;
    expiry.expired = true;
    const from = apiTokens.length;

    await page.reload(); // its first requests carry the expired token

    await page.getByRole('heading', { name: 'Quotas', exact: true }).waitFor();
    await waitUntil(() => apiTokens.slice(from).includes(RENEWED_TOKEN), 'a request with the renewed token');
    assert.deepEqual(renewals, [{ ok: true, why: undefined }], 'one renewal for all the requests refused together');
    assert.equal(exchanges.length, logins, 'no new login');
    assert.equal(await page.getByLabel('API token').count(), 0, 'still signed in');
    assert.equal(await page.evaluate("sessionStorage.getItem('flare.token')"), RENEWED_TOKEN);
    await page.close();
  });

  it('asks to sign in again when the issuer refuses the renewal', async () => {
    const page = await browser.newPage();
    expiry.expired = false;
    await page.goto(`${server.url}/ui/admin`);
    await page.getByRole('button', { name: "Sign in with your organisation's login" }).click();
    await page.getByRole('heading', { name: 'Quotas', exact: true }).waitFor();
    const asked = renewals.length;
    expiry.expired = true;
    expiry.refuseRenewal = true;

    await page.reload();

    await page.getByRole('button', { name: "Sign in with your organisation's login" }).waitFor();
    assert.deepEqual(renewals.slice(asked), [{ ok: false, why: 'revoked' }]);
    assert.equal(await page.evaluate("sessionStorage.getItem('flare.oidc.renewal')"), null, 'nothing kept');
    await page.close();
  });
});

async function waitUntil(condition: () => boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
