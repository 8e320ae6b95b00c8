/** The sign-in form: an API token, pasted once, kept for this tab's session. */
import { useState } from 'preact/hooks';
import { setToken } from '../session.js';

export function SignIn({ refused, onSignIn }: { refused: boolean; onSignIn(): void }) {
  const [token, setValue] = useState('');
  return (
    <section class="sign-in" aria-labelledby="sign-in-title">
      <h2 id="sign-in-title">Sign in</h2>
      {refused && (
        <p class="error" role="alert">
          The API refused the token: it is wrong or has expired.
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
