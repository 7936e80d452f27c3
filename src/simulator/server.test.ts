// Simulator settings and edge paths that need no chain: an in-process simulator per test on an
// ephemeral port with its own state file. The chain-backed paths live in test/simulator*.test.ts.
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, getComposeHash as sdkComposeHash } from '@phala/cloud';
import { encryptEnvVars } from '../phala/env-crypto.ts';
import { checkEnvEncryptPublicKey } from '../phala/kms-signature.ts';
import type { BehaviourConfig } from './config.ts';
import { Faults } from './faults.ts';
import type { SeedConfig } from './seed.ts';
import { ROUTE_KEYS, startSimulator, type Simulator } from './server.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

const APP = 'ab'.repeat(20);

async function sim(behaviour: Partial<BehaviourConfig> = {}, extra: { rpcUrl?: string } = {}): Promise<Simulator> {
  const dir = mkdtempSync(join(tmpdir(), 'dce-sim-unit-'));
  const seed: SeedConfig = {
    chainId: 31337,
    apps: [
      { name: 'app-onchain', kms: 'onchain', appId: APP, owner: `0x${'11'.repeat(20)}`, ownerIsSigner: true },
      { name: 'app-phala', kms: 'phala' },
    ],
    cvms: [
      { name: 'cvm-onchain', app: 'app-onchain' },
      { name: 'cvm-phala', app: 'app-phala' },
    ],
  };
  writeFileSync(join(dir, 'seed.json'), JSON.stringify(seed));
  const s = await startSimulator({
    statePath: join(dir, 'state.json'),
    seedPath: join(dir, 'seed.json'),
    apiKey: 'unit-key',
    adminToken: 'unit-admin',
    behaviour: { applyDelayMs: 20, ...behaviour },
    ...extra,
  });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => s.close());
  return s;
}

