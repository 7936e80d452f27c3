// Injected faults behave as configured: per-route and per-CVM 5xx, 429 with Retry-After, added
// latency, connections dropped before or after the request took effect, and "467 for the first
// K phase-2 calls". Every rule here is scoped to a CVM created by this file and removed after,
// so the shared simulator stays clean for the other test files.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicClient, createWalletClient, http, type Address, type Hex } from 'viem';
import { mnemonicToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { dstackAppAbi } from '../src/chain/dstack-app-abi.ts';
import { ANVIL_MNEMONIC } from '../src/dev/anvil.ts';
import { encryptEnvVars } from '../src/phala/env-crypto.ts';
import { SimAdminClient, type SimCvmSummary } from '../src/simulator/admin-client.ts';
import { deployRegisteredApp } from './support/apps.ts';
import { useStack, type TestStack } from './support/stack.ts';

let stack: TestStack;
let admin: SimAdminClient;
const created: string[] = [];
const owner = mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: 5 });

before(async () => {
  stack = await useStack();
  admin = new SimAdminClient(stack.info.apiUrl as string, stack.info.simAdminToken as string);
});
after(async () => {
  for (const id of created) await admin.removeFaults({ cvmId: id }).catch(() => {});
  await stack?.release();
});

async function cvm(kind: 'phala' | 'onchain' = 'phala', appId?: string): Promise<SimCvmSummary> {
  const c = await admin.createCvm({ kms: kind, applyDelayMs: 100, ...(appId ? { appId } : {}) });
  created.push(c.id);
  return c;
}

function get(path: string, version = '2026-01-21'): Promise<Response> {
  return fetch(`${stack.info.apiUrl}${path}`, { headers: { 'X-API-Key': stack.info.apiKey as string, 'X-Phala-Version': version } });
}

