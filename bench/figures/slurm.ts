/**
 * Figure 8: figures 1, 2, 3 and 5 against the Slurm peer (../shared/peers/slurm:
 * a single-node Slurm with 4 fake GPUs), measured the way its bench.py
 * measures them (sbatch timed client-side, job start written by the job with
 * `date +%s%N`, completion when the job leaves squeue, polled every 100 ms),
 * reimplemented here so that both sides share one clock, one percentile
 * definition and the same workload: every job asks for one GPU, so at most 4
 * run at once, as on Flare's 4 slots.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { shellQuote, StampFile } from '../lib/plane.js';
import type { DrainRun, ExpiryRun, IdleRun, SlurmResults, SubmitRun } from '../lib/results.js';
import { ratePerSecond, summarize, withRepeats } from '../lib/stats.js';

export interface SlurmSettings {
  submitN: number;
  /** Figure 2 with 4 clients: runs, reported as their median and each (as Flare's). */
  e2eRuns: number;
  idleN: number;
  drainSamples: number;
  drainDepth: number;
  expiryJobs: number;
  /** Slurm's --time is whole minutes. */
  expiryMinutes: number;
}

/** The README's "fastest honest configuration". */
const TUNING = ['SchedulerParameters=batch_sched_delay=0,sched_min_interval=0', 'Epilog=/bin/true'];
const PACKAGES = ['slurmctld', 'slurmd', 'slurm-client', 'munge'];
const ID = 'SLURM_JOB_ID';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export class SlurmPeer {
  private readonly env: NodeJS.ProcessEnv;
  private readonly stamps: StampFile;
  private expiryIds: string[] = [];

  private constructor(
    private readonly peerDir: string,
    stateDir: string,
    private readonly workDir: string,
    private readonly say: (line: string) => void,
    readonly version: string,
  ) {
    this.env = { ...process.env, SLURM_PEER_DIR: stateDir, SLURM_CONF: join(stateDir, 'etc', 'slurm.conf') };
    this.stamps = new StampFile(join(workDir, 'slurm-stamps'));
  }

  /** Install (root, apt) when missing, start the cluster; a string says why it cannot be run. */
  static async start(options: {
    peerDir: string;
    stateDir: string;
    workDir: string;
    install: boolean;
    say: (line: string) => void;
  }): Promise<SlurmPeer | string> {
    const { peerDir, say } = options;
    if (!existsSync(join(peerDir, 'cluster.sh'))) return `no Slurm peer at ${peerDir} (cluster.sh missing)`;
    if (!(await hasSlurm())) {
      if (!options.install)
        return 'Slurm is not installed (sbatch, slurmctld, slurmd or munged missing) and --no-install was given';
      if (process.getuid?.() !== 0) return 'Slurm is not installed and installing it needs root';
      say(`slurm: not installed; apt-get install -y --no-install-recommends ${PACKAGES.join(' ')}`);
      const installed = await run('apt-get', ['install', '-y', '--no-install-recommends', ...PACKAGES], {
        timeoutMs: 300_000,
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
      if (installed.code !== 0 || !(await hasSlurm()))
        return `Slurm could not be installed: ${lastLine(installed.stderr || installed.stdout)}`;
    }
    if (process.getuid?.() !== 0) return 'the Slurm peer needs root (munged runs as the munge user, slurmd as root)';
    await mkdir(options.workDir, { recursive: true });
    say('slurm: starting the single-node cluster with the README tuning lines');
    const env = { ...process.env, SLURM_PEER_DIR: options.stateDir };
    const started = await runScript(join(peerDir, 'cluster.sh'), ['start', ...TUNING], {
      timeoutMs: 120_000,
      env,
      logFile: join(options.workDir, 'cluster-start.log'),
    });
    const state = /node state: ([A-Za-z+]+)/.exec(started.stdout)?.[1];
    if (started.code !== 0 || state !== 'idle') {
      await runScript(join(peerDir, 'cluster.sh'), ['stopall'], {
        timeoutMs: 60_000,
        env,
        logFile: join(options.workDir, 'cluster-stop.log'),
      });
      return `the Slurm cluster did not start (node state ${state ?? 'unknown'}): ${lastLine(started.stderr || started.stdout)}`;
    }
    say(`slurm: ${started.stdout.trim().split('\n').join('; ')}`);
    const version = (
      await run('sinfo', ['--version'], {
        timeoutMs: 10_000,
        env: { ...env, SLURM_CONF: join(options.stateDir, 'etc', 'slurm.conf') },
      })
    ).stdout.trim();
    return new SlurmPeer(peerDir, options.stateDir, options.workDir, say, version);
  }

  setup(): string[] {
    return [
      `${this.version || 'Slurm'} from Debian packages, one node, 4 GPUs (GRES files linked to /dev/null), started by ${join(this.peerDir, 'cluster.sh')} with ${TUNING.map((t) => `\`${t}\``).join(' and ')}; slurm.conf as cluster.sh writes it (select/cons_tres, no accounting)`,
      "every job asks for `--gres=gpu:1`, so at most 4 run at once as on Flare (the peer's bench.py asks for no GPU: up to 16 jobs at once on its 16 CPUs)",
      'a submit is one `sbatch --parsable` process, timed from spawn to exit; completion is the job leaving squeue, polled every 100 ms',
    ];
  }

  /**
   * Figure 5, started first: a job at its time limit is only stopped 60-90 s later, so these run (asking
   * for no GPU) while Slurm's other figures and Flare's are measured, and are collected at the end.
   */
  async startExpiry(settings: SlurmSettings): Promise<void> {
    this.say(`slurm fig 5: ${settings.expiryJobs} jobs with --time=${settings.expiryMinutes}, collected at the end`);
    const script = this.stamps.termScript(ID, shellQuote(this.stamps.path), '3600');
    for (let i = 0; i < settings.expiryJobs; i++) {
      // No GPU: these sleep through figures 1-3, which need all 4.
      const job = await this.sbatch(
        ['-J', 'flare-bench-expiry', `--time=${settings.expiryMinutes}`, '--wrap', script],
        false,
      );
      if (!job.id) throw new Error(`sbatch of an expiry job failed: ${job.error}`);
      this.expiryIds.push(job.id);
    }
  }

  async finishExpiry(settings: SlurmSettings): Promise<ExpiryRun | undefined> {
    if (!this.expiryIds.length) return undefined;
    const gone = new Map<string, number>();
    const deadline = Date.now() + (settings.expiryMinutes * 60 + 180) * 1000;
    while (gone.size < this.expiryIds.length && Date.now() < deadline) {
      const active = new Set(await this.queued('flare-bench-expiry'));
      for (const id of this.expiryIds) if (!active.has(id) && !gone.has(id)) gone.set(id, Date.now());
      await sleep(100);
    }
    const starts = await this.stamps.read('start');
    const terms = await this.stamps.read('term');
    const limitMs = settings.expiryMinutes * 60_000;
    const termLate: number[] = [];
    const goneLate: number[] = [];
    for (const id of this.expiryIds) {
      const start = starts.get(id);
      if (start === undefined) continue;
      const term = terms.get(id);
      if (term !== undefined) termLate.push(term - (start + limitMs));
      const left = gone.get(id);
      if (left !== undefined) goneLate.push(left - (start + limitMs));
    }
    const run: ExpiryRun = {
      n: termLate.length,
      limitSeconds: settings.expiryMinutes * 60,
      termLateMs: summarize(termLate),
      goneLateMs: summarize(goneLate),
    };
    this.say(`slurm fig 5: SIGTERM p50 ${run.termLateMs.p50.toFixed(0)} ms after the time limit`);
    return run;
  }

  async measure(
    settings: SlurmSettings,
    figures: ReadonlySet<number>,
  ): Promise<Pick<SlurmResults, 'submit1' | 'submit4' | 'idle' | 'drain'>> {
    const out: Pick<SlurmResults, 'submit1' | 'submit4' | 'idle' | 'drain'> = {};
    if (figures.has(1) || figures.has(2)) {
      out.submit1 = await this.submitFigure(settings.submitN, 1);
      const first = await this.submitFigure(settings.submitN, 4);
      const rates = [first.completedPerS];
      for (let i = 1; i < settings.e2eRuns; i++)
        rates.push((await this.submitFigure(settings.submitN, 4)).completedPerS);
      out.submit4 = rates.length > 1 ? withRepeats(first, rates) : first;
    }
    if (figures.has(3)) {
      out.idle = await this.idleFigure(settings.idleN);
      out.drain = [await this.drainFigure(settings.drainDepth, settings.drainSamples)];
    }
    return out;
  }

  async stop(): Promise<void> {
    await run('scancel', ['--user', process.env.USER ?? 'root'], { timeoutMs: 30_000, env: this.env }).catch(
      () => undefined,
    );
    const stopped = await runScript(join(this.peerDir, 'cluster.sh'), ['stopall'], {
      timeoutMs: 60_000,
      env: this.env,
      logFile: join(this.workDir, 'cluster-stop.log'),
    });
    this.say(
      `slurm: cluster stopped${stopped.code === 0 ? '' : ` (cluster.sh stopall exited ${stopped.code}: ${lastLine(stopped.stderr)})`}`,
    );
  }

  private async submitFigure(n: number, clients: number): Promise<SubmitRun> {
    this.say(
      `slurm fig 1${clients === 4 ? '+2' : ''}: ${n} sbatch from ${clients} client${clients === 1 ? '' : 's'}, then all to the end`,
    );
    const name = `flare-bench-tp${clients}`;
    const samples: { id?: string; ms: number; error?: string }[] = [];
    let next = 0;
    const firstSentAt = Date.now();
    const started = performance.now();
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (next < n) {
          next++;
          samples.push(await this.sbatch(['-J', name, '--wrap', 'true']));
        }
      }),
    );
    const windowMs = performance.now() - started;
    const doneAt = await this.waitGone(name, 100, 1_800_000);
    const ok = samples.filter((s) => s.id);
    const errors = samples.filter((s) => !s.id);
    const result: SubmitRun = {
      clients,
      n,
      accepted: ok.length,
      errors: errors.length,
      ...(errors.length ? { firstError: errors[0].error } : {}),
      acceptedPerS: ratePerSecond(ok.length, windowMs),
      latencyMs: summarize(ok.map((s) => s.ms)),
      completed: ok.length,
      completedPerS: ratePerSecond(ok.length, doneAt - firstSentAt),
      firstSubmitToAllDoneS: (doneAt - firstSentAt) / 1000,
    };
    this.say(
      `  ${result.acceptedPerS.toFixed(1)} submits/s, p50 ${result.latencyMs.p50.toFixed(1)} ms; ${result.completedPerS.toFixed(1)} completed/s`,
    );
    return result;
  }

  private async idleFigure(n: number): Promise<IdleRun> {
    this.say(`slurm fig 3: ${n} jobs one at a time on an idle cluster`);
    const starts: number[] = [];
    for (let i = 0; i < n; i++) {
      await sleep(Math.random() * 300);
      const job = await this.sbatch(['-J', 'flare-bench-idle', '--wrap', this.stamps.startThenScript(ID, 'true')]);
      if (!job.id) throw new Error(`sbatch failed: ${job.error}`);
      const startedAt = await this.stamps.when(job.id, 'start', 60_000);
      starts.push(startedAt - job.sentAt);
      await this.waitGone('flare-bench-idle', 5, 60_000);
    }
    const result: IdleRun = { n, submitToStartMs: summarize(starts) };
    this.say(`  submit -> job starts p50 ${result.submitToStartMs.p50.toFixed(1)} ms`);
    return result;
  }

  private async drainFigure(depth: number, samples: number): Promise<DrainRun> {
    const name = 'flare-bench-drain';
    const script = this.stamps.startThenScript(ID, 'exec sleep 3600');
    const holders: string[] = [];
    for (let i = 0; i < 4; i++) {
      const job = await this.sbatch(['-J', name, '--wrap', script]);
      if (!job.id) throw new Error(`sbatch failed: ${job.error}`);
      holders.push(job.id);
    }
    for (const id of holders) await this.stamps.when(id, 'start', 60_000);
    for (let i = 0; i < depth; i++) {
      const job = await this.sbatch(['-J', name, '--wrap', script]);
      if (!job.id) throw new Error(`sbatch failed: ${job.error}`);
    }
    this.say(`slurm fig 3: ${samples} drains with ${depth} jobs waiting`);
    const seen = new Set(holders);
    const cancelToStart: number[] = [];
    try {
      for (let i = 0; i < samples; i++) {
        const victim = holders.shift()!;
        const cancelAt = Date.now();
        const cancelled = await run('scancel', [victim], { timeoutMs: 30_000, env: this.env });
        if (cancelled.code !== 0) throw new Error(`scancel ${victim} failed: ${cancelled.stderr}`);
        const next = await this.nextStart(seen, cancelAt, 60_000);
        seen.add(next.id);
        holders.push(next.id);
        cancelToStart.push(next.at - cancelAt);
        await sleep(50);
      }
    } finally {
      await run('scancel', ['--name', name], { timeoutMs: 30_000, env: this.env });
      await this.waitGone(name, 100, 120_000).catch(() => undefined);
    }
    const result: DrainRun = { depth, n: cancelToStart.length, cancelToStartMs: summarize(cancelToStart) };
    this.say(`  cancel -> next job starts p50 ${result.cancelToStartMs.p50.toFixed(1)} ms`);
    return result;
  }

  private async nextStart(
    seen: ReadonlySet<string>,
    after: number,
    timeoutMs: number,
  ): Promise<{ id: string; at: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const [id, at] of await this.stamps.read('start')) if (!seen.has(id) && at >= after) return { id, at };
      if (Date.now() > deadline) throw new Error('no queued Slurm job started after a cancel');
      await sleep(2);
    }
  }

  private async sbatch(
    args: string[],
    gpu = true,
  ): Promise<{ id?: string; ms: number; sentAt: number; error?: string }> {
    const sentAt = Date.now();
    const started = performance.now();
    const result = await run(
      'sbatch',
      ['--parsable', '-o', '/dev/null', '-e', '/dev/null', ...(gpu ? ['--gres=gpu:1'] : []), ...args],
      { timeoutMs: 60_000, env: this.env },
    );
    const ms = performance.now() - started;
    if (result.code !== 0) return { ms, sentAt, error: lastLine(result.stderr) };
    return { id: result.stdout.trim().split(';')[0], ms, sentAt };
  }

  private async queued(name: string): Promise<string[]> {
    const result = await run('squeue', ['-h', '-n', name, '-t', 'PD,R,CG,CF', '-o', '%i'], {
      timeoutMs: 30_000,
      env: this.env,
    });
    if (result.code !== 0) throw new Error(`squeue failed: ${result.stderr}`);
    return result.stdout
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
  }

  /** Polls squeue until no job of that name is pending, running or completing; the wall time it saw that. */
  private async waitGone(name: string, pollMs: number, timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if ((await this.queued(name)).length === 0) return Date.now();
      if (Date.now() > deadline) throw new Error(`Slurm jobs ${name} still queued after ${timeoutMs} ms`);
      await sleep(pollMs);
    }
  }
}

async function hasSlurm(): Promise<boolean> {
  const found = await run(
    'sh',
    [
      '-c',
      'command -v sbatch && command -v squeue && command -v slurmctld && command -v slurmd && (command -v munged || test -x /usr/sbin/munged)',
    ],
    { timeoutMs: 10_000 },
  );
  return found.code === 0;
}

function lastLine(text: string): string {
  return text.trim().split('\n').at(-1)?.slice(0, 300) ?? '';
}

/** cluster.sh starts daemons that inherit its stdout: run it with its output in a file and wait for its exit, not for the pipes to close. */
async function runScript(
  script: string,
  args: string[],
  options: { timeoutMs: number; env: NodeJS.ProcessEnv; logFile: string },
): Promise<Run> {
  const out = await open(options.logFile, 'w');
  try {
    const code = await new Promise<number>((resolve) => {
      const child = spawn('bash', [script, ...args], { env: options.env, stdio: ['ignore', out.fd, out.fd] });
      const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
      child.on('error', () => resolve(-1));
      child.on('exit', (exitCode, signal) => {
        clearTimeout(timer);
        resolve(exitCode ?? (signal ? 128 : -1));
      });
    });
    const text = await readFile(options.logFile, 'utf8');
    return { code, stdout: text, stderr: code === 0 ? '' : text };
  } finally {
    await out.close();
  }
}

function run(command: string, args: string[], options: { timeoutMs: number; env?: NodeJS.ProcessEnv }): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({ code: -1, stdout, stderr: error.message });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: code ?? (signal ? 128 : -1),
        stdout,
        stderr: signal === 'SIGKILL' && code === null ? `${stderr}\ntimed out after ${options.timeoutMs} ms` : stderr,
      });
    });
  });
}
