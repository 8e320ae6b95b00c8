/** `flare stats`, `flare health`. */
import type { Command } from '../command.js';
import { stringOf } from '../command.js';
import { ExitCode } from '../errors.js';
import { fields, table } from '../output.js';
import type { StatsFigures, StatsView } from '../views.js';

const ACTIVE = ['PENDING', 'WAITING', 'LAUNCHING', 'RUNNING', 'STOPPING'];

export const serviceCommands: Command[] = [
  {
    name: 'stats',
    summary: 'Jobs by state, GPU-hours, waiting time p50/p95: overall, per pool, per project',
    usage: '[--project P]',
    description: 'Members see their projects; admins every project.',
    options: { project: { type: 'string', value: 'P', help: 'only this project' } },
    examples: ['flare stats', 'flare stats --project vision --output json'],
    async run(ctx, input) {
      const stats = await ctx.api().get<StatsView>('/v1/stats', { project: stringOf(input.values, 'project') });
      if (ctx.json) {
        ctx.printJson(stats);
        return 0;
      }
      const rows: unknown[][] = [figureRow('all', stats)];
      for (const [name, f] of Object.entries(stats.byPool ?? {})) rows.push(figureRow(`pool ${name}`, f));
      for (const [name, f] of Object.entries(stats.byProject ?? {})) rows.push(figureRow(`project ${name}`, f));
      ctx.print(
        table(
          [
            'SCOPE',
            'JOBS',
            'ACTIVE',
            'SUCCEEDED',
            'FAILED',
            'EXPIRED',
            'CANCELLED',
            'GPU-HOURS',
            'WAIT P50',
            'WAIT P95',
          ],
          rows,
        ),
      );
      const scope =
        stats.projects === null || stats.projects === undefined
          ? 'every project'
          : stats.projects.length
            ? `projects ${stats.projects.join(', ')}`
            : 'no projects';
      ctx.print(
        `\n(${scope}${stats.truncated ? '; only the newest jobs were counted' : ''}; waits in seconds from submission to admission)`,
      );
      return 0;
    },
  },
  {
    name: 'health',
    summary: 'Is the control plane up? (needs no token)',
    usage: '',
    options: {},
    examples: ['flare health', 'flare health --api http://127.0.0.1:8080'],
    epilogue: 'exit codes: 0 healthy, 1 degraded or unreachable',
    async run(ctx) {
      const client = ctx.api({ auth: false });
      // 503 carries the same body as 200: which components are not ok.
      const health = await client.send<{ status?: string; components?: Record<string, unknown> }>('GET', '/v1/health', {
        accept: [503],
      });
      if (ctx.json) ctx.printJson(health);
      else
        ctx.print(
          fields([
            ['Status', health.status],
            ...Object.entries(health.components ?? {}).map(([k, v]) => [`  ${k}`, componentText(v)] as const),
          ]),
        );
      return health.status === 'ok' ? ExitCode.OK : ExitCode.API;
    },
  },
];

/** A component of /v1/health as a line: `ok`, `ok (pid 4242, restarts 0)`, `running 3`; never raw JSON. */
export function componentText(value: unknown): string {
  if (value === null || typeof value !== 'object') return String(value);
  const { status, ...rest } = value as Record<string, unknown>;
  const details = Object.entries(rest).map(([k, v]) => `${k} ${typeof v === 'object' ? JSON.stringify(v) : v}`);
  if (status === undefined) return details.join(', ');
  return details.length ? `${status} (${details.join(', ')})` : String(status);
}

function figureRow(scope: string, f: StatsFigures): unknown[] {
  const by = f.jobsByState ?? {};
  const active = ACTIVE.reduce((sum, s) => sum + (by[s] ?? 0), 0);
  return [
    scope,
    f.totalJobs,
    active,
    by.SUCCEEDED ?? 0,
    by.FAILED ?? 0,
    by.EXPIRED ?? 0,
    by.CANCELLED ?? 0,
    f.gpuHours,
    f.waitingSeconds?.p50,
    f.waitingSeconds?.p95,
  ];
}