function patch(path: string, body: unknown): Promise<Response> {
  return fetch(`${stack.info.apiUrl}${path}`, {
    method: 'PATCH',
    headers: { 'X-API-Key': stack.info.apiKey as string, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
}

async function phalaPayload(id: string, env: Record<string, string>): Promise<string> {
  const detail = (await (await get(`/cvms/${id}`)).json()) as { kms_info: { encrypted_env_pubkey: string } };
  return encryptEnvVars(
    Object.entries(env).map(([key, value]) => ({ key, value })),
    detail.kms_info.encrypted_env_pubkey,
  );
}

test('5xx once per CVM: a 503 page from the edge with Retry-After, then normal answers; other CVMs unaffected', async () => {
  const a = await cvm();
  const b = await cvm();
  const { added } = await admin.addFaults({
    rules: [{ route: 'GET /cvms/{id}', cvmId: a.id, error: { status: 503, retryAfterSeconds: 2 }, times: 1 }],
  });
  assert.equal(added.rules.length, 1);
  assert.equal((await get(`/cvms/${b.id}`)).status, 200, 'a rule scoped to A leaves B alone');
  const first = await get(`/cvms/${a.id}`);
  assert.equal(first.status, 503);
  assert.equal(first.headers.get('retry-after'), '2');
  assert.match(first.headers.get('content-type') ?? '', /text\/html/);
  assert.match(await first.text(), /503/);
  assert.equal((await get(`/cvms/${a.id}`)).status, 200, 'times: 1 fires once');
  assert.equal(
    (await admin.faults()).rules.some((r) => r.id === added.rules[0]),
    false,
    'a spent rule is gone',
  );

  await admin.addFaults({
    rules: [
      { route: 'GET /cvms/{id}/state', cvmId: a.id, error: { status: 500 }, times: 1 },
      { route: 'GET /cvms/{id}/state', cvmId: a.id, error: { status: 502 }, times: 1 },
    ],
  });
  const r500 = await get(`/cvms/${a.id}/state`);
  assert.equal(r500.status, 500);
  assert.deepEqual(await r500.json(), { detail: 'Internal Server Error' });
  assert.equal((await get(`/cvms/${a.id}/state`)).status, 502);
  assert.equal((await get(`/cvms/${a.id}/state`)).status, 200);
});

test('429 with Retry-After, and a per-route error rate', async () => {
  const a = await cvm();
  await admin.addFaults({ rules: [{ route: 'GET /cvms/{id}/operations', cvmId: a.id, rateLimit: { retryAfterSeconds: 7 }, times: 2 }] });
  for (let i = 0; i < 2; i++) {
    const r = await get(`/cvms/${a.id}/operations`);
    assert.equal(r.status, 429);
    assert.equal(r.headers.get('retry-after'), '7');
    assert.equal(typeof ((await r.json()) as { detail: unknown }).detail, 'string');
  }
  assert.equal((await get(`/cvms/${a.id}/operations`)).status, 200);

  const { added } = await admin.addFaults({
    seed: 42,
    rules: [{ route: 'GET /cvms/{id}', cvmId: a.id, error: { status: 500, rate: 0.5 } }],
  });
  const statuses: number[] = [];
  for (let i = 0; i < 40; i++) statuses.push((await get(`/cvms/${a.id}`)).status);
  const errors = statuses.filter((s) => s === 500).length;
  assert.ok(errors >= 8 && errors <= 32, `about half fail: ${errors}/40`);
  assert.ok(statuses.every((s) => s === 200 || s === 500));
  await admin.removeFaults({ id: added.rules[0]! });
  assert.equal((await get(`/cvms/${a.id}`)).status, 200);
});

test('added latency delays the answer by at least the configured time', async () => {
  const a = await cvm();
  await admin.addFaults({ rules: [{ route: 'GET /cvms/{id}', cvmId: a.id, latencyMs: 400, times: 1 }] });
  const t0 = performance.now();
  assert.equal((await get(`/cvms/${a.id}`)).status, 200);
  assert.ok(performance.now() - t0 >= 390, 'slow');
  const t1 = performance.now();
  await get(`/cvms/${a.id}`);
  assert.ok(performance.now() - t1 < 390, 'and then fast again');
});

test('dropped connections: before (nothing happened) and after (the update took effect, the answer was lost)', async () => {
  const a = await cvm();
  await admin.addFaults({ rules: [{ route: 'GET /cvms/{id}', cvmId: a.id, drop: { when: 'before' }, times: 1 }] });
  await assert.rejects(get(`/cvms/${a.id}`), /fetch failed/);
  assert.equal((await get(`/cvms/${a.id}`)).status, 200);

  await admin.addFaults({ rules: [{ route: 'PATCH /cvms/{id}/envs', cvmId: a.id, drop: { when: 'before' }, times: 1 }] });
  await assert.rejects(patch(`/cvms/${a.id}/envs`, { encrypted_env: await phalaPayload(a.id, { APP_MODE: 'lost' }) }), /fetch failed/);
  assert.equal((await admin.cvm(a.id)).inProgress, false, 'dropped before: not applied');

  await admin.addFaults({ rules: [{ route: 'PATCH /cvms/{id}/envs', cvmId: a.id, drop: { when: 'after' }, times: 1 }] });
  await assert.rejects(patch(`/cvms/${a.id}/envs`, { encrypted_env: await phalaPayload(a.id, { APP_MODE: 'landed' }) }), /fetch failed/);
  const state = (await (await get(`/cvms/${a.id}`)).json()) as { in_progress: boolean; progress: { correlation_id: string } | null };
  assert.equal(state.in_progress, true, 'dropped after: the update is under way although the client saw no answer');
  assert.ok(state.progress?.correlation_id);
  await admin.waitUntilIdle(a.id);
  assert.deepEqual((await admin.appliedEnv(a.id)).env, { APP_MODE: 'landed' });
});

test('RPC lag: the first K phase-2 calls answer 467, then the same request is accepted', async () => {
  const chain = { ...foundry, id: stack.info.chainId };
  const transport = http(stack.info.rpcUrl);
  const publicClient = createPublicClient({ chain, transport });
  const wallet = createWalletClient({ chain, transport, account: owner });
  const app: Address = await deployRegisteredApp(stack, owner);
  const c = await cvm('onchain', app);

  const detail = (await (await get(`/cvms/${c.id}`)).json()) as { app_id: string; kms_info: { chain_id: number } };
  const kmsList = (await (await get('/kms')).json()) as { items: { slug: string; chain_id: number | null }[] };
  const slug = kmsList.items.find((k) => k.chain_id === detail.kms_info.chain_id)!.slug;
  const pub = (await (await get(`/kms/${slug}/pubkey/${detail.app_id}`)).json()) as { public_key: string };
  const encrypted = await encryptEnvVars([{ key: 'LAGGED', value: 'v' }], pub.public_key);
  const keys = ['APP_MODE', 'LAGGED'];
  const p1 = await patch(`/cvms/${c.id}/envs`, { encrypted_env: encrypted, env_keys: keys });
  assert.equal(p1.status, 465);
  const composeHash = ((await p1.json()) as { details: { field: string; value: string }[] }).details.find(
    (d) => d.field === 'compose_hash',
  )!.value;
  const tx: Hex = await wallet.writeContract({
    address: app,
    abi: dstackAppAbi,
    functionName: 'addComposeHash',
    args: [`0x${composeHash}`],
  });
  await publicClient.waitForTransactionReceipt({ hash: tx, pollingInterval: 50 });

  await admin.addFaults({ phase2Lag: [{ cvmId: c.id, calls: 2 }] });
  const body = { encrypted_env: encrypted, env_keys: keys, compose_hash: composeHash, transaction_hash: tx };
  for (let i = 0; i < 2; i++) {
    const r = await patch(`/cvms/${c.id}/envs`, body);
    assert.equal(r.status, 467);
    assert.equal(((await r.json()) as { error_code: string }).error_code, 'ERR-01-007');
  }
  const ok = await patch(`/cvms/${c.id}/envs`, body);
  assert.equal(ok.status, 202, await ok.clone().text());
  await admin.waitUntilIdle(c.id);
  assert.deepEqual((await admin.appliedEnv(c.id)).env, { LAGGED: 'v' });
});

test('fault API: validation, listing and removal by CVM; the admin token is required', async () => {
  const a = await cvm();
  await assert.rejects(admin.addFaults({ rules: [{ route: 'GET /nope', error: { status: 500 } }] }), /400/);
  await assert.rejects(admin.addFaults({ rules: [{ route: '*', error: { status: 418 } }] }), /400/);
  await assert.rejects(admin.addFaults({ rules: [{ route: '*', cvmId: a.id }] }), /no effect/);
  await admin.addFaults({ rules: [{ route: 'GET *', cvmId: a.id, latencyMs: 1 }], phase2Lag: [{ cvmId: a.id, calls: 3 }] });
  const listed = await admin.faults();
  assert.ok(listed.rules.some((r) => r.cvmId === a.id));
  assert.ok(listed.phase2Lag.some((l) => l.cvmId === a.id && l.remaining === 3));
  assert.equal((await admin.removeFaults({ cvmId: a.id })).removed, 2);
  const unauth = await fetch(`${admin.simUrl}/_sim/faults`, { method: 'POST', body: '{}' });
  assert.equal(unauth.status, 401);
});
