/** Client-side routes under /ui/: the server answers every one with the same page. */
import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';

export type Route = { view: 'overview' } | { view: 'job'; id: string } | { view: 'admin' } | { view: 'missing' };

export function routeOf(path: string): Route {
  if (path === '/ui/' || path === '/ui') return { view: 'overview' };
  if (path === '/ui/admin') return { view: 'admin' };
  const job = /^\/ui\/jobs\/([^/]+)$/.exec(path);
  if (job) return { view: 'job', id: decodeURIComponent(job[1]!) };
  return { view: 'missing' };
}

export function navigate(path: string): void {
  history.pushState(null, '', path);
  window.dispatchEvent(new PopStateEvent('popstate'));
}

export function useRoute(): Route {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const onPop = () => setPath(location.pathname);
    window.addEventListener('popstate', onPop);
    return () => window.removeEventListener('popstate', onPop);
  }, []);
  return routeOf(path);
}

/** A real link (open in a new tab works) that navigates in place on a plain click. */
export function Link({ href, children, ...rest }: { href: string; children: ComponentChildren; class?: string }) {
  return (
    <a
      href={href}
      {...rest}
      onClick={(event) => {
        if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
        event.preventDefault();
        navigate(href);
      }}
    >
      {children}
    </a>
  );
}

export const jobHref = (id: string) => `/ui/jobs/${encodeURIComponent(id)}`;
