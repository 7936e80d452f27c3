import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  loadSealedEnvCacheBytes,
  loadWorkerTuning,
  ConfigError,
  loadApplyWatchConfig,
  loadChainConfig,
  loadKmsTrustConfig,
  loadPhalaConfig,
  loadSignerKey,
  loadTemporalConfig,
} from './config.ts';
import { kmsPublicKeyFromPrivate } from './phala/kms-signature.ts';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { withFileSecrets } from './file-secrets.ts';

const KEYS = 'k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=';

function files(contents: Record<string, string>): { dir: string; path(name: string): string; done(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'dce-config-'));
  for (const [name, text] of Object.entries(contents)) writeFileSync(join(dir, name), text);
  return { dir, path: (n) => join(dir, n), done: () => rmSync(dir, { recursive: true, force: true }) };
}

test('Temporal: plain environment, defaults, and an API key implying TLS', () => {
  const d = loadTemporalConfig({ PAYLOAD_ENCRYPTION_KEYS: KEYS, HOME: '/nonexistent' });
  assert.equal(d.address, 'localhost:7233');
  assert.equal(d.namespace, 'default');
  assert.equal(d.taskQueue, 'cvm-envs');
  assert.equal(d.connection.tls, undefined);
  const c = loadTemporalConfig({
    PAYLOAD_ENCRYPTION_KEYS: KEYS,
    TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233',
    TEMPORAL_NAMESPACE: 'ns.acct',
    TEMPORAL_API_KEY: 'tk',
  });
  assert.equal(c.connection.address, 'ns.acct.tmprl.cloud:7233');
  assert.equal(c.namespace, 'ns.acct');
  assert.equal(c.connection.apiKey, 'tk');
  assert.ok(c.connection.tls);
});

test('Temporal: mTLS client certificate, CA and server name from files (envconfig variables)', () => {
  const f = files({ 'client.pem': 'CLIENT CERT', 'client.key': 'CLIENT KEY', 'ca.pem': 'CA CERT' });
  try {
    const c = loadTemporalConfig({
      PAYLOAD_ENCRYPTION_KEYS: KEYS,
      TEMPORAL_ADDRESS: 'temporal.internal:7233',
      TEMPORAL_TLS_CLIENT_CERT_PATH: f.path('client.pem'),
      TEMPORAL_TLS_CLIENT_KEY_PATH: f.path('client.key'),
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: f.path('ca.pem'),
      TEMPORAL_TLS_SERVER_NAME: 'temporal-frontend',
    });
    const tls = c.connection.tls;
    assert.ok(tls && typeof tls === 'object');
    assert.equal(Buffer.from(tls.clientCertPair!.crt).toString(), 'CLIENT CERT');
    assert.equal(Buffer.from(tls.clientCertPair!.key).toString(), 'CLIENT KEY');
    assert.equal(Buffer.from(tls.serverRootCACertificate!).toString(), 'CA CERT');
    assert.equal(tls.serverNameOverride, 'temporal-frontend');
    assert.throws(
      () =>
        loadTemporalConfig({
          PAYLOAD_ENCRYPTION_KEYS: KEYS,
          TEMPORAL_TLS_CLIENT_CERT_PATH: f.path('missing.pem'),
          TEMPORAL_TLS_CLIENT_KEY_PATH: f.path('client.key'),
        }),
      (err: Error) => err instanceof ConfigError && /TEMPORAL_TLS/.test(err.message),
    );
  } finally {
    f.done();
  }
});

