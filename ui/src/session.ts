/**
 * The API token the page signs in with: pasted once into the sign-in form, or
 * given as `#token=...` (for scripts), which is then removed from the address
 * bar and history. Kept in sessionStorage: it goes when the tab closes.
 */
const KEY = 'flare.token';

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

export function signOut(): void {
  sessionStorage.removeItem(KEY);
  window.dispatchEvent(new Event('flare:signed-out'));
}
