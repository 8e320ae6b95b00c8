/**
 * The API Lambda driven with payload-2.0 events (test/fixtures/http) over in-memory ports
 * (test/support/api-world.ts): the public routes, authentication, routing, and how each error maps to its
 * status and code. Store semantics are tested on DynamoDB Local elsewhere.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import {
  Conflict,
  Forbidden,
  IdempotencyConflict,
  InvalidTransition,
  JobNotFound,
  PayloadTooLarge,
  QuotaExceeded,
  Unauthorized,
  Unprocessable,
  ValidationError,
} from '../../lambdas/core/errors.js';
import { createApiHandler } from '../../lambdas/handlers/http/api.js';
import { apiEvent } from '../support/api-calls.js';
import { fieldsOf } from '../support/api-errors.js';
import { BOB, assertError, assertNothingStored, call, fixture, submit } from '../support/api-world.js';
import { useWorld, w } from '../support/api-world.js';

useWorld();

describe('public routes', () => {
  it('GET / lists the API versions, without a token', async () => {
    const response = await call(w, fixture('public-get-root'));
    assert.equal(response.status, 200);
    assert.deepEqual(response.body, { versions: [{ id: 'v1', status: 'CURRENT' }] });
  });

  it('GET /v1 lists the resources of v1', async () => {
    const response = await call(w, apiEvent('GET', '/v1', { as: null }));
    assert.equal(response.status, 200);
    assert.equal(response.body.id, 'v1');
    const jobs = response.body.resources.find((r: { path: string }) => r.path === '/v1/jobs');
    assert.deepEqual(jobs.methods.sort(), ['GET', 'POST']);
    assert.ok(response.body.resources.some((r: { path: string }) => r.path === '/v1/quotas/{project}/{resource}'));
  });

  it('GET /v1/health checks the store and reports the runtime components', async () => {
    const response = await call(w, apiEvent('GET', '/v1/health', { as: null }), {
      health: async () => ({ workflows: { status: 'ok', running: 2 } }),
    });
    assert.equal(response.status, 200);
    assert.deepEqual(response.body, {
      status: 'ok',
      components: { store: 'ok', workflows: { status: 'ok', running: 2 } },
    });
  });

  it('GET /v1/health is 503 when the store does not answer', async () => {
    w.deps.limits.listPools = async () => {
      throw new Error('connect ECONNREFUSED');
    };
    const response = await call(w, apiEvent('GET', '/v1/health', { as: null }));
    assert.equal(response.status, 503);
    assert.equal(response.body.status, 'degraded');
    assert.equal(response.body.components.store.status, 'unavailable');
  });

  it('GET /v1/health answers 503 when the store hangs, without waiting for it', async () => {
    w.deps.limits.listPools = () => new Promise(() => {});
    const response = await call(w, apiEvent('GET', '/v1/health', { as: null }));
    assert.equal(response.status, 503);
    assert.deepEqual(response.body.components.store, { status: 'unavailable', reason: 'no answer within 2000 ms' });
  });
});

describe('authentication', () => {
  const protectedRoutes: Array<[string, string]> = [
    ['POST', '/v1/jobs'],
    ['GET', '/v1/jobs'],
    ['GET', '/v1/jobs/j-0001'],
    ['DELETE', '/v1/jobs/j-0001'],
    ['GET', '/v1/jobs/j-0001/logs'],
    ['GET', '/v1/pools'],
    ['GET', '/v1/quotas'],
    ['GET', '/v1/quotas/vision/gpus'],
    ['GET', '/v1/stats'],
  ];
  for (const [method, path] of protectedRoutes) {
    it(`${method} ${path} without claims is 401`, async () => {
      const response = await call(
        w,
        apiEvent(method, path, { as: null, ...(method === 'POST' ? { body: { template: 'train' } } : {}) }),
      );
      assertError(response, 401, 'unauthorized');
      assertNothingStored(w);
    });
  }

  it('claims without a subject are 401', async () => {
    assertError(
      await call(w, apiEvent('GET', '/v1/jobs', { as: { 'cognito:groups': '[vision]' } })),
      401,
      'unauthorized',
    );
  });

  it('takes groups from a configured claim, as an array or as API Gateway flattens it', async () => {
    await submit(w, { template: 'speech' }, BOB);
    const asArray = await call(w, apiEvent('GET', '/v1/jobs', { as: { sub: 'carol', groups: ['audio'] } }), {
      groupsClaim: 'groups',
    });
    const asString = await call(w, apiEvent('GET', '/v1/jobs', { as: { sub: 'carol', groups: '[audio other]' } }), {
      groupsClaim: 'groups',
    });
    assert.equal(asArray.body.items.length, 1);
    assert.equal(asString.body.items.length, 1);
  });

  it('makes a caller admin by the configured admin group only', async () => {
    await submit(w, { template: 'speech' }, BOB);
    const ops = await call(w, apiEvent('GET', '/v1/jobs', { as: { sub: 'op', 'cognito:groups': '[ops]' } }), {
      adminGroup: 'ops',
    });
    const notAdmin = await call(w, apiEvent('GET', '/v1/jobs', { as: { sub: 'op', 'cognito:groups': '[admin]' } }), {
      adminGroup: 'ops',
    });
    assert.equal(ops.body.items.length, 1);
    assert.equal(notAdmin.body.items.length, 0);
  });
});

describe('routing', () => {
  it('an unknown path is 404', async () => {
    assertError(await call(w, apiEvent('GET', '/v1/nothing')), 404, 'not_found');
    assertError(await call(w, apiEvent('GET', '/v2/jobs')), 404, 'not_found');
  });

  it('a known path with another method is 405 and says which are allowed', async () => {
    const response = await call(w, apiEvent('PUT', '/v1/jobs', { body: { template: 'train' } }));
    assertError(response, 405, 'method_not_allowed');
    assert.equal(response.headers.allow, 'POST, GET');
    assertNothingStored(w);
  });

  it('serves under a named stage, whose name API Gateway keeps in rawPath', async () => {
    const event = apiEvent('GET', '/prod/v1/pools');
    event.requestContext.stage = 'prod';
    assert.equal((await call(w, event)).status, 200);
  });

  it('refuses query parameters a route does not take', async () => {
    const response = await call(w, apiEvent('GET', '/v1/pools', { query: { verbose: 'true' } }));
    assertError(response, 400, 'validation_error');
    assert.deepEqual(fieldsOf(response), ['verbose']);
  });
});

describe('error mapping', () => {
  const cases: Array<[string, () => Error, number, string]> = [
    ['ValidationError', () => new ValidationError([{ field: 'x', reason: 'bad' }]), 400, 'validation_error'],
    ['Unauthorized', () => new Unauthorized('who are you'), 401, 'unauthorized'],
    ['Forbidden', () => new Forbidden('not yours'), 403, 'forbidden'],
    ['JobNotFound', () => new JobNotFound('j-1'), 404, 'not_found'],
    ['Conflict', () => new Conflict('in use'), 409, 'conflict'],
    ['IdempotencyConflict', () => new IdempotencyConflict('other body'), 409, 'conflict'],
    ['InvalidTransition', () => new InvalidTransition('j-1', 'RUNNING', 'WAITING'), 409, 'conflict'],
    ['PayloadTooLarge', () => new PayloadTooLarge(10), 413, 'payload_too_large'],
    ['Unprocessable', () => new Unprocessable('never fits'), 422, 'unprocessable'],
    ['QuotaExceeded', () => new QuotaExceeded('vision', 'jobs', 'too many jobs'), 429, 'quota_exceeded'],
  ];
  for (const [name, make, status, code] of cases) {
    it(`${name} is ${status} ${code} with its message`, async () => {
      const error = make();
      w.deps.limits.listPools = async () => {
        throw error;
      };
      const response = await call(w, apiEvent('GET', '/v1/pools'));
      assertError(response, status, code);
      assert.equal(response.body.error.message, error.message);
    });
  }

  it('ValidationError carries every field in details', async () => {
    w.deps.limits.listPools = async () => {
      throw new ValidationError([
        { field: 'a', reason: 'one' },
        { field: 'b', reason: 'two' },
      ]);
    };
    const response = await call(w, apiEvent('GET', '/v1/pools'));
    assert.deepEqual(response.body.error.details, [
      { field: 'a', reason: 'one' },
      { field: 'b', reason: 'two' },
    ]);
  });

  it('anything else is a generic 500, logged, with no stack or message leaked', async () => {
    w.deps.limits.listPools = async () => {
      throw new Error('secret table arn:aws:dynamodb:eu-west-1:123456789012:table/jobs');
    };
    const response = await call(w, apiEvent('GET', '/v1/pools'));
    assertError(response, 500, 'internal');
    const text = JSON.stringify(response.body);
    assert.doesNotMatch(text, /secret|arn:aws|at .*\.ts/);
    assert.deepEqual(Object.keys(response.body.error), ['code', 'message']);
    const logged = w.logged.find((l) => l.level === 'error');
    assert.match(JSON.stringify(logged?.data), /secret table/);
  });

  it('a 500 still answers when the deps cannot be built', async () => {
    const handler = createApiHandler(() => {
      throw new Error('Flare Lambda misconfigured: environment variable JOBS_TABLE');
    });
    const original = process.stderr.write;
    process.stderr.write = () => true;
    try {
      const result = (await handler(apiEvent('GET', '/v1/pools'), {} as Context)) as APIGatewayProxyStructuredResultV2;
      assert.equal(result.statusCode, 500);
      assert.doesNotMatch(result.body ?? '', /JOBS_TABLE/);
    } finally {
      process.stderr.write = original;
    }
  });
});
