/** A webhook endpoint on loopback for the notifier tests: it keeps every post and answers with scripted statuses. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedPost {
  path: string;
  contentType?: string;
  // The posted JSON, as the test reads it.
  body: any;
}

export class WebhookReceiver {
  received: ReceivedPost[] = [];
  /** Status codes to answer with, in order; then 200. */
  script: number[] = [];
  delayMs = 0;
  url = '';
  private server!: Server;

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.received.push({
          path: req.url ?? '',
          contentType: req.headers['content-type'],
          body: JSON.parse(Buffer.concat(chunks).toString('utf8')),
        });
        const status = this.script.shift() ?? 200;
        setTimeout(
          () => res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'ok' : 'nope'),
          this.delayMs,
        );
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  reset(): void {
    this.received = [];
    this.script = [];
    this.delayMs = 0;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
