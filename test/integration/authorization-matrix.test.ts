/**
 * Who may do what, route by route: the API Lambda behind the local API Gateway
 * stand-in (real bearer tokens, real HTTP), over DynamoDB Local. Five callers —
 * an admin, a member of project A (which owns the resources), a member of
 * project B, a user with no project, and no token at all — call every route,
 * and the status each gets is checked against a table written by hand
 * (test/support/authorization-rows-*.ts).
 *
 * Besides the status: another project's resource is a 404 (never a 403 that
 * confirms it exists), a list never shows another project's items, every
 * refusal has the error shape and stores nothing (the affected records are
 * read before and after), and every route of `apiRoutes` has a row here, so a
 * new route without one fails.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { apiRoutes } from '../../lambdas/handlers/http/api.js';
import { CATALOG_ROWS } from '../support/authorization-rows-catalog.js';
import { JOB_ROWS } from '../support/authorization-rows-jobs.js';
import { PROJECT_ROWS } from '../support/authorization-rows-projects.js';
import { ROLES, call, useAuthorizationWorld } from '../support/authorization.js';

/*
 * THE TABLE, written by hand in test/support/authorization-rows-*.ts (jobs, catalog, projects), run in
 * this order. Each row: route, expected statuses for
 *                     [admin, member A, member B, no project, no token]
 */
const ROWS = [...JOB_ROWS, ...CATALOG_ROWS, ...PROJECT_ROWS];

const CODES: Record<number, string> = {
  400: 'validation_error',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  409: 'conflict',
};

describe('authorization matrix: every route, every role', () => {
  useAuthorizationWorld();

  it('has a row for every route the API serves, and no row for a route it does not serve', () => {
    const served = apiRoutes(() => {
      throw new Error('listing routes needs no deps');
    }).map((r) => `${r.method} ${r.path}`);
    const covered = new Set(ROWS.map((r) => r.route));
    assert.deepEqual(
      served.filter((r) => !covered.has(r)),
      [],
      'routes without a row in the authorization matrix',
    );
    assert.deepEqual(
      [...covered].filter((r) => !served.includes(r)),
      [],
      'rows for routes the API does not serve',
    );
  });

  it('answers 404 (never 403) to B and to nobody for every existing resource of project A addressed by path', () => {
    for (const row of ROWS.filter((r) => r.ownedByA)) {
      assert.deepEqual([row.expected[2], row.expected[3]], [404, 404], `${row.route} ${row.variant ?? ''}`);
    }
  });

  for (const row of ROWS) {
    it(`${row.route}${row.variant ? ` — ${row.variant}` : ''}: ${ROLES.map((r, i) => `${r} ${row.expected[i]}`).join(', ')}`, async () => {
      const method = row.route.split(' ')[0];
      const actual: number[] = [];
      const problems: string[] = [];
      for (const role of ROLES) {
        const request = await row.request(role);
        const before = await row.affected?.(request);
        const response = await call(role, method, request.path, request.body);
        actual.push(response.status);
        const where = `${method} ${request.path} as ${role}`;
        if (response.status >= 400) {
          const error = response.body?.error;
          if (typeof error?.code !== 'string' || typeof error?.message !== 'string')
            problems.push(`${where}: not the error shape: ${JSON.stringify(response.body)}`);
          else if (CODES[response.status] && error.code !== CODES[response.status])
            problems.push(`${where}: code ${error.code} for ${response.status}`);
          else if (response.status === 400 && !error.details?.length)
            problems.push(`${where}: a 400 that names no field`);
          if (row.affected) {
            try {
              assert.deepEqual(await row.affected(request), before);
            } catch {
              problems.push(`${where}: refused with ${response.status} but changed what it addresses`);
            }
          }
        } else if (row.check) {
          try {
            row.check(role, response.body);
          } catch (error) {
            problems.push(`${where}: ${(error as Error).message}`);
          }
        }
      }
      assert.deepEqual(actual, [...row.expected], `statuses for [${ROLES.join(', ')}]`);
      assert.deepEqual(problems, []);
    });
  }
});
