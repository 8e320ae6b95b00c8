/** Pools (GPUs in use over time, free now, next free), the queue in order, and the running jobs' time left. */
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { clock, relative, span } from '../format.js';
import { usePoll } from '../poll.js';
import { jobHref, Link } from '../router.js';
import type { Job, Page, Pool, PoolHistory } from '../types.js';
import { DataTable, ErrorNote } from './parts.js';
import { PoolChart } from './pool-chart.js';

/** Seconds between polls: the lists change with each job; the history by the minute. */
const LIST_MS = 10_000;
const HISTORY_MS = 60_000;
const WINDOWS = [1, 6, 24, 168];

export function Overview() {
  const [hours, setHours] = useState(6);
  const pools = usePoll(() => api<Page<Pool>>('GET', '/v1/pools?limit=100'), LIST_MS, []);
  const jobs = usePoll(
    async () => {
      // PENDING lasts only until the submit's admission pass: the queue is the WAITING jobs.
      const [waiting, running] = await Promise.all(
        ['WAITING', 'RUNNING'].map((state) => api<Page<Job>>('GET', `/v1/jobs?state=${state}&limit=100`)),
      );
      return { queued: waiting!.items, running: running!.items };
    },
    LIST_MS,
    [],
  );
  return (
    <>
      <section aria-labelledby="pools-title">
        <h2 id="pools-title">Pools</h2>
        <label class="inline">
          Chart window
          <select value={hours} onChange={(e) => setHours(Number(e.currentTarget.value))}>
            {WINDOWS.map((h) => (
              <option key={h} value={h}>
                {h < 48 ? `${h} h` : `${h / 24} days`}
              </option>
            ))}
          </select>
        </label>
        <ErrorNote error={pools.error} />
        {pools.data?.items.map((pool) => (
          <PoolCard key={pool.name} pool={pool} hours={hours} />
        ))}
        {pools.data?.items.length === 0 && <p>No pools.</p>}
      </section>
      <ErrorNote error={jobs.error} />
      <Queue jobs={jobs.data?.queued} />
      <Running jobs={jobs.data?.running} />
    </>
  );
}

function PoolCard({ pool, hours }: { pool: Pool; hours: number }) {
  const history = usePoll(
    () => api<PoolHistory>('GET', `/v1/pools/${encodeURIComponent(pool.name)}/history?hours=${hours}`),
    HISTORY_MS,
    [pool.name, hours],
  );
  const next = history.data?.releases[0];
  return (
    <article class="pool" aria-label={`pool ${pool.name}`}>
      <h3>{pool.name}</h3>
      <p class="facts">
        <span>
          <strong>{pool.availableGpus}</strong> of {pool.maxGpus} GPUs free
        </span>
        <span>{pool.usedGpus} in use</span>
        <span>{pool.waitingJobs} waiting</span>
        <span>{pool.instanceType}</span>
        {next && (
          <span>
            next {next.gpus} free at {clock(next.at)} ({relative(next.at)})
          </span>
        )}
      </p>
      <ErrorNote error={history.error} />
      {history.data && <PoolChart history={history.data} />}
    </article>
  );
}

function Queue({ jobs }: { jobs?: Job[] }) {
  const ordered = [...(jobs ?? [])].sort(
    (a, b) => a.pool.localeCompare(b.pool) || (a.queuePosition ?? 0) - (b.queuePosition ?? 0),
  );
  return (
    <section aria-labelledby="queue-title">
      <h2 id="queue-title">Queue</h2>
      {jobs && ordered.length === 0 ? (
        <p>Nobody is waiting.</p>
      ) : (
        <DataTable
          caption="Jobs waiting, in the order each pool admits them"
          columns={['Pool', '#', 'Job', 'Project', 'GPUs', 'Why it waits', 'Starts at the latest']}
        >
          {ordered.map((job) => (
            <tr key={job.id} data-job={job.id}>
              <td>{job.pool}</td>
              <td>{job.queuePosition === undefined ? '—' : job.queuePosition + 1}</td>
              <td>
                <JobName job={job} />
              </td>
              <td>{job.project}</td>
              <td>{job.gpus * job.nodeCount}</td>
              <td class="reason">{job.stateReason ?? job.state}</td>
              <td>{job.latestStartAt ? clock(job.latestStartAt) : (job.latestStartReason ?? 'no promise')}</td>
            </tr>
          ))}
        </DataTable>
      )}
    </section>
  );
}

function Running({ jobs }: { jobs?: Job[] }) {
  const now = Date.now();
  return (
    <section aria-labelledby="running-title">
      <h2 id="running-title">Running</h2>
      {jobs && jobs.length === 0 ? (
        <p>No job is running.</p>
      ) : (
        <DataTable
          caption="Running jobs and the time left before their live timeout"
          columns={['Job', 'Project', 'Pool', 'GPUs', 'Time left']}
        >
          {(jobs ?? []).map((job) => {
            const total = job.liveTimeoutMinutes * 60_000;
            const left = job.expiresAt ? Math.max(0, Date.parse(job.expiresAt) - now) : total;
            return (
              <tr key={job.id} data-job={job.id}>
                <td>
                  <JobName job={job} />
                </td>
                <td>{job.project}</td>
                <td>{job.pool}</td>
                <td>{job.gpus * job.nodeCount}</td>
                <td class="time-left">
                  <progress max={total} value={left} aria-label={`time left for ${job.name}`} /> {span(left)} of{' '}
                  {span(total)} (until {clock(job.expiresAt)})
                </td>
              </tr>
            );
          })}
        </DataTable>
      )}
    </section>
  );
}

/** A job's link; an array member also says which of its array it is (its page lists the others). */
function JobName({ job }: { job: Job }) {
  return (
    <>
      <Link href={jobHref(job.id)}>{job.name}</Link>
      {job.arrayIndex !== undefined && (
        <span class="hint">
          {' '}
          {job.arrayIndex + 1} of {job.arraySize ?? '?'} in {job.arrayId}
        </span>
      )}
    </>
  );
}