test('Temporal: a profile from TEMPORAL_CONFIG_FILE, chosen with TEMPORAL_PROFILE; the environment overrides it', () => {
  const f = files({
    'temporal.toml': '[profile.default]\naddress = "dev:7233"\n\n[profile.prod]\naddress = "prod:7233"\nnamespace = "envs-prod"\n',
  });
  try {
    const base = { PAYLOAD_ENCRYPTION_KEYS: KEYS, TEMPORAL_CONFIG_FILE: f.path('temporal.toml') };
    assert.equal(loadTemporalConfig(base).address, 'dev:7233');
    const prod = loadTemporalConfig({ ...base, TEMPORAL_PROFILE: 'prod' });
    assert.equal(prod.address, 'prod:7233');
    assert.equal(prod.namespace, 'envs-prod');
    assert.equal(loadTemporalConfig({ ...base, TEMPORAL_PROFILE: 'prod', TEMPORAL_NAMESPACE: 'other' }).namespace, 'other');
    assert.throws(() => loadTemporalConfig({ ...base, TEMPORAL_PROFILE: 'nope' }), ConfigError);
  } finally {
    f.done();
  }
});

test('every secret can come from a *_FILE; both set, or an unreadable file, is an error naming the variable', () => {
  const signer = `0x${'ab'.repeat(32)}`;
  const f = files({ keys: `${KEYS}\n`, api: 'phala-secret\n', tk: 'temporal-secret', signer: `${signer}\n` });
  try {
    const env = {
      PAYLOAD_ENCRYPTION_KEYS_FILE: f.path('keys'),
      PHALA_API_KEY_FILE: f.path('api'),
      TEMPORAL_API_KEY_FILE: f.path('tk'),
      SIGNER_PRIVATE_KEY_FILE: f.path('signer'),
    };
    assert.equal(loadTemporalConfig(env).payloadKeys, KEYS);
    assert.equal(loadTemporalConfig(env).connection.apiKey, 'temporal-secret');
    assert.equal(loadPhalaConfig(env).apiKey, 'phala-secret');
    assert.equal(loadSignerKey(env), signer);
    const resolved = withFileSecrets(env);
    assert.equal(resolved.PHALA_API_KEY, 'phala-secret');
    assert.equal(resolved.PHALA_API_KEY_FILE, undefined);

    assert.throws(
      () => loadPhalaConfig({ PHALA_API_KEY: 'x', PHALA_API_KEY_FILE: f.path('api') }),
      /set PHALA_API_KEY or PHALA_API_KEY_FILE, not both/,
    );
    assert.throws(
      () => loadTemporalConfig({ PAYLOAD_ENCRYPTION_KEYS_FILE: f.path('absent') }),
      (err: Error) => err instanceof ConfigError && err.message === 'PAYLOAD_ENCRYPTION_KEYS_FILE cannot be read (ENOENT)',
    );
    writeFileSync(f.path('bad-signer'), 'not-a-key-but-secret');
    assert.throws(
      () => loadSignerKey({ SIGNER_PRIVATE_KEY_FILE: f.path('bad-signer') }),
      (err: Error) => err instanceof ConfigError && !err.message.includes('not-a-key-but-secret'),
    );
  } finally {
    f.done();
  }
});

test('a missing or bad value is reported by name', () => {
  assert.throws(() => loadTemporalConfig({}), /PAYLOAD_ENCRYPTION_KEYS: PAYLOAD_ENCRYPTION_KEYS is required/);
  assert.throws(() => loadPhalaConfig({}), /PHALA_API_KEY is required/);
  assert.throws(() => loadPhalaConfig({ PHALA_API_KEY: 'k', PHALA_API_URL: 'not a url' }), /PHALA_API_URL/);
});

const chainBase = { CHAIN_RPC_URLS: '1=http://127.0.0.1:1,8453=http://127.0.0.1:2' };

test('CHAIN_MAX_FEE_GWEI sets a per-chain cap in wei, exactly', () => {
  const chains = loadChainConfig({ ...chainBase, CHAIN_MAX_FEE_GWEI: '1=50,8453=0.25' });
  assert.equal(chains.get(1)!.maxFeePerGasWei, '50000000000');
  assert.equal(chains.get(8453)!.maxFeePerGasWei, '250000000');
  assert.equal(loadChainConfig(chainBase).get(1)!.maxFeePerGasWei, undefined, 'no cap unless set');
});

