/**
 * Polling that stays polite: one request at a time (the next is scheduled when
 * the last answered), nothing while the tab is hidden, and a fresh load as soon
 * as it is shown again. docs/dashboard.md gives the requests per minute.
 */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';

export interface Polled<T> {
  data?: T;
  error?: Error;
  /** Load now (after a change the user made), then go on polling. */
  refresh(): void;
}

export function usePoll<T>(load: () => Promise<T>, everyMs: number, key: readonly unknown[]): Polled<T> {
  const [state, setState] = useState<{ data?: T; error?: Error }>({});
  const kick = useRef<() => void>(() => {});
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    let running = false;
    const run = async () => {
      clearTimeout(timer);
      if (stopped || running || document.hidden) return;
      running = true;
      try {
        const data = await load();
        if (!stopped) setState({ data });
      } catch (error) {
        if (!stopped) setState((s) => ({ data: s.data, error: error as Error }));
      } finally {
        running = false;
        if (!stopped && !document.hidden && everyMs > 0) timer = setTimeout(run, everyMs);
      }
    };
    const onVisibility = () => (document.hidden ? clearTimeout(timer) : void run());
    kick.current = () => void run();
    setState({});
    void run();
    document.addEventListener('visibilitychange', onVisibility);
    return () => {
      stopped = true;
      clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisibility);
    };
    // `key` names what `load` depends on: a new key starts a new poll.
  }, key);
  const refresh = useCallback(() => kick.current(), []);
  return { ...state, refresh };
}
