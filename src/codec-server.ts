#!/usr/bin/env node
/**
 * Codec server for the Temporal Web UI and CLI: the same AES-GCM codec the
 * workers use, behind HTTP, so authorised operators can read (and, when they
 * start or signal workflows from the UI, write) encrypted payloads.
 *
 * Protocol (Temporal "remote codec"): `POST {endpoint}/encode` and
 * `POST {endpoint}/decode` with a proto3-JSON body
 *   {"payloads":[{"metadata":{"encoding":"<base64>"},"data":"<base64>"}]}
 * answered in the same shape. The CLI may template the namespace into the
 * endpoint, so `/{namespace}/encode|decode` is accepted too; one key set serves
 * all namespaces.
 *
 * Every payload this server decodes is plaintext on the wire back to the caller,
 * so: bearer token on every POST, CORS only for listed origins, responses never
 * cached, no payload or key ever in a log line or error body.
 *
 * Run directly: `tsx src/codec-server.ts` with PAYLOAD_ENCRYPTION_KEYS,
 * CODEC_SERVER_TOKEN, CODEC_CORS_ORIGINS (comma-separated origins) and optional
 * CODEC_SERVER_PORT (default 8888) and CODEC_SERVER_HOST (default 127.0.0.1).
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Payload } from '@temporalio/common';
import { z } from 'zod';
import { AesGcmPayloadCodec, decodeStrictBase64, parsePayloadKeys, PayloadDecryptionError, PayloadKeyConfigError } from './codec.ts';
import { createAuthenticator, type OidcOptions } from './codec-auth.ts';
import { ConfigError } from './config-error.ts';
import { isMainModule } from './entry.ts';
import { secretFromEnv } from './file-secrets.ts';

export interface CodecServerOptions {
  /** 0 picks a free port; read it back from `url`. */
  port: number;
  host?: string;
  keysSpec: string;
  /** Static bearer token for the CLI and automation (a writer). At least 16 characters. Optional with `oidc`. */
  token?: string;
  /** Verify the Temporal UI's OIDC access tokens; the token's roles decide reader or writer. */
  oidc?: OidcOptions;
  /** Serve HTTPS with this certificate and key (PEM). */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Exact origins (`scheme://host[:port]`) allowed to call from a browser, e.g. the Temporal UI. */
  allowedOrigins: string[];
  /** Largest accepted request body. Default 8 MiB: a UI page of history can carry several 2 MiB payloads. */
  maxBodyBytes?: number;
  /**
   * Also accept the token as a path prefix, `/t/<token>/decode`. The Temporal dev UI
   * cannot send a bearer header (it only forwards an OIDC token), so the local stack
   * gives it this URL instead; it is as secret as the UI's own settings page.
   */
  allowPathToken?: boolean;
}

export interface CodecServer {
  /** Base URL, e.g. `http://127.0.0.1:8888`; the UI/CLI endpoint setting. */
  url: string;
  close(): Promise<void>;
}

const DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024;
const MIN_TOKEN_LENGTH = 16;
const ROUTE = /^(?:\/[^/]+)?\/(encode|decode)\/?$/;
const PATH_TOKEN_ROUTE = /^\/t\/([^/]+)\/(encode|decode)\/?$/;
const ALLOWED_HEADERS = 'Authorization, Content-Type, X-Namespace';

const jsonPayloadSchema = z.looseObject({
  metadata: z.record(z.string(), z.string()).nullish(),
  data: z.string().nullish(),
});
const requestSchema = z.object({ payloads: z.array(jsonPayloadSchema) });

