/** Reading the API's error answers, `{ error: { code, message, details? } }`, in any test that calls it. */
import assert from 'node:assert/strict';

interface Answer {
  status: number;
  // Whatever JSON the API answered.
  body: any;
}

/** The fields an error's details name, sorted. */
export const fieldsOf = (response: Answer): string[] =>
  response.body.error.details.map((d: { field: string }) => d.field).sort();

/** An error answer with `status` and a message; with `fields`, its details name exactly those. */
export function expectError(response: Answer, status: number, fields?: string[]): void {
  assert.equal(response.status, status, JSON.stringify(response.body));
  assert.equal(typeof response.body.error.message, 'string');
  if (fields) assert.deepEqual(fieldsOf(response), fields);
}
