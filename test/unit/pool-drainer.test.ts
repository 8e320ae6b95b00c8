/**
 * The line of drain passes of one pool (core/pool-drainer.ts): whatever the order in which drains and
 * submits' bounded passes are asked for, one pass runs at a time, a pass not yet started is shared, and
 * every caller hears of what the passes admitted while it waited.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JobState, type Job } from '../../lambdas/core/job.js';
import { PoolDrainer, type PassResult } from '../../lambdas/core/pool-drainer.js';

const job = (id: string) => ({ id, state: JobState.LAUNCHING }) as Job;

/** Passes that run until the test ends them, recording how many run at once. */
function passes() {
  const order: string[] = [];
  const ends = new Map<string, () => void>();
  let running = 0;
  let most = 0;
  return {
    order,
    most: () => most,
    pass:
      (name: string, admitted: string[] = []) =>
      async (): Promise<PassResult> => {
        order.push(name);
        most = Math.max(most, (running += 1));
        await new Promise<void>((resolve) => ends.set(name, resolve));
        running -= 1;
        return { admitted: admitted.map(job), backfilled: [] };
      },
    async started(name: string): Promise<void> {
      while (!ends.has(name)) await new Promise(setImmediate);
    },
    /** End pass `name` once it has started. */
    async end(name: string): Promise<void> {
      await this.started(name);
      ends.get(name)!();
    },
  };
}

describe('PoolDrainer', () => {
  it('runs one pass at a time, however drains and bounded passes interleave', async () => {
    const drainer = new PoolDrainer<PassResult>();
    const p = passes();
    const first = drainer.request(p.pass('release 1'));
    await p.started('release 1');
    const calls = [
      first,
      drainer.exclusive(p.pass('submit 1'), 'j-1'),
      drainer.request(p.pass('release 2')),
      drainer.exclusive(p.pass('submit 2 (shares release 2)'), 'j-2'),
    ];
    await p.end('release 1');
    await p.end('submit 1');
    await p.end('release 2');
    await Promise.all(calls);

    assert.equal(p.most(), 1, 'never two passes at once');
    assert.deepEqual(p.order, ['release 1', 'submit 1', 'release 2']);
  });

  it('shares a full pass not yet started with every drain and submit asked for before it starts', async () => {
    const drainer = new PoolDrainer<PassResult>();
    const p = passes();
    const first = drainer.request(p.pass('running'));
    await p.started('running');
    const shared = [
      drainer.request(p.pass('queued', ['j-1'])),
      drainer.request(p.pass('never run')),
      drainer.exclusive(p.pass('never run either'), 'j-2'),
    ];
    await p.end('running');
    await p.end('queued');
    const results = await Promise.all([first, ...shared]);

    assert.deepEqual(p.order, ['running', 'queued']);
    for (const result of results.slice(1))
      assert.deepEqual(
        result.admitted.map((j) => j.id),
        ['j-1'],
      );
  });

  it('shares a bounded pass not yet started among submits: it goes as far as each of their jobs', async () => {
    const drainer = new PoolDrainer<PassResult>();
    const p = passes();
    const running = drainer.request(p.pass('running'));
    await p.started('running');
    const bounded: { name: string; until: string[] }[] = [];
    const pass = (name: string) => async (until: ReadonlySet<string>) => {
      bounded.push({ name, until: [...until] });
      return { admitted: [...until].map(job), backfilled: [] };
    };
    const submits = [
      drainer.exclusive(pass('submit 1'), 'j-1'),
      drainer.exclusive(pass('never run'), 'j-2'),
      drainer.exclusive(pass('never run either'), 'j-3'),
    ];
    await p.end('running');
    const shared = await Promise.all(submits);
    await drainer.exclusive(pass('submit 4'), 'j-4');

    assert.deepEqual(
      bounded,
      [
        { name: 'submit 1', until: ['j-1', 'j-2', 'j-3'] },
        { name: 'submit 4', until: ['j-4'] },
      ],
      'one pass for the three submits in line together, as far as their jobs; a later submit has its own',
    );
    for (const result of shared)
      assert.deepEqual(
        result.admitted.map((j) => j.id),
        ['j-1', 'j-2', 'j-3'],
      );
    await running;
  });

  it('tells a caller what every pass admitted from its call until its own pass ended', async () => {
    const drainer = new PoolDrainer<PassResult>();
    const p = passes();
    const running = drainer.request(p.pass('running', ['j-1']));
    await p.started('running');
    const submit = drainer.exclusive(p.pass('bounded', ['j-3']), 'j-3');
    const later = drainer.request(p.pass('after', ['j-4']));
    await p.end('running');
    await p.end('bounded');
    await p.end('after');

    assert.deepEqual(
      (await running).admitted.map((j) => j.id),
      ['j-1'],
    );
    assert.deepEqual(
      (await submit).admitted.map((j) => j.id),
      ['j-1', 'j-3'],
      'the running pass may have admitted its job',
    );
    assert.deepEqual(
      (await later).admitted.map((j) => j.id),
      ['j-1', 'j-3', 'j-4'],
    );
  });

  it('a pass that fails fails its callers only: the passes in line behind it run', async () => {
    const drainer = new PoolDrainer<PassResult>();
    let fail!: () => void;
    const failing = drainer.request(
      () => new Promise<PassResult>((_, reject) => (fail = () => reject(new Error('store down')))),
    );
    while (!fail) await new Promise(setImmediate);
    const next = drainer.exclusive(async () => ({ admitted: [job('j-2')], backfilled: [] }), 'j-2');
    fail();
    await assert.rejects(failing, /store down/);
    assert.deepEqual(
      (await next).admitted.map((j) => j.id),
      ['j-2'],
    );
  });
});
