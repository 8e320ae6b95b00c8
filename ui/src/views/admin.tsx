/** Quotas and GPU-hour budgets with their use, and the pools' caps (admins change them here). */
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { clock } from '../format.js';
import { usePoll } from '../poll.js';
import type { Page, Pool, Quota } from '../types.js';
import { DataTable, ErrorNote } from './parts.js';

const ADMIN_MS = 30_000;

export function Admin() {
  const quotas = usePoll(() => api<Page<Quota>>('GET', '/v1/quotas?limit=100'), ADMIN_MS, []);
  const pools = usePoll(() => api<Page<Pool>>('GET', '/v1/pools?limit=100'), ADMIN_MS, []);
  const rows = quotas.data?.items ?? [];
  const counted = rows.filter((q) => q.resource !== 'gpuHours');
  const budgets = rows.filter((q) => q.resource === 'gpuHours');
  return (
    <>
      <section aria-labelledby="quotas-title">
        <h2 id="quotas-title">Quotas</h2>
        <ErrorNote error={quotas.error} />
        <DataTable
          caption="Each project's limits and what it uses now"
          columns={['Project', 'Resource', 'Used', 'Limit']}
        >
          {counted.map((q) => (
            <tr key={`${q.project}/${q.resource}`}>
              <td>{q.project}</td>
              <td>{q.resource}</td>
              <td>{q.used}</td>
              <td>
                <Use used={q.used} limit={q.hardLimit} what={`${q.project} ${q.resource}`} />
              </td>
            </tr>
          ))}
        </DataTable>
      </section>
      <section aria-labelledby="budgets-title">
        <h2 id="budgets-title">GPU-hour budgets</h2>
        {quotas.data && budgets.length === 0 ? (
          <p>No project has a GPU-hour budget.</p>
        ) : (
          <DataTable
            caption="Each project's GPU-hours this period: spent, reserved, limit"
            columns={['Project', 'Period', 'Spent', 'Reserved', 'Budget']}
          >
            {budgets.map((q) => (
              <tr key={q.project}>
                <td>{q.project}</td>
                <td>
                  {q.period}, until {clock(q.periodEnd)}
                </td>
                <td>{q.spent?.toFixed(2)}</td>
                <td>{q.reserved?.toFixed(2)}</td>
                <td>
                  <Use used={q.used} limit={q.hardLimit} what={`${q.project} GPU-hours`} />
                </td>
              </tr>
            ))}
          </DataTable>
        )}
      </section>
      <section aria-labelledby="caps-title">
        <h2 id="caps-title">Pool caps</h2>
        <ErrorNote error={pools.error} />
        {pools.data?.items.map((pool) => (
          <PoolCap key={pool.name} pool={pool} onChange={pools.refresh} />
        ))}
      </section>
    </>
  );
}

function Use({ used, limit, what }: { used: number; limit: number; what: string }) {
  return (
    <>
      <meter min={0} max={Math.max(limit, used, 1)} value={used} aria-label={`${what}: ${used} of ${limit}`} /> {limit}
    </>
  );
}

function PoolCap({ pool, onChange }: { pool: Pool; onChange(): void }) {
  const [cap, setCap] = useState(String(pool.maxGpus));
  const [error, setError] = useState<Error>();
  const id = `cap-${pool.name}`;
  return (
    <form
      class="inline cap"
      onSubmit={async (e) => {
        e.preventDefault();
        setError(undefined);
        try {
          await api('PATCH', `/v1/pools/${encodeURIComponent(pool.name)}`, { maxGpus: Number(cap) });
          onChange();
        } catch (err) {
          setError(err as Error);
        }
      }}
    >
      <label for={id}>
        Cap of pool {pool.name} ({pool.usedGpus} in use)
      </label>
      <input id={id} type="number" min={0} required value={cap} onInput={(e) => setCap(e.currentTarget.value)} />
      <button type="submit">Save cap</button>
      <ErrorNote error={error} />
    </form>
  );
}
