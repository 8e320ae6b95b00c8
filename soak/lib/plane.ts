/**
 * `flare local` as a child process, as test/support/local-plane.ts starts it
 * (the same function), from a config this module writes: two pools, three
 * projects with `gpus` quotas, one template per project and pool, the process
 * driver, a Slack webhook on the soak's loopback server for terminal states.
 * It is killed with SIGKILL (its node process only: the job supervisor runs in
 * its own session) and started again on the same data directory and port.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { TERMINAL_STATES } from '../../lambdas/core/job.js';
import { startLocalPlane, type LocalPlane } from '../../test/support/local-plane.js';
import { POOLS, PROJECTS, templateName } from './plan.js';
import { dynamoDbPids, gone, kill, pidsNaming } from './procs.js';

const START_TIMEOUT_MS = 90_000;
/** How long a DynamoDB Local JVM may outlive a killed plane (it exits when its stdin closes) before the soak kills it. */
const JVM_GRACE_MS = 5_000;

export interface PlaneSetup {
  dir: string;
  port: number;
  hookUrl: string;
  adminToken: string;
  memberToken: string;
}

export function planeConfig(setup: PlaneSetup): Record<string, unknown> {
  return {
    host: '127.0.0.1',
    port: setup.port,
    dataDir: 'data',
    users: [
      { name: 'admin', token: setup.adminToken, admin: true },
      { name: 'member', token: setup.memberToken, projects: PROJECTS.map((p) => p.name) },
    ],
    // gpusPerInstance 1: a local pool's slots are handed out one by one.
    pools: POOLS.map((p) => ({ name: p.name, gpus: p.gpus, gpusPerInstance: 1 })),
    quotas: PROJECTS.map((p) => ({ project: p.name, resource: 'gpus', hardLimit: p.gpus })),
    images: [{ name: 'busybox', reference: 'docker.io/library/busybox:1.36', digest: `sha256:${'0'.repeat(64)}` }],
    templates: PROJECTS.flatMap((project) =>
      POOLS.map((pool) => ({
        name: templateName(project.name, pool.name),
        project: project.name,
        pool: pool.name,
        gpus: 1,
        image: 'busybox',
        command: ['true'],
        maxLiveTimeoutMinutes: 60,
      })),
    ),
    compute: { driver: 'process' },
    notifications: [{ type: 'slack', url: setup.hookUrl, states: TERMINAL_STATES }],
  };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export class SoakPlane {
  readonly configPath: string;
  readonly dataDir: string;
  readonly url: string;
  private current: LocalPlane | undefined;
  private readonly log: WriteStream;
  /** Set while the soak keeps the plane down on purpose. */
  down = false;
  private downSince: number | undefined;
  private downTotalMs = 0;

  private constructor(
    readonly setup: PlaneSetup,
    readonly findings: string[],
    readonly outages: { from: number; to: number; why: string }[],
  ) {
    this.configPath = join(setup.dir, 'flare.soak.json');
    this.dataDir = join(setup.dir, 'data');
    this.url = `http://127.0.0.1:${setup.port}`;
    this.log = createWriteStream(join(setup.dir, 'plane.log'), { flags: 'a' });
  }

  static async create(
    setup: PlaneSetup,
    findings: string[],
    outages: { from: number; to: number; why: string }[],
  ): Promise<SoakPlane> {
    const plane = new SoakPlane(setup, findings, outages);
    await writeFile(plane.configPath, `${JSON.stringify(planeConfig(setup), null, 2)}\n`);
    return plane;
  }

  get logPath(): string {
    return join(this.setup.dir, 'plane.log');
  }

  /** How long the plane has been down (killed, or dead by itself) since it first started. */
  pausedMs(): number {
    return this.downTotalMs + (this.downSince === undefined ? 0 : Date.now() - this.downSince);
  }

  /** From now on the plane counts as down (it died, or is about to be killed). */
  markDown(): void {
    this.down = true;
    this.downSince ??= Date.now();
  }

  /** True while the child runs. */
  running(): boolean {
    return this.current !== undefined && this.current.child.exitCode === null && this.current.child.signalCode === null;
  }

  /** Starts the plane; a start that fails is retried (3 tries), and what it left running is killed. */
  async start(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        this.current = await startLocalPlane(this.configPath, START_TIMEOUT_MS);
        const child = this.current.child;
        this.log.write(
          `--- soak: plane started (pid ${child.pid}) at ${new Date().toISOString()}\n${this.current.output()}`,
        );
        child.stdout!.on('data', (d: Buffer) => this.log.write(d));
        child.stderr!.on('data', (d: Buffer) => this.log.write(d));
        child.once('exit', (code, signal) =>
          this.log.write(`--- soak: plane exited (code ${code}, signal ${signal}) at ${new Date().toISOString()}\n`),
        );
        this.down = false;
        if (this.downSince !== undefined) {
          this.downTotalMs += Date.now() - this.downSince;
          this.outages.push({ from: this.downSince, to: Date.now(), why: 'plane down' });
        }
        this.downSince = undefined;
        return;
      } catch (error) {
        const strays = pidsNaming(this.configPath);
        for (const pid of strays) kill(pid, 'SIGKILL');
        await gone(strays, 5_000);
        this.findings.push(
          `the plane did not start (attempt ${attempt}): ${(error as Error).message}; see ${this.logPath}`,
        );
        if (attempt >= 3) throw error;
        await new Promise((r) => setTimeout(r, 3_000));
      }
    }
  }

  /**
   * SIGKILL of the plane's node process only. Its DynamoDB Local JVM should
   * exit when its stdin closes; one still there after a grace is a finding and
   * is killed, so the next start finds the store free.
   */
  async kill(): Promise<void> {
    const child = this.current?.child;
    this.markDown();
    if (child && this.running()) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
    await this.reapJvms('after the plane was SIGKILLed');
  }

  /** Kills DynamoDB Local JVMs of this data directory still there after the grace; each is a finding. */
  async reapJvms(when: string): Promise<void> {
    const deadline = Date.now() + JVM_GRACE_MS;
    let left = dynamoDbPids(this.dataDir);
    while (left.length && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      left = dynamoDbPids(this.dataDir);
    }
    if (!left.length) return;
    this.findings.push(
      `DynamoDB Local (pid ${left.join(', ')}) was still running ${JVM_GRACE_MS / 1000} s ${when}: killed by the soak before the restart`,
    );
    for (const pid of left) kill(pid, 'SIGKILL');
    await gone(left, 5_000);
  }

  /** SIGTERM, as a user stops it; SIGKILL after 20 s (a finding). */
  async stop(): Promise<void> {
    const child = this.current?.child;
    this.down = true;
    if (!child || !this.running()) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => {
      this.findings.push('the plane did not stop within 20 s of SIGTERM: killed');
      child.kill('SIGKILL');
    }, 20_000);
    await exited;
    clearTimeout(timer);
  }

  close(): void {
    if (this.running()) this.current!.child.kill('SIGKILL');
    this.log.end();
  }
}