async function call(s: Simulator, method: string, path: string, init: { body?: string; headers?: Record<string, string> } = {}) {
  const res = await fetch(`${s.apiUrl}${path}`, {
    method,
    headers: { 'X-API-Key': 'unit-key', ...(init.body ? { 'Content-Type': 'application/json' } : {}), ...(init.headers ?? {}) },
    ...(init.body ? { body: init.body } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? (JSON.parse(text) as any) : undefined };
}

test('pubkeyResponse "timestamped" adds timestamp and signature_v1; both signatures verify against k256_pubkey', async () => {
  const s = await sim({ pubkeyResponse: 'timestamped' });
  const kms = (await call(s, 'GET', '/kms?is_onchain=true')).json.items[0];
  const pub = (await call(s, 'GET', `/kms/${kms.id}/pubkey/0x${APP}`)).json;
  assert.deepEqual(Object.keys(pub).sort(), ['public_key', 'signature', 'signature_v1', 'timestamp']);
  assert.ok(Math.abs(pub.timestamp - Date.now() / 1000) < 5);
  const base = { publicKey: pub.public_key, appId: APP, kmsPublicKey: kms.k256_pubkey };
  assert.deepEqual(checkEnvEncryptPublicKey({ ...base, signature: pub.signature }), { ok: true });
  assert.deepEqual(checkEnvEncryptPublicKey({ ...base, signature: pub.signature_v1, timestamp: pub.timestamp }), { ok: true });
  assert.deepEqual(checkEnvEncryptPublicKey({ ...base, signature: pub.signature_v1 }), { ok: false, reason: 'signer_mismatch' });
});

test('composeSerialization: "compact" matches getComposeHash, "indented" matches the SDK compose file getHash()', async () => {
  for (const mode of ['compact', 'indented'] as const) {
    const s = await sim({ composeSerialization: mode });
    const id = s.seeded[1]!.id;
    const client = createClient({ apiKey: 'unit-key', baseURL: s.apiUrl });
    const detail = await client.getCvmInfo({ id });
    const compose = await client.getCvmComposeFile({ id });
    if (mode === 'compact') assert.equal(detail.compose_hash, sdkComposeHash(compose as never));
    else assert.equal(detail.compose_hash, compose.getHash());
    assert.notEqual(sdkComposeHash(compose as never), compose.getHash(), 'the two SDK serialisations really differ');
  }
});

test('API versions: no header → defaultApiVersion; the answer names the version it used', async () => {
  const s = await sim({ defaultApiVersion: '2025-10-28' });
  const id = s.seeded[1]!.id;
  const legacy = await call(s, 'GET', `/cvms/${id}`);
  assert.equal(legacy.headers.get('x-phala-version'), '2025-10-28');
  assert.equal(typeof legacy.json.id, 'number');
  assert.equal(typeof legacy.json.encrypted_env_pubkey, 'string');
  const modern = await call(s, 'GET', `/cvms/${id}`, { headers: { 'X-Phala-Version': '2026-05-22' } });
  assert.equal(modern.json.id, id);
  const s2 = await sim({ defaultApiVersion: '2026-01-21' });
  assert.equal((await call(s2, 'GET', `/cvms/${s2.seeded[1]!.id}`)).json.id, s2.seeded[1]!.id);
});

test('request ids: X-Request-ID is echoed and lands in structured errors', async () => {
  const s = await sim();
  const [onchain] = s.seeded;
  const detail = (await call(s, 'GET', `/cvms/${onchain!.id}`, { headers: { 'X-Phala-Version': '2026-01-21' } })).json;
  assert.equal(detail.kms_type, 'ethereum');
  const kms = (await call(s, 'GET', '/kms?is_onchain=true')).json.items[0];
  const pub = (await call(s, 'GET', `/kms/${kms.slug}/pubkey/${detail.app_id}`)).json;
  const encrypted = await encryptEnvVars([{ key: 'K', value: 'v' }], pub.public_key);
  const a = await call(s, 'PATCH', `/cvms/${onchain!.id}/envs`, {
    body: JSON.stringify({ encrypted_env: encrypted, env_keys: ['K'] }),
    headers: { 'X-Request-ID': 'trace-123' },
  });
  assert.equal(a.status, 465);
  assert.equal(a.headers.get('x-request-id'), 'trace-123');
  assert.equal(a.json.request_id, 'trace-123');
  const generated = await call(s, 'GET', '/cvms/nope');
  assert.match(generated.headers.get('x-request-id') ?? '', /^req_/);
});

test('phase 2 while the RPC node is down: 500, and the pending hash stays usable', async () => {
  const closedPort = await new Promise<number>((resolve) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
  const s = await sim({}, { rpcUrl: `http://127.0.0.1:${closedPort}` });
  const id = s.seeded[0]!.id;
  const detail = (await call(s, 'GET', `/cvms/${id}`, { headers: { 'X-Phala-Version': '2026-01-21' } })).json;
  const kms = (await call(s, 'GET', '/kms?is_onchain=true')).json.items[0];
  const pub = (await call(s, 'GET', `/kms/${kms.id}/pubkey/${detail.app_id}`)).json;
  const encrypted = await encryptEnvVars([{ key: 'K', value: 'v' }], pub.public_key);
  const p1 = await call(s, 'PATCH', `/cvms/${id}/envs`, { body: JSON.stringify({ encrypted_env: encrypted, env_keys: ['K'] }) });
  const hash = p1.json.details.find((d: { field: string }) => d.field === 'compose_hash').value;
  const body = JSON.stringify({ encrypted_env: encrypted, env_keys: ['K'], compose_hash: hash, transaction_hash: `0x${'cd'.repeat(32)}` });
  for (let i = 0; i < 2; i++) {
    const p2 = await call(s, 'PATCH', `/cvms/${id}/envs`, { body });
    assert.equal(p2.status, 500);
    assert.match(p2.json.detail, /RPC/);
  }
  assert.equal(s.workspace.data.cvms.find((c) => c.id === id)!.pending.length, 1);
});

test('limits and framing: 413 for an oversized body, 422 for a missing body, 405 with Allow', async () => {
  const s = await sim({ maxBodyBytes: 2048 });
  const id = s.seeded[1]!.id;
  assert.equal((await call(s, 'PATCH', `/cvms/${id}/envs`, { body: JSON.stringify({ encrypted_env: 'ab'.repeat(1500) }) })).status, 413);
  const missing = await fetch(`${s.apiUrl}/cvms/${id}/envs`, { method: 'PATCH', headers: { 'X-API-Key': 'unit-key' } });
  assert.equal(missing.status, 422);
  const wrong = await call(s, 'POST', `/cvms/${id}`, { body: '{}' });
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get('allow'), 'GET');
  assert.equal((await call(s, 'GET', `/cvms/${id}/state?target=running`)).status, 501);
});

test('faults: times, scoping, seeded rates, and drop-before taking precedence over errors', () => {
  const f = new Faults(ROUTE_KEYS, { seed: 7 });
  f.add({ rules: [{ route: 'GET /cvms/{id}', cvmId: 'cvm_a', error: { status: 502 }, times: 2 }] });
  assert.equal(f.decide('GET', '/cvms/{id}', 'cvm_b').error, null);
  assert.equal(f.decide('GET', '/cvms/{id}/state', 'cvm_a').error, null);
  assert.equal(f.decide('GET', '/cvms/{id}', 'cvm_a').error?.status, 502);
  assert.equal(f.decide('GET', '/cvms/{id}', 'cvm_a').error?.status, 502);
  assert.equal(f.decide('GET', '/cvms/{id}', 'cvm_a').error, null);
  assert.equal(f.rules.length, 0);

  const runs = [1, 2].map(() => {
    const g = new Faults(ROUTE_KEYS, { seed: 99, rules: [{ route: '*', error: { status: 500, rate: 0.3 } }] });
    return Array.from({ length: 50 }, () => g.decide('GET', '/kms', null).error !== null);
  });
  assert.deepEqual(runs[0], runs[1], 'same seed, same failures');
  const n = runs[0]!.filter(Boolean).length;
  assert.ok(n > 5 && n < 30, String(n));

  const h = new Faults(ROUTE_KEYS, { rules: [{ route: 'PATCH *', drop: { when: 'before' }, error: { status: 500 } }] });
  const d = h.decide('PATCH', '/cvms/{id}/envs', 'x');
  assert.equal(d.drop, 'before');
  assert.equal(d.error, null);
  assert.equal(h.decide('GET', '/kms', null).drop, null);

  const lag = new Faults(ROUTE_KEYS, { phase2Lag: [{ cvmId: 'c1', calls: 1 }, { calls: 1 }] });
  assert.equal(lag.takePhase2Lag('c1'), true);
  assert.equal(lag.takePhase2Lag('c2'), true, 'an unscoped lag applies to any CVM');
  assert.equal(lag.takePhase2Lag('c1'), false);
  assert.throws(() => lag.add({ rules: [{ route: 'GET /x', latencyMs: 1 }] }), /route/);
  assert.throws(() => lag.add({ rules: [{ error: { status: 500, rate: 2 } }] }), /rate/);
  assert.throws(() => lag.add({ rules: [{ latencyMs: 1, times: 0 }] }), /times/);
});
