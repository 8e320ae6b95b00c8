/**
 * Hostile input (see test/support/hostile-plane.ts for the plane): the request around the body. Tokens
 * (expired, malformed, raw bytes no client would send), bodies (too large, too deep, not JSON), paths
 * (bad percent-encoding, NUL, traversal, over-long ids), forged page tokens and idempotency keys: the
 * status that fits, the error shape naming the field, nothing stored, never a 500.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { isTerminal } from '../../lambdas/core/job.js';
import { EVE, FRANK, useHostilePlane } from '../support/hostile-plane.js';
import { cancel, expectError, job, refused, send, sendRaw, submit, untilEnded } from '../support/hostile-plane.js';
import { ALICE_TOKEN, BOB_TOKEN, ROOT_TOKEN } from '../support/identities.js';

describe('hostile input', () => {
  useHostilePlane();

  describe('tokens', () => {
    it('refuses an expired token with 401 saying only that it expired', async () => {
      for (const path of ['/v1/jobs', '/v1/pools']) {
        const response = await send('GET', path, { token: EVE });
        expectError(response, 401);
        assert.deepEqual(response.body, { error: { code: 'unauthorized', message: 'the token has expired' } });
        assert.match(String(response.headers['www-authenticate']), /^Bearer error="invalid_token"/);
      }
      await refused(() => send('POST', '/v1/jobs', { token: EVE, body: { template: 'echo' } }), 401);
    });

    it('takes a token whose expiry is ahead, and a public route needs no token at all', async () => {
      assert.equal((await send('GET', '/v1/jobs', { token: FRANK })).status, 200);
      assert.equal((await send('GET', '/v1/health', { token: EVE })).status, 200);
    });

    const malformed: Array<[string, string | Buffer | undefined]> = [
      ['no Authorization header', undefined],
      ['an empty header', ''],
      ['only the scheme', 'Bearer'],
      ['another scheme', `Basic ${ALICE_TOKEN}`],
      ['no scheme', ALICE_TOKEN],
      ['two spaces after the scheme', `Bearer  ${ALICE_TOKEN}`],
      ['a tab after the scheme', `Bearer\t${ALICE_TOKEN}`],
      ['two tokens', `Bearer ${ALICE_TOKEN} ${ALICE_TOKEN}`],
      ['a token with a trailing character', `Bearer ${ALICE_TOKEN}x`],
      ['a latin-1 byte appended', Buffer.concat([Buffer.from(`Bearer ${ALICE_TOKEN}`), Buffer.from([0xe9])])],
      ['a UTF-8 token', Buffer.from(`Bearer ${ALICE_TOKEN.slice(0, -2)}ключ`, 'utf8')],
      ['a 10 KB token', `Bearer ${'x'.repeat(10 * 1024)}`],
      ['a 10 KB token that starts with a valid one', `Bearer ${ALICE_TOKEN}${'x'.repeat(10 * 1024)}`],
    ];
    for (const [what, header] of malformed) {
      it(`answers 401 (never a 500) to ${what}`, async () => {
        const head = Buffer.concat([
          Buffer.from(`GET /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n`),
          header === undefined
            ? Buffer.alloc(0)
            : Buffer.concat([Buffer.from('Authorization: '), Buffer.from(header), Buffer.from('\r\n')]),
          Buffer.from('\r\n'),
        ]);
        expectError(await sendRaw(head), 401);
      });
    }

    it('accepts the scheme in any case, as RFC 7235 says', async () => {
      assert.equal((await send('GET', '/v1/jobs', { authorization: `bearer ${ALICE_TOKEN}` })).status, 200);
      assert.equal((await send('GET', '/v1/jobs', { authorization: `Bearer ${ALICE_TOKEN}` })).status, 200);
    });

    it('refuses a control character in the header before anything runs (never a 500)', async () => {
      const response = await sendRaw(
        Buffer.from(
          `GET /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer ${ALICE_TOKEN}\u0001\r\n\r\n`,
        ),
      );
      assert.ok([400, 401].includes(response.status), `status ${response.status}`);
    });
  });

  describe('bodies', () => {
    it('answers 413 to a 2 MB body (the local gateway) and to a 100 KB one (the API Lambda), storing nothing', async () => {
      await refused(
        () =>
          send('POST', '/v1/jobs', {
            token: ALICE_TOKEN,
            body: { template: 'echo', name: 'x'.repeat(2 * 1024 * 1024) },
          }),
        413,
      );
      await refused(
        () =>
          send('POST', '/v1/jobs', {
            token: ALICE_TOKEN,
            body: { template: 'echo', env: { BIG: 'x'.repeat(100 * 1024) } },
          }),
        413,
      );
    });

    it('refuses deeply nested JSON with a 400 naming the field', async () => {
      // As deep as fits under the API's 64 KiB body limit.
      const depth = 10_000;
      await refused(
        () =>
          send('POST', '/v1/jobs', {
            token: ALICE_TOKEN,
            raw: `{"template":"echo","command":${'['.repeat(3 * depth)}${']'.repeat(3 * depth)}}`,
          }),
        400,
        ['command.0'],
      );
      await refused(
        () =>
          send('POST', '/v1/jobs', {
            token: ALICE_TOKEN,
            raw: `{"template":"echo","env":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`,
          }),
        400,
        ['env.a'],
      );
      await refused(
        () =>
          send('POST', '/v1/jobs', {
            token: ALICE_TOKEN,
            raw: `{"template":"echo","x":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`,
          }),
        400,
        ['x'],
      );
    });

    for (const raw of [
      '[]',
      '["echo"]',
      '[{"template":"echo"}]',
      '"echo"',
      '42',
      'null',
      'true',
      '{',
      '{"template":"echo"} {}',
      '',
      '   ',
    ]) {
      it(`refuses the body ${JSON.stringify(raw)} (400 naming the body), storing nothing`, async () => {
        await refused(() => send('POST', '/v1/jobs', { token: ALICE_TOKEN, raw }), 400, ['(body)']);
      });
    }

    for (const [contentType, raw] of [
      ['application/x-www-form-urlencoded', 'template=echo&command=id'],
      [
        'multipart/form-data; boundary=x',
        '--x\r\nContent-Disposition: form-data; name="template"\r\n\r\necho\r\n--x--\r\n',
      ],
      ['application/octet-stream', Buffer.from([0xff, 0xfe, 0x00, 0x7b])],
      ['text/plain', 'template: echo'],
    ] as const) {
      it(`refuses a ${contentType.split(';')[0]} body (400), storing nothing`, async () => {
        await refused(() => send('POST', '/v1/jobs', { token: ALICE_TOKEN, raw, contentType }), 400, ['Content-Type']);
      });
    }

    // A JSON object sent under a type that is not JSON: a client that means something else, or a form
    // that slipped past CORS. Nothing may come of it.
    for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'application/octet-stream']) {
      it(`refuses a JSON job sent as ${contentType} (400), storing nothing`, async () => {
        const response = await send('POST', '/v1/jobs', {
          token: ALICE_TOKEN,
          raw: JSON.stringify({ template: 'echo', name: `as ${contentType}` }),
          contentType,
        });
        if (response.status === 202) await untilEnded(response.body.id);
        assert.notEqual(response.status, 202, `a JSON body sent as ${contentType} was accepted and stored`);
        expectError(response, 400);
        assert.deepEqual(
          response.body.error.details.map((d: { field: string }) => d.field),
          ['Content-Type'],
        );
      });
    }
  });

  describe('paths', () => {
    for (const path of [
      '/v1/jobs/%zz',
      '/v1/jobs/%',
      '/v1/jobs/%E0%A4%A',
      '/v1/jobs/%C0%AF',
      '/v1/jobs/%zz/logs',
      '/v1/templates/%zz',
      '/v1/images/%ff',
      '/v1/quotas/%zz/gpus',
    ]) {
      it(`answers 404 to invalid percent-encoding: ${path}`, async () => {
        expectError(await send('GET', path, { token: ALICE_TOKEN }), 404);
      });
    }

    it('answers 400 or 404 to a NUL or a control character in an id (never a 500)', async () => {
      for (const path of [
        '/v1/jobs/%00',
        '/v1/jobs/a%00b/logs',
        '/v1/templates/%00',
        '/v1/images/%00',
        '/v1/jobs/%0A',
        '/v1/templates/%1B',
      ]) {
        const response = await send('GET', path, { token: ALICE_TOKEN });
        assert.ok([400, 404].includes(response.status), `${path}: ${response.status} ${response.text}`);
        expectError(response, response.status);
      }
    });

    it('treats path traversal in ids as ids that do not exist (404), and does nothing to the job it points at', async () => {
      const held = await submit(ALICE_TOKEN, { template: 'hold' });
      try {
        for (const [method, path, status] of [
          ['GET', '/v1/jobs/..%2F..%2F..%2Fetc%2Fpasswd', 404],
          ['GET', '/v1/jobs/..%2F..%2F..%2Fetc%2Fpasswd/logs', 404],
          ['GET', `/v1/jobs/..%2F${held.id}/logs`, 404],
          ['GET', '/v1/jobs/%2e%2e/logs', 404],
          ['GET', '/v1/jobs/../../etc/passwd', 404],
          ['DELETE', `/v1/jobs/..%2F${held.id}`, 404],
          ['DELETE', `/v1/jobs/${held.id}%2F..`, 404],
          ['PATCH', `/v1/jobs/.%2F${held.id}`, 404],
          ['GET', '/v1/templates/..%2F..%2Fecho', 404],
          ['GET', '/v1/images/..%2Ftools', 404],
          ['GET', '/v1/quotas/..%2Fcrowd/jobs', 400],
        ] as const) {
          const response = await refused(
            () => send(method, path, { token: ALICE_TOKEN, ...(method === 'PATCH' ? { body: { name: 'x' } } : {}) }),
            status,
          );
          assert.doesNotMatch(response.text, /root:/, 'no file was read');
        }
        assert.ok(!isTerminal((await job(held.id)).state));
      } finally {
        await cancel(held.id);
      }
    });

    it('refuses ids longer than they can be (400 naming the parameter)', async () => {
      const long = 'a'.repeat(8000);
      await refused(() => send('GET', `/v1/jobs/${'a'.repeat(129)}`, { token: ALICE_TOKEN }), 400, ['id']);
      await refused(() => send('DELETE', `/v1/jobs/${long}`, { token: ALICE_TOKEN }), 400, ['id']);
      await refused(() => send('GET', `/v1/jobs/${long}/logs`, { token: ALICE_TOKEN }), 400, ['id']);
      await refused(() => send('GET', `/v1/templates/${long}`, { token: ALICE_TOKEN }), 400, ['id']);
      await refused(() => send('GET', `/v1/images/${long}`, { token: ALICE_TOKEN }), 400, ['name']);
      await refused(() => send('GET', `/v1/quotas/${long}/gpus`, { token: ALICE_TOKEN }), 400, ['project']);
      await refused(() => send('PATCH', `/v1/pools/${long}`, { token: ROOT_TOKEN, body: { maxGpus: 1 } }), 400, [
        'name',
      ]);
    });
  });

  describe('page tokens', () => {
    const token = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
    const forged: Array<[string, string]> = [
      ['2,000 characters of base64', 'A'.repeat(2000)],
      ['longer than any token (3,000 characters)', 'A'.repeat(3000)],
      ['not base64 JSON', 'not-a-token'],
      [
        'raw base64 of a key, as tokens once were',
        Buffer.from(`2026-01-01T00:00:00.000Z#j-${'0'.repeat(16)}`).toString('base64url'),
      ],
      ["the pools list's token", token({ list: 'pools', after: 'local' })],
      [
        'a jobs token naming a 1,000-byte key',
        token({ list: 'jobs', after: `2026-01-01T00:00:00.000Z#${'a'.repeat(1000)}` }),
      ],
      ['a jobs token naming a key of another shape', token({ list: 'jobs', after: 'vision and audio' })],
      ['a JSON array', token(['jobs'])],
    ];
    for (const [what, value] of forged) {
      it(`answers 400 naming nextToken to ${what}, on every list that takes one (never a 500)`, async () => {
        const held = await submit(ALICE_TOKEN, { template: 'echo' });
        const q = `nextToken=${encodeURIComponent(value)}`;
        const lists: Array<[string, string]> = [
          [ALICE_TOKEN, `/v1/jobs?${q}`],
          [ALICE_TOKEN, `/v1/jobs?project=vision&${q}`],
          [ROOT_TOKEN, `/v1/jobs?${q}`],
          [ROOT_TOKEN, `/v1/jobs?state=SUCCEEDED&${q}`],
          [ALICE_TOKEN, `/v1/pools?${q}`],
          [ALICE_TOKEN, `/v1/quotas?${q}`],
          [ALICE_TOKEN, `/v1/templates?${q}`],
          [ALICE_TOKEN, `/v1/images?${q}`],
          [ALICE_TOKEN, `/v1/jobs/${held.id}/logs?${q}`],
        ];
        for (const [who, path] of lists) {
          // The pools token is a good token of /v1/pools: only the others must refuse it.
          if (what.startsWith("the pools list's") && path.startsWith('/v1/pools')) continue;
          const response = await send('GET', path, { token: who });
          expectError(response, 400, ['nextToken']);
        }
        await untilEnded(held.id);
      });
    }

    it("takes each list's own token back (the next page follows the first)", async () => {
      const [a, b] = [await submit(ALICE_TOKEN, { template: 'echo' }), await submit(ALICE_TOKEN, { template: 'echo' })];
      for (const [who, path] of [
        [ALICE_TOKEN, '/v1/jobs?limit=1'],
        [ROOT_TOKEN, '/v1/jobs?limit=1'],
        [ALICE_TOKEN, '/v1/templates?limit=1'],
      ]) {
        const first = await send('GET', path, { token: who });
        assert.equal(first.status, 200, first.text);
        assert.equal(typeof first.body.nextToken, 'string', `${path}: more follow`);
        const second = await send('GET', `${path}&nextToken=${encodeURIComponent(first.body.nextToken)}`, {
          token: who,
        });
        assert.equal(second.status, 200, second.text);
        assert.notEqual(second.body.items[0].id, first.body.items[0].id);
      }
      await Promise.all([untilEnded(a.id), untilEnded(b.id)]);
    });
  });

  describe('idempotency keys', () => {
    it('keeps a key per project: the same key and body from another project is its own job', async () => {
      const key = `shared-key-${randomBytes(4).toString('hex')}`;
      const body = { template: 'echo' };
      const mine = await submit(ALICE_TOKEN, body, { 'idempotency-key': key });
      const theirs = await submit(BOB_TOKEN, body, { 'idempotency-key': key });
      assert.notEqual(theirs.id, mine.id);
      assert.deepEqual([mine.project, theirs.project], ['vision', 'audio']);
      // Each replays its own job, never the other's.
      assert.equal((await submit(ALICE_TOKEN, body, { 'idempotency-key': key })).id, mine.id);
      assert.equal((await submit(BOB_TOKEN, body, { 'idempotency-key': key })).id, theirs.id);
      await Promise.all([untilEnded(mine.id), untilEnded(theirs.id)]);
    });

    it('refuses a malformed key (400 naming it), storing nothing', async () => {
      for (const key of ['a b', 'x'.repeat(129), 'ключ']) {
        const header = Buffer.from(key, 'utf8').toString('latin1');
        await refused(
          () =>
            send('POST', '/v1/jobs', {
              token: ALICE_TOKEN,
              body: { template: 'echo' },
              headers: { 'idempotency-key': header },
            }),
          400,
          ['Idempotency-Key'],
        );
      }
    });
  });
});
