/**
 * One soak run against a started plane: the submitter, the samplers (/proc
 * every 200 ms, pools and quotas every second, active jobs every 2 s), the
 * kills (soak/lib/chaos.ts), then the final reads once every job has ended.
 */
import { readFile } from 'node:fs/promises';
import { TERMINAL_STATES, type JobState } from '../../lambdas/core/job.js';
import { runChaos } from './chaos.js';
import type { SoakClient } from './client.js';
import type { HookServer } from './hooks.js';
import type { SoakProfile } from './options.js';
import { jobArgv, parseStamps, templateName, type PlannedKill } from './plan.js';
import type { SoakPlane } from './plane.js';
import { type JobProcesses, RUN_ENV } from './procs.js';
import type { JobView, PoolSample, QuotaSample, SoakRecord, Stamp, SubmittedJob } from './record.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ended = (state: string) => TERMINAL_STATES.includes(state as JobState);
const PROC_SAMPLE_MS = 200;
const API_SAMPLE_MS = 1_000;
const STATUS_POLL_MS = 2_000;
/** How long the final phase waits for the webhook to hear of every terminal job. */
const NOTIFY_WAIT_MS = 15_000;

export interface DriverSetup {
  profile: SoakProfile;
  plane: SoakPlane;
  admin: SoakClient;
  member: SoakClient;
  hooks: HookServer;
  record: SoakRecord;
  kills: readonly PlannedKill[];
  markerPath: string;
  procs: JobProcesses;
  progress: (line: string) => void;
}

/** Runs from the first submit to the final reads; the caller stops the plane and checks for leftovers. */
export async function drive(s: DriverSetup): Promise<void> {
  const { profile, plane, admin, member, record } = s;
  const deadline = record.startedAt + profile.deadlineS * 1000;
  const states = new Map<string, string>();
  const byId = new Map<string, SubmittedJob>();
  const live = { jobs: new Map<string, number[]>() };
  let submitting = true;
  let killsDone = false;
  let finished = false;
  const active = () => [...states.values()].filter((st) => !ended(st) && st !== 'NOT_FOUND').length;

  const procTimer = setInterval(() => {
    live.jobs = s.procs.scan();
    record.procSamples.push({ at: Date.now(), jobIds: [...live.jobs.keys()] });
  }, PROC_SAMPLE_MS);

  let sampling = false;
  const apiTimer = setInterval(() => {
    if (plane.down || sampling) return;
    sampling = true;
    void samplePoolsAndQuotas(admin)
      .then((sample) => {
        record.poolSamples.push(...sample.pools);
        record.quotaSamples.push(...sample.quotas);
      })
      .finally(() => (sampling = false));
  }, API_SAMPLE_MS);

  let polling = false;
  const statusTimer = setInterval(() => {
    if (plane.down || polling) return;
    polling = true;
    const ids = [...states].filter(([, st]) => !ended(st) && st !== 'NOT_FOUND').map(([id]) => id);
    void inChunks(ids, 6, async (id) => {
      const answer = await admin.call('GET', `/v1/jobs/${id}`);
      if (answer?.status === 200) {
        states.set(id, answer.body.state);
        const job = byId.get(id);
        if (job && ended(answer.body.state)) job.firstTerminal ??= { ...view(answer.body), readAt: Date.now() };
      } else if (answer?.status === 404) states.set(id, 'NOT_FOUND');
    }).finally(() => (polling = false));
  }, STATUS_POLL_MS);

  const chaos = runChaos(
    {
      plane,
      admin,
      kills: record.kills,
      findings: record.findings,
      storeRecoveryS: profile.storeRecoveryS,
      runStart: record.startedAt,
      finished: () => finished,
      jobRunning: () => live.jobs.size > 0,
      busy: () => submitting || active() > 0,
      killsDone: () => void (killsDone = true),
    },
    s.kills,
  );

  const progress = setInterval(() => {
    const done = [...states.values()].filter((st) => ended(st)).length;
    s.progress(
      `${Math.round((Date.now() - record.startedAt) / 1000)} s: ${record.jobs.filter((j) => j.id).length} submitted, ${done} ended, ${live.jobs.size} running, kills ${record.kills.length}/${s.kills.length}${plane.down ? ', plane down' : ''}`,
    );
  }, 10_000);

  try {
    for (const job of record.jobs) {
      const due = () => record.startedAt + job.submitAtS * 1000 + plane.pausedMs();
      while ((Date.now() < due() || active() >= profile.maxActive) && Date.now() < deadline) await sleep(100);
      if (Date.now() >= deadline) break;
      await submit(member, job, s.markerPath, record.runId, deadline);
      if (job.id) {
        states.set(job.id, states.get(job.id) ?? 'PENDING');
        byId.set(job.id, job);
      }
    }
    submitting = false;
    while (Date.now() < deadline && (active() > 0 || !killsDone)) await sleep(250);
    if (Date.now() >= deadline)
      record.findings.push(
        `the deadline (${profile.deadlineS} s) passed with ${active()} jobs active and ${record.kills.length} of ${s.kills.length} kills done`,
      );
  } finally {
    submitting = false;
    finished = true;
    await chaos;
    clearInterval(progress);
    clearInterval(statusTimer);
    clearInterval(apiTimer);
  }

  if (!plane.running()) {
    record.findings.push('the plane was down at the end: started again for the final reads');
    await plane.reapJvms('at the end');
    await plane.start();
  }
  await sleep(2_000);
  await inChunks(
    record.jobs.filter((j) => j.id),
    8,
    async (job) => {
      for (let attempt = 0; attempt < 3 && !job.final; attempt++) {
        const answer = await admin.call('GET', `/v1/jobs/${job.id}`);
        if (answer?.status === 200) job.final = view(answer.body);
        else if (answer?.status === 404) break;
        else await sleep(1_000);
      }
    },
  );
  const final = await samplePoolsAndQuotas(admin);
  record.finalPools = final.pools;
  record.finalQuotas = final.quotas;
  await waitForNotices(s.hooks, record.jobs, NOTIFY_WAIT_MS);
  record.notices = [...s.hooks.notices];
  clearInterval(procTimer);
  record.stamps = await readStamps(s.markerPath);
}

