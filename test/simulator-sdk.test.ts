// The official @phala/cloud SDK (0.2.9), unchanged, against the simulator and anvil: the whole
// two-phase env update, and the read endpoints the SDK parses with its own (strict) schemas.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  addComposeHash,
  createClient,
  encryptEnvVars,
  getComposeHash,
  getCvmInfo,
  getCvmStatusBatch,
  ResourceError,
  safeUpdateCvmEnvs,
  updateCvmEnvs,
  verifyEnvEncryptPublicKey,
} from '@phala/cloud';
import { createPublicClient, createWalletClient, getAddress, http, toHex, type Address, type Chain } from 'viem';
import { mnemonicToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { ANVIL_MNEMONIC } from '../src/dev/anvil.ts';
import { loadArtifact } from '../src/dev/compile-contracts.ts';
import { SimAdminClient } from '../src/simulator/admin-client.ts';
import { startSimulator } from '../src/simulator/server.ts';
import type { SeedConfig } from '../src/simulator/seed.ts';
import { deployRegisteredApp } from './support/apps.ts';
import { useStack, type TestStack } from './support/stack.ts';

let stack: TestStack;
let admin: SimAdminClient;
// Our own dev account: no other test file sends from it, so nonces never race.
const ownerAccount = mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: 8 });
const ownerKey = toHex(ownerAccount.getHdKey().privateKey!);

before(async () => {
  stack = await useStack();
  admin = new SimAdminClient(stack.info.apiUrl as string, stack.info.simAdminToken as string);
});
after(async () => {
  await stack?.release();
});

function hexBytes(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hex.replace(/^0x/, ''), 'hex'));
}

async function deployApp(): Promise<Address> {
  const chain = { ...foundry, id: stack.info.chainId };
  const transport = http(stack.info.rpcUrl);
  const wallet = createWalletClient({ chain, transport, account: ownerAccount });
  const { abi, bytecode } = loadArtifact('DstackApp');
  const hash = await wallet.deployContract({ abi, bytecode, args: [ownerAccount.address, true] });
  const receipt = await createPublicClient({ chain, transport }).waitForTransactionReceipt({ hash, pollingInterval: 50 });
  return getAddress(receipt.contractAddress!);
}

/** addComposeHash prints the receipt logs with console.log; keep the test report readable. */
async function quietly<T>(fn: () => Promise<T>): Promise<T> {
  const original = console.log;
  console.log = () => {};
  try {
    return await fn();
  } finally {
    console.log = original;
  }
}

test('official SDK: getCvmInfo → env key → encryptEnvVars → updateCvmEnvs (465) → addComposeHash → updateCvmEnvs → in_progress → applied', async () => {
  const app = await deployRegisteredApp(stack, ownerAccount);
  const sim = await admin.createCvm({ kms: 'onchain', appId: app, applyDelayMs: 300 });
  const client = createClient({ apiKey: stack.info.apiKey as string, baseURL: stack.info.apiUrl as string });
  assert.equal(client.config.version, '2026-01-21', 'the npm release talks API 2026-01-21');

  const cvm = await client.getCvmInfo({ id: sim.id });
  assert.equal(cvm.kms_type, 'ethereum');
  assert.equal(cvm.status, 'running');
  assert.ok(cvm.app_id);
  assert.equal(cvm.kms_info?.chain_id, stack.info.chainId);
  assert.equal(
    cvm.compose_hash,
    getComposeHash((await client.getCvmComposeFile({ id: sim.id })) as never),
    'the SDK reproduces the compose hash',
  );

  // The env-key fetch: find the CVM's KMS in the list, get the signed key, check the signer.
  const kmsList = await client.getKmsList();
  const kms = kmsList.items.find(
    (k) =>
      k.chain_id === cvm.kms_info?.chain_id && k.kms_contract_address?.toLowerCase() === cvm.kms_info?.dstack_kms_address?.toLowerCase(),
  );
  assert.ok(kms?.slug);
  const pub = await client.getAppEnvEncryptPubKey({ kms: kms.slug, app_id: cvm.app_id });
  const signer = verifyEnvEncryptPublicKey(hexBytes(pub.public_key), hexBytes(pub.signature), cvm.app_id);
  assert.equal(signer, (kms as { k256_pubkey?: string }).k256_pubkey, 'the KMS signature recovers to its k256_pubkey');

  const envKeys = ['APP_MODE', 'SDK_TOKEN'];
  const encrypted = await encryptEnvVars(
    [
      { key: 'APP_MODE', value: 'sdk' },
      { key: 'SDK_TOKEN', value: 'from-the-official-sdk' },
      { key: 'IGNORED', value: 'not in env_keys' },
    ],
    pub.public_key,
  );

  const first = await updateCvmEnvs(client, { id: sim.id, encrypted_env: encrypted, env_keys: envKeys });
  assert.equal(first.status, 'precondition_required', '465 is recognised as precondition_required');
  if (first.status !== 'precondition_required') return;
  assert.equal(getAddress(`0x${first.app_id.replace(/^0x/, '')}`), app);
  assert.ok(first.device_id);
  assert.equal(first.kms_info.chain_id, stack.info.chainId);
  const chain = (first.kms_info as { chain?: Chain }).chain;
  assert.equal(chain?.id, stack.info.chainId, 'the SDK maps kms_info.chain_id to a viem chain');

  // A phase 2 with a transaction that does not prove anything is refused with the structured 467.
  const bogus = await safeUpdateCvmEnvs(client, {
    id: sim.id,
    encrypted_env: encrypted,
    env_keys: envKeys,
    compose_hash: first.compose_hash,
    transaction_hash: `0x${'ab'.repeat(32)}`,
  });
  assert.equal(bogus.success, false);
  if (!bogus.success) {
    assert.ok(bogus.error instanceof ResourceError);
    assert.equal((bogus.error as ResourceError).errorCode, 'ERR-01-007');
    assert.equal((bogus.error as ResourceError).status, 467);
  }

  const registered = await quietly(() =>
    addComposeHash({
      chain,
      rpcUrl: stack.info.rpcUrl,
      appId: first.app_id as `0x${string}`,
      composeHash: first.compose_hash,
      privateKey: ownerKey,
    }),
  );
  assert.match(registered.transactionHash, /^0x[0-9a-f]{64}$/);

  const second = await updateCvmEnvs(client, {
    id: sim.id,
    encrypted_env: encrypted,
    env_keys: envKeys,
    compose_hash: first.compose_hash,
    transaction_hash: registered.transactionHash,
  });
  assert.equal(second.status, 'in_progress');
  if (second.status !== 'in_progress') return;
  assert.equal(second.allowed_envs_changed, true);

  const during = await client.getCvmInfo({ id: sim.id });
  assert.equal(during.progress?.correlation_id, second.correlation_id);
  const batch = await getCvmStatusBatch(client, { vmUuids: [sim.vmUuid] });
  assert.equal(batch[sim.vmUuid]?.correlation_id, second.correlation_id);
  assert.equal(batch[sim.vmUuid]?.in_progress, true);

  const deadline = Date.now() + 10_000;
  let now = during;
  while (now.progress?.correlation_id === second.correlation_id && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    now = await client.getCvmInfo({ id: sim.id });
  }
  assert.equal(now.progress ?? null, null);
  assert.equal(now.status, 'running');
  assert.equal(now.compose_hash, first.compose_hash);
  const state = await client.getCvmState({ id: sim.id });
  assert.equal(state.status, 'running');

  const applied = await admin.appliedEnv(sim.id);
  assert.deepEqual(applied.env, { APP_MODE: 'sdk', SDK_TOKEN: 'from-the-official-sdk' });
  assert.deepEqual(applied.dropped_keys, ['IGNORED']);
  assert.equal(applied.correlation_id, second.correlation_id);

  // The legacy API version is served too, in its own shape.
  const legacy = await getCvmInfo(client.withVersion('2025-10-28'), { id: sim.id });
  assert.equal(typeof legacy.id, 'number');
});

