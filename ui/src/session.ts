/**
 * The API token the page signs in with: pasted once into the sign-in form, or
 * given as `#token=...` (for scripts), which is then removed from the address
 * bar and history; on AWS the issuer's ID token, with what renews it when it
 * expires. Kept in sessionStorage: it goes when the tab closes.
 */
const KEY = 'flare.token';
const RENEWAL_KEY = 'flare.oidc.renewal';

/** What renews an expired ID token without a new login: the refresh token, and where and for whom to spend it. */
export interface Renewal {
  refreshToken: string;
  tokenEndpoint: string;
  clientId: string;
}

/** Takes a `#token=` fragment into the session and removes it from the address bar. */
export function signInFromFragment(): void {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ''));
  const token = fragment.get('token');
  if (!token) return;
  setToken(token);
  history.replaceState(history.state, '', location.pathname + location.search);
}

export function getToken(): string | null {
  return sessionStorage.getItem(KEY);
}

export function setToken(token: string): void {
  sessionStorage.setItem(KEY, token.trim());
}

export function getRenewal(): Renewal | null {
  return JSON.parse(sessionStorage.getItem(RENEWAL_KEY) ?? 'null') as Renewal | null;
}

export function setRenewal(renewal: Renewal): void {
  sessionStorage.setItem(RENEWAL_KEY, JSON.stringify(renewal));
}

export function signOut(): void {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(RENEWAL_KEY);
  window.dispatchEvent(new Event('flare:signed-out'));
}
