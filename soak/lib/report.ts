/** The soak's table on stdout and docs/reliability.md, from one run's results. Pure: strings in, strings out. */
import { markdownTable, num, textTable } from '../../bench/lib/render.js';
import type { Machine } from '../../bench/lib/results.js';
import { EXPIRY_GRACE_MS, OUTCOME_BAND_MS, type Row } from './invariants.js';
import { FIFO_TOLERANCE_MS, STALL_MS } from './queue-rules.js';
import type { SoakProfile } from './options.js';
import type { SoakRecord } from './record.js';

export interface SoakResults {
  schema: 1;
  mode: 'quick' | 'full';
  seed: number;
  startedAt: string;
  finishedAt: string;
  command: string;
  git: { commit: string; dirty: boolean };
  machine: Machine;
  profile: SoakProfile;
  ok: boolean;
  rows: Row[];
  record: SoakRecord;
}

export function verdictLabel(ok: boolean | null): string {
  return ok === null ? '-' : ok ? 'OK' : 'BROKEN';
}

/** The table on stdout: every row, then the examples of each broken one. */
export function renderTable(rows: readonly Row[]): string {
  const table = textTable(
    ['invariant', 'count', 'verdict'],
    rows.map((r) => [r.label, r.ok === null ? (r.value ?? '') : String(r.count), verdictLabel(r.ok)]),
  );
  const details = rows
    .filter((r) => r.ok === false || (r.ok === null && r.detail.length))
    .map((r) => [`${r.label}:`, ...r.detail.map((d) => `  - ${d}`)].join('\n'));
  return [table, ...details].join('\n\n');
}

/** What each row means: the same text in the generated docs and, by reference, in soak/README.md. */
export const ROW_MEANINGS: [string, string][] = [
  [
    'outcome mismatches',
    `Each job runs \`sleep S; exit C\` (S, C and the live timeout T chosen by the soak). From the job's own start stamp and its \`expiresAt\`: SUCCEEDED (C = 0) or FAILED with exit C when it ends more than ${OUTCOME_BAND_MS / 1000} s before \`expiresAt\`, EXPIRED when it would end more than ${OUTCOME_BAND_MS / 1000} s after, either inside that band. A job that never started, or ended with another exit code, counts.`,
  ],
  [
    'jobs run twice',
    'Each job appends `<FLARE_JOB_ID> start` to a marker file as its first instruction: ids with more than one line.',
  ],
  [
    `processes alive past expiresAt + ${EXPIRY_GRACE_MS / 1000} s`,
    "The soak samples /proc every 200 ms for processes whose environment carries this run's id; a job whose process (or its own `term`/`end` line) was seen later than that.",
  ],
  [
    'GPU overshoot',
    "Samples where a pool's `usedGpus` exceeded its `maxGpus` or a project's `gpus` quota `used` its `hardLimit` (GET /v1/pools and /v1/quotas about every second), or where the jobs with live processes held more GPUs than a pool's cap or a project's quota.",
  ],
  [
    'leaked GPUs and quota units',
    "Once every job is terminal: the sum of every pool's `usedGpus` and every project's `used` (gpus, jobs) still counted. Must be 0.",
  ],
  [
    'FIFO violations',
    `invariant 3 of [concepts.md](concepts.md), pools without backfill: a job admitted before an older job of its pool that had been submitted (over ${FIFO_TOLERANCE_MS} ms before) and was held by nothing but the queue — same project, or its project had room for it ${FIFO_TOLERANCE_MS} ms before and at that admission (from \`admittedAt\`/\`finishedAt\` of all jobs). A job that does not fit the pool blocks younger ones, so the pool's room is not asked.`,
  ],
  [
    'stalled waits',
    `A job that waited over ${STALL_MS / 1000} s, outside outages (plane down, or DynamoDB Local down until a store route answers, plus 1 s), while its pool and its project had room for it and no older job of its pool that its quota let through, or of its own project, was waiting: the drain that should have admitted it did not run (the reconciler's pass picks it up later).`,
  ],
  [
    'missing notifications',
    "The plane's config has a Slack webhook for terminal states on a loopback server the soak runs: a terminal job with no message naming its final state.",
  ],
  [
    'duplicate notifications',
    'A job with more than one terminal message (the notifier sends one per state change, and a job has one terminal state).',
  ],
  [
    '5xx answers other than 503',
    'Every HTTP answer the soak got (submits, samples, reads), by route and status. Refused connections while the plane is down are counted apart ("no answer").',
  ],
  [
    'leftover processes',
    "After the last job ended and the plane was stopped with SIGTERM: this run's job processes and DynamoDB Local JVMs of its data directory still alive (the job supervisor may linger; it is not counted).",
  ],
  [
    'jobs lost or not ended',
    'A submit never accepted (it is retried with the same Idempotency-Key until the deadline), an accepted job the API no longer knows, or one not terminal by the deadline.',
  ],
  [
    'terminal records changed',
    'A job the soak read terminal (state, exit code, finishedAt) whose record said otherwise at the end: a terminal write that was answered and then lost, or rewritten.',
  ],
  [
    'expiry overshoot',
    'For jobs that ran into their expiry: process end (its `term` line, else the first sample without it) minus `expiresAt`; p50, p99, max.',
  ],
  [
    'kills',
    "SIGKILLs of the plane's node process (not its group), of the DynamoDB Local JVM of the data directory and of the job supervisor (`<dataDir>/supervisor.pid`), at random moments; the plane is restarted after each of its kills, one outage lasting longer than any live timeout.",
  ],
  [
    'findings',
    'What the soak had to do itself: a DynamoDB Local JVM that outlived the plane, a store the plane did not bring back (the soak then restarts the plane), a plane that would not start.',
  ],
];

