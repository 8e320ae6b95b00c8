/** The chat webhook the plane posts to: a loopback HTTP server that records which job each Slack message names, and its state. */
import { createServer, type Server } from 'node:http';
import type { Notice } from './record.js';

/** The context line of core/notification.ts's Slack message: `job <id> · <previous> → <state> · <at>`. */
const CONTEXT = /^job (\S+) · (\S+) → (\S+) · /;

export function parseSlackNotice(body: unknown, at: number): Notice | undefined {
  const blocks =
    (body as { blocks?: Array<{ type?: string; elements?: Array<{ text?: string }> }> } | undefined)?.blocks ?? [];
  for (const block of blocks) {
    if (block.type !== 'context') continue;
    const match = CONTEXT.exec(block.elements?.[0]?.text ?? '');
    if (match)
      return { at, jobId: match[1], previousState: match[2] === 'new' ? undefined : match[2], state: match[3] };
  }
  return undefined;
}

export interface HookServer {
  url: string;
  notices: Notice[];
  /** Posts that were not a Slack message this soak could read. */
  unreadable: number;
  close(): Promise<void>;
}

export async function startHookServer(): Promise<HookServer> {
  const notices: Notice[] = [];
  const state = { unreadable: 0 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let notice: Notice | undefined;
      try {
        notice = parseSlackNotice(JSON.parse(Buffer.concat(chunks).toString('utf8')), Date.now());
      } catch {
        notice = undefined;
      }
      if (notice) notices.push(notice);
      else state.unreadable++;
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/hook`,
    notices,
    get unreadable() {
      return state.unreadable;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