/** Submits with the same Idempotency-Key until accepted, refused with a 4xx, or past the deadline. */
async function submit(
  member: SoakClient,
  job: SubmittedJob,
  markerPath: string,
  runId: string,
  deadline: number,
): Promise<void> {
  const body = {
    template: templateName(job.project, job.pool),
    project: job.project,
    name: job.name,
    command: jobArgv(job, markerPath),
    gpus: job.gpus,
    liveTimeoutMinutes: job.timeoutS / 60,
    env: { [RUN_ENV]: runId },
  };
  while (Date.now() < deadline) {
    job.attempts++;
    const answer = await member.call('POST', '/v1/jobs', body, { 'idempotency-key': `${runId}-${job.index}` });
    if (answer && answer.status >= 200 && answer.status < 300) {
      job.id = answer.body.id;
      return;
    }
    if (answer && answer.status >= 400 && answer.status < 500 && answer.status !== 429) {
      job.submitError = `${answer.status} ${JSON.stringify(answer.body?.error ?? answer.body)}`;
      return;
    }
    await sleep(1_000);
  }
  job.submitError = 'not accepted before the deadline';
}

async function samplePoolsAndQuotas(admin: SoakClient): Promise<{ pools: PoolSample[]; quotas: QuotaSample[] }> {
  const [pools, quotas] = await Promise.all([
    admin.call('GET', '/v1/pools?limit=1000'),
    admin.call('GET', '/v1/quotas?limit=1000'),
  ]);
  const at = Date.now();
  return {
    pools:
      pools?.status === 200
        ? pools.body.items.map((p: PoolSample) => ({ at, name: p.name, usedGpus: p.usedGpus, maxGpus: p.maxGpus }))
        : [],
    quotas:
      quotas?.status === 200
        ? quotas.body.items.map((q: QuotaSample) => ({
            at,
            project: q.project,
            resource: q.resource,
            used: q.used,
            hardLimit: q.hardLimit,
          }))
        : [],
  };
}

function view(body: JobView): JobView {
  const { id, state, stateReason, exitCode, createdAt, admittedAt, startedAt, expiresAt, finishedAt } = body;
  return { id, state, stateReason, exitCode, createdAt, admittedAt, startedAt, expiresAt, finishedAt };
}

async function waitForNotices(hooks: HookServer, jobs: readonly SubmittedJob[], ms: number): Promise<void> {
  const until = Date.now() + ms;
  const due = jobs.filter((j) => j.final && ended(j.final.state));
  while (Date.now() < until) {
    const heard = new Set(hooks.notices.map((n) => `${n.jobId} ${n.state}`));
    if (due.every((j) => heard.has(`${j.id} ${j.final!.state}`))) break;
    await sleep(250);
  }
  await sleep(1_000); // a duplicate may trail the first delivery
}

async function readStamps(path: string): Promise<Stamp[]> {
  return parseStamps(await readFile(path, 'utf8').catch(() => ''));
}

async function inChunks<T>(items: readonly T[], size: number, each: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(each));
}
