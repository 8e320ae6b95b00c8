/**
 * Sign-in with the OIDC issuer's login on AWS: authorization code with PKCE
 * (S256), a public client, no secret. The ID token it returns is the JWT the
 * API's authorizer checks; it is kept as the session's token, and the code
 * and state leave the address bar once used. When the API refuses it (Cognito's
 * last an hour) the refresh token, when the issuer gave one, renews it: a
 * researcher watching a job for an afternoon is not sent back to the login.
 */
import type { uiConfig } from '../../lambdas/handlers/http/ui.js';
import { getRenewal, getToken, setRenewal, setToken } from './session.js';

export type UiConfig = ReturnType<typeof uiConfig>;
type Oidc = Extract<UiConfig, { signIn: 'oidc' }>['oidc'];

const PENDING = 'flare.oidc.pending';

export async function loadConfig(): Promise<UiConfig> {
  const response = await fetch('/ui/config.json');
  if (!response.ok) throw new Error(`/ui/config.json: ${response.status}`);
  return (await response.json()) as UiConfig;
}

/** Off to the issuer's login; it sends the browser back to /ui/ with a code. */
export async function startLogin(oidc: Oidc): Promise<void> {
  const { authorizationEndpoint } = await endpoints(oidc);
  const verifier = randomText(32);
  const state = randomText(16);
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, returnTo: location.pathname }));
  const url = new URL(authorizationEndpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: oidc.clientId,
    redirect_uri: redirectUri(),
    scope: oidc.scopes.join(' '),
    state,
    code_challenge: await challengeOf(verifier),
    code_challenge_method: 'S256',
  }).toString();
  location.assign(url.toString());
}

/** Back from the issuer: the code exchanged for tokens; false when this load is not a return from a login. */
export async function finishLogin(oidc: Oidc): Promise<boolean> {
  const params = new URLSearchParams(location.search);
  const code = params.get('code');
  const pending = JSON.parse(sessionStorage.getItem(PENDING) ?? 'null') as {
    verifier: string;
    state: string;
    returnTo: string;
  } | null;
  if (!code && !params.get('error')) return false;
  sessionStorage.removeItem(PENDING);
  history.replaceState(null, '', pending?.returnTo ?? '/ui/');
  window.dispatchEvent(new PopStateEvent('popstate')); // the router follows the address it now shows
  if (params.get('error'))
    throw new Error(`the login refused: ${params.get('error_description') ?? params.get('error')}`);
  if (!pending || params.get('state') !== pending.state)
    throw new Error('the login answered a request this tab did not make');
  const { tokenEndpoint } = await endpoints(oidc);
  const response = await fetch(tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: code!,
      redirect_uri: redirectUri(),
      client_id: oidc.clientId,
      code_verifier: pending.verifier,
    }),
  });
  if (!response.ok) throw new Error(`the issuer refused the code: ${response.status}`);
  const tokens = (await response.json()) as Tokens;
  if (!tokens.id_token) throw new Error('the issuer gave no ID token');
  setToken(tokens.id_token);
  if (tokens.refresh_token) setRenewal({ refreshToken: tokens.refresh_token, tokenEndpoint, clientId: oidc.clientId });
  return true;
}

type Tokens = { id_token?: string; refresh_token?: string };
let renewing: Promise<boolean> | undefined;

/**
 * A new ID token for one the API refused, asked once for all the requests refused together. False when there
 * is nothing to renew it with or the issuer refuses (the refresh token expired or was revoked): sign in again.
 */
export function renewToken(refused: string): Promise<boolean> {
  const current = getToken();
  if (current && current !== refused) return Promise.resolve(true); // renewed meanwhile
  renewing ??= renew().finally(() => {
    renewing = undefined;
  });
  return renewing;
}

async function renew(): Promise<boolean> {
  const renewal = getRenewal();
  if (!renewal) return false;
  try {
    const response = await fetch(renewal.tokenEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        client_id: renewal.clientId,
        refresh_token: renewal.refreshToken,
      }),
    });
    if (!response.ok) return false;
    const tokens = (await response.json()) as Tokens;
    if (!tokens.id_token) return false;
    setToken(tokens.id_token);
    // An issuer that rotates refresh tokens sends the next one.
    if (tokens.refresh_token) setRenewal({ ...renewal, refreshToken: tokens.refresh_token });
    return true;
  } catch {
    return false; // the issuer unreachable: the page asks to sign in, as it would without renewal
  }
}

/**
 * Signing out of the page ends the issuer's session too, else *Sign in* would let the next person at this browser
 * straight back in: Cognito's `/logout`, or the issuer's `end_session_endpoint`, each sending the browser back to
 * /ui/. `idToken`: the token the page signed out of, a hint for the issuer. Nothing to do when the issuer has neither.
 */
export async function endSession(oidc: Oidc, idToken: string | null): Promise<void> {
  let url: URL;
  if (oidc.logoutEndpoint) {
    url = new URL(oidc.logoutEndpoint);
    url.search = new URLSearchParams({ client_id: oidc.clientId, logout_uri: redirectUri() }).toString();
  } else {
    const { endSessionEndpoint } = await endpoints(oidc);
    if (!endSessionEndpoint) return;
    url = new URL(endSessionEndpoint);
    url.search = new URLSearchParams({
      client_id: oidc.clientId,
      post_logout_redirect_uri: redirectUri(),
      ...(idToken ? { id_token_hint: idToken } : {}),
    }).toString();
  }
  location.assign(url.toString());
}

async function endpoints(
  oidc: Oidc,
): Promise<{ authorizationEndpoint: string; tokenEndpoint: string; endSessionEndpoint?: string }> {
  if (oidc.authorizationEndpoint && oidc.tokenEndpoint)
    return { authorizationEndpoint: oidc.authorizationEndpoint, tokenEndpoint: oidc.tokenEndpoint };
  const response = await fetch(`${oidc.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`);
  if (!response.ok) throw new Error(`the issuer's discovery document: ${response.status}`);
  const doc = (await response.json()) as {
    authorization_endpoint: string;
    token_endpoint: string;
    end_session_endpoint?: string;
  };
  return {
    authorizationEndpoint: oidc.authorizationEndpoint ?? doc.authorization_endpoint,
    tokenEndpoint: oidc.tokenEndpoint ?? doc.token_endpoint,
    endSessionEndpoint: doc.end_session_endpoint,
  };
}

const redirectUri = () => `${location.origin}/ui/`;

function randomText(bytes: number): string {
  return base64Url(crypto.getRandomValues(new Uint8Array(bytes)));
}

async function challengeOf(verifier: string): Promise<string> {
  return base64Url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))));
}

function base64Url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');
}
