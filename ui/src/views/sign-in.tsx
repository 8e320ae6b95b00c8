/**
 * Sign-in: the OIDC issuer's login where the deployment has one (AWS), and an
 * API token, pasted once, kept for this tab's session.
 */
import { useState } from 'preact/hooks';
import { startLogin, type UiConfig } from '../oidc.js';
import { setToken } from '../session.js';

type Oidc = Extract<UiConfig, { signIn: 'oidc' }>['oidc'];

export function SignIn({
  refused,
  problem,
  oidc,
  onSignIn,
}: {
  refused: boolean;
  problem?: string;
  oidc?: Oidc;
  onSignIn(): void;
}) {
  const [token, setValue] = useState('');
  const [starting, setStarting] = useState<string>();
  return (
    <section class="sign-in" aria-labelledby="sign-in-title">
      <h2 id="sign-in-title">Sign in</h2>
      {refused && (
        <p class="error" role="alert">
          The API refused the token: it is wrong or has expired.
        </p>
      )}
      {(problem || starting) && (
        <p class="error" role="alert">
          {problem ?? starting}
        </p>
      )}
      {oidc && (
        <p>
          <button type="button" onClick={() => startLogin(oidc).catch((e: Error) => setStarting(e.message))}>
            Sign in with your organisation's login
          </button>
        </p>
      )}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setToken(token);
          onSignIn();
        }}
      >
        <label for="token">API token</label>
        <input
          id="token"
          type="password"
          autoComplete="off"
          required
          value={token}
          onInput={(e) => setValue(e.currentTarget.value)}
        />
        <button type="submit">Sign in</button>
        <p class="hint">Kept in this tab only (session storage) and sent to this API alone.</p>
      </form>
    </section>
  );
}
