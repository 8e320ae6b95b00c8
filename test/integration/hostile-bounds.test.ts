/**
 * Hostile input (see test/support/hostile-plane.ts for the plane): what a body may ask for. Catalog
 * images only, numbers in range, no fields the API does not know, its own project, its jobs quota. Each
 * refusal has the status that fits and the error shape naming the field, stores nothing, never a 500.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isTerminal } from '../../lambdas/core/job.js';
import { CARL, DIGEST, FLOOD_LIMIT, MAX_TIMEOUT, plane, useHostilePlane } from '../support/hostile-plane.js';
import { cancel, expectError, job, refused, send, submit, untilEnded } from '../support/hostile-plane.js';
import { ALICE_TOKEN, BOB_TOKEN, ROOT_TOKEN } from '../support/identities.js';

describe('hostile input', () => {
  useHostilePlane();

  describe('image references', () => {
    const add = (body: Record<string, unknown>) => () =>
      send('POST', '/v1/images', {
        token: ROOT_TOKEN,
        body: { name: 'evil', reference: 'docker.io/library/busybox:1.36', digest: DIGEST, ...body },
      });
    const references = [
      '-v',
      '--privileged',
      '-x/y:1',
      '--network=host',
      'busybox latest',
      ' busybox',
      'busybox\n',
      'busybox\tx',
      'busybox\u0000',
      `busybox@${DIGEST}`,
      'Busybox',
      '',
    ];
    for (const reference of references) {
      it(`refuses to add the reference ${JSON.stringify(reference)} (400 naming it), storing nothing`, async () => {
        await refused(add({ reference }), 400, ['reference']);
      });
    }
    for (const [what, digest] of [
      ['no digest', undefined],
      ['a short digest', 'sha256:abc'],
      ['another algorithm', `md5:${'d'.repeat(32)}`],
      ['an upper-case digest', `SHA256:${'D'.repeat(64)}`],
      ['whitespace in the digest', `sha256:${'d'.repeat(63)} `],
      ['a digest that is not a string', 7],
    ] as const) {
      it(`refuses an image with ${what} (400 naming digest)`, async () => {
        await refused(
          () =>
            send('POST', '/v1/images', {
              token: ROOT_TOKEN,
              body: {
                name: 'evil',
                reference: 'docker.io/library/busybox:1.36',
                ...(digest === undefined ? {} : { digest }),
              },
            }),
          400,
          ['digest'],
        );
      });
    }

    it('lets a template name catalog images only: a raw reference, a leading dash or whitespace is a 400 naming image', async () => {
      const base = { name: 'imaged', project: 'vision', pool: 'local', command: ['true'] };
      for (const image of [
        '-tools',
        '--privileged',
        'tools latest',
        'tools\n',
        'docker.io/library/busybox:1.36',
        `tools@${DIGEST}`,
        'nope',
      ]) {
        await refused(() => send('POST', '/v1/templates', { token: ALICE_TOKEN, body: { ...base, image } }), 400, [
          'image',
        ]);
      }
      await refused(() => send('PATCH', '/v1/templates/echo', { token: ALICE_TOKEN, body: { image: '-v' } }), 400, [
        'image',
      ]);
    });

    it('does not let a job name an image at all', async () => {
      await refused(
        () =>
          send('POST', '/v1/jobs', {
            token: ALICE_TOKEN,
            body: { template: 'echo', image: 'docker.io/library/alpine:latest' },
          }),
        400,
        ['image'],
      );
    });
  });

  describe('numbers', () => {
    const submitRaw = (fragment: string) => () =>
      send('POST', '/v1/jobs', { token: ALICE_TOKEN, raw: `{"template":"echo",${fragment}}` });
    for (const value of ['0', '-1', '1.5', '"2"', '1e309', '-1e309', 'null', 'true', '1025', '[1]']) {
      it(`refuses gpus ${value} (400 naming gpus), storing nothing`, async () => {
        await refused(submitRaw(`"gpus":${value}`), 400, ['gpus']);
      });
    }

    it('says a number beyond a double (1e309, -1e309) is out of range, for every numeric field of every body', async () => {
      const submitted = await submit(ALICE_TOKEN, { template: 'echo' });
      const templates = await send('GET', '/v1/templates?project=vision', { token: ALICE_TOKEN });
      const echo = templates.body.items.find((t: { name: string }) => t.name === 'echo');
      const template = (field: string, value: string) =>
        `{"name":"big","project":"vision","pool":"local","image":"tools","command":["true"],"${field}":${value}}`;
      const bodies: Array<[string, string, string, string, (value: string) => string]> = [
        ['POST', '/v1/jobs', ALICE_TOKEN, 'gpus', (v) => `{"template":"echo","gpus":${v}}`],
        ['POST', '/v1/jobs', ALICE_TOKEN, 'liveTimeoutMinutes', (v) => `{"template":"echo","liveTimeoutMinutes":${v}}`],
        ['PATCH', `/v1/jobs/${submitted.id}`, ALICE_TOKEN, 'liveTimeoutMinutes', (v) => `{"liveTimeoutMinutes":${v}}`],
        ...[
          'gpus',
          'nodeCount',
          'imageVersion',
          'volumeSizeGb',
          'maxLiveTimeoutMinutes',
          'defaultLiveTimeoutMinutes',
        ].map((field): [string, string, string, string, (value: string) => string] => [
          'POST',
          '/v1/templates',
          ALICE_TOKEN,
          field,
          (v) => template(field, v),
        ]),
        ['PATCH', `/v1/templates/${echo.id}`, ALICE_TOKEN, 'gpus', (v) => `{"gpus":${v}}`],
        [
          'POST',
          '/v1/quotas',
          ROOT_TOKEN,
          'hardLimit',
          (v) => `{"project":"vision","resource":"templates","hardLimit":${v}}`,
        ],
        ['PATCH', '/v1/quotas/crowd/jobs', ROOT_TOKEN, 'hardLimit', (v) => `{"hardLimit":${v}}`],
        ['PATCH', '/v1/pools/local', ROOT_TOKEN, 'maxGpus', (v) => `{"maxGpus":${v}}`],
      ];
      for (const [method, path, token, field, body] of bodies) {
        for (const value of ['1e309', '-1e309']) {
          const response = await refused(() => send(method, path, { token, raw: body(value) }), 400, [field]);
          assert.match(
            response.body.error.details[0].reason,
            /out of range/,
            `${method} ${path} ${field}=${value}: ${response.text}`,
          );
        }
      }
      await untilEnded(submitted.id);
    });

    it('refuses more GPUs than the pool can ever hold as well-formed but impossible (422)', async () => {
      await refused(submitRaw('"gpus":3'), 422);
    });

    it('refuses template GPU counts of 0, 1.5 and 1e309', async () => {
      for (const gpus of ['0', '1.5', '1e309']) {
        await refused(
          () =>
            send('POST', '/v1/templates', {
              token: ALICE_TOKEN,
              raw: `{"name":"g","project":"vision","pool":"local","image":"tools","command":["true"],"gpus":${gpus}}`,
            }),
          400,
          ['gpus'],
        );
      }
    });

    for (const value of [
      '0',
      '-1',
      '-0.5',
      '"NaN"',
      'null',
      '"60"',
      '1e309',
      '-1e309',
      String(MAX_TIMEOUT + 1),
      String(MAX_TIMEOUT + 0.001),
    ]) {
      it(`refuses liveTimeoutMinutes ${value} (400 naming it), storing nothing`, async () => {
        await refused(submitRaw(`"liveTimeoutMinutes":${value}`), 400, ['liveTimeoutMinutes']);
      });
    }

    it("accepts the template's max itself, and a fraction of a minute", async () => {
      const atMax = await submit(ALICE_TOKEN, { template: 'echo', liveTimeoutMinutes: MAX_TIMEOUT });
      assert.equal((await job(atMax.id)).liveTimeoutMinutes, MAX_TIMEOUT);
      const fraction = await submit(ALICE_TOKEN, { template: 'echo', liveTimeoutMinutes: 0.5 });
      assert.equal((await job(fraction.id)).liveTimeoutMinutes, 0.5);
      await Promise.all([untilEnded(atMax.id), untilEnded(fraction.id)]);
    });

    it('refuses the same bad timeouts on PATCH of an active job, and takes the max', async () => {
      const held = await submit(ALICE_TOKEN, { template: 'hold', liveTimeoutMinutes: 10 });
      try {
        for (const value of ['0', '-1', '"NaN"', 'null', '1e309', String(MAX_TIMEOUT + 1)]) {
          await refused(
            () => send('PATCH', `/v1/jobs/${held.id}`, { token: ALICE_TOKEN, raw: `{"liveTimeoutMinutes":${value}}` }),
            400,
            ['liveTimeoutMinutes'],
          );
        }
        const changed = await send('PATCH', `/v1/jobs/${held.id}`, {
          token: ALICE_TOKEN,
          body: { liveTimeoutMinutes: MAX_TIMEOUT },
        });
        assert.equal(changed.status, 200, changed.text);
        assert.equal((await job(held.id)).liveTimeoutMinutes, MAX_TIMEOUT);
      } finally {
        await cancel(held.id);
      }
    });
  });

  describe('unknown fields', () => {
    const smuggled = {
      privileged: true,
      volumes: ['/:/host'],
      network: 'host',
      devices: ['/dev/mem'],
      capAdd: ['SYS_ADMIN'],
    };
    const names = Object.keys(smuggled);

    it('refuses a job with privileged, volumes, network, devices or capAdd, naming each', async () => {
      await refused(
        () => send('POST', '/v1/jobs', { token: ALICE_TOKEN, body: { template: 'echo', ...smuggled } }),
        400,
        names,
      );
    });

    it('refuses them on a template, on a template change and on a job change', async () => {
      const template = { name: 'smuggler', project: 'vision', pool: 'local', image: 'tools', command: ['true'] };
      await refused(
        () => send('POST', '/v1/templates', { token: ALICE_TOKEN, body: { ...template, ...smuggled } }),
        400,
        names,
      );
      await refused(() => send('PATCH', '/v1/templates/echo', { token: ALICE_TOKEN, body: smuggled }), 400, names);
      const submitted = await submit(ALICE_TOKEN, { template: 'echo' });
      await refused(
        () => send('PATCH', `/v1/jobs/${submitted.id}`, { token: ALICE_TOKEN, body: { name: 'ok', ...smuggled } }),
        400,
        names,
      );
    });
  });

  describe('tenancy', () => {
    it('refuses a body project the token does not name (403), for jobs and templates, storing nothing', async () => {
      await refused(
        () => send('POST', '/v1/jobs', { token: ALICE_TOKEN, body: { template: 'echo', project: 'audio' } }),
        403,
      );
      await refused(
        () => send('POST', '/v1/jobs', { token: BOB_TOKEN, body: { template: 'echo', project: 'vision' } }),
        403,
      );
      await refused(
        () =>
          send('POST', '/v1/templates', {
            token: ALICE_TOKEN,
            body: { name: 'intruder', project: 'audio', pool: 'local', image: 'tools', command: ['true'] },
          }),
        403,
      );
    });

    it("answers 404 for another project's job by id to GET, PATCH, DELETE and logs, and leaves it alone", async () => {
      const held = await submit(ALICE_TOKEN, { template: 'hold', name: 'alices' });
      try {
        for (const [method, path, body] of [
          ['GET', `/v1/jobs/${held.id}`, undefined],
          ['PATCH', `/v1/jobs/${held.id}`, { name: 'stolen', liveTimeoutMinutes: 1 }],
          ['DELETE', `/v1/jobs/${held.id}`, undefined],
          ['GET', `/v1/jobs/${held.id}/logs`, undefined],
        ] as const) {
          const response = await refused(() => send(method, path, { token: BOB_TOKEN, body }), 404);
          assert.doesNotMatch(response.text, /vision|alice/, 'a 404 says nothing about the job');
        }
        const after = await job(held.id);
        assert.equal(after.name, 'alices');
        assert.ok(!isTerminal(after.state), 'not cancelled by another project');
      } finally {
        await cancel(held.id);
      }
    });
  });

  describe('a flood of submits', () => {
    it(`answers 429 to one project past its jobs quota only: ${FLOOD_LIMIT} stored, another project still gets 202`, async () => {
      const flood = Array.from({ length: 12 }, (_, i) =>
        send('POST', '/v1/jobs', { token: CARL, body: { template: 'crowd', name: `flood-${i}` } }),
      );
      const other = send('POST', '/v1/jobs', {
        token: BOB_TOKEN,
        body: { template: 'echo', name: 'during-the-flood' },
      });
      const responses = await Promise.all(flood);
      const bob = await other;
      const crowdJobs = await plane().deps.jobs.listJobs({ projects: ['crowd'] }, { limit: 1000 });
      try {
        const statuses = responses.map((r) => r.status).sort();
        assert.deepEqual(
          statuses,
          [...Array(FLOOD_LIMIT).fill(202), ...Array(12 - FLOOD_LIMIT).fill(429)],
          responses.map((r) => r.text).join('\n'),
        );
        for (const r of responses.filter((r) => r.status === 429)) expectError(r, 429);
        assert.equal(bob.status, 202, bob.text);
        assert.equal(crowdJobs.items.length, FLOOD_LIMIT, 'stored jobs of the flooding project == its limit');
        assert.deepEqual(
          crowdJobs.items.map((j) => j.id).sort(),
          responses
            .filter((r) => r.status === 202)
            .map((r) => r.body.id)
            .sort(),
        );
      } finally {
        await Promise.all(crowdJobs.items.map((j) => cancel(j.id)));
        if (bob.status === 202) await untilEnded(bob.body.id);
      }
    });
  });
});
