// The codec server behind the production Temporal UI: OIDC access tokens verified against a
// real JWKS endpoint (issuer, audience, expiry, signature), roles deciding decode vs encode,
// the static token still working for automation, and HTTPS.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { defaultPayloadConverter } from '@temporalio/common';
import { generatePayloadKeySpec } from './codec.ts';
import { codecServerOptionsFromEnv, startCodecServer, type CodecServer } from './codec-server.ts';

const ISSUER = 'https://idp.example.test/';
const AUDIENCE = 'temporal-ui';
const STATIC = randomBytes(24).toString('base64url');
const body = (payloads: unknown[]) => JSON.stringify({ payloads });
const plain = () => {
  const p = defaultPayloadConverter.toPayload({ hello: 'world' });
  return { metadata: { encoding: Buffer.from(p.metadata!.encoding!).toString('base64') }, data: Buffer.from(p.data!).toString('base64') };
};

describe('codec server with OIDC', () => {
  let signingKey: CryptoKey;
  let strangerKey: CryptoKey;
  let jwks: Server;
  let server: CodecServer;

  const token = async (
    claims: Record<string, unknown>,
    opts: { key?: CryptoKey; issuer?: string; audience?: string; exp?: string | number } = {},
  ) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer(opts.issuer ?? ISSUER)
      .setAudience(opts.audience ?? AUDIENCE)
      .setSubject('operator@example.test')
      .setIssuedAt()
      .setExpirationTime(opts.exp ?? '5m')
      .sign(opts.key ?? signingKey);

  const post = (route: 'encode' | 'decode', auth: string | undefined, payloads: unknown[]) =>
    fetch(`${server.url}/${route}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...(auth ? { Authorization: `Bearer ${auth}` } : {}) },
      body: body(payloads),
    });

  before(async () => {
    const pair = await generateKeyPair('ES256');
    signingKey = pair.privateKey;
    strangerKey = (await generateKeyPair('ES256')).privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    jwks = createServer((_req, res) => {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
    const port = (jwks.address() as { port: number }).port;
    server = await startCodecServer({
      port: 0,
      keysSpec: generatePayloadKeySpec('k1'),
      token: STATIC,
      oidc: { jwksUrl: `http://127.0.0.1:${port}/jwks`, issuer: ISSUER, audience: AUDIENCE, rolesClaim: 'groups' },
      allowedOrigins: ['http://localhost:8080'],
    });
  });
  after(async () => {
    await server?.close();
    await new Promise((r) => jwks?.close(r));
  });

  it('a reader decodes but may not encode; a writer encodes; the static token acts as a writer', async () => {
    const writer = await token({ groups: ['codec-writer'] });
    const reader = await token({ groups: ['codec-reader', 'other'] });
    const encoded = await post('encode', writer, [plain()]);
    assert.equal(encoded.status, 200);
    const { payloads } = (await encoded.json()) as { payloads: unknown[] };
    assert.equal((await post('decode', reader, payloads)).status, 200);
    const decoded = (await (await post('decode', reader, payloads)).json()) as { payloads: { data: string }[] };
    assert.deepEqual(JSON.parse(Buffer.from(decoded.payloads[0]!.data, 'base64').toString()), { hello: 'world' });
    const refused = await post('encode', reader, [plain()]);
    assert.equal(refused.status, 403);
    assert.match(await refused.text(), /writer role/);
    assert.equal((await post('encode', STATIC, [plain()])).status, 200);
  });

  it('a space-separated roles claim works too; a valid token without a role is forbidden', async () => {
    assert.equal((await post('decode', await token({ groups: 'openid codec-reader' }), [])).status, 200);
    assert.equal((await post('decode', await token({ groups: [] }), [])).status, 403);
  });

  it('wrong issuer, wrong audience, expired, foreign key, garbage or no token: 401', async () => {
    const groups = ['codec-writer'];
    const cases: Record<string, string | undefined> = {
      issuer: await token({ groups }, { issuer: 'https://evil.example.test/' }),
      audience: await token({ groups }, { audience: 'someone-else' }),
      expired: await token({ groups }, { exp: Math.floor(Date.now() / 1000) - 3600 }),
      foreignKey: await token({ groups }, { key: strangerKey }),
      garbage: 'not.a.jwt',
      none: undefined,
    };
    for (const [name, t] of Object.entries(cases)) {
      const res = await post('decode', t, []);
      assert.equal(res.status, 401, `${name}: ${res.status}`);
      assert.match(res.headers.get('www-authenticate') ?? '', /Bearer/);
    }
  });

  it('reads OIDC and TLS settings from the environment, naming what is missing', () => {
    const base = { PAYLOAD_ENCRYPTION_KEYS: generatePayloadKeySpec('k1'), CODEC_CORS_ORIGINS: 'http://localhost:8080' };
    const o = codecServerOptionsFromEnv({
      ...base,
      CODEC_OIDC_JWKS_URL: 'https://idp.example.test/jwks',
      CODEC_OIDC_ISSUER: ISSUER,
      CODEC_OIDC_AUDIENCE: 'temporal-ui, api',
      CODEC_OIDC_ROLES_CLAIM: 'groups',
    });
    assert.equal(o.token, undefined);
    assert.deepEqual(o.oidc?.audience, ['temporal-ui', 'api']);
    assert.equal(o.oidc?.rolesClaim, 'groups');
    assert.throws(() => codecServerOptionsFromEnv({ ...base, CODEC_OIDC_JWKS_URL: 'https://idp/jwks' }), /CODEC_OIDC_ISSUER/);
    assert.throws(
      () => codecServerOptionsFromEnv({ ...base, CODEC_OIDC_JWKS_URL: 'https://idp/jwks', CODEC_OIDC_ISSUER: ISSUER }),
      /CODEC_OIDC_AUDIENCE/,
    );
    assert.throws(() => codecServerOptionsFromEnv(base), /CODEC_SERVER_TOKEN.*CODEC_OIDC_JWKS_URL/);
    assert.throws(
      () => codecServerOptionsFromEnv({ ...base, CODEC_SERVER_TOKEN: STATIC, CODEC_TLS_CERT_FILE: '/x' }),
      /CODEC_TLS_KEY_FILE/,
    );
    assert.throws(
      () =>
        codecServerOptionsFromEnv({
          ...base,
          CODEC_SERVER_TOKEN: STATIC,
          CODEC_TLS_CERT_FILE: '/nonexistent',
          CODEC_TLS_KEY_FILE: '/nonexistent',
        }),
      /CODEC_TLS_CERT_FILE cannot be read/,
    );
  });
});

describe('codec server over HTTPS', () => {
  let dir: string;
  let server: CodecServer;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dce-codec-tls-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    server = await startCodecServer({
      ...codecServerOptionsFromEnv({
        PAYLOAD_ENCRYPTION_KEYS: generatePayloadKeySpec('k1'),
        CODEC_SERVER_TOKEN: STATIC,
        CODEC_CORS_ORIGINS: 'https://temporal.example.test',
        CODEC_TLS_CERT_FILE: join(dir, 'cert.pem'),
        CODEC_TLS_KEY_FILE: join(dir, 'key.pem'),
      }),
      port: 0,
    });
  });
  after(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves encode over TLS with the configured certificate', async () => {
    assert.match(server.url, /^https:\/\//);
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpsRequest(
        `${server.url}/encode`,
        {
          method: 'POST',
          ca: readFileSync(join(dir, 'cert.pem')),
          headers: { Authorization: `Bearer ${STATIC}`, 'Content-Type': 'application/json' },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end(body([plain()]));
    });
    assert.equal(status, 200);
  });
});