/** Invalid codec server configuration. Messages name settings, never secret values. */
export class CodecServerConfigError extends Error {
  override name = 'CodecServerConfigError';
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Reduces an origin to `scheme://host[:port]`, or undefined if it is not one. */
function normaliseOrigin(value: string): string | undefined {
  try {
    const url = new URL(value);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
    if (url.pathname !== '/' || url.search || url.hash || url.username || url.password) return undefined;
    return url.origin;
  } catch {
    return undefined;
  }
}

function validateOptions(options: CodecServerOptions): { origins: Set<string>; maxBodyBytes: number } {
  if (options.token === undefined && !options.oidc) {
    throw new CodecServerConfigError('the codec server needs a static token, OIDC settings, or both');
  }
  if (options.token !== undefined) {
    if (typeof options.token !== 'string' || options.token.length < MIN_TOKEN_LENGTH) {
      throw new CodecServerConfigError(`codec server token must be at least ${MIN_TOKEN_LENGTH} characters`);
    }
    if (/\s/.test(options.token)) throw new CodecServerConfigError('codec server token must not contain whitespace');
  }
  if (options.oidc) {
    for (const field of ['jwksUrl', 'issuer'] as const) {
      if (!options.oidc[field]) throw new CodecServerConfigError(`OIDC ${field} is required`);
    }
    if (!options.oidc.audience || options.oidc.audience.length === 0) throw new CodecServerConfigError('OIDC audience is required');
    if (!/^https?:\/\//.test(options.oidc.jwksUrl)) throw new CodecServerConfigError('OIDC jwksUrl must be an http(s) URL');
  }
  if (!Array.isArray(options.allowedOrigins)) throw new CodecServerConfigError('allowedOrigins must be a list of origins');
  const origins = new Set<string>();
  for (const origin of options.allowedOrigins) {
    // '*' cannot be combined with credentials, and would hand plaintext to any site.
    const normalised = normaliseOrigin(origin);
    if (!normalised) {
      throw new CodecServerConfigError(`allowed CORS origin ${JSON.stringify(origin)} is not of the form scheme://host[:port]`);
    }
    origins.add(normalised);
  }
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (!Number.isInteger(maxBodyBytes) || maxBodyBytes <= 0) throw new CodecServerConfigError('maxBodyBytes must be a positive integer');
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
    throw new CodecServerConfigError('codec server port must be an integer between 0 and 65535');
  }
  return { origins, maxBodyBytes };
}

function payloadFromJson(json: z.infer<typeof jsonPayloadSchema>, index: number): Payload {
  const decode = (value: string, what: string): Uint8Array => {
    const bytes = decodeStrictBase64(value);
    if (!bytes) throw new HttpError(400, `payloads[${index}].${what} is not valid base64`);
    return bytes;
  };
  const payload: Payload = {};
  if (json.metadata) {
    payload.metadata = {};
    for (const [key, value] of Object.entries(json.metadata)) {
      payload.metadata[key] = decode(value, `metadata[${JSON.stringify(key.slice(0, 64))}]`);
    }
  }
  if (json.data != null) payload.data = decode(json.data, 'data');
  return payload;
}

function payloadToJson(payload: Payload): { metadata: Record<string, string>; data?: string } {
  const metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(payload.metadata ?? {})) {
    if (value) metadata[key] = Buffer.from(value).toString('base64');
  }
  const out: { metadata: Record<string, string>; data?: string } = { metadata };
  if (payload.data && payload.data.length > 0) out.data = Buffer.from(payload.data).toString('base64');
  return out;
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(new HttpError(413, `request body exceeds ${limit} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        // Stop buffering; the response is sent before the rest arrives.
        req.removeAllListeners('data');
        req.resume();
        reject(new HttpError(413, `request body exceeds ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks, size)));
    req.on('error', reject);
  });
}

