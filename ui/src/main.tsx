/** The dashboard's entry: sign-in, the header's navigation and the view of the current /ui/ path. */
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { endSession, finishLogin, loadConfig, type UiConfig } from './oidc.js';
import { Link, useRoute } from './router.js';
import { getToken, signInFromFragment, signOut } from './session.js';
import { Admin } from './views/admin.js';
import { JobPage } from './views/job.js';
import { Overview } from './views/overview.js';
import { SignIn } from './views/sign-in.js';

function App() {
  const [signedIn, setSignedIn] = useState(Boolean(getToken()));
  const [refused, setRefused] = useState(false);
  const [config, setConfig] = useState<UiConfig>();
  const [loginProblem, setLoginProblem] = useState<string>();
  const route = useRoute();
  useEffect(() => {
    // On AWS the page may be the login's way back: its code is exchanged before anything else.
    loadConfig()
      .then(async (loaded) => {
        setConfig(loaded);
        if (loaded.signIn === 'oidc' && (await finishLogin(loaded.oidc))) setSignedIn(true);
      })
      .catch((error: Error) => setLoginProblem(error.message));
  }, []);
  useEffect(() => {
    // A 401 from any request signs out (api.ts): back to the form, saying why.
    const onSignedOut = () => {
      setRefused(Boolean(getToken() === null && signedIn));
      setSignedIn(false);
    };
    window.addEventListener('flare:signed-out', onSignedOut);
    return () => window.removeEventListener('flare:signed-out', onSignedOut);
  }, [signedIn]);
  useEffect(() => {
    document.title = route.view === 'job' ? `Job ${route.id} · Flare` : 'Flare';
  }, [route]);
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header>
        <h1>Flare</h1>
        {signedIn && (
          <nav aria-label="Views">
            <Link href="/ui/">Pools and queue</Link>
            <Link href="/ui/admin">Quotas and caps</Link>
            <button
              type="button"
              class="link"
              onClick={() => {
                const token = getToken();
                signOut();
                setRefused(false);
                if (config?.signIn === 'oidc')
                  endSession(config.oidc, token).catch((error: Error) => setLoginProblem(error.message));
              }}
            >
              Sign out
            </button>
          </nav>
        )}
      </header>
      <main id="main" tabIndex={-1}>
        {!signedIn ? (
          <SignIn
            refused={refused}
            problem={loginProblem}
            oidc={config?.signIn === 'oidc' ? config.oidc : undefined}
            onSignIn={() => {
              setRefused(false);
              setSignedIn(true);
            }}
          />
        ) : route.view === 'job' ? (
          <JobPage id={route.id} />
        ) : route.view === 'admin' ? (
          <Admin />
        ) : route.view === 'overview' ? (
          <Overview />
        ) : (
          <p role="alert">
            No such page. <Link href="/ui/">Pools and queue</Link>
          </p>
        )}
      </main>
    </>
  );
}

signInFromFragment();
render(<App />, document.getElementById('app')!);
