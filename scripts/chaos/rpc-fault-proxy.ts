// A JSON-RPC proxy in front of the chain node that answers a share of the calls with an error
// instead of forwarding them: half as an HTTP 503 (a load balancer with no healthy backend),
// half as a JSON-RPC error (a node that is overloaded). A faulted call never reaches the node.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mulberry32 } from '../../src/simulator/faults.ts';

export interface RpcFaultStats {
  calls: number;
  faulted: number;
  /** Method → faulted calls of it. */
  faultedByMethod: Record<string, number>;
}

export interface RpcFaultProxy {
  url: string;
  stats: RpcFaultStats;
  /** Changes the share of faulted calls (0 turns faults off). */
  setRate(rate: number): void;
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

type RpcCall = { id?: unknown; method?: unknown };

export async function startRpcFaultProxy(opts: { upstream: string; rate: number; seed: number }): Promise<RpcFaultProxy> {
  // The simulator's generator: the same seed repeats the same sequence.
  const random = mulberry32(opts.seed);
  let rate = opts.rate;
  const stats: RpcFaultStats = { calls: 0, faulted: 0, faultedByMethod: {} };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const body = await readBody(req);
    let calls: RpcCall[] = [];
    let batch = false;
    try {
      const parsed = JSON.parse(body.toString('utf8')) as RpcCall | RpcCall[];
      batch = Array.isArray(parsed);
      calls = batch ? (parsed as RpcCall[]) : [parsed as RpcCall];
    } catch {
      // Not JSON: forwarded as it is, so the node gives its own answer.
    }
    stats.calls += Math.max(1, calls.length);
    if (calls.length > 0 && random() < rate) {
      stats.faulted += calls.length;
      for (const c of calls) {
        const m = typeof c.method === 'string' ? c.method : '?';
        stats.faultedByMethod[m] = (stats.faultedByMethod[m] ?? 0) + 1;
      }
      if (random() < 0.5) {
        res.writeHead(503, { 'content-type': 'text/plain' }).end('injected fault: no healthy upstream');
        return;
      }
      const errors = calls.map((c) => ({
        jsonrpc: '2.0',
        id: c.id ?? null,
        error: { code: -32603, message: 'injected fault: internal error' },
      }));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(batch ? errors : errors[0]));
      return;
    }
    const upstream = await fetch(opts.upstream, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' });
    res.end(Buffer.from(await upstream.arrayBuffer()));
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    stats,
    setRate(r) {
      rate = r;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
