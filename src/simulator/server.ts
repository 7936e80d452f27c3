/**
 * The simulator's HTTP server: routing, API-key and admin-token auth, API versions, injected
 * faults, and the timers that finish accepted updates. Request handling itself lives in
 * api-routes.ts, envs-route.ts and admin-routes.ts.
 *
 * Nothing secret is logged: request lines carry method, path, status and duration only.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomUUID, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { handleAdmin } from './admin-routes.ts';
import { API_ROUTES, matchRoute, resolveCvm, type ApiDeps } from './api-routes.ts';
import { ChainVerifier } from './chain-verifier.ts';
import { API_VERSIONS, DEFAULT_BEHAVIOUR, mergeBehaviour, type ApiVersion, type BehaviourConfig, type SimulatorOptions } from './config.ts';
import { detailError, HttpError, validationError, type ErrorEnvelope } from './errors.ts';
import { applyInFlight } from './envs-route.ts';
import { BootChecker } from './boot-check.ts';
import { composeHash, type AppCompose } from './compose.ts';
import { Faults, tamperBody } from './faults.ts';
import { applySeed, readSeedFile, type SeedConfig, type SeededCvmInfo } from './seed.ts';
import { Workspace, type CvmRecord } from './state.ts';

export const API_PREFIX = '/api/v1';
export const ROUTE_KEYS = API_ROUTES.map((r) => `${r.method} ${r.template}`);

export interface Simulator {
  /** Root URL, e.g. http://127.0.0.1:4321 (admin routes live under /_sim). */
  url: string;
  /** Base URL as the SDK's `baseURL` takes it, including /api/v1. */
  apiUrl: string;
  port: number;
  workspace: Workspace;
  faults: Faults;
  seeded: SeededCvmInfo[];
  behaviour(): BehaviourConfig;
  close(): Promise<void>;
}

class BodyTooLarge extends Error {}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // Past the limit the rest is drained, not stored, so the client still gets its 413;
      // a client that keeps sending far beyond it is cut off.
      if (size > limit * 4) req.destroy();
      else if (size <= limit) chunks.push(chunk);
    });
    req.on('end', () => (size > limit ? reject(new BodyTooLarge()) : resolve(Buffer.concat(chunks))));
    req.on('error', reject);
  });
}

function sameSecret(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function parseJson(raw: Buffer): unknown {
  if (raw.length === 0) return undefined;
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    throw validationError([{ loc: ['body', 0], msg: 'JSON decode error', type: 'json_invalid' }]);
  }
}

const EDGE_PAGES: Record<number, string> = {
  502: '<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>\n',
  503: '<html><head><title>503 Service Temporarily Unavailable</title></head><body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>\n',
};

/** An injected failure, shaped like what produces it: the app (403, 500, 429) or the proxy in front (502, 503). */
function faultError(status: number, retryAfterSeconds: number, retryAfter?: string): HttpError {
  const wait = retryAfter ?? String(retryAfterSeconds);
  if (status === 403) return detailError(403, 'You do not have permission to access this CVM');
  if (status === 404) return detailError(404, 'Not Found');
  if (status === 429) {
    return detailError(429, 'Rate limit exceeded; retry later', { 'Retry-After': wait });
  }
  if (status === 500) return detailError(500, 'Internal Server Error');
  const headers: Record<string, string> = status === 503 ? { 'Retry-After': wait } : {};
  return new HttpError(status, `injected ${status}`, () => null, headers, { contentType: 'text/html', text: EDGE_PAGES[status]! });
}