test('a bad CHAIN_MAX_FEE_GWEI is refused with the variable and chain named', () => {
  for (const bad of ['1=abc', '1=-5', '1=0', '1=1.0000000001', 'x=5']) {
    assert.throws(
      () => loadChainConfig({ ...chainBase, CHAIN_MAX_FEE_GWEI: bad }),
      (e: unknown) => e instanceof ConfigError && /CHAIN_MAX_FEE_GWEI/.test(e.message),
      bad,
    );
  }
  assert.throws(() => loadChainConfig({ ...chainBase, CHAIN_MAX_FEE_GWEI: '10=5' }), /chain 10, which has no RPC/);
});

test('APPLY_UNLISTED_GRACE_SECONDS: default 120 s, a number of seconds, anything else named', () => {
  assert.deepEqual(loadApplyWatchConfig({}), { unlistedOperationGraceMs: 120_000 });
  assert.deepEqual(loadApplyWatchConfig({ APPLY_UNLISTED_GRACE_SECONDS: '1.5' }), { unlistedOperationGraceMs: 1500 });
  for (const bad of ['0', '-1', 'soon', '86401'])
    assert.throws(
      () => loadApplyWatchConfig({ APPLY_UNLISTED_GRACE_SECONDS: bad }),
      (e: Error) => e instanceof ConfigError && /APPLY_UNLISTED_GRACE_SECONDS/.test(e.message),
    );
});

test('SEALED_ENV_CACHE_MB: default 32 MiB, 0 keeps none, anything else named', () => {
  assert.equal(loadSealedEnvCacheBytes({}), 32 * 1024 * 1024);
  assert.equal(loadSealedEnvCacheBytes({ SEALED_ENV_CACHE_MB: '0' }), 0);
  assert.equal(loadSealedEnvCacheBytes({ SEALED_ENV_CACHE_MB: '0.5' }), 512 * 1024);
  for (const bad of ['-1', 'lots', '4097'])
    assert.throws(
      () => loadSealedEnvCacheBytes({ SEALED_ENV_CACHE_MB: bad }),
      (e: Error) => e instanceof ConfigError && /SEALED_ENV_CACHE_MB/.test(e.message),
    );
});

test('WORKER_MAX_*: unset keeps the SDK defaults, whole numbers are passed on, anything else named', () => {
  assert.deepEqual(loadWorkerTuning({}), {});
  assert.deepEqual(loadWorkerTuning({ WORKER_MAX_CACHED_WORKFLOWS: '100', WORKER_MAX_CONCURRENT_ACTIVITIES: ' 50 ' }), {
    maxCachedWorkflows: 100,
    maxConcurrentActivityTaskExecutions: 50,
  });
  assert.equal(loadWorkerTuning({ WORKER_MAX_CONCURRENT_WORKFLOW_TASKS: '40' }).maxConcurrentWorkflowTaskExecutions, 40);
  for (const [name, bad] of [
    ['WORKER_MAX_CACHED_WORKFLOWS', '-1'],
    ['WORKER_MAX_CONCURRENT_WORKFLOW_TASKS', '1'],
    ['WORKER_MAX_CONCURRENT_ACTIVITIES', 'many'],
    ['WORKER_MAX_CONCURRENT_LOCAL_ACTIVITIES', '2.5'],
  ] as const)
    assert.throws(
      () => loadWorkerTuning({ [name]: bad }),
      (e: Error) => e instanceof ConfigError && e.message.includes(name),
    );
});

test('KMS_PUBLIC_KEYS: unset pins nothing and trusts no API key', () => {
  const c = loadKmsTrustConfig({});
  assert.equal(c.kmsKeyPins.byChain.size, 0);
  assert.equal(c.kmsKeyPins.byContract.size, 0);
  assert.equal(c.trustApiKmsKey, false);
});

