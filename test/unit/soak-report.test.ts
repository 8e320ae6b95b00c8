/** The soak's arguments, its plan (seeded, so a run can be replayed) and the table and page it renders. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Row } from '../../soak/lib/invariants.js';
import { parseArgs, profileFor } from '../../soak/lib/options.js';
import { JOB_SCRIPT, jobArgv, planJobs, planKills, rng } from '../../soak/lib/plan.js';
import { renderDocs, renderTable, type SoakResults } from '../../soak/lib/report.js';

describe('soak arguments', () => {
  it('a full run by default, 300 jobs; --quick is 40 with a 30 s outage', () => {
    const full = parseArgs([], () => 7);
    assert.ok('profile' in full);
    assert.equal(full.profile.mode, 'full');
    assert.equal(full.profile.jobs, 300);
    assert.equal(full.seed, 7);
    const quick = parseArgs(['--quick', '--seed=42', '--keep'], () => 7);
    assert.ok('profile' in quick);
    assert.deepEqual(
      [quick.profile.mode, quick.profile.jobs, quick.profile.longOutageS, quick.seed, quick.keep],
      ['quick', 40, 30, 42, true],
    );
    const jobs = parseArgs(['--quick', '--jobs=12']);
    assert.ok('profile' in jobs && jobs.profile.jobs === 12);
  });

  it('refuses bad values and unknown flags, naming them', () => {
    assert.deepEqual(parseArgs(['--jobs=0']), { error: "--jobs takes a whole number from 1 to 5000, got '0'" });
    assert.match((parseArgs(['--seed=-1']) as { error: string }).error, /^--seed takes/);
    assert.deepEqual(parseArgs(['--fast']), { error: "unknown argument '--fast'" });
    assert.match((parseArgs(['--quick', '--write-docs']) as { error: string }).error, /full run/);
    assert.deepEqual(parseArgs(['--help']), { help: true });
  });

  it('the long outage outlasts every live timeout in both profiles', () => {
    for (const mode of ['quick', 'full'] as const) {
      const p = profileFor(mode);
      assert.ok(p.longOutageS > p.timeoutS[1] + p.overrunS[1], mode);
    }
  });
});

describe('soak plan', () => {
  it('the same seed gives the same jobs and kills; overrunning jobs sleep past their timeout', () => {
    const profile = profileFor('full');
    const a = planJobs(profile, rng(99));
    assert.deepEqual(planJobs(profile, rng(99)), a);
    assert.notDeepEqual(planJobs(profile, rng(100)), a);
    assert.equal(a.length, 300);
    const overruns = a.filter((j) => j.sleepS > j.timeoutS);
    assert.ok(overruns.length > 30 && overruns.every((j) => j.exitCode === 0));
    assert.ok(a.every((j) => j.timeoutS >= 1 && j.timeoutS <= 20 && j.submitAtS <= profile.windowS));
  });

  it('kills: as many of each kind as the profile says, in order, exactly one long outage', () => {
    const profile = profileFor('full');
    const kills = planKills(profile, rng(3));
    const count = (kind: string) => kills.filter((k) => k.kind === kind).length;
    assert.deepEqual([count('plane'), count('dynamodb'), count('supervisor')], [4, 2, 2]);
    assert.equal(kills.filter((k) => k.outageS === profile.longOutageS).length, 1);
    assert.deepEqual(
      kills.map((k) => k.atS),
      [...kills.map((k) => k.atS)].sort((x, y) => x - y),
    );
  });

  it("the job's argv carries its values as arguments, never inside the script", () => {
    const argv = jobArgv({ sleepS: 2.5, exitCode: 3 }, '/tmp/x y/markers');
    assert.deepEqual(argv, ['/bin/sh', '-c', JOB_SCRIPT, '2.5', '3', '/tmp/x y/markers']);
    assert.ok(!JOB_SCRIPT.includes('2.5') && !JOB_SCRIPT.includes('/tmp'));
  });
});

const rows: Row[] = [
  { key: 'outcomes', label: 'outcome mismatches', count: 0, ok: true, detail: [] },
  {
    key: 'runTwice',
    label: 'jobs run twice',
    count: 2,
    ok: false,
    detail: ['soak-3 (j-1) started 2 times', 'soak-9 (j-2) started 2 times'],
  },
  { key: 'wall', label: 'wall time', count: 0, ok: null, value: '612.0 s', detail: [] },
];

describe('soak report', () => {
  it('the table gives each row its count or value and verdict, then the examples of broken rows', () => {
    const text = renderTable(rows);
    const lines = text.split('\n');
    assert.match(lines.find((l) => l.startsWith('outcome mismatches'))!, /\s0\s+OK$/);
    assert.match(lines.find((l) => l.startsWith('jobs run twice'))!, /\s2\s+BROKEN$/);
    assert.match(lines.find((l) => l.startsWith('wall time'))!, /612\.0 s\s+-$/);
    assert.match(text, /jobs run twice:\n {2}- soak-3 \(j-1\) started 2 times\n {2}- soak-9/);
  });

  it('the page carries the commit, the machine, the table and what each row means', () => {
    const results = {
      schema: 1,
      mode: 'full',
      seed: 5,
      startedAt: '2030-01-01T00:00:00.000Z',
      finishedAt: '2030-01-01T00:12:00.000Z',
      command: 'npm run soak -- --write-docs',
      git: { commit: 'abc123def456', dirty: false },
      machine: {
        cpu: 'Test CPU',
        cores: 2,
        memoryGb: 23.4,
        os: 'Linux',
        kernel: '6.1',
        node: 'v20.19.0',
        loadStart: 1,
        loadEnd: 2,
      },
      profile: profileFor('full'),
      ok: false,
      rows,
      record: {} as SoakResults['record'],
    } satisfies SoakResults;
    const page = renderDocs(results);
    assert.match(page, /\| commit \| abc123def456 \|/);
    assert.match(page, /\| machine \| Test CPU, 2 cores, 23 GB memory \|/);
    assert.match(page, /\| Node \| v20\.19\.0 \|/);
    assert.match(page, /\| jobs run twice \| 2 \| BROKEN \|/);
    assert.match(page, /- soak-3 \(j-1\) started 2 times/);
    assert.match(page, /## What each row means/);
    assert.ok(!/\]\((https?:|\.\.\/\.\.\/)/.test(page), 'no link leaves the repository');
  });
});
