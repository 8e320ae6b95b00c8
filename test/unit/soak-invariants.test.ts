/**
 * The soak's checker (soak/lib/invariants.ts, queue-rules.ts): each invariant
 * row is fed a recorded run that keeps it, then one that breaks it, so a
 * checker that stops counting is caught here and not in a 15-minute soak.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatSlack } from '../../lambdas/core/notification.js';
import type { JobStateChange } from '../../lambdas/ports/events.js';
import { parseSlackNotice } from '../../soak/lib/hooks.js';
import { allowedOutcomes, computeVerdict, sightings } from '../../soak/lib/invariants.js';
import { parseStamps } from '../../soak/lib/plan.js';
import { fifoViolations, stalledWaits } from '../../soak/lib/queue-rules.js';
import type { SoakRecord, SubmittedJob } from '../../soak/lib/record.js';

const T0 = Date.parse('2030-01-01T00:00:00.000Z');
const iso = (offsetMs: number) => new Date(T0 + offsetMs).toISOString();
const POOLS = [
  { name: 'alpha', gpus: 4 },
  { name: 'beta', gpus: 3 },
];
const QUOTAS = [
  { project: 'vision', gpus: 3 },
  { project: 'audio', gpus: 2 },
];
const QUOTA_MAP = new Map(QUOTAS.map((q) => [q.project, q.gpus]));

function job(
  over: Partial<SubmittedJob> & { name: string },
  times: { created: number; admitted?: number; started?: number; finished?: number; timeoutS?: number },
  state = 'SUCCEEDED',
): SubmittedJob {
  const timeoutS = over.timeoutS ?? times.timeoutS ?? 5;
  const id = `j-${over.name}`;
  return {
    index: 0,
    project: 'vision',
    pool: 'alpha',
    gpus: 1,
    timeoutS,
    sleepS: 2,
    exitCode: 0,
    submitAtS: 0,
    attempts: 1,
    id,
    ...over,
    final: {
      id,
      state,
      exitCode: state === 'SUCCEEDED' ? 0 : state === 'FAILED' ? (over.exitCode ?? 1) : undefined,
      createdAt: iso(times.created),
      admittedAt: times.admitted === undefined ? undefined : iso(times.admitted),
      startedAt: times.started === undefined ? undefined : iso(times.started),
      expiresAt: times.started === undefined ? undefined : iso(times.started + timeoutS * 1000),
      finishedAt: times.finished === undefined ? undefined : iso(times.finished),
    },
  };
}

/** Two jobs that kept every rule: one ended in time, one ran into its expiry and was stopped 10 ms after it. */
function cleanRecord(): SoakRecord {
  const ok = job({ name: 'ok', sleepS: 2, timeoutS: 5 }, { created: 0, admitted: 0, started: 50, finished: 2_100 });
  const late = job(
    { name: 'late', sleepS: 8, timeoutS: 3, pool: 'beta', project: 'audio' },
    { created: 10, admitted: 10, started: 90, finished: 3_200 },
    'EXPIRED',
  );
  const samples = [];
  for (let t = 100; t <= 3_400; t += 200)
    samples.push({ at: T0 + t, jobIds: [...(t <= 2_000 ? ['j-ok'] : []), ...(t <= 3_000 ? ['j-late'] : [])] });
  return {
    runId: 'soak-test',
    startedAt: T0,
    endedAt: T0 + 10_000,
    pools: POOLS,
    quotas: QUOTAS,
    jobs: [ok, late],
    stamps: [
      { jobId: 'j-ok', kind: 'start', at: T0 + 60 },
      { jobId: 'j-ok', kind: 'end', at: T0 + 2_060 },
      { jobId: 'j-late', kind: 'start', at: T0 + 100 },
      { jobId: 'j-late', kind: 'term', at: T0 + 3_100 },
    ],
    procSamples: samples,
    poolSamples: [{ at: T0 + 500, name: 'alpha', usedGpus: 1, maxGpus: 4 }],
    quotaSamples: [{ at: T0 + 500, project: 'vision', resource: 'gpus', used: 1, hardLimit: 3 }],
    finalPools: [
      { at: T0 + 9_000, name: 'alpha', usedGpus: 0, maxGpus: 4 },
      { at: T0 + 9_000, name: 'beta', usedGpus: 0, maxGpus: 3 },
    ],
    finalQuotas: [{ at: T0 + 9_000, project: 'vision', resource: 'gpus', used: 0, hardLimit: 3 }],
    notices: [
      { at: T0 + 2_200, jobId: 'j-ok', state: 'SUCCEEDED', previousState: 'STOPPING' },
      { at: T0 + 3_300, jobId: 'j-late', state: 'EXPIRED', previousState: 'STOPPING' },
    ],
    http: { 'POST /v1/jobs': { '202': 2, '503': 3, network: 4 }, 'GET /v1/pools': { '200': 5 } },
    kills: [{ kind: 'plane', at: T0 + 1_000, outageMs: 500 }],
    outages: [],
    findings: [],
    leftover: { jobPids: [], jvmPids: [] },
  };
}

