/** The files a job kept of its output directory, each downloaded with the session's token. */
import { useState } from 'preact/hooks';
import { api, download } from '../api.js';
import { bytes, clock } from '../format.js';
import { usePoll } from '../poll.js';
import { isTerminal, type Job, type JobOutputs } from '../types.js';
import { ErrorNote } from './parts.js';

export function Outputs({ job }: { job: Job }) {
  const ended = isTerminal(job);
  // Kept files only change while the job runs; once it has ended one read is enough.
  const outputs = usePoll(
    () => api<JobOutputs>('GET', `/v1/jobs/${encodeURIComponent(job.id)}/outputs`),
    ended ? 0 : 30_000,
    [job.id, ended],
  );
  const [error, setError] = useState<Error>();
  const items = outputs.data?.items ?? [];
  return (
    <section aria-labelledby="outputs-title">
      <h3 id="outputs-title">Outputs</h3>
      <ErrorNote error={outputs.error ?? error} />
      {outputs.data && items.length === 0 && <p>No files kept{ended ? '' : ' yet'}.</p>}
      <ul class="outputs">
        {items.map((file) => (
          <li key={file.path}>
            <button
              type="button"
              class="link"
              onClick={() =>
                download(
                  `/v1/jobs/${encodeURIComponent(job.id)}/outputs/${file.path.split('/').map(encodeURIComponent).join('/')}`,
                  file.path.split('/').at(-1)!,
                ).catch((e: Error) => setError(e))
              }
            >
              Download {file.path}
            </button>{' '}
            {bytes(file.size)}, {clock(file.modifiedAt)}
          </li>
        ))}
      </ul>
    </section>
  );
}
