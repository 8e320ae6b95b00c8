/**
 * `npm run soak [-- options]`: a fault-injecting soak of the local control
 * plane. Starts `flare local` with a fresh data directory, submits jobs,
 * SIGKILLs the plane, DynamoDB Local and the job supervisor at random moments,
 * and prints a table of invariants with counts; exits 1 when one is broken.
 * See soak/README.md.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeMachine, gitState } from '../bench/lib/machine.js';
import { SoakClient } from './lib/client.js';
import { drive } from './lib/driver.js';
import { startHookServer } from './lib/hooks.js';
import { computeVerdict } from './lib/invariants.js';
import { parseArgs, USAGE } from './lib/options.js';
import { planJobs, planKills, POOLS, PROJECTS, rng } from './lib/plan.js';
import { freePort, SoakPlane } from './lib/plane.js';
import { alive, dynamoDbPids, gone, JobProcesses, kill, supervisorPid } from './lib/procs.js';
import type { SoakRecord } from './lib/record.js';
import { renderDocs, renderTable, type SoakResults } from './lib/report.js';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

async function main(): Promise<number> {
  const parsed = parseArgs(process.argv.slice(2));
  if ('help' in parsed) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if ('error' in parsed) {
    process.stderr.write(`soak: ${parsed.error}\n${USAGE}\n`);
    return 2;
  }
  const { profile, seed } = parsed;
  process.chdir(REPO_ROOT); // the plane is started as `node --import tsx bin/flare.ts`
  const say = (line: string) => process.stdout.write(`soak: ${line}\n`);
  const random = rng(seed);
  const planned = planJobs(profile, random);
  const kills = planKills(profile, random);
  const runId = `soak-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  const dir = await mkdtemp(join(tmpdir(), 'flare-soak-'));
  const loadStart = loadavg()[0];
  // The code that ran: HEAD and the tree at the start (others may commit while it runs).
  const git = gitState(REPO_ROOT);
  say(`${profile.mode} run, ${planned.length} jobs, seed ${seed}, scratch ${dir}`);
  say(`kills planned: ${kills.map((k) => (k.kind === 'plane' ? `plane (down ${k.outageS} s)` : k.kind)).join(', ')}`);

  const hooks = await startHookServer();
  const record: SoakRecord = {
    runId,
    startedAt: Date.now(),
    endedAt: 0,
    pools: POOLS.map((p) => ({ ...p })),
    quotas: PROJECTS.map((p) => ({ project: p.name, gpus: p.gpus })),
    jobs: planned.map((job) => ({ ...job, attempts: 0 })),
    stamps: [],
    procSamples: [],
    poolSamples: [],
    quotaSamples: [],
    finalPools: [],
    finalQuotas: [],
    notices: [],
    http: {},
    kills: [],
    outages: [],
    findings: [],
    leftover: { jobPids: [], jvmPids: [] },
  };
  const tokens = {
    adminToken: `soak-admin-${randomBytes(12).toString('hex')}`,
    memberToken: `soak-member-${randomBytes(12).toString('hex')}`,
  };
  const plane = await SoakPlane.create(
    { dir, port: await freePort(), hookUrl: hooks.url, ...tokens },
    record.findings,
    record.outages,
  );
  const procs = new JobProcesses(runId);
  // Ctrl-C: the jobs run detached from this process, so they are ended here, not left to their timeouts.
  process.once('SIGINT', () => {
    say('interrupted: stopping the plane, the supervisor and the jobs');
    plane.close();
    void cleanUp(plane.dataDir, procs)
      .then(() =>
        parsed.keep ? undefined : rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 }),
      )
      .finally(() => process.exit(130));
  });
  try {
    await plane.start();
    say(`plane listening on ${plane.url}; log in ${plane.logPath}`);
    record.startedAt = Date.now();
    await drive({
      profile,
      plane,
      admin: new SoakClient(plane.url, tokens.adminToken, record.http),
      member: new SoakClient(plane.url, tokens.memberToken, record.http),
      hooks,
      record,
      kills,
      markerPath: join(dir, 'markers'),
      procs,
      progress: say,
    });
    await plane.stop();
    await new Promise((r) => setTimeout(r, 2_000));
    record.leftover = { jobPids: [...procs.scan().values()].flat(), jvmPids: dynamoDbPids(plane.dataDir) };
  } finally {
    record.endedAt = Date.now();
    plane.close();
    await hooks.close();
    await cleanUp(plane.dataDir, procs);
    if (!parsed.keep) await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  }

  const verdict = computeVerdict(record);
  const results: SoakResults = {
    schema: 1,
    mode: profile.mode,
    seed,
    startedAt: new Date(record.startedAt).toISOString(),
    finishedAt: new Date(record.endedAt).toISOString(),
    command: `npm run soak${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    git,
    machine: describeMachine(loadStart),
    profile,
    ok: verdict.ok,
    rows: verdict.rows,
    record,
  };
  const resultsDir = join(REPO_ROOT, 'soak', 'results');
  await mkdir(resultsDir, { recursive: true });
  const resultPath = join(resultsDir, `${results.startedAt.replace(/[:.]/g, '-')}.json`);
  await writeFile(resultPath, `${JSON.stringify(results, null, 1)}\n`);
  process.stdout.write(`\n${renderTable(verdict.rows)}\n\n`);
  say(`results in ${resultPath}${parsed.keep ? `; scratch kept in ${dir}` : ''}`);
  if (parsed.writeDocs) {
    await writeFile(join(REPO_ROOT, 'docs', 'reliability.md'), renderDocs(results));
    say('docs/reliability.md rewritten');
  }
  say(
    verdict.ok
      ? 'every invariant held'
      : `BROKEN: ${verdict.rows
          .filter((r) => r.ok === false)
          .map((r) => r.label)
          .join(', ')}`,
  );
  return verdict.ok ? 0 : 1;
}

/** Nothing of the run may outlive it: the supervisor is asked to stop its jobs, then whatever is left is killed, by pid. */
async function cleanUp(dataDir: string, procs: JobProcesses): Promise<void> {
  const supervisor = supervisorPid(dataDir);
  if (supervisor !== undefined) {
    kill(supervisor, 'SIGTERM');
    if (!(await gone([supervisor], 15_000))) kill(supervisor, 'SIGKILL');
  }
  const left = [...[...procs.scan().values()].flat(), ...dynamoDbPids(dataDir)].filter(alive);
  for (const pid of left) kill(pid, 'SIGKILL');
  await gone(left, 5_000);
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`soak: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