export async function startCodecServer(options: CodecServerOptions): Promise<CodecServer> {
  const { origins, maxBodyBytes } = validateOptions(options);
  const host = options.host ?? '127.0.0.1';
  // It only shows payloads to the UI: one nobody encrypted is shown as it is, not refused.
  const codec = new AesGcmPayloadCodec(parsePayloadKeys(options.keysSpec), { acceptUnencrypted: true });
  const authenticate = createAuthenticator({ token: options.token, oidc: options.oidc });

  const send = (res: ServerResponse, status: number, body?: unknown): void => {
    res.statusCode = status;
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    if (body === undefined) {
      res.end();
      return;
    }
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.end(JSON.stringify(body));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const origin = req.headers.origin;
    const originAllowed = origin !== undefined && origins.has(origin);
    // Responses differ by Origin, so shared caches must key on it.
    res.setHeader('Vary', 'Origin');
    if (originAllowed) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
    }

    const pathname = new URL(req.url ?? '/', 'http://codec.invalid').pathname;
    const tokenRoute = options.allowPathToken ? PATH_TOKEN_ROUTE.exec(pathname) : null;
    const route = (tokenRoute?.[2] ?? ROUTE.exec(pathname)?.[1]) as 'encode' | 'decode' | undefined;
    if (!route) return send(res, 404, { error: 'not found' });
    const credentials = tokenRoute ? `Bearer ${decodeURIComponent(tokenRoute[1]!)}` : req.headers.authorization;

    if (req.method === 'OPTIONS') {
      // Preflights carry no credentials, so they are answered without the token.
      if (!originAllowed) return send(res, 403, { error: 'origin not allowed' });
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', ALLOWED_HEADERS);
      res.setHeader('Access-Control-Max-Age', '600');
      return send(res, 204);
    }
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST, OPTIONS');
      return send(res, 405, { error: 'method not allowed' });
    }
    // Browsers always send Origin on cross-origin POSTs; refusing unknown ones
    // here means a page on another site cannot even trigger the work.
    if (origin !== undefined && !originAllowed) return send(res, 403, { error: 'origin not allowed' });
    const role = await authenticate(credentials);
    if (role === undefined) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="temporal-codec"');
      return send(res, 401, { error: 'unauthorized' });
    }
    if (role === 'no-role' || (route === 'encode' && role !== 'writer')) {
      return send(res, 403, { error: route === 'encode' ? 'encoding needs the writer role' : 'decoding needs the reader or writer role' });
    }
    const contentType = req.headers['content-type'] ?? '';
    if (!/^application\/json\b/i.test(contentType)) {
      return send(res, 415, { error: 'content type must be application/json' });
    }

    const body = await readBody(req, maxBodyBytes);
    let parsed: z.infer<typeof requestSchema>;
    try {
      parsed = requestSchema.parse(JSON.parse(body.toString('utf8')));
    } catch {
      // zod and JSON.parse messages can quote the input; keep them out of the reply.
      throw new HttpError(400, 'body must be JSON of the form {"payloads":[{"metadata":{...},"data":"..."}]}');
    }
    const payloads = parsed.payloads.map(payloadFromJson);
    const result = route === 'encode' ? await codec.encode(payloads) : await codec.decode(payloads);
    return send(res, 200, { payloads: result.map(payloadToJson) });
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof HttpError) {
        if (err.status === 413) res.setHeader('Connection', 'close');
        return send(res, err.status, { error: err.message });
      }
      // Codec errors are written to name key ids only, so they are safe to return.
      if (err instanceof PayloadDecryptionError) return send(res, 400, { error: err.message });
      send(res, 500, { error: 'internal error' });
    });
  };
  const server = options.tls ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, onRequest) : createServer(onRequest);
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  return {
    url: `${options.tls ? 'https' : 'http'}://${urlHost}:${address.port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

function requiredEnv(env: NodeJS.ProcessEnv, name: string, what: string): string {
  const value = env[name]?.trim();
  if (!value) throw new CodecServerConfigError(`${name} is not set: ${what}`);
  return value;
}

/**
 * Reads the configuration from the environment; errors name the variable, never its value.
 * Authentication: CODEC_SERVER_TOKEN(_FILE) and/or CODEC_OIDC_JWKS_URL with
 * CODEC_OIDC_ISSUER and CODEC_OIDC_AUDIENCE (comma-separated), optionally
 * CODEC_OIDC_ROLES_CLAIM, CODEC_OIDC_READER_ROLE, CODEC_OIDC_WRITER_ROLE.
 * HTTPS: CODEC_TLS_CERT_FILE and CODEC_TLS_KEY_FILE.
 */
export function codecServerOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): CodecServerOptions {
  const secret = (name: string): string | undefined => {
    try {
      return secretFromEnv(env, name)?.trim() || undefined;
    } catch (err) {
      throw new CodecServerConfigError((err as ConfigError).message);
    }
  };
  const keysSpec = secret('PAYLOAD_ENCRYPTION_KEYS');
  if (!keysSpec)
    throw new CodecServerConfigError('PAYLOAD_ENCRYPTION_KEYS is not set: payload keys as "id:key[,id:key...]" (the workers\' keys)');
  const token = secret('CODEC_SERVER_TOKEN');
  const jwksUrl = env.CODEC_OIDC_JWKS_URL?.trim();
  let oidc: OidcOptions | undefined;
  if (jwksUrl) {
    const issuer = requiredEnv(env, 'CODEC_OIDC_ISSUER', "the issuer (iss) of the UI's access tokens");
    const audience = requiredEnv(env, 'CODEC_OIDC_AUDIENCE', "the audience (aud) the UI's access tokens are issued for")
      .split(',')
      .map((a) => a.trim())
      .filter(Boolean);
    const optional = (name: string) => env[name]?.trim() || undefined;
    oidc = {
      jwksUrl,
      issuer,
      audience,
      rolesClaim: optional('CODEC_OIDC_ROLES_CLAIM'),
      readerRole: optional('CODEC_OIDC_READER_ROLE'),
      writerRole: optional('CODEC_OIDC_WRITER_ROLE'),
    };
  }
  if (!token && !oidc) {
    throw new CodecServerConfigError(
      `set CODEC_SERVER_TOKEN (bearer token of at least ${MIN_TOKEN_LENGTH} characters) and/or CODEC_OIDC_JWKS_URL with CODEC_OIDC_ISSUER and CODEC_OIDC_AUDIENCE`,
    );
  }
  const origins = requiredEnv(env, 'CODEC_CORS_ORIGINS', 'comma-separated origins of the Temporal UI, e.g. http://localhost:8233')
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean);
  if (origins.length === 0) throw new CodecServerConfigError('CODEC_CORS_ORIGINS lists no origin');
  const portText = env.CODEC_SERVER_PORT?.trim() || '8888';
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) {
    throw new CodecServerConfigError('CODEC_SERVER_PORT must be a port number (0-65535)');
  }
  const certFile = env.CODEC_TLS_CERT_FILE?.trim();
  const keyFile = env.CODEC_TLS_KEY_FILE?.trim();
  if (Boolean(certFile) !== Boolean(keyFile))
    throw new CodecServerConfigError('set both CODEC_TLS_CERT_FILE and CODEC_TLS_KEY_FILE, or neither');
  const readPem = (name: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new CodecServerConfigError(`${name} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  };
  const tls =
    certFile && keyFile ? { cert: readPem('CODEC_TLS_CERT_FILE', certFile), key: readPem('CODEC_TLS_KEY_FILE', keyFile) } : undefined;
  return {
    port,
    host: env.CODEC_SERVER_HOST?.trim() || '127.0.0.1',
    keysSpec,
    ...(token ? { token } : {}),
    ...(oidc ? { oidc } : {}),
    ...(tls ? { tls } : {}),
    allowedOrigins: origins,
  };
}

if (isMainModule(import.meta.url)) {
  try {
    const options = codecServerOptionsFromEnv();
    const server = await startCodecServer(options);
    process.stdout.write(`codec server listening on ${server.url} (CORS origins: ${options.allowedOrigins.join(', ')})\n`);
    const stop = (): void => {
      server.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  } catch (err) {
    // Our config errors are written to be safe to print; anything else is reduced
    // to its class name in case its message quotes configuration.
    const message =
      err instanceof CodecServerConfigError || err instanceof PayloadKeyConfigError
        ? err.message
        : err instanceof Error && 'code' in err && typeof err.code === 'string'
          ? `${err.name} ${err.code}`
          : err instanceof Error
            ? err.name
            : 'unknown error';
    process.stderr.write(`codec server failed to start: ${message}\n`);
    process.exit(1);
  }
}