test('official SDK: Phala-KMS CVM is a single phase, keyed by kms_info.encrypted_env_pubkey', async () => {
  const sim = await admin.createCvm({ kms: 'phala', applyDelayMs: 50 });
  const client = createClient({ apiKey: stack.info.apiKey as string, baseURL: stack.info.apiUrl as string });
  const cvm = await client.getCvmInfo({ id: sim.id });
  assert.equal(cvm.kms_type, 'phala');
  const key = cvm.kms_info?.encrypted_env_pubkey;
  assert.ok(key);
  const encrypted = await encryptEnvVars([{ key: 'ONLY', value: 'phase-one' }], key);
  const result = await updateCvmEnvs(client, { id: sim.id, encrypted_env: encrypted, env_keys: ['ONLY'] });
  assert.equal(result.status, 'in_progress');
  await admin.waitUntilIdle(sim.id);
  assert.deepEqual((await admin.appliedEnv(sim.id)).env, { ONLY: 'phase-one' });
});

test('official SDK: a 465 wrapped in FastAPI `detail` (errorEnvelope "detail") is recognised too', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dce-sim-envelope-'));
  const app = await deployApp();
  const seed: SeedConfig = {
    chainId: stack.info.chainId,
    apps: [{ name: 'app-envelope', kms: 'onchain', appId: app, owner: ownerAccount.address, ownerIsSigner: false }],
    cvms: [{ name: 'cvm-envelope', app: 'app-envelope' }],
  };
  writeFileSync(join(dir, 'seed.json'), JSON.stringify(seed));
  const sim = await startSimulator({
    statePath: join(dir, 'state.json'),
    seedPath: join(dir, 'seed.json'),
    apiKey: 'envelope-key',
    adminToken: 'envelope-admin',
    rpcUrl: stack.info.rpcUrl,
    behaviour: { errorEnvelope: 'detail' },
  });
  try {
    const client = createClient({ apiKey: 'envelope-key', baseURL: sim.apiUrl });
    const id = sim.seeded[0]!.id;
    const kms = (await client.getKmsList()).items.find((k) => k.chain_id === stack.info.chainId)!;
    const cvm = await client.getCvmInfo({ id });
    const pub = await client.getAppEnvEncryptPubKey({ kms: kms.slug!, app_id: cvm.app_id! });
    const encrypted = await encryptEnvVars([{ key: 'X', value: '1' }], pub.public_key);
    const raw = await fetch(`${sim.apiUrl}/cvms/${id}/envs`, {
      method: 'PATCH',
      headers: { 'X-API-Key': 'envelope-key', 'Content-Type': 'application/json' },
      body: JSON.stringify({ encrypted_env: encrypted, env_keys: ['X'] }),
    });
    assert.equal(raw.status, 465);
    const body = (await raw.json()) as { detail?: { error_code?: string } };
    assert.equal(body.detail?.error_code, 'ERR-01-005');
    const result = await updateCvmEnvs(client, { id, encrypted_env: encrypted, env_keys: ['X'] });
    assert.equal(result.status, 'precondition_required');
  } finally {
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