const row = (record: SoakRecord, key: string) => {
  const found = computeVerdict(record).rows.find((r) => r.key === key);
  assert.ok(found, `row ${key}`);
  return found;
};

describe('soak invariants', () => {
  it('a run that kept every rule has every invariant at 0 and passes', () => {
    const verdict = computeVerdict(cleanRecord());
    for (const r of verdict.rows.filter((x) => x.ok !== null))
      assert.equal(r.count, 0, `${r.label}: ${r.detail.join('; ')}`);
    assert.equal(verdict.ok, true);
    assert.equal(verdict.expiryOvershootMs.n, 1);
    assert.ok(Math.abs(verdict.expiryOvershootMs.p50 - 10) < 1);
  });

  it('outcomes: by exit code before expiry, EXPIRED after it, either within the band', () => {
    assert.deepEqual(allowedOutcomes({ sleepS: 2, exitCode: 0 }, T0, T0 + 5_000), ['SUCCEEDED']);
    assert.deepEqual(allowedOutcomes({ sleepS: 2, exitCode: 3 }, T0, T0 + 5_000), ['FAILED']);
    assert.deepEqual(allowedOutcomes({ sleepS: 8, exitCode: 0 }, T0, T0 + 5_000), ['EXPIRED']);
    assert.deepEqual(allowedOutcomes({ sleepS: 4.5, exitCode: 0 }, T0, T0 + 5_000), ['SUCCEEDED', 'EXPIRED']);
    // Its own end line, when there is one, says when it really exited.
    assert.deepEqual(allowedOutcomes({ sleepS: 2, exitCode: 0 }, T0, T0 + 5_000, T0 + 6_500), ['EXPIRED']);
  });

  it('counts a job recorded EXPIRED that exited in time, one FAILED with another exit code, one that never started', () => {
    const record = cleanRecord();
    record.jobs[0].final!.state = 'EXPIRED';
    assert.match(
      row(record, 'outcomes').detail[0],
      /expected SUCCEEDED \(exit 0\), got EXPIRED \(exit 0\), its process exited 2990 ms before expiresAt$/,
    );
    record.jobs[0].final = { ...record.jobs[0].final!, state: 'FAILED', exitCode: 143 };
    record.jobs[0].exitCode = 3;
    assert.equal(row(record, 'outcomes').count, 1);
    const never = cleanRecord();
    never.stamps = never.stamps.filter((s) => s.jobId !== 'j-ok');
    assert.match(row(never, 'outcomes').detail[0], /never started/);
  });

  it('counts a job whose start line appears twice', () => {
    const record = cleanRecord();
    record.stamps.push({ jobId: 'j-ok', kind: 'start', at: T0 + 900 });
    assert.equal(row(record, 'runTwice').count, 1);
  });

  it('counts a process seen more than 1 s past its expiresAt, not one seen 0.5 s past', () => {
    const record = cleanRecord();
    const expiresAt = Date.parse(record.jobs[1].final!.expiresAt!);
    record.procSamples.push({ at: expiresAt + 500, jobIds: ['j-late'] });
    assert.equal(row(record, 'pastExpiry').count, 0);
    record.procSamples.push({ at: expiresAt + 1_500, jobIds: ['j-late'] });
    assert.equal(row(record, 'pastExpiry').count, 1);
  });

  it('counts overshoot from the API samples and from jobs running at once', () => {
    const api = cleanRecord();
    api.poolSamples.push({ at: T0 + 700, name: 'alpha', usedGpus: 5, maxGpus: 4 });
    api.quotaSamples.push({ at: T0 + 700, project: 'vision', resource: 'gpus', used: 4, hardLimit: 3 });
    assert.equal(row(api, 'overshoot').count, 2);
    const procs = cleanRecord();
    procs.jobs.push(job({ name: 'x', gpus: 2 }, { created: 0, admitted: 0, started: 50, finished: 900 }));
    procs.procSamples.push({ at: T0 + 300, jobIds: ['j-ok', 'j-x'] }); // vision: 3 of 3, alpha: 3 of 4
    assert.equal(row(procs, 'overshoot').count, 0);
    procs.jobs.push(job({ name: 'y' }, { created: 0, admitted: 0, started: 50, finished: 900 }));
    procs.procSamples.push({ at: T0 + 400, jobIds: ['j-ok', 'j-x', 'j-y'] }); // vision: 4 of 3
    assert.deepEqual(
      row(procs, 'overshoot').detail.map((d) => d.split(' at ')[0]),
      ['processes: project vision ran jobs of 4 GPUs (quota 3)'],
    );
  });

  it('counts GPUs and quota units still held at the end', () => {
    const record = cleanRecord();
    record.finalPools[0].usedGpus = 2;
    record.finalQuotas.push(
      { at: T0, project: 'audio', resource: 'jobs', used: 1 },
      { at: T0, project: 'audio', resource: 'gpuHours', used: 7 },
    );
    assert.equal(row(record, 'leaked').count, 3);
  });

  it('counts a terminal job never notified with its final state, and one notified twice', () => {
    const missing = cleanRecord();
    missing.notices = missing.notices.filter((n) => n.jobId !== 'j-late');
    assert.equal(row(missing, 'missingNotifications').count, 1);
    const wrong = cleanRecord();
    wrong.notices[1].state = 'FAILED';
    assert.equal(row(wrong, 'missingNotifications').count, 1);
    const twice = cleanRecord();
    twice.notices.push({ ...twice.notices[0], at: T0 + 5_000 });
    assert.equal(row(twice, 'duplicateNotifications').count, 1);
    assert.equal(row(twice, 'missingNotifications').count, 0);
  });

  it('counts 5xx answers but not 503s or refused connections', () => {
    const record = cleanRecord();
    assert.equal(row(record, 'http5xx').count, 0);
    record.http['GET /v1/jobs/{id}'] = { '500': 2, '502': 1 };
    assert.equal(row(record, 'http5xx').count, 3);
  });

  it('counts leftover processes, and jobs never accepted or not ended', () => {
    const record = cleanRecord();
    record.leftover = { jobPids: [101, 102], jvmPids: [103] };
    assert.equal(row(record, 'leftover').count, 3);
    record.jobs.push({
      ...record.jobs[0],
      name: 'never',
      id: undefined,
      final: undefined,
      submitError: 'not accepted before the deadline',
    });
    record.jobs.push(job({ name: 'stuck' }, { created: 0, admitted: 0, started: 50 }, 'RUNNING'));
    assert.equal(row(record, 'unfinished').count, 2);
  });

  it('counts a job read terminal whose record changed by the end', () => {
    const record = cleanRecord();
    record.jobs[0].firstTerminal = { ...record.jobs[0].final!, readAt: T0 + 2_500 };
    assert.equal(row(record, 'rewritten').count, 0);
    record.jobs[0].firstTerminal.finishedAt = iso(1_900);
    assert.equal(row(record, 'rewritten').count, 1);
  });

  it('sightings: first and last sample with the job, and the first without it after that', () => {
    const seen = sightings([
      { at: 1, jobIds: ['a'] },
      { at: 2, jobIds: ['a', 'b'] },
      { at: 3, jobIds: ['b'] },
      { at: 4, jobIds: [] },
    ]);
    assert.deepEqual(seen.get('a'), { firstSeen: 1, lastSeen: 2, goneAt: 3 });
    assert.deepEqual(seen.get('b'), { firstSeen: 2, lastSeen: 3, goneAt: 4 });
  });
});

