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

/** The bundle's files by name (`index.html`, `assets/app-<hash>.js`, ...), as ui/build.ts makes them. */
export type UiAssets = ReadonlyMap<string, Buffer>;

export interface UiOptions {
  /** Origins the page may call besides its own (the OIDC issuer's token endpoint on AWS). @default none */
  connectSources?: readonly string[];
}

export const UI_PREFIX = '/ui';

/** No inline script or style, no eval, nothing from another origin: the bundle is all the page runs. */
export function contentSecurityPolicy(options: UiOptions = {}): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    ['connect-src', "'self'", ...(options.connectSources ?? [])].join(' '),
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
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

/** On AWS: the bundle the stack copied beside this handler (lib/web-ui.ts). */
export const handler = createUiHandler(() => readUiAssets(join(dirname(fileURLToPath(import.meta.url)), 'ui')));