export async function startSimulator(opts: SimulatorOptions): Promise<Simulator> {
  const log = opts.log ?? (() => {});
  const logRequests = process.env.SIM_LOG_REQUESTS === '1';
  let behaviour = mergeBehaviour(DEFAULT_BEHAVIOUR, (opts.behaviour ?? {}) as Record<string, unknown>);
  const ws = Workspace.open(opts.statePath);
  let seed: SeedConfig | undefined;
  let seeded: SeededCvmInfo[] = [];
  if (opts.seedPath) {
    seed = readSeedFile(opts.seedPath);
    seeded = applySeed(ws, seed);
  }
  ws.flush();

  const rpcUrl = opts.rpcUrl ?? null;
  const verifier = rpcUrl === null ? null : new ChainVerifier({ rpcUrl });
  const faults = new Faults(ROUTE_KEYS, opts.faults);
  const timers = new Map<string, NodeJS.Timeout>();
  const busy = new Set<string>();
  const now = () => Date.now();
  let closed = false;

  const booter = rpcUrl === null ? null : new BootChecker(rpcUrl);
  const bootRefusal = async (cvm: CvmRecord, compose: AppCompose): Promise<string | null> => {
    const kms = ws.kmsOf(ws.appOf(cvm));
    if (booter === null || !behaviour.bootChecks || kms.kind !== 'onchain') return null;
    return booter.refusal({
      kmsAddress: kms.contractAddress,
      appId: cvm.appId,
      instanceId: cvm.instanceId,
      composeHash: composeHash(compose, behaviour.composeSerialization),
      deviceId: cvm.deviceId,
      osImageHash: ws.data.node.osImageHash ?? null,
    });
  };

  const schedule = (cvm: CvmRecord) => {
    const flight = cvm.inFlight;
    if (flight === null || closed) return;
    clearTimeout(timers.get(cvm.id));
    const timer = setTimeout(
      () => {
        timers.delete(cvm.id);
        const current = ws.data.cvms.find((c) => c.id === cvm.id);
        if (!current || current.inFlight?.correlationId !== flight.correlationId) return;
        applyInFlight(ws, current, now(), bootRefusal).catch((err: unknown) =>
          log(`applying the update of ${cvm.id} failed: ${(err as Error).message}`),
        );
      },
      Math.max(0, flight.applyAt - now()),
    );
    timers.set(cvm.id, timer);
  };
  for (const cvm of ws.data.cvms) schedule(cvm);

  const deps: ApiDeps = {
    ws,
    behaviour: () => behaviour,
    verifier,
    faults,
    busy,
    schedule,
    now,
    log,
    rpcUrl,
  };
  const adminDeps = {
    ws,
    faults,
    behaviour: () => behaviour,
    setBehaviour: (b: BehaviourConfig) => {
      behaviour = b;
    },
    rpcUrl,
    signerAddress: seed?.signerAddress ?? null,
    now,
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const method = (req.method ?? 'GET').toUpperCase();
    const url = new URL(req.url ?? '/', 'http://simulator.invalid');
    const givenRequestId = headerValue(req, 'x-request-id');
    const requestId = givenRequestId && /^[\x21-\x7e]{1,128}$/.test(givenRequestId) ? givenRequestId : `req_${randomUUID()}`;
    let version: ApiVersion = behaviour.defaultApiVersion;
    const envelope: ErrorEnvelope = behaviour.errorEnvelope;

    const finish = (status: number, body: unknown, headers: Record<string, string> = {}, text?: { contentType: string; value: string }) => {
      if (res.headersSent || res.destroyed) return;
      const payload = text ? text.value : body === null && status >= 400 ? '' : JSON.stringify(body);
      res.writeHead(status, {
        'Content-Type': text ? text.contentType : 'application/json',
        'Content-Length': Buffer.byteLength(payload),
        'X-Request-ID': requestId,
        'X-Phala-Version': version,
        ...headers,
      });
      res.end(payload);
      if (logRequests) log(`${method} ${url.pathname} ${status} ${Math.round(performance.now() - started)}ms`);
    };
    const fail = (err: HttpError) => {
      if (err.raw) finish(err.status, null, err.headers, { contentType: err.raw.contentType, value: err.raw.text });
      else finish(err.status, err.body(requestId, envelope), err.headers);
    };

    let raw: Buffer;
    try {
      raw = await readBody(req, behaviour.maxBodyBytes);
    } catch (err) {
      if (err instanceof BodyTooLarge) {
        res.setHeader('Connection', 'close');
        fail(detailError(413, 'Request body too large'));
      }
      return;
    }

    const adminPath = url.pathname.startsWith('/_sim/')
      ? url.pathname.slice('/_sim'.length)
      : url.pathname.startsWith(`${API_PREFIX}/_sim/`)
        ? url.pathname.slice(`${API_PREFIX}/_sim`.length)
        : null;
    if (adminPath !== null) {
      const auth = headerValue(req, 'authorization');
      const token = auth?.startsWith('Bearer ') ? auth.slice(7) : headerValue(req, 'x-sim-admin-token');
      if (adminPath !== '/health' && !sameSecret(token, opts.adminToken)) {
        fail(detailError(401, 'Admin token required'));
        return;
      }
      try {
        const out = await handleAdmin(adminDeps, method, adminPath, url.searchParams, parseJson(raw));
        finish(out.status, out.body);
      } catch (err) {
        if (err instanceof HttpError) fail(err);
        else {
          log(`admin ${method} ${adminPath} failed: ${(err as Error).message}`);
          fail(detailError(500, 'Internal Server Error'));
        }
      }
      return;
    }

    if (url.pathname !== API_PREFIX && !url.pathname.startsWith(`${API_PREFIX}/`)) {
      fail(detailError(404, 'Not Found'));
      return;
    }
    const match = matchRoute(API_ROUTES, method, url.pathname.slice(API_PREFIX.length));
    if (match === null) {
      fail(detailError(404, 'Not Found'));
      return;
    }
    if ('allowed' in match) {
      fail(detailError(405, 'Method Not Allowed', { Allow: match.allowed.join(', ') }));
      return;
    }
    const { route, params } = match;
    const cvm = resolveCvm(ws, params);

    const decision = faults.decide(method, route.template, cvm?.id ?? null);
    if (decision.latencyMs > 0) await new Promise((r) => setTimeout(r, decision.latencyMs));
    if (decision.drop === 'before') {
      req.socket.destroy();
      return;
    }
    if (decision.error) {
      if (decision.drop === 'after') req.socket.destroy();
      else fail(faultError(decision.error.status, decision.error.retryAfterSeconds, decision.error.retryAfter));
      return;
    }

    let outcome: { status: number; body: unknown; text?: { contentType: string; value: string } } | HttpError;
    try {
      // X-API-Key, or a bearer token (the SDK's OIDC path) when no key is sent; one credential here.
      const bearer = headerValue(req, 'authorization');
      const key = headerValue(req, 'x-api-key') ?? (bearer?.startsWith('Bearer ') ? bearer.slice(7) : undefined);
      if (key !== undefined ? !sameSecret(key, opts.apiKey) : !route.public) {
        throw detailError(401, key === undefined ? 'Not authenticated' : 'Invalid API key');
      }
      const requested = headerValue(req, 'x-phala-version');
      if (requested !== undefined && requested !== '') {
        if (!(API_VERSIONS as readonly string[]).includes(requested)) {
          throw detailError(400, `Unsupported API version "${requested.slice(0, 32)}"; supported: ${API_VERSIONS.join(', ')}`);
        }
        version = requested as ApiVersion;
      }
      const body = method === 'GET' || method === 'DELETE' ? undefined : parseJson(raw);
      if ((method === 'PATCH' || method === 'POST') && body === undefined) {
        throw validationError([{ loc: ['body'], msg: 'Field required', type: 'missing' }]);
      }
      outcome = await route.handler(deps, { params, query: url.searchParams, body, version, cvm });
    } catch (err) {
      if (err instanceof HttpError) outcome = err;
      else {
        log(`${method} ${route.template} failed: ${(err as Error).message}`);
        outcome = detailError(500, 'Internal Server Error');
      }
    }
    const accepted = !(outcome instanceof HttpError) && outcome.status >= 200 && outcome.status < 300;
    if (decision.drop === 'after' || (decision.drop === 'accepted' && accepted)) {
      if (decision.dropRuleId) faults.consumeAccepted(decision.dropRuleId);
      req.socket.destroy();
      return;
    }
    if (decision.tamper?.hugeBodyBytes != null) {
      const size = decision.tamper.hugeBodyBytes;
      const pad = Math.max(0, size - '{"padding":""}'.length);
      finish(200, null, {}, { contentType: 'application/json', value: `{"padding":"${'a'.repeat(pad)}"}` });
      return;
    }
    if (decision.tamper && decision.tamper.set.length > 0) {
      if (outcome instanceof HttpError && !outcome.raw) {
        finish(outcome.status, tamperBody(outcome.body(requestId, envelope), decision.tamper), outcome.headers);
        return;
      }
      if (!(outcome instanceof HttpError) && !outcome.text) {
        finish(outcome.status, tamperBody(outcome.body, decision.tamper));
        return;
      }
    }
    if (outcome instanceof HttpError) fail(outcome);
    else finish(outcome.status, outcome.body, {}, outcome.text);
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log(`request handling crashed: ${(err as Error).message}`);
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'application/json' }).end('{"detail":"Internal Server Error"}');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = opts.host && opts.host !== '0.0.0.0' && opts.host !== '::' ? opts.host : '127.0.0.1';
  const root = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  return {
    url: root,
    apiUrl: `${root}${API_PREFIX}`,
    port,
    workspace: ws,
    faults,
    seeded,
    behaviour: () => behaviour,
    close: async () => {
      if (closed) return;
      closed = true;
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      ws.flush();
    },
  };
}