describe('soak queue rules', () => {
  // B (vision) admitted at 1 s while older A (audio) waited until 3 s.
  const older = (audioHeld: number) => [
    job({ name: 'a', project: 'audio' }, { created: 0, admitted: 3_000, finished: 4_000 }),
    job({ name: 'b', project: 'vision' }, { created: 100, admitted: 1_000, finished: 2_000 }),
    ...(audioHeld
      ? [
          job(
            { name: 'h', project: 'audio', gpus: audioHeld, pool: 'beta' },
            { created: -5_000, admitted: -5_000, finished: 2_900 },
          ),
        ]
      : []),
  ];

  it('FIFO: a younger job admitted while an older one whose project had room waited', () => {
    assert.equal(fifoViolations(older(0), QUOTA_MAP).length, 1);
  });

  it('FIFO: no violation when the older job was held by its own project quota', () => {
    assert.equal(fifoViolations(older(2), QUOTA_MAP).length, 0);
  });

  it('FIFO: no violation when the older job waited behind a quota-blocked job of its own project', () => {
    const jobs = [
      job({ name: 'a0', project: 'audio', gpus: 2 }, { created: -100, admitted: 3_000, finished: 4_000 }),
      ...older(1), // audio holds 1: a0 (2 GPUs) is blocked by the quota, a (1 GPU) waits behind it
    ];
    assert.equal(fifoViolations(jobs, QUOTA_MAP).length, 0);
  });

  it('FIFO: within a project, younger never goes first', () => {
    const jobs = [
      job({ name: 'a', gpus: 2 }, { created: 0, admitted: 3_000, finished: 4_000 }),
      job({ name: 'b' }, { created: 100, admitted: 1_000, finished: 2_000 }),
    ];
    assert.equal(fifoViolations(jobs, QUOTA_MAP).length, 1);
  });

  it('stalls: a job due for 8 s counts, unless the plane was down then', () => {
    const jobs = [job({ name: 'w', project: 'audio', pool: 'beta' }, { created: 0, admitted: 8_000, finished: 9_000 })];
    assert.equal(stalledWaits(jobs, POOLS, QUOTA_MAP, []).length, 1);
    assert.equal(stalledWaits(jobs, POOLS, QUOTA_MAP, [{ from: T0 + 2_000, to: T0 + 6_000 }]).length, 0);
  });

  it('stalls: not while its project is at its quota or its pool is full', () => {
    const quota = [
      job({ name: 'w', project: 'audio', pool: 'beta' }, { created: 0, admitted: 8_000, finished: 9_000 }),
      job(
        { name: 'h', project: 'audio', pool: 'alpha', gpus: 2 },
        { created: -1_000, admitted: -1_000, finished: 7_900 },
      ),
    ];
    assert.equal(stalledWaits(quota, POOLS, QUOTA_MAP, []).length, 0);
    const pool = [
      job({ name: 'w', project: 'audio', pool: 'beta' }, { created: 0, admitted: 8_000, finished: 9_000 }),
      job(
        { name: 'h', project: 'vision', pool: 'beta', gpus: 3 },
        { created: -1_000, admitted: -1_000, finished: 7_900 },
      ),
    ];
    assert.equal(stalledWaits(pool, POOLS, QUOTA_MAP, []).length, 0);
  });
});

