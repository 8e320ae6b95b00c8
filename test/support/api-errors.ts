/**
 * Reading the API's error answers, `{ error: { code, message, details? } }`, in any test that calls it,
 * and the ValidationError core throws below the API (its details are the answer's).
 */
import assert from 'node:assert/strict';
import { ValidationError } from '../../lambdas/core/errors.js';

interface Answer {
  status: number;
  // Whatever JSON the API answered.
  body: any;
}

/** The fields an error's details name, sorted. */
export const fieldsOf = (response: Answer): string[] =>
  response.body.error.details.map((d: { field: string }) => d.field).sort();

/** The fields the ValidationError `fn` throws names, in its order; fails if `fn` throws none or another error. */
export function validationFields(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ValidationError, String(error));
    return error.details.map((d) => d.field);
  }
  assert.fail('expected a ValidationError');
}

/** An error answer with `status` and a message; with `fields`, its details name exactly those. */
export function expectError(response: Answer, status: number, fields?: string[]): void {
  assert.equal(response.status, status, JSON.stringify(response.body));
  assert.equal(typeof response.body.error.message, 'string');
  if (fields) assert.deepEqual(fieldsOf(response), fields);
}
