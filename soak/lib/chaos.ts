/**
 * The kills, one after another at random moments: the plane (restarted after
 * its outage), the DynamoDB Local JVM of its data directory (the plane should
 * bring it back; if it does not in time, the soak restarts the plane and says
 * so), the job supervisor (a restarted one should adopt its jobs). Between
 * kills it restarts a plane that exited by itself.
 */
import type { SoakClient } from './client.js';
import type { PlannedKill } from './plan.js';
import type { SoakPlane } from './plane.js';
import { dynamoDbPids, kill, supervisorPid } from './procs.js';
import type { KillRecord } from './record.js';

export interface ChaosContext {
  plane: SoakPlane;
  admin: SoakClient;
  kills: KillRecord[];
  findings: string[];
  storeRecoveryS: number;
  /** When the run began (wall ms): kills are planned in seconds of the plane being up since then. */
  runStart: number;
  /** True once the soak is winding down: no new kill starts. */
  finished(): boolean;
  /** True while some job has a live process. */
  jobRunning(): boolean;
  /** True while jobs are still to be submitted or running. */
  busy(): boolean;
  /** Called once every planned kill is done. */
  killsDone(): void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until `atS` seconds of the plane being up have passed since the run
 * began (sooner when nothing is left to submit or run), restarting a plane
 * that died by itself. False when the soak finished meanwhile.
 */
async function waitFor(ctx: ChaosContext, atS: number): Promise<boolean> {
  const idleSince = Date.now();
  while (
    Date.now() < ctx.runStart + atS * 1000 + ctx.plane.pausedMs() &&
    (ctx.busy() || Date.now() < idleSince + 2_000)
  ) {
    if (ctx.finished()) return false;
    if (!ctx.plane.down && !ctx.plane.running()) {
      ctx.findings.push(
        `the plane exited by itself at ${new Date().toISOString()}: restarted (see ${ctx.plane.logPath})`,
      );
      ctx.plane.markDown();
      await ctx.plane.reapJvms('after the plane exited by itself');
      await ctx.plane.start();
    }
    await sleep(250);
  }
  return !ctx.finished();
}

async function waitForRunningJob(ctx: ChaosContext, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!ctx.jobRunning() && Date.now() < until && !ctx.finished()) await sleep(100);
}

async function storeAnswers(ctx: ChaosContext): Promise<boolean> {
  const answer = await ctx.admin.call('GET', '/v1/pools');
  return answer?.status === 200;
}

async function killDynamoDb(ctx: ChaosContext, record: KillRecord): Promise<void> {
  const pids = dynamoDbPids(ctx.plane.dataDir);
  if (!pids.length) {
    record.detail = 'no DynamoDB Local JVM of the data directory was running';
    return;
  }
  for (const pid of pids) kill(pid, 'SIGKILL');
  record.detail = `pid ${pids.join(', ')}`;
  await sleep(500);
  const until = Date.now() + ctx.storeRecoveryS * 1000;
  while (Date.now() < until) {
    if (await storeAnswers(ctx)) {
      record.recoveredMs = Date.now() - record.at;
      ctx.plane.outages.push({ from: record.at, to: Date.now(), why: 'DynamoDB Local down' });
      return;
    }
    await sleep(500);
  }
  ctx.findings.push(
    `the store did not answer within ${ctx.storeRecoveryS} s of a DynamoDB Local SIGKILL: the soak restarted the plane`,
  );
  ctx.plane.outages.push({ from: record.at, to: Date.now(), why: 'DynamoDB Local down' });
  await ctx.plane.kill();
  await ctx.plane.start();
}

export async function runChaos(ctx: ChaosContext, plan: readonly PlannedKill[]): Promise<void> {
  for (const planned of plan) {
    if (!(await waitFor(ctx, planned.atS))) return;
    if (planned.kind !== 'dynamodb') await waitForRunningJob(ctx, 10_000);
    if (ctx.finished()) return;
    const record: KillRecord = { kind: planned.kind, at: Date.now() };
    ctx.kills.push(record);
    if (planned.kind === 'plane') {
      record.detail = ctx.jobRunning() ? 'with jobs running' : 'no job running';
      await ctx.plane.kill();
      await sleep(Math.max(0, record.at + planned.outageS! * 1000 - Date.now()));
      await ctx.plane.start();
      record.outageMs = Date.now() - record.at;
    } else if (planned.kind === 'dynamodb') {
      await killDynamoDb(ctx, record);
    } else {
      const pid = supervisorPid(ctx.plane.dataDir);
      if (pid === undefined) record.detail = 'no job supervisor was running';
      else {
        kill(pid, 'SIGKILL');
        record.detail = `pid ${pid}${ctx.jobRunning() ? ', with jobs running' : ''}`;
      }
    }
  }
  ctx.killsDone();
  // Keep the plane up until the soak is done.
  while (await waitFor(ctx, Infinity));
}