describe('soak recorders', () => {
  it('reads the Slack message core/notification.ts formats: job id, previous and final state', () => {
    const event: JobStateChange = {
      eventId: 'e-1',
      jobId: 'j-0123456789abcdef',
      name: 'soak-1',
      project: 'vision',
      owner: 'member',
      pool: 'alpha',
      gpus: 1,
      previousState: 'STOPPING',
      state: 'EXPIRED',
      stateReason: 'live timeout reached',
      at: iso(0),
    };
    const body = JSON.parse(JSON.stringify(formatSlack(event)));
    assert.deepEqual(parseSlackNotice(body, 5), {
      at: 5,
      jobId: 'j-0123456789abcdef',
      previousState: 'STOPPING',
      state: 'EXPIRED',
    });
    assert.equal(parseSlackNotice({ text: 'hello' }, 5), undefined);
  });

  it('parses marker lines into wall-clock ms and skips anything else', () => {
    const stamps = parseStamps(
      'j-a start 1893456000123456789\nj-a term 1893456001000000000\ngarbage\nj-b end notanumber\n',
    );
    assert.deepEqual(stamps, [
      { jobId: 'j-a', kind: 'start', at: 1893456000123.456 },
      { jobId: 'j-a', kind: 'term', at: 1893456001000 },
    ]);
  });
});
