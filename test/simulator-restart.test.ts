// State survives a simulator restart: an in-process simulator with its own state file is stopped
// (also mid-update and between the two phases) and started again on the same file. Also:
// `npm run sim` (main.ts) starts standalone from a stack's stack.json, with start-time faults.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createPublicClient, createWalletClient, getAddress, http, type Address } from 'viem';
import { mnemonicToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { dstackAppAbi } from '../src/chain/dstack-app-abi.ts';
import { ANVIL_MNEMONIC } from '../src/dev/anvil.ts';
import { loadArtifact } from '../src/dev/compile-contracts.ts';
import { encryptEnvVars } from '../src/phala/env-crypto.ts';
import { SimAdminClient } from '../src/simulator/admin-client.ts';
import { startSimulator, type Simulator } from '../src/simulator/server.ts';
import type { SeedConfig } from '../src/simulator/seed.ts';
import { useStack, type TestStack } from './support/stack.ts';

let stack: TestStack;
let dir: string;
const owner = mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: 4 });

before(async () => {
  stack = await useStack();
  dir = mkdtempSync(join(tmpdir(), 'dce-sim-restart-'));
});
after(async () => {
  rmSync(dir, { recursive: true, force: true });
  await stack?.release();
});

function chain() {
  const c = { ...foundry, id: stack.info.chainId };
  const transport = http(stack.info.rpcUrl);
  return { publicClient: createPublicClient({ chain: c, transport }), wallet: createWalletClient({ chain: c, transport, account: owner }) };
}

async function deployApp(): Promise<Address> {
  const { publicClient, wallet } = chain();
  const { abi, bytecode } = loadArtifact('DstackApp');
  const hash = await wallet.deployContract({ abi, bytecode, args: [owner.address, true] });
  return getAddress((await publicClient.waitForTransactionReceipt({ hash, pollingInterval: 50 })).contractAddress!);
}

