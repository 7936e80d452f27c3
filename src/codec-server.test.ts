import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { AesGcmPayloadCodec, ENCRYPTED_ENCODING, generatePayloadKeySpec, KEY_ID_METADATA, parsePayloadKeys } from './codec.ts';
import { CodecServerConfigError, codecServerOptionsFromEnv, startCodecServer, type CodecServer } from './codec-server.ts';

interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** node:http rather than fetch, so Origin and other browser-controlled headers are sent exactly as given. */
function call(url: string, method: string, headers: Record<string, string> = {}, body?: string | Buffer): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

type JsonPayload = { metadata?: Record<string, string>; data?: string };

function toJson(p: Payload): JsonPayload {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(p.metadata ?? {})) metadata[k] = Buffer.from(v).toString('base64');
  return { metadata, ...(p.data ? { data: Buffer.from(p.data).toString('base64') } : {}) };
}

function fromJson(j: JsonPayload): Payload {
  const metadata: Record<string, Uint8Array> = {};
  for (const [k, v] of Object.entries(j.metadata ?? {})) metadata[k] = new Uint8Array(Buffer.from(v, 'base64'));
  return { metadata, data: new Uint8Array(Buffer.from(j.data ?? '', 'base64')) };
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');

const TOKEN = randomBytes(24).toString('base64url');
const UI_ORIGIN = 'http://localhost:8233';
const SECRET = `codec-server-secret-${randomBytes(8).toString('hex')}`;

describe('codec server over HTTP', () => {
  const keysSpec = `${generatePayloadKeySpec('k2')},${generatePayloadKeySpec('k1')}`;
  let server: CodecServer;
  let small: CodecServer;

  before(async () => {
    server = await startCodecServer({
      port: 0,
      keysSpec,
      token: TOKEN,
      allowedOrigins: [UI_ORIGIN, 'http://127.0.0.1:8233/'],
    });
    small = await startCodecServer({ port: 0, keysSpec, token: TOKEN, allowedOrigins: [UI_ORIGIN], maxBodyBytes: 1024 });
  });

  after(async () => {
    await server?.close();
    await small?.close();
  });

  const post = (path: string, body: unknown, headers: Record<string, string> = {}): Promise<HttpResult> =>
    call(
      `${server.url}${path}`,
      'POST',
      { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json', ...headers },
      JSON.stringify(body),
    );

  it('listens on loopback by default', () => {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('answers 401 without a token, with a wrong token, or with another scheme', async () => {
    const body = JSON.stringify({ payloads: [] });
    const json = { 'Content-Type': 'application/json' };
    for (const auth of [
      undefined,
      'Bearer wrong-token-of-some-length',
      `Bearer ${TOKEN}x`,
      `Bearer ${TOKEN.slice(0, -1)}`,
      `Basic ${TOKEN}`,
      TOKEN,
      'Bearer ',
    ]) {
      const res = await call(`${server.url}/decode`, 'POST', auth === undefined ? json : { ...json, Authorization: auth }, body);
      assert.equal(res.status, 401, `auth header ${auth === undefined ? 'missing' : 'variant'}`);
      assert.match(String(res.headers['www-authenticate']), /^Bearer/);
      assert.equal(res.body.includes(TOKEN), false);
    }
    const ok = await post('/decode', { payloads: [] });
    assert.equal(ok.status, 200);
    assert.deepEqual(JSON.parse(ok.body), { payloads: [] });
  });

  it('answers a CORS preflight from an allowed origin without requiring the token', async () => {
    for (const origin of [UI_ORIGIN, 'http://127.0.0.1:8233']) {
      const res = await call(`${server.url}/decode`, 'OPTIONS', {
        Origin: origin,
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'authorization, content-type, x-namespace',
      });
      assert.equal(res.status, 204);
      assert.equal(res.headers['access-control-allow-origin'], origin);
      assert.equal(res.headers['access-control-allow-credentials'], 'true');
      assert.equal(res.headers['access-control-allow-headers'], 'Authorization, Content-Type, X-Namespace');
      assert.match(String(res.headers['access-control-allow-methods']), /POST/);
      assert.match(String(res.headers.vary), /Origin/);
    }
  });

  it('refuses preflights and requests from other origins and never echoes them', async () => {
    for (const origin of ['http://evil.example', 'http://localhost:8234', 'https://localhost:8233', 'null']) {
      const pre = await call(`${server.url}/decode`, 'OPTIONS', { Origin: origin, 'Access-Control-Request-Method': 'POST' });
      assert.equal(pre.status, 403, origin);
      assert.equal(pre.headers['access-control-allow-origin'], undefined);
      assert.equal(pre.headers['access-control-allow-credentials'], undefined);
      const res = await post('/decode', { payloads: [] }, { Origin: origin });
      assert.equal(res.status, 403, origin);
      assert.equal(res.headers['access-control-allow-origin'], undefined);
    }
  });

  it('echoes an allowed origin on real requests, including on 401', async () => {
    const ok = await post('/decode', { payloads: [] }, { Origin: UI_ORIGIN, 'X-Namespace': 'default' });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['access-control-allow-origin'], UI_ORIGIN);
    assert.equal(ok.headers['cache-control'], 'no-store');
    const denied = await call(`${server.url}/decode`, 'POST', { Origin: UI_ORIGIN, 'Content-Type': 'application/json' }, '{"payloads":[]}');
    assert.equal(denied.status, 401);
    assert.equal(denied.headers['access-control-allow-origin'], UI_ORIGIN);
  });

  it('round-trips encode → decode over HTTP in proto3 JSON form', async () => {
    const originals = [
      defaultPayloadConverter.toPayload({ API_KEY: SECRET }),
      defaultPayloadConverter.toPayload(new Uint8Array([9, 8, 7])),
      defaultPayloadConverter.toPayload(null),
    ];
    const enc = await post('/encode', { payloads: originals.map(toJson) });
    assert.equal(enc.status, 200);
    assert.match(String(enc.headers['content-type']), /^application\/json/);
    assert.equal(enc.body.includes(SECRET), false);
    assert.equal(enc.body.includes(b64(SECRET)), false);
    const encoded = (JSON.parse(enc.body) as { payloads: JsonPayload[] }).payloads;
    assert.equal(encoded.length, 3);
    for (const p of encoded) {
      assert.equal(p.metadata?.encoding, b64(ENCRYPTED_ENCODING));
      assert.equal(p.metadata?.[KEY_ID_METADATA], b64('k2'));
      assert.equal(Buffer.from(p.data ?? '', 'base64').includes(Buffer.from(SECRET)), false);
    }

    const dec = await post('/default/decode', { payloads: encoded }, { 'X-Namespace': 'default' });
    assert.equal(dec.status, 200);
    const decoded = (JSON.parse(dec.body) as { payloads: JsonPayload[] }).payloads;
    assert.deepEqual(decoded, originals.map(toJson));
    assert.deepEqual(defaultPayloadConverter.fromPayload(fromJson(decoded[0]!)), { API_KEY: SECRET });
  });

  it('interoperates with the codec the workers use, for every configured key', async () => {
    const workerCodec = new AesGcmPayloadCodec(parsePayloadKeys(keysSpec));
    const oldOnly = new AesGcmPayloadCodec(parsePayloadKeys(keysSpec).slice(1));
    const fromWorker = await workerCodec.encode([defaultPayloadConverter.toPayload(SECRET)]);
    const fromOldWorker = await oldOnly.encode([defaultPayloadConverter.toPayload(`${SECRET}-old`)]);
    const res = await post('/decode', { payloads: [...fromWorker, ...fromOldWorker].map(toJson) });
    assert.equal(res.status, 200);
    const [a, b] = (JSON.parse(res.body) as { payloads: JsonPayload[] }).payloads;
    assert.equal(defaultPayloadConverter.fromPayload(fromJson(a!)), SECRET);
    assert.equal(defaultPayloadConverter.fromPayload(fromJson(b!)), `${SECRET}-old`);

    const enc = await post('/encode', { payloads: [toJson(defaultPayloadConverter.toPayload('from the UI'))] });
    const [viaHttp] = (JSON.parse(enc.body) as { payloads: JsonPayload[] }).payloads;
    const [back] = await workerCodec.decode([fromJson(viaHttp!)]);
    assert.equal(defaultPayloadConverter.fromPayload(back!), 'from the UI');
  });

  it('passes unencrypted payloads through /decode', async () => {
    const plain = toJson(defaultPayloadConverter.toPayload({ visible: true }));
    const res = await post('/decode', { payloads: [plain, {}] });
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body), { payloads: [plain, { metadata: {} }] });
  });

  it('reports an unknown key id by name with 400', async () => {
    const foreign = new AesGcmPayloadCodec(parsePayloadKeys(generatePayloadKeySpec('elsewhere')));
    const [p] = await foreign.encode([defaultPayloadConverter.toPayload(SECRET)]);
    const res = await post('/decode', { payloads: [toJson(p!)] });
    assert.equal(res.status, 400);
    assert.match(JSON.parse(res.body).error, /unknown key id "elsewhere"/);
    assert.equal(res.body.includes(SECRET), false);
  });

  it('rejects malformed requests without echoing their content', async () => {
    const bad = await call(
      `${server.url}/decode`,
      'POST',
      { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
      `{"payloads": "${SECRET}"`,
    );
    assert.equal(bad.status, 400);
    assert.equal(bad.body.includes(SECRET), false);
    const shape = await post('/decode', { payloads: [{ data: 42 }], extra: SECRET });
    assert.equal(shape.status, 400);
    assert.equal(shape.body.includes(SECRET), false);
    const base64 = await post('/decode', { payloads: [{ metadata: { encoding: 'not base64!' }, data: 'AA' }] });
    assert.equal(base64.status, 400);
    assert.match(base64.body, /not valid base64/);
    const type = await call(
      `${server.url}/decode`,
      'POST',
      { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'text/plain' },
      '{"payloads":[]}',
    );
    assert.equal(type.status, 415);
    assert.equal((await call(`${server.url}/decode`, 'GET', { Authorization: `Bearer ${TOKEN}` })).status, 405);
    assert.equal((await call(`${server.url}/a/b/decode`, 'POST', { Authorization: `Bearer ${TOKEN}` })).status, 404);
    assert.equal((await call(`${server.url}/`, 'POST', { Authorization: `Bearer ${TOKEN}` })).status, 404);
  });

  it('refuses bodies over the size limit', async () => {
    const big = JSON.stringify({ payloads: [{ data: b64('x'.repeat(2048)) }] });
    const headers = { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' };
    const declared = await call(`${small.url}/decode`, 'POST', headers, big);
    assert.equal(declared.status, 413);
    // Chunked, so only the streaming check can catch it.
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = request(`${small.url}/decode`, { method: 'POST', headers: { ...headers, 'Transfer-Encoding': 'chunked' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      for (let i = 0; i < 8; i++) req.write('x'.repeat(512));
      req.end();
    });
    assert.equal(chunked, 413);
    const fits = await call(`${small.url}/decode`, 'POST', headers, JSON.stringify({ payloads: [] }));
    assert.equal(fits.status, 200);
  });
});

describe('codec server configuration', () => {
  const keysSpec = generatePayloadKeySpec();

  it('refuses weak tokens and wildcard or malformed origins', async () => {
    await assert.rejects(startCodecServer({ port: 0, keysSpec, token: 'short', allowedOrigins: [] }), CodecServerConfigError);
    for (const origin of ['*', 'localhost:8233', 'http://localhost:8233/ui', 'file:///tmp']) {
      await assert.rejects(startCodecServer({ port: 0, keysSpec, token: TOKEN, allowedOrigins: [origin] }), /not of the form/);
    }
    await assert.rejects(startCodecServer({ port: 0, keysSpec: 'k1:tooshort', token: TOKEN, allowedOrigins: [] }), /"k1"/);
  });

  it('reads the environment and names missing variables without echoing values', () => {
    const full = {
      PAYLOAD_ENCRYPTION_KEYS: keysSpec,
      CODEC_SERVER_TOKEN: TOKEN,
      CODEC_CORS_ORIGINS: `${UI_ORIGIN}, http://127.0.0.1:8233`,
      CODEC_SERVER_PORT: '9999',
    };
    assert.deepEqual(codecServerOptionsFromEnv(full), {
      port: 9999,
      host: '127.0.0.1',
      keysSpec,
      token: TOKEN,
      allowedOrigins: [UI_ORIGIN, 'http://127.0.0.1:8233'],
    });
    assert.equal(codecServerOptionsFromEnv({ ...full, CODEC_SERVER_PORT: undefined }).port, 8888);
    for (const name of ['PAYLOAD_ENCRYPTION_KEYS', 'CODEC_SERVER_TOKEN', 'CODEC_CORS_ORIGINS'] as const) {
      assert.throws(() => codecServerOptionsFromEnv({ ...full, [name]: '' }), new RegExp(`${name} `));
    }
    assert.throws(() => codecServerOptionsFromEnv({ ...full, CODEC_SERVER_PORT: 'http' }), /CODEC_SERVER_PORT/);
    assert.throws(() => codecServerOptionsFromEnv({ ...full, CODEC_CORS_ORIGINS: ' , ' }), /lists no origin/);
  });
});

describe('codec server CLI', () => {
  const entry = fileURLToPath(new URL('./codec-server.ts', import.meta.url));

  function runCli(env: Record<string, string>): {
    child: ReturnType<typeof spawn>;
    stdout: Promise<string>;
    exit: Promise<number | null>;
    output: () => string;
  } {
    const child = spawn(process.execPath, ['--import', 'tsx', entry], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    const stdout = new Promise<string>((resolve) => child.stdout!.on('data', () => /listening on (\S+)/.test(out) && resolve(out)));
    const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    return { child, stdout, exit, output: () => out };
  }

  it('starts from the environment and serves requests', async () => {
    const run = runCli({
      PAYLOAD_ENCRYPTION_KEYS: generatePayloadKeySpec('cli'),
      CODEC_SERVER_TOKEN: TOKEN,
      CODEC_CORS_ORIGINS: UI_ORIGIN,
      CODEC_SERVER_PORT: '0',
    });
    try {
      const text = await Promise.race([run.stdout, run.exit.then((code) => Promise.reject(new Error(`exited ${code}: ${run.output()}`)))]);
      const url = /listening on (\S+)/.exec(text)![1]!;
      const res = await call(
        `${url}/encode`,
        'POST',
        { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
        JSON.stringify({ payloads: [toJson(defaultPayloadConverter.toPayload(1))] }),
      );
      assert.equal(res.status, 200);
      assert.equal(JSON.parse(res.body).payloads[0].metadata[KEY_ID_METADATA], b64('cli'));
      assert.equal(run.output().includes(TOKEN), false);
    } finally {
      run.child.kill('SIGTERM');
      await run.exit;
    }
  });

  it('exits with a clear error when configuration is missing or wrong, without printing secrets', async () => {
    const missing = runCli({ CODEC_SERVER_TOKEN: TOKEN, CODEC_CORS_ORIGINS: UI_ORIGIN });
    assert.equal(await missing.exit, 1);
    assert.match(missing.output(), /PAYLOAD_ENCRYPTION_KEYS is not set/);
    assert.equal(missing.output().includes(TOKEN), false);

    const badKey = randomBytes(20).toString('base64');
    const wrong = runCli({
      PAYLOAD_ENCRYPTION_KEYS: `k7:${badKey}`,
      CODEC_SERVER_TOKEN: TOKEN,
      CODEC_CORS_ORIGINS: UI_ORIGIN,
      CODEC_SERVER_PORT: '0',
    });
    assert.equal(await wrong.exit, 1);
    assert.match(wrong.output(), /"k7" is 20 bytes/);
    assert.equal(wrong.output().includes(badKey), false);
  });
});
