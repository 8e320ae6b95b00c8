/**
 * The dashboard's static files under /ui/, for API Gateway's HTTP API (payload
 * 2.0) on AWS and the local plane's server alike. Every path that is not a
 * bundled asset is the page itself (client-side routing: /ui/jobs/{id}). No
 * token is needed to load the page; the page then calls the API with one.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { z } from 'zod';

/** The bundle's files by name (`index.html`, `assets/app-<hash>.js`, ...), as ui/build.ts makes them. */
export type UiAssets = ReadonlyMap<string, Buffer>;

/** How the page signs in on AWS: the OIDC issuer's login, authorization code with PKCE (a public client). */
export const UiOidc = z.strictObject({
  /** Its discovery document (`/.well-known/openid-configuration`) names the endpoints not given here. */
  issuer: z.url({ protocol: /^https$/ }),
  authorizationEndpoint: z.url({ protocol: /^https$/ }).optional(),
  tokenEndpoint: z.url({ protocol: /^https$/ }).optional(),
  /**
   * Cognito's `/logout` (`client_id`, `logout_uri`), where sign-out ends the hosted login's session too.
   * Absent: the discovery document's `end_session_endpoint`, if it has one (OIDC RP-initiated logout).
   */
  logoutEndpoint: z.url({ protocol: /^https$/ }).optional(),
  clientId: z.string().min(1),
  scopes: z.array(z.string().min(1)).min(1),
});
export type UiOidc = z.infer<typeof UiOidc>;

export interface UiOptions {
  /** Absent: the page asks for an API token (the local plane). */
  oidc?: UiOidc;
}

/** What the page reads at `/ui/config.json` before it signs in. */
export function uiConfig(options: UiOptions): { signIn: 'token' } | { signIn: 'oidc'; oidc: UiOidc } {
  return options.oidc ? { signIn: 'oidc', oidc: options.oidc } : { signIn: 'token' };
}

export const UI_PREFIX = '/ui';

/** No inline script or style, no eval, nothing from another origin: the bundle is all the page runs. */
export function contentSecurityPolicy(options: UiOptions = {}): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    // The issuer's discovery document and token endpoint are fetched by the page itself.
    ['connect-src', "'self'", ...oidcOrigins(options.oidc)].join(' '),
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

function oidcOrigins(oidc: UiOidc | undefined): string[] {
  if (!oidc) return [];
  return [...new Set([oidc.issuer, oidc.tokenEndpoint].flatMap((url) => (url ? [new URL(url).origin] : [])))];
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
};

function contentTypeOf(name: string): string {
  return TYPES[extname(name)] ?? 'application/octet-stream';
}

type UiEvent = Pick<APIGatewayProxyEventV2, 'rawPath'> & {
  requestContext: { http: { method: string } };
};

/** `assets` is called once, on the first request (locally the bundle is built then, in memory). */
export function createUiHandler(assets: () => Promise<UiAssets> | UiAssets, options: UiOptions = {}) {
  let loaded: Promise<UiAssets> | undefined;
  const config = JSON.stringify(uiConfig(options));
  const security = {
    'content-security-policy': contentSecurityPolicy(options),
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
  };
  return async (event: UiEvent): Promise<APIGatewayProxyStructuredResultV2> => {
    const method = event.requestContext.http.method.toUpperCase();
    const path = event.rawPath;
    const answer = (statusCode: number, headers: Record<string, string>, body = '') => ({
      statusCode,
      headers: { ...security, ...headers },
      body: method === 'HEAD' ? '' : body,
    });
    if (method !== 'GET' && method !== 'HEAD')
      return answer(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }, 'only GET and HEAD\n');
    if (path === UI_PREFIX) return answer(308, { location: `${UI_PREFIX}/` });
    const bundle = await (loaded ??= Promise.resolve(assets()).catch((error: unknown) => {
      loaded = undefined; // a failed build or read is tried again on the next request
      throw error;
    }));
    const name = path.slice(`${UI_PREFIX}/`.length);
    if (name === 'config.json')
      return answer(200, { 'content-type': 'application/json', 'cache-control': 'no-cache' }, config);
    const asset = name.startsWith('assets/') ? bundle.get(name) : bundle.get('index.html');
    if (!asset) return answer(404, { 'content-type': 'text/plain' }, 'no such file\n');
    // Assets carry their content hash in their name; the page is checked on every load.
    const cache = name.startsWith('assets/') ? 'public, max-age=31536000, immutable' : 'no-cache';
    return {
      statusCode: 200,
      headers: {
        ...security,
        'content-type': contentTypeOf(name.startsWith('assets/') ? name : 'index.html'),
        'cache-control': cache,
      },
      body: method === 'HEAD' ? '' : asset.toString('base64'),
      isBase64Encoded: method !== 'HEAD',
    };
  };
}

/** A bundle written to `dir` (index.html and assets/), as the Lambda's package holds it. */
export function readUiAssets(dir: string): UiAssets {
  const assets = new Map<string, Buffer>([['index.html', readFileSync(join(dir, 'index.html'))]]);
  for (const name of readdirSync(join(dir, 'assets')))
    assets.set(`assets/${name}`, readFileSync(join(dir, 'assets', name)));
  return assets;
}

/** `FLARE_UI_OIDC` (JSON, set by lib/web-ui.ts): how the page signs in on AWS; failing fast, naming it. */
export function uiOptionsFromEnv(env: NodeJS.ProcessEnv): UiOptions {
  const raw = env.FLARE_UI_OIDC;
  if (raw === undefined || raw === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new Error('FLARE_UI_OIDC is not JSON');
  }
  const result = UiOidc.safeParse(parsed);
  if (!result.success) throw new Error(`FLARE_UI_OIDC is not a valid OIDC setting: ${z.prettifyError(result.error)}`);
  return { oidc: result.data };
}

/** On AWS: the bundle the stack copied beside this handler (lib/web-ui.ts). */
export const handler = createUiHandler(
  () => readUiAssets(join(dirname(fileURLToPath(import.meta.url)), 'ui')),
  uiOptionsFromEnv(process.env),
);
