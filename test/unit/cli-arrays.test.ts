import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { main } from '../../cli/main.js';

/** A loopback API that knows no array: every `GET /v1/jobs?array=` lists nothing. */
function emptyApi(): Server {
  return createServer((request, response) => {
    const known = request.method === 'GET' && new URL(request.url ?? '/', 'http://x').pathname === '/v1/jobs';
    response.writeHead(known ? 200 : 404, { 'content-type': 'application/json', connection: 'close' });
    response.end(JSON.stringify(known ? { items: [] } : { error: { code: 'not_found', message: 'no route' } }));
  });
}

describe('flare job delete --array / job outputs --array of an array with no job', () => {
  let server: Server;
  let url: string;
  before(async () => {
    server = emptyApi();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    let stdout = '';
    let stderr = '';
    const code = await main(argv, {
      stdout: (text) => void (stdout += text),
      stderr: (text) => void (stderr += text),
      env: { FLARE_API_URL: url, FLARE_TOKEN: 'test-token-0123456789' },
      now: () => new Date(),
      sleep: async () => {},
    });
    return { code, stdout, stderr };
  }

  // The README's exit codes: 3 is "not found", as `job outputs --array` of the same array says.
  test('both exit 3 (not found) with the same "flare: ..." line, nothing on stdout', async () => {
    for (const argv of [
      ['job', 'delete', '--array', 'a-0123456789abcdef'],
      ['job', 'outputs', '--array', 'a-0123456789abcdef'],
    ]) {
      const { code, stdout, stderr } = await run(argv);
      assert.equal(code, 3, argv.join(' '));
      assert.equal(stderr, 'flare: no jobs of array a-0123456789abcdef (or none you may see)\n', argv.join(' '));
      assert.equal(stdout, '');
    }
  });
});