export function renderDocs(r: SoakResults): string {
  const m = r.machine;
  const out: string[] = [];
  out.push('# Reliability', '');
  out.push(
    '<!-- Generated by `npm run soak -- --write-docs` (soak/run.ts) from one full run; change soak/lib/report.ts, not this file. -->',
    '',
  );
  out.push(
    "Flare's promise is a hard live timeout with nothing lost when things break. `npm run soak` checks it: it starts `flare local` as a child process " +
      'with a fresh data directory, submits jobs of random length, exit code and live timeout from three projects with `gpus` quotas into two pools, ' +
      'SIGKILLs the plane (one outage longer than every live timeout), DynamoDB Local and the job supervisor at random moments, and counts what broke. ' +
      'How it works: [soak/README.md](../soak/README.md).',
    '',
  );
  out.push(
    '```sh',
    'npm run soak                 # full: 300 jobs, 10-15 min',
    'npm run soak -- --quick      # 40 jobs, under 3 min',
    'npm run soak -- --write-docs # a full run that rewrites this page',
    '```',
    '',
  );
  out.push('## The run', '');
  out.push(
    markdownTable(
      ['', ''],
      [
        ['date', r.startedAt],
        ['command', `\`${r.command}\``],
        ['seed', String(r.seed)],
        ['commit', `${r.git.commit}${r.git.dirty ? ' (with uncommitted changes)' : ''}`],
        ['jobs', String(r.profile.jobs)],
        ['machine', `${m.cpu}, ${m.cores} cores, ${num(m.memoryGb, 0)} GB memory`],
        ['OS', `${m.os} (kernel ${m.kernel})`],
        ['Node', m.node],
        ['load average (1 min)', `${num(m.loadStart, 2)} before, ${num(m.loadEnd, 2)} after`],
      ],
    ),
    '',
  );
  out.push('## Invariants', '');
  out.push(
    markdownTable(
      ['row', 'count', 'verdict'],
      r.rows.map((row) => [row.label, row.ok === null ? (row.value ?? '') : String(row.count), verdictLabel(row.ok)]),
    ),
    '',
  );
  const broken = r.rows.filter((row) => row.ok === false || (row.ok === null && row.detail.length));
  if (broken.length) {
    out.push('## What broke, with examples', '');
    for (const row of broken)
      out.push(`**${row.label}**`, '', ...row.detail.map((d) => `- ${d.replace(/\|/g, '\\|')}`), '');
  }
  out.push('## What each row means', '');
  out.push(markdownTable(['row', 'rule'], ROW_MEANINGS), '');
  out.push(
    'A row is OK when its count is 0. The run exits non-zero when any row is broken. The JSON of every run (every job, sample, notification and kill) is written to `soak/results/<timestamp>.json` (git-ignored).',
    '',
  );
  return out.join('\n');
}
