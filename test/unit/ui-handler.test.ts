/**
 * lambdas/handlers/http/ui.ts, the dashboard's file server (the same on AWS
 * and locally): the page for every client-side route, hashed assets cached
 * for good, the CSP on every answer (with the issuer's origins when signing in
 * with OIDC), /ui/config.json, and the OIDC setting read from the environment.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createUiHandler, uiOptionsFromEnv } from '../../lambdas/handlers/http/ui.js';

const ASSETS = new Map([
  ['index.html', Buffer.from('<!doctype html><title>Flare</title>')],
  ['assets/app-ABC.js', Buffer.from('console.log(1)')],
]);
const get = (path: string, method = 'GET') => ({ rawPath: path, requestContext: { http: { method } } });
const OIDC = {
  issuer: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc',
  authorizationEndpoint: 'https://flare-123.auth.eu-west-1.amazoncognito.com/oauth2/authorize',
  tokenEndpoint: 'https://flare-123.auth.eu-west-1.amazoncognito.com/oauth2/token',
  clientId: 'web',
  scopes: ['openid'],
};

describe('the dashboard file server', () => {
  const serve = createUiHandler(() => ASSETS);

  it('answers every route under /ui/ with the page, assets by name, and nothing else', async () => {
    for (const path of ['/ui/', '/ui/jobs/j-123', '/ui/admin']) {
      const res = await serve(get(path));
      assert.equal(res.statusCode, 200, path);
      assert.equal(res.headers!['content-type'], 'text/html; charset=utf-8');
      assert.equal(res.headers!['cache-control'], 'no-cache');
      assert.equal(Buffer.from(res.body!, 'base64').toString(), '<!doctype html><title>Flare</title>');
    }
    const script = await serve(get('/ui/assets/app-ABC.js'));
    assert.equal(script.headers!['content-type'], 'text/javascript; charset=utf-8');
    assert.equal(script.headers!['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal((await serve(get('/ui/assets/app-XYZ.js'))).statusCode, 404);
    assert.equal((await serve(get('/ui'))).headers!.location, '/ui/');
    assert.equal((await serve(get('/ui/', 'POST'))).statusCode, 405);
    assert.equal((await serve(get('/ui/', 'HEAD'))).body, '');
  });

  it('puts a CSP with no inline script, no eval and no other origin on every answer', async () => {
    for (const res of [
      await serve(get('/ui/')),
      await serve(get('/ui/assets/none.js')),
      await serve(get('/ui/', 'PUT')),
    ]) {
      const csp = res.headers!['content-security-policy'] as string;
      assert.match(csp, /default-src 'none'/);
      assert.match(csp, /script-src 'self';/);
      assert.match(csp, /connect-src 'self';/);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.equal(res.headers!['x-content-type-options'], 'nosniff');
    }
  });

  it('tells the page how to sign in: a token locally, the issuer with OIDC, whose origins the CSP allows', async () => {
    assert.deepEqual(JSON.parse((await serve(get('/ui/config.json'))).body!), { signIn: 'token' });
    const aws = createUiHandler(() => ASSETS, { oidc: OIDC });
    const res = await aws(get('/ui/config.json'));
    assert.deepEqual(JSON.parse(res.body!), { signIn: 'oidc', oidc: OIDC });
    assert.match(
      res.headers!['content-security-policy'] as string,
      /connect-src 'self' https:\/\/cognito-idp\.eu-west-1\.amazonaws\.com https:\/\/flare-123\.auth\.eu-west-1\.amazoncognito\.com;/,
    );
  });

  it('reads FLARE_UI_OIDC, failing fast with its name when it is not a valid setting', () => {
    assert.deepEqual(uiOptionsFromEnv({}), {});
    assert.deepEqual(uiOptionsFromEnv({ FLARE_UI_OIDC: JSON.stringify(OIDC) }), { oidc: OIDC });
    assert.throws(() => uiOptionsFromEnv({ FLARE_UI_OIDC: '{' }), /FLARE_UI_OIDC is not JSON/);
    assert.throws(
      () => uiOptionsFromEnv({ FLARE_UI_OIDC: JSON.stringify({ ...OIDC, issuer: 'http://insecure.example' }) }),
      /FLARE_UI_OIDC is not a valid OIDC setting/,
    );
  });
});
