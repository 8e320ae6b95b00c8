/** What a member may do to a job from its page: cancel it, change its live timeout, run a command in it. */
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { isTerminal, type Job } from '../types.js';
import { ErrorNote } from './parts.js';

/** The API refuses a stopping or finished job's timeout (409): the form is offered while it can change. */
const TIMEOUT_STATES = ['PENDING', 'WAITING', 'LAUNCHING', 'RUNNING'];

export function JobActions({ job, onChange }: { job: Job; onChange(): void }) {
  const [error, setError] = useState<Error>();
  const [busy, setBusy] = useState(false);
  const [minutes, setMinutes] = useState(String(job.liveTimeoutMinutes));
  const act = async (work: () => Promise<unknown>) => {
    setBusy(true);
    setError(undefined);
    try {
      await work();
      onChange();
    } catch (e) {
      setError(e as Error);
    } finally {
      setBusy(false);
    }
  };
  if (isTerminal(job) || job.state === 'STOPPING') return null;
  const max = job.maxLiveTimeoutMinutes;
  return (
    <section aria-labelledby="actions-title">
      <h3 id="actions-title">Actions</h3>
      <ErrorNote error={error} />
      <div class="actions">
        <button
          type="button"
          class="danger"
          disabled={busy}
          onClick={() => {
            if (confirm(`Cancel job ${job.name}? Its GPUs go back to the pool.`))
              void act(() => api('DELETE', `/v1/jobs/${encodeURIComponent(job.id)}`));
          }}
        >
          Cancel job
        </button>
        {TIMEOUT_STATES.includes(job.state) && (
          <form
            class="inline"
            onSubmit={(e) => {
              e.preventDefault();
              void act(() =>
                api('PATCH', `/v1/jobs/${encodeURIComponent(job.id)}`, { liveTimeoutMinutes: Number(minutes) }),
              );
            }}
          >
            <label for="live-timeout">Live timeout (minutes{max ? `, at most ${max}` : ''})</label>
            <input
              id="live-timeout"
              type="number"
              min={1}
              max={max}
              required
              value={minutes}
              onInput={(e) => setMinutes(e.currentTarget.value)}
            />
            <button type="submit" disabled={busy}>
              Set live timeout
            </button>
          </form>
        )}
      </div>
    </section>
  );
}

/** POST /exec: the argv one argument per line (no shell parses it), its exit code and output shown. */
export function ExecForm({ job }: { job: Job }) {
  const [argv, setArgv] = useState('');
  const [result, setResult] = useState<{ exitCode: number; stdout: string; stderr: string }>();
  const [error, setError] = useState<Error>();
  const [busy, setBusy] = useState(false);
  return (
    <section aria-labelledby="exec-title">
      <h3 id="exec-title">Run a command in the job</h3>
      <p class="hint">Its owner and admins may; the API refuses anyone else.</p>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          const command = argv.split('\n').filter((a) => a.length > 0);
          setBusy(true);
          setError(undefined);
          try {
            setResult(await api('POST', `/v1/jobs/${encodeURIComponent(job.id)}/exec`, { command }));
          } catch (err) {
            setError(err as Error);
          } finally {
            setBusy(false);
          }
        }}
      >
        <label for="exec-argv">Command, one argument per line</label>
        <textarea id="exec-argv" rows={3} value={argv} required onInput={(e) => setArgv(e.currentTarget.value)} />
        <button type="submit" disabled={busy}>
          Run
        </button>
      </form>
      <ErrorNote error={error} />
      {result && (
        <div class="exec-result">
          <p>exit code {result.exitCode}</p>
          <h4>Standard output</h4>
          <pre>{result.stdout}</pre>
          {result.stderr && (
            <>
              <h4>Standard error</h4>
              <pre>{result.stderr}</pre>
            </>
          )}
        </div>
      )}
    </section>
  );
}