function client(sim: Simulator, key: string) {
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${sim.apiUrl}${path}`, {
      method,
      headers: { 'X-API-Key': key, 'X-Phala-Version': '2026-01-21', ...(body ? { 'Content-Type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, json: (await res.json()) as any };
  };
  return call;
}

test('restart keeps the workspace: ids, keys, applied envs, operations, in-flight updates and pending phase-1 hashes', async () => {
  const app = await deployApp();
  const seed: SeedConfig = {
    chainId: stack.info.chainId,
    signerAddress: owner.address,
    apps: [
      { name: 'app-restart-onchain', kms: 'onchain', appId: app, owner: owner.address, ownerIsSigner: true },
      { name: 'app-restart-phala', kms: 'phala' },
    ],
    cvms: [
      { name: 'cvm-restart-onchain', app: 'app-restart-onchain' },
      { name: 'cvm-restart-phala', app: 'app-restart-phala' },
    ],
  };
  const statePath = join(dir, 'simulator-state.json');
  const seedPath = join(dir, 'simulator-seed.json');
  writeFileSync(seedPath, JSON.stringify(seed));
  const start = (apiKey: string) =>
    startSimulator({ statePath, seedPath, apiKey, adminToken: 'adm', rpcUrl: stack.info.rpcUrl, behaviour: { applyDelayMs: 100 } });

  const sim1 = await start('key-1');
  const api1 = client(sim1, 'key-1');
  const [onchainId, phalaId] = sim1.seeded.map((c) => c.id) as [string, string];
  const before1 = (await api1('GET', `/cvms/${phalaId}`)).json;
  const kmsBefore = (await api1('GET', '/kms')).json;

  const secret = 'restart-secret-value-7f3a';
  const done = await api1('PATCH', `/cvms/${phalaId}/envs`, {
    encrypted_env: await encryptEnvVars([{ key: 'APP_MODE', value: secret }], before1.kms_info.encrypted_env_pubkey),
  });
  assert.equal(done.status, 202);
  await new SimAdminClient(sim1.url, 'adm').waitUntilIdle(phalaId);

  // Phase 1 on the on-chain CVM; phase 2 comes after the restart.
  const detail = (await api1('GET', `/cvms/${onchainId}`)).json;
  const slug = kmsBefore.items.find((k: { chain_id: number | null }) => k.chain_id === stack.info.chainId).slug;
  const pub = (await api1('GET', `/kms/${slug}/pubkey/${detail.app_id}`)).json;
  const onchainPayload = await encryptEnvVars([{ key: 'AFTER_RESTART', value: 'yes' }], pub.public_key);
  const keys = ['APP_MODE', 'AFTER_RESTART'];
  const p1 = await api1('PATCH', `/cvms/${onchainId}/envs`, { encrypted_env: onchainPayload, env_keys: keys });
  assert.equal(p1.status, 465);
  const composeHash = p1.json.details.find((d: { field: string }) => d.field === 'compose_hash').value as string;

  // An update still in flight when the simulator stops.
  await new SimAdminClient(sim1.url, 'adm').setConfig({ applyDelayMs: 400 });
  const inflight = await api1('PATCH', `/cvms/${phalaId}/envs`, {
    encrypted_env: await encryptEnvVars([{ key: 'APP_MODE', value: 'in-flight' }], before1.kms_info.encrypted_env_pubkey),
  });
  assert.equal(inflight.status, 202);
  await sim1.close();

  assert.deepEqual(readdirSync(dir).sort(), ['simulator-seed.json', 'simulator-state.json'], 'no temp file left behind');
  assert.equal(statSync(statePath).mode & 0o777, 0o600);
  const stateText = readFileSync(statePath, 'utf8');
  JSON.parse(stateText);
  assert.equal(stateText.includes(secret), false, 'env values are stored encrypted only');

  const sim2 = await start('key-2');
  try {
    const api2 = client(sim2, 'key-2');
    assert.deepEqual(
      sim2.seeded.map((c) => c.id),
      [onchainId, phalaId],
      'same CVM ids',
    );
    assert.equal((await api2('GET', `/cvms/${phalaId}`)).status, 200);
    assert.equal((await client(sim2, 'key-1')('GET', `/cvms/${phalaId}`)).status, 401, 'credentials are per run');
    assert.deepEqual((await api2('GET', '/kms')).json, kmsBefore, 'KMS ids and keys survive');
    const after2 = (await api2('GET', `/cvms/${phalaId}`)).json;
    assert.equal(after2.vm_uuid, before1.vm_uuid);
    assert.equal(after2.kms_info.encrypted_env_pubkey, before1.kms_info.encrypted_env_pubkey);
    assert.equal(after2.progress?.correlation_id, inflight.json.correlation_id, 'the in-flight update is still in progress');

    const admin2 = new SimAdminClient(sim2.url, 'adm');
    await admin2.waitUntilIdle(phalaId);
    assert.deepEqual((await admin2.appliedEnv(phalaId)).env, { APP_MODE: 'in-flight' }, 'and completes after the restart');
    const ops = (await api2('GET', `/cvms/${phalaId}/operations`)).json;
    assert.deepEqual(
      ops.items.map((o: { correlation_id: string; status: string }) => [o.correlation_id, o.status]),
      [
        [inflight.json.correlation_id, 'completed'],
        [done.json.correlation_id, 'completed'],
      ],
    );

    // The phase-1 hash issued before the restart is still pending.
    const { publicClient, wallet } = chain();
    const tx = await wallet.writeContract({ address: app, abi: dstackAppAbi, functionName: 'addComposeHash', args: [`0x${composeHash}`] });
    await publicClient.waitForTransactionReceipt({ hash: tx, pollingInterval: 50 });
    const p2 = await api2('PATCH', `/cvms/${onchainId}/envs`, {
      encrypted_env: onchainPayload,
      env_keys: keys,
      compose_hash: composeHash,
      transaction_hash: tx,
    });
    assert.equal(p2.status, 202, JSON.stringify(p2.json));
    await admin2.waitUntilIdle(onchainId);
    assert.deepEqual((await admin2.appliedEnv(onchainId)).env, { AFTER_RESTART: 'yes' });
  } finally {
    await sim2.close();
  }

  // A corrupt state file stops the simulator instead of silently starting over.
  const corrupt = join(dir, 'corrupt.json');
  writeFileSync(corrupt, '{"schema": 1, "cvms": [');
  await assert.rejects(startSimulator({ statePath: corrupt, apiKey: 'k', adminToken: 'a' }), /not valid JSON/);
});

test('npm run sim (main.ts) starts standalone from the stack, prints its ready line, applies SIM_FAULTS, stops on SIGTERM', async () => {
  const dataDir = join(dir, 'standalone');
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/simulator/main.ts', '--stack-dir', stack.info.dataDir, '--data-dir', dataDir, '--port', '0'],
    {
      env: {
        ...process.env,
        PHALA_API_KEY: '',
        SIM_ADMIN_TOKEN: '',
        SIM_FAULTS: JSON.stringify({ rules: [{ route: 'GET /kms', error: { status: 503 }, times: 1 }] }),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const line = await new Promise<string>((resolve, reject) => {
      const rl = createInterface({ input: child.stdout });
      rl.once('line', resolve);
      child.once('exit', () => reject(new Error(`main.ts exited before its ready line: ${stderr}`)));
    });
    const ready = JSON.parse(line) as { ready: boolean; apiUrl: string; apiKey: string; simAdminToken: string; cvms: { kms: string }[] };
    assert.equal(ready.ready, true);
    assert.match(ready.apiUrl, /^http:\/\/127\.0\.0\.1:\d+\/api\/v1$/);
    assert.equal(ready.cvms.length, 5);
    assert.doesNotMatch(stderr, new RegExp(ready.apiKey), 'the API key is not logged');
    const kms = () => fetch(`${ready.apiUrl}/kms`, { headers: { 'X-API-Key': ready.apiKey } });
    assert.equal((await kms()).status, 503);
    assert.equal((await kms()).status, 200);
  } finally {
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  }
});
