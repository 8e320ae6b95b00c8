/**
 * A port already taken: `flare local` ends with one line saying which address is
 * in use and what to change, not the bare `listen EADDRINUSE` of node.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startHttpServer, type HttpServerOptions } from '../../lambdas/local/http-server.js';

describe('the local HTTP server on a port that is taken', () => {
  it('refuses naming the address and the config key', async () => {
    const options = (port: number): HttpServerOptions => ({
      host: '127.0.0.1',
      port,
      users: [],
      handler: async () => ({ statusCode: 204 }),
    });
    const first = await startHttpServer(options(0));
    try {
      await assert.rejects(startHttpServer(options(first.port)), {
        message: `127.0.0.1:${first.port} is in use (another flare local, or another program): set "port" in the config to a free one`,
      });
    } finally {
      await first.close();
    }
  });
});
