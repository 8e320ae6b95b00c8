/**
 * One job: its state and timeline, cancel and live-timeout buttons, its array,
 * its live log (as GET /logs serves it: secret values already masked), its
 * outputs and a command run inside it.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError } from '../api.js';
import { clock } from '../format.js';
import { usePoll } from '../poll.js';
import { jobHref, Link } from '../router.js';
import { isQueued, isTerminal, type Job, type JobLogs, type Page } from '../types.js';
import { JobActions, ExecForm } from './job-actions.js';
import { Outputs } from './job-outputs.js';
import { ErrorNote } from './parts.js';

const JOB_MS = 5_000;
const LOG_MS = 5_000;

export function JobPage({ id }: { id: string }) {
  const job = usePoll(() => api<Job>('GET', `/v1/jobs/${encodeURIComponent(id)}`), JOB_MS, [id]);
  if (job.error instanceof ApiError && job.error.status === 404)
    return (
      <section>
        <h2>Job {id}</h2>
        <p role="alert">No such job, or not one of your projects'.</p>
      </section>
    );
  const j = job.data;
  return (
    <>
      <section aria-labelledby="job-title">
        <h2 id="job-title">{j ? j.name : `Job ${id}`}</h2>
        <ErrorNote error={job.error} />
        {j && (
          <>
            <p class="facts">
              <span class={`state state-${j.state.toLowerCase()}`} data-state={j.state}>
                {j.state}
              </span>
              {j.stateReason && <span class="reason">{j.stateReason}</span>}
              {j.exitCode !== undefined && <span>exit code {j.exitCode}</span>}
            </p>
            <dl class="facts-list">
              <dt>Id</dt>
              <dd>{j.id}</dd>
              <dt>Project</dt>
              <dd>{j.project}</dd>
              <dt>Owner</dt>
              <dd>{j.owner}</dd>
              <dt>Pool</dt>
              <dd>
                {j.pool}, {j.gpus * j.nodeCount} GPU{j.gpus * j.nodeCount === 1 ? '' : 's'}
              </dd>
              <dt>Image</dt>
              <dd>{j.image}</dd>
              <dt>Command</dt>
              <dd>
                <code>{j.command.join(' ')}</code>
              </dd>
              {isQueued(j) && (
                <>
                  <dt>Place in queue</dt>
                  <dd>{j.queuePosition === undefined ? '—' : j.queuePosition + 1}</dd>
                  <dt>Starts at the latest</dt>
                  <dd>{j.latestStartAt ? clock(j.latestStartAt) : (j.latestStartReason ?? 'no promise')}</dd>
                </>
              )}
            </dl>
            <Timeline job={j} />
            <JobActions job={j} onChange={job.refresh} />
          </>
        )}
      </section>
      {j?.arrayId && <ArrayMembers arrayId={j.arrayId} current={j.id} />}
      {j && <LiveLog job={j} />}
      {j && <Outputs job={j} />}
      {j && j.state === 'RUNNING' && <ExecForm job={j} />}
    </>
  );
}

function Timeline({ job }: { job: Job }) {
  const steps: [string, string | undefined][] = [
    ['Submitted', job.createdAt],
    ['Admitted', job.admittedAt],
    ['Started', job.startedAt],
    [isTerminal(job) ? 'Was to expire' : 'Expires', job.expiresAt],
    [`Ended ${job.state}`, job.finishedAt],
  ];
  return (
    <section aria-labelledby="timeline-title">
      <h3 id="timeline-title">Timeline</h3>
      <ol class="timeline">
        {steps
          .filter(([, at]) => at)
          .map(([what, at]) => (
            <li key={what}>
              <time dateTime={at}>{clock(at)}</time> {what}
            </li>
          ))}
      </ol>
    </section>
  );
}

function ArrayMembers({ arrayId, current }: { arrayId: string; current: string }) {
  const members = usePoll(
    () => api<Page<Job>>('GET', `/v1/jobs?array=${encodeURIComponent(arrayId)}&limit=100`),
    JOB_MS * 2,
    [arrayId],
  );
  return (
    <section aria-labelledby="array-title">
      <h3 id="array-title">Array {arrayId}</h3>
      <ErrorNote error={members.error} />
      <ol class="array" start={0}>
        {members.data?.items.map((m) => (
          <li key={m.id}>
            {m.id === current ? <strong>{m.name}</strong> : <Link href={jobHref(m.id)}>{m.name}</Link>} {m.state}
          </li>
        ))}
      </ol>
    </section>
  );
}

/** The log's tail, then only what was written after it (the API's nextToken), until the job has ended. */
function LiveLog({ job }: { job: Job }) {
  const [lines, setLines] = useState<string[]>([]);
  const [follow, setFollow] = useState(true);
  const token = useRef<string | undefined>(undefined);
  const ended = isTerminal(job);
  const queued = isQueued(job);
  const box = useRef<HTMLPreElement>(null);
  // Before the poll's own effect, so that another job's log starts from its tail.
  useEffect(() => {
    token.current = undefined;
    setLines([]);
  }, [job.id]);
  const log = usePoll(
    async () => {
      const query = token.current ? `nextToken=${encodeURIComponent(token.current)}` : 'tail=1000';
      const page = await api<JobLogs>('GET', `/v1/jobs/${encodeURIComponent(job.id)}/logs?${query}`);
      if (page.nextToken) token.current = page.nextToken;
      if (page.lines.length) setLines((old) => [...old, ...page.lines.map((l) => l.message)].slice(-5000));
      return page;
    },
    // A queued job has written nothing yet; an ended one nothing more: read once then.
    ended || queued ? 0 : LOG_MS,
    [job.id, ended, queued],
  );
  useEffect(() => {
    if (follow && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [lines, follow]);
  return (
    <section aria-labelledby="log-title">
      <h3 id="log-title">Log</h3>
      <label class="inline">
        <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.currentTarget.checked)} /> Follow the end
      </label>
      <ErrorNote error={log.error} />
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable log must be reachable from the keyboard */}
      <pre class="log" ref={box} tabIndex={0} role="log" aria-label={`log of ${job.name}`}>
        {lines.length ? lines.join('\n') : ended ? '(no output)' : '(nothing yet)'}
      </pre>
    </section>
  );
}