test('KMS_PUBLIC_KEYS: pins by chain id and by KMS contract, keys compressed or not, normalised', () => {
  const priv = '11'.repeat(32);
  const compressed = kmsPublicKeyFromPrivate(priv);
  const uncompressed = Buffer.from(secp256k1.getPublicKey(Buffer.from(priv, 'hex'), false)).toString('hex');
  const other = kmsPublicKeyFromPrivate('22'.repeat(32));
  const contract = '0xAbCdEf0123456789aBcDeF0123456789AbCdEf01';
  const c = loadKmsTrustConfig({
    KMS_PUBLIC_KEYS: ` 8453=${uncompressed}, ${contract}=${other.toUpperCase().replace('0X', '0x')} ,31337=${compressed},`,
  });
  assert.equal(c.kmsKeyPins.byChain.get(8453), compressed, 'uncompressed and without 0x, kept compressed');
  assert.equal(c.kmsKeyPins.byChain.get(31337), compressed);
  assert.equal(c.kmsKeyPins.byContract.get(contract.toLowerCase()), other, 'the contract address is kept lowercase');
  // The same pin twice is harmless.
  assert.equal(loadKmsTrustConfig({ KMS_PUBLIC_KEYS: `1=${compressed},1=0x${uncompressed}` }).kmsKeyPins.byChain.get(1), compressed);
});

test('KMS_PUBLIC_KEYS: a malformed entry or key is named', () => {
  const key = kmsPublicKeyFromPrivate('11'.repeat(32));
  const cases: Array<[string, RegExp]> = [
    [key, /entry 1 .* must look like <chainId>=<key> or <0x KMS contract address>=<key>/],
    [`base=${key}`, /entry 1 \("base=.*must look like/],
    [`0=${key}`, /entry 1 .*must look like/],
    [`0x1234=${key}`, /entry 1 .*must look like/],
    [`8453=${key},8453=`, /entry 2 .*secp256k1 public key in hex.*got 0/],
    [`8453=0x1234`, /entry 1 .*must be 33 or 65 bytes, got 2/],
    [`8453=zz${key.slice(4)}`, /entry 1 .*not an even-length hex string/],
    [`8453=0x02${'ff'.repeat(32)}`, /entry 1 .*not a point on secp256k1/],
    [`1=${key},1=${kmsPublicKeyFromPrivate('22'.repeat(32))}`, /entry 2 .*1 is pinned twice, to different keys/],
  ];
  for (const [raw, message] of cases) {
    assert.throws(
      () => loadKmsTrustConfig({ KMS_PUBLIC_KEYS: raw }),
      (e: Error) => e instanceof ConfigError && /^KMS_PUBLIC_KEYS/.test(e.message) && message.test(e.message),
      raw,
    );
  }
});

test('KMS_TRUST_API_KEY: true/false (or 1/0), anything else named', () => {
  assert.equal(loadKmsTrustConfig({ KMS_TRUST_API_KEY: 'true' }).trustApiKmsKey, true);
  assert.equal(loadKmsTrustConfig({ KMS_TRUST_API_KEY: ' TRUE ' }).trustApiKmsKey, true);
  assert.equal(loadKmsTrustConfig({ KMS_TRUST_API_KEY: '1' }).trustApiKmsKey, true);
  assert.equal(loadKmsTrustConfig({ KMS_TRUST_API_KEY: 'false' }).trustApiKmsKey, false);
  assert.equal(loadKmsTrustConfig({ KMS_TRUST_API_KEY: '0' }).trustApiKmsKey, false);
  for (const bad of ['yes', 'on', 'ture'])
    assert.throws(
      () => loadKmsTrustConfig({ KMS_TRUST_API_KEY: bad }),
      (e: Error) => e instanceof ConfigError && /KMS_TRUST_API_KEY must be true or false/.test(e.message),
    );
});
