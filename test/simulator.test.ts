// The Phala Cloud API simulator over real HTTP against the suite's stack (anvil + contracts):
// every status path of PATCH /cvms/{id}/envs, the read endpoints, auth and API versions.
// Each test works on CVMs (and, for chain paths, app contracts) of its own, so files running in
// parallel against the shared simulator never touch each other's state.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import { createPublicClient, createWalletClient, getAddress, http, type Address, type Hex } from 'viem';
import { mnemonicToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { dstackAppAbi } from '../src/chain/dstack-app-abi.ts';
import { ANVIL_MNEMONIC } from '../src/dev/anvil.ts';
import {
  AppComposeSchema,
  AppEnvEncryptPubkeySchema,
  BatchStatusResponseSchema,
  CvmDetailSchema,
  CvmOperationsPageSchema,
  CvmStateSchema,
  KmsContractInfoSchema,
  KmsContractListResponseSchema,
  KmsInfoSchema,
  KmsListResponseSchema,
  StructuredErrorBodySchema,
  UpdateCvmEnvsAcceptedSchema,
} from '../src/phala/api-schemas.ts';
import { PhalaCloudClient, readPreconditionRequired } from '../src/phala/api-client.ts';
import { getComposeHash } from '../src/phala/compose-hash.ts';
import { encryptEnvVars } from '../src/phala/env-crypto.ts';
import { verifyEnvEncryptPublicKey } from '../src/phala/kms-signature.ts';
import { SimAdminClient, type SimCvmSummary } from '../src/simulator/admin-client.ts';
import { loadArtifact } from '../src/dev/compile-contracts.ts';
import { deployRegisteredApp } from './support/apps.ts';
import { useStack, type TestStack } from './support/stack.ts';

let stack: TestStack;
let admin: SimAdminClient;
let apiUrl: string;
let apiKey: string;

// A dev account no other test file sends from, so our transactions never race theirs for nonces.
const owner = mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: 7 });
const stranger = mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: 6 });

before(async () => {
  stack = await useStack();
  apiUrl = stack.info.apiUrl as string;
  apiKey = stack.info.apiKey as string;
  admin = new SimAdminClient(apiUrl, stack.info.simAdminToken as string);
});
after(async () => {
  await stack?.release();
});

function chainClients() {
  const chain = { ...foundry, id: stack.info.chainId };
  const transport = http(stack.info.rpcUrl);
  return {
    publicClient: createPublicClient({ chain, transport }),
    ownerWallet: createWalletClient({ chain, transport, account: owner }),
    strangerWallet: createWalletClient({ chain, transport, account: stranger }),
  };
}

function deployApp(): Promise<Address> {
  return deployRegisteredApp(stack, owner);
}

async function send(
  fn: 'addComposeHash' | 'removeComposeHash',
  app: Address,
  composeHash: string,
  from: 'owner' | 'stranger' = 'owner',
): Promise<Hex> {
  const { publicClient, ownerWallet, strangerWallet } = chainClients();
  const wallet = from === 'owner' ? ownerWallet : strangerWallet;
  const hash = await wallet.writeContract({
    address: app,
    abi: dstackAppAbi,
    functionName: fn,
    args: [`0x${composeHash.replace(/^0x/, '')}`],
    // Fixed gas so a call that reverts is still mined (no estimation refusal).
    gas: 200_000n,
  });
  await publicClient.waitForTransactionReceipt({ hash, pollingInterval: 50 });
  return hash;
}

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

async function api(
  method: string,
  path: string,
  opts: { body?: unknown; key?: string | null; version?: string | null; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.key !== null) headers['X-API-Key'] = opts.key ?? apiKey;
  if (opts.version !== null) headers['X-Phala-Version'] = opts.version ?? '2026-01-21';
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`${apiUrl}${path}`, { method, headers, ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}) });
  const text = await res.text();
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

async function freshOnchainCvm(extra: { allowedEnvs?: string[]; applyDelayMs?: number; pendingTtlMs?: number } = {}) {
  const app = await deployApp();
  const cvm = await admin.createCvm({ kms: 'onchain', appId: app, applyDelayMs: extra.applyDelayMs ?? 100, ...extra });
  return { app, cvm };
}

/** The env-encryption key the way a client must find it: CVM → KMS list → signed pubkey. */
async function encryptionKey(cvmId: string): Promise<string> {
  const detail = CvmDetailSchema.parse((await api('GET', `/cvms/${cvmId}`)).json);
  if (detail.kms_type === 'phala') return detail.kms_info!.encrypted_env_pubkey!;
  const list = KmsListResponseSchema.parse((await api('GET', '/kms')).json);
  const kms = list.items.find(
    (k) =>
      k.chain_id === detail.kms_info!.chain_id &&
      k.kms_contract_address?.toLowerCase() === detail.kms_info!.dstack_kms_address?.toLowerCase(),
  );
  assert.ok(kms?.slug, 'the on-chain KMS of the CVM is listed by GET /kms');
  const pub = AppEnvEncryptPubkeySchema.parse((await api('GET', `/kms/${kms.slug}/pubkey/${detail.app_id}`)).json);
  assert.ok(
    verifyEnvEncryptPublicKey({
      publicKey: pub.public_key,
      signature: pub.signature,
      appId: detail.app_id!,
      kmsPublicKey: kms.k256_pubkey!,
    }),
  );
  return pub.public_key;
}

async function encrypt(cvmId: string, env: Record<string, string>): Promise<string> {
  return encryptEnvVars(
    Object.entries(env).map(([key, value]) => ({ key, value })),
    await encryptionKey(cvmId),
  );
}

function expectStructured(a: Answer, status: number, code: string): { fields: Map<string, unknown>; body: any } {
  assert.equal(a.status, status, a.text);
  const body = StructuredErrorBodySchema.parse(a.json);
  assert.equal(body.error_code, code);
  assert.ok(body.request_id);
  return { fields: new Map((body.details ?? []).map((d) => [d.field, d.value])), body };
}

async function phase1(cvm: SimCvmSummary, envKeys: string[], env: Record<string, string>) {
  const encrypted = await encrypt(cvm.id, env);
  const a = await api('PATCH', `/cvms/${cvm.id}/envs`, { body: { encrypted_env: encrypted, env_keys: envKeys } });
  const { fields } = expectStructured(a, 465, 'ERR-01-005');
  return { encrypted, composeHash: fields.get('compose_hash') as string, answer: a };
}

const randomHash = () => `0x${randomBytes(32).toString('hex')}`;

test('the stack lists the seeded CVMs: on-chain (signer-owned, foreign-owned, two sharing an app) and Phala-KMS', async () => {
  const cvms = stack.info.cvms as { id: string; appId: string; kms: string; ownerIsSigner: boolean; name: string }[];
  assert.deepEqual(JSON.parse(stack.env.SIM_CVMS!), cvms);
  assert.equal(stack.env.PHALA_API_URL, apiUrl);
  assert.match(apiUrl, /\/api\/v1$/);
  assert.equal(stack.env.PHALA_API_KEY, apiKey);
  assert.equal(stack.env.SIM_ADMIN_TOKEN, stack.info.simAdminToken);
  const onchain = cvms.filter((c) => c.kms === 'onchain');
  assert.ok(
    onchain.some((c) => c.ownerIsSigner),
    'an on-chain CVM whose app the signer owns',
  );
  assert.ok(
    onchain.some((c) => !c.ownerIsSigner),
    'an on-chain CVM whose app someone else owns',
  );
  const byApp = new Map<string, number>();
  for (const c of cvms) byApp.set(c.appId, (byApp.get(c.appId) ?? 0) + 1);
  assert.ok(
    [...byApp.values()].some((n) => n >= 2),
    'two CVMs sharing one app',
  );
  assert.ok(
    cvms.some((c) => c.kms === 'phala'),
    'a Phala-KMS CVM',
  );
  for (const c of cvms) {
    const detail = CvmDetailSchema.parse((await api('GET', `/cvms/${c.id}`)).json);
    assert.equal(getAddress(`0x${detail.app_id}`), c.appId);
    assert.equal(detail.kms_type, c.kms === 'phala' ? 'phala' : 'ethereum');
    const app = stack.info.apps.find((a) => a.appId.toLowerCase() === c.appId.toLowerCase());
    if (c.kms === 'onchain') {
      assert.ok(app, 'on-chain CVMs run on apps the stack deployed');
      assert.equal(app.ownerIsSigner, c.ownerIsSigner);
      assert.equal(detail.kms_info?.dstack_app_address, c.appId);
      assert.equal(detail.kms_info?.chain_id, stack.info.chainId);
      assert.equal(detail.kms_info?.rpc_endpoint, stack.info.rpcUrl);
    }
  }
});

test('auth: API routes need the X-API-Key, KMS lookups are public, /_sim needs the admin token', async () => {
  const cvm = await admin.createCvm({ kms: 'phala' });
  assert.equal((await api('GET', `/cvms/${cvm.id}`, { key: null })).status, 401);
  const wrong = await api('GET', `/cvms/${cvm.id}`, { key: 'not-the-key' });
  assert.equal(wrong.status, 401);
  assert.equal(typeof wrong.json.detail, 'string');
  assert.equal((await api('PATCH', `/cvms/${cvm.id}/envs`, { key: null, body: { encrypted_env: '00' } })).status, 401);
  assert.equal((await api('POST', '/status/batch', { key: null, body: { vm_uuids: [] } })).status, 401);
  assert.equal((await api('GET', '/kms', { key: null })).status, 200);
  assert.equal((await api('GET', '/kms', { key: 'wrong' })).status, 401, 'a wrong key is refused even where none is needed');
  // Bearer auth (the SDK's OIDC path) and the workspace header, as our client sends them.
  const cvmId = (stack.info.cvms as { id: string }[])[0]!.id;
  assert.equal((await api('GET', `/cvms/${cvmId}`, { key: null, headers: { Authorization: `Bearer ${apiKey}` } })).status, 200);
  assert.equal((await api('GET', `/cvms/${cvmId}`, { key: null, headers: { Authorization: 'Bearer wrong' } })).status, 401);
  const viaClient = new PhalaCloudClient({ baseUrl: apiUrl, bearerToken: apiKey, workspace: 'simulator' });
  assert.equal((await viaClient.getCvm(cvmId)).id, cvmId);
  assert.equal((await api('GET', `/cvms/${cvm.id}`)).status, 200);
  const res = await fetch(`${admin.simUrl}/_sim/cvms/${cvm.id}/env`, { headers: { Authorization: `Bearer ${apiKey}` } });
  assert.equal(res.status, 401, 'the API key is not an admin token');
  assert.equal((await api('GET', '/cvms/cvm_doesnotexist')).status, 404);
  assert.equal((await api('GET', '/no/such/route')).status, 404);
  assert.equal((await api('DELETE', `/cvms/${cvm.id}/envs`)).status, 405);
});

test('GET /cvms/{id}: 2026-01-21, 2026-05-22 and 2026-06-23 shapes, legacy 2025-10-28, lookups by name/uuid/app id, unknown version', async () => {
  const { cvm, app } = await freshOnchainCvm();
  for (const version of ['2026-01-21', '2026-05-22', '2026-06-23']) {
    const a = await api('GET', `/cvms/${cvm.id}`, { version });
    assert.equal(a.status, 200);
    assert.equal(a.headers.get('x-phala-version'), version);
    const d = CvmDetailSchema.parse(a.json);
    assert.equal(d.id, cvm.id);
    assert.match(d.app_id!, /^[0-9a-f]{40}$/, 'app_id is 40 hex chars without 0x');
    assert.equal(d.app_id, app.slice(2).toLowerCase());
    assert.equal(d.kms_type, 'ethereum');
    assert.equal(d.status, 'running');
    assert.equal(d.in_progress, false);
    assert.equal(d.progress, null);
    assert.match(d.compose_hash!, /^[0-9a-f]{64}$/);
    assert.equal(d.kms_info?.encrypted_env_pubkey, null, 'on-chain KMS keys come from the KMS, not the CVM');
    assert.equal(d.kms_info?.deployer_address, owner.address);
  }
  const legacy = await api('GET', `/cvms/${cvm.id}`, { version: '2025-10-28' });
  assert.equal(typeof legacy.json.id, 'number');
  assert.equal(legacy.json.app_id, app.slice(2).toLowerCase());
  KmsInfoSchema.parse(legacy.json.kms_info);
  assert.equal(legacy.json.contract_address, getAddress(app));

  for (const ref of [cvm.name, cvm.vmUuid, cvm.vmUuid.replace(/-/g, ''), `app_${app.slice(2).toLowerCase()}`]) {
    const a = await api('GET', `/cvms/${ref}`);
    assert.equal(a.status, 200, ref);
    assert.equal(a.json.id, cvm.id);
  }
  const bad = await api('GET', `/cvms/${cvm.id}`, { version: '1999-01-01' });
  assert.equal(bad.status, 400);
});

test('GET /cvms/{id}/compose_file: the served bytes hash to the CVM compose_hash, which getComposeHash reproduces', async () => {
  const cvm = await admin.createCvm({ kms: 'phala', allowedEnvs: ['A', 'B'] });
  const detail = CvmDetailSchema.parse((await api('GET', `/cvms/${cvm.id}`)).json);
  const compose = AppComposeSchema.parse((await api('GET', `/cvms/${cvm.id}/compose_file`)).json);
  assert.deepEqual(compose.allowed_envs, ['A', 'B']);
  assert.equal(getComposeHash(compose), detail.compose_hash);
  const raw = await api('GET', `/cvms/${cvm.id}/compose_file?raw=true`);
  assert.equal(createHash('sha256').update(raw.text).digest('hex'), detail.compose_hash);
  assert.deepEqual(detail.compose_file, compose);
});

test('KMS: GET /kms lists the on-chain KMS (slug, chain_id, contract), lookups by id and slug, signed pubkey; a kms_type word names the only KMS of that type', async () => {
  const list = KmsListResponseSchema.parse((await api('GET', '/kms')).json);
  const onchain = list.items.find((k) => k.chain_id === stack.info.chainId);
  assert.ok(onchain?.slug && onchain.kms_contract_address && onchain.k256_pubkey);
  assert.match(onchain.k256_pubkey, /^0x0[23][0-9a-f]{64}$/);
  assert.deepEqual(Object.keys((await api('GET', '/kms')).json).sort(), ['items', 'page', 'page_size', 'pages', 'total']);
  assert.ok(
    list.items.some((k) => k.chain_id === null),
    'the Phala KMS is listed too',
  );
  const onlyOnchain = KmsListResponseSchema.parse((await api('GET', '/kms?is_onchain=true')).json);
  assert.ok(onlyOnchain.items.every((k) => k.chain_id !== null));
  for (const ref of [onchain.id, onchain.slug]) {
    assert.deepEqual(KmsInfoSchema.parse((await api('GET', `/kms/${ref}`)).json), onchain);
  }
  const appId = randomBytes(20).toString('hex');
  for (const form of [appId, `0x${appId}`]) {
    const pub = await api('GET', `/kms/${onchain.slug}/pubkey/${form}`);
    assert.deepEqual(Object.keys(pub.json).sort(), ['public_key', 'signature'], 'the strict SDK schema allows no other field');
    assert.match(pub.json.public_key, /^[0-9a-f]{64}$/);
    assert.match(pub.json.signature, /^[0-9a-f]{130}$/);
    assert.ok(
      verifyEnvEncryptPublicKey({
        publicKey: pub.json.public_key,
        signature: pub.json.signature,
        appId,
        kmsPublicKey: onchain.k256_pubkey,
      }),
    );
  }
  // The CLI sends the CVM's kms_type as {kms}: it resolves when exactly one KMS has that type.
  const byWord = await api('GET', `/kms/ethereum/pubkey/${appId}`);
  assert.equal(byWord.status, 200, byWord.text);
  assert.ok(
    verifyEnvEncryptPublicKey({
      publicKey: byWord.json.public_key,
      signature: byWord.json.signature,
      appId,
      kmsPublicKey: onchain.k256_pubkey,
    }),
  );
  const notFound = await api('GET', `/kms/base/pubkey/${appId}`);
  assert.equal(notFound.status, 404, 'no KMS of type base in this workspace');
  assert.equal(notFound.json.detail, 'KMS not found');
  assert.equal((await api('GET', `/kms/${onchain.slug}/pubkey/xyz`)).status, 400);
});

test('API 2026-06-23: /kms is contract-centric, /kms/{slug}/nodes lists nodes, the pubkey endpoint keeps its shape', async () => {
  const nodes = KmsListResponseSchema.parse((await api('GET', '/kms', { version: '2026-05-22' })).json);
  const node = nodes.items.find((k) => k.chain_id === stack.info.chainId)!;
  const a = await api('GET', '/kms', { version: '2026-06-23' });
  assert.equal(a.headers.get('x-phala-version'), '2026-06-23');
  const contracts = KmsContractListResponseSchema.parse(a.json);
  const contract = contracts.items.find((k) => k.chain_id === stack.info.chainId);
  assert.ok(contract, 'the on-chain KMS is listed as a contract');
  assert.equal(contract.contract_address.toLowerCase(), node.kms_contract_address!.toLowerCase());
  assert.equal(contract.k256_pubkey, node.k256_pubkey);
  assert.equal(contract.node_count, 1);
  assert.ok(!('url' in a.json.items[0]), 'nodes fields are not part of the contract shape');
  const phala = contracts.items.find((k) => k.chain_id === 0);
  assert.equal(phala?.contract_address, 'phala', 'the off-chain KMS is the sentinel contract');
  assert.deepEqual(KmsContractInfoSchema.parse((await api('GET', `/kms/${contract.slug}`, { version: '2026-06-23' })).json), contract);
  const list = (await api('GET', `/kms/${contract.slug}/nodes`, { version: '2026-06-23' })).json;
  assert.deepEqual(list, {
    items: [{ id: node.id, slug: node.slug, url: node.url, version: node.version, kms_type: 'ethereum' }],
    total: 1,
  });
  assert.equal(
    (await api('GET', `/kms/${contract.slug}/nodes`, { version: '2026-05-22' })).status,
    404,
    'no nodes route before 2026-06-23',
  );
  const appId = randomBytes(20).toString('hex');
  const pub = await api('GET', `/kms/${node.slug}/pubkey/${appId}`, { version: '2026-06-23' });
  assert.deepEqual(Object.keys(pub.json).sort(), ['public_key', 'signature']);
});

test('Phala-KMS CVM: changed keys go straight to 202; in progress, then running with the env filtered by allowed_envs', async () => {
  // Long enough for the in-progress reads below even on a loaded machine.
  const cvm = await admin.createCvm({ kms: 'phala', applyDelayMs: 3000 });
  const encrypted = await encrypt(cvm.id, { API_TOKEN: 'sim-value-1', DB_URL: 'postgres://x', NOT_ALLOWED: 'dropped' });
  const a = await api('PATCH', `/cvms/${cvm.id}/envs`, { body: { encrypted_env: encrypted, env_keys: ['API_TOKEN', 'DB_URL'] } });
  assert.equal(a.status, 202, a.text);
  const accepted = UpdateCvmEnvsAcceptedSchema.parse(a.json);
  assert.equal(accepted.allowed_envs_changed, true);

  const during = CvmDetailSchema.parse((await api('GET', `/cvms/${cvm.id}`)).json);
  assert.equal(during.in_progress, true);
  assert.equal(during.progress?.correlation_id, accepted.correlation_id);
  assert.equal(during.progress?.target, 'running');
  assert.notEqual(during.status, 'running');
  const state = CvmStateSchema.parse((await api('GET', `/cvms/${cvm.id}/state`)).json);
  assert.equal(state.status, during.status);
  const batch = BatchStatusResponseSchema.parse(
    (await api('POST', '/status/batch', { body: { vm_uuids: [cvm.vmUuid, 'unknown-uuid'] } })).json,
  );
  assert.deepEqual(Object.keys(batch), [cvm.vmUuid]);
  assert.equal(batch[cvm.vmUuid]!.in_progress, true);
  assert.equal(batch[cvm.vmUuid]!.correlation_id, accepted.correlation_id);
  // 2026-06-23 carries the operation as one object instead of the flat fields.
  const batchNew = BatchStatusResponseSchema.parse(
    (await api('POST', '/status/batch', { version: '2026-06-23', body: { vm_uuids: [cvm.vmUuid] } })).json,
  );
  assert.equal(batchNew[cvm.vmUuid]!.operation?.correlation_id, accepted.correlation_id);
  assert.equal(batchNew[cvm.vmUuid]!.operation?.type, 'compose_update');
  assert.equal(batchNew[cvm.vmUuid]!.correlation_id, undefined);
  const opsDuring = CvmOperationsPageSchema.parse((await api('GET', `/cvms/${cvm.id}/operations`)).json);
  assert.equal(opsDuring.items[0]?.status, 'in_progress');

  await admin.waitUntilIdle(cvm.id);
  const done = CvmDetailSchema.parse((await api('GET', `/cvms/${cvm.id}`)).json);
  assert.equal(done.status, 'running');
  assert.equal(done.in_progress, false);
  assert.equal(done.progress, null);
  const applied = await admin.appliedEnv(cvm.id);
  assert.deepEqual(applied.env, { API_TOKEN: 'sim-value-1', DB_URL: 'postgres://x' });
  assert.deepEqual(applied.dropped_keys, ['NOT_ALLOWED']);
  assert.deepEqual(applied.allowed_envs, ['API_TOKEN', 'DB_URL']);
  assert.equal(applied.correlation_id, accepted.correlation_id);
  assert.equal(applied.compose_hash, done.compose_hash);
  const ops = CvmOperationsPageSchema.parse((await api('GET', `/cvms/${cvm.id}/operations`)).json);
  assert.equal(ops.items[0]?.correlation_id, accepted.correlation_id);
  assert.equal(ops.items[0]?.status, 'completed');
  assert.ok(ops.items[0]?.completed_at);
  assert.equal(ops.items[0]?.compose_hash, done.compose_hash);
  const after = BatchStatusResponseSchema.parse((await api('POST', '/status/batch', { body: { vm_uuids: [cvm.vmUuid] } })).json);
  assert.equal(after[cvm.vmUuid]!.in_progress, false);
  assert.equal(after[cvm.vmUuid]!.status, 'running');
});

test('on-chain KMS: a value-only change (same keys, or env_keys omitted) is accepted without phase 2', async () => {
  const { cvm } = await freshOnchainCvm({ allowedEnvs: ['APP_MODE', 'LEVEL'] });
  const before = CvmDetailSchema.parse((await api('GET', `/cvms/${cvm.id}`)).json);
  const reordered = await api('PATCH', `/cvms/${cvm.id}/envs`, {
    body: { encrypted_env: await encrypt(cvm.id, { APP_MODE: 'prod', LEVEL: '3' }), env_keys: ['LEVEL', 'APP_MODE'] },
  });
  assert.equal(reordered.status, 202, reordered.text);
  assert.equal(reordered.json.allowed_envs_changed, false);
  await admin.waitUntilIdle(cvm.id);
  const omitted = await api('PATCH', `/cvms/${cvm.id}/envs`, { body: { encrypted_env: await encrypt(cvm.id, { APP_MODE: 'dev' }) } });
  assert.equal(omitted.status, 202, omitted.text);
  await admin.waitUntilIdle(cvm.id);
  const applied = await admin.appliedEnv(cvm.id);
  assert.deepEqual(applied.env, { APP_MODE: 'dev' });
  assert.equal(applied.compose_hash, before.compose_hash, 'a value-only change keeps the compose');
});

test('PATCH validation: 422 for a payload that does not decrypt with the CVM key, and for malformed bodies', async () => {
  const cvm = await admin.createCvm({ kms: 'phala' });
  const other = await admin.createCvm({ kms: 'phala' });
  const toOther = await encrypt(other.id, { A: '1' });
  const cases: [unknown, string][] = [
    [{ encrypted_env: toOther, env_keys: ['A'] }, 'encrypted_env'],
    [{ encrypted_env: 'zz-not-hex' }, 'encrypted_env'],
    [{ encrypted_env: '00'.repeat(20) }, 'encrypted_env'],
    [{ env_keys: ['A'] }, 'encrypted_env'],
    [{ encrypted_env: toOther, env_keys: ['1BAD'] }, 'env_keys'],
    [{ encrypted_env: toOther, env_keys: 'A' }, 'env_keys'],
    [{ encrypted_env: toOther, env_keys: ['A'], compose_hash: 'ab'.repeat(32) }, 'transaction_hash'],
    [{ encrypted_env: toOther, compose_hash: 'nothex', transaction_hash: randomHash() }, 'compose_hash'],
  ];
  for (const [body, field] of cases) {
    const a = await api('PATCH', `/cvms/${cvm.id}/envs`, { body });
    assert.equal(a.status, 422, `${JSON.stringify(body).slice(0, 80)}: ${a.text}`);
    assert.ok(Array.isArray(a.json.detail));
    assert.deepEqual(a.json.detail[0].loc.slice(0, 2), ['body', field]);
    assert.doesNotMatch(a.text, /"1"/, 'no env value is echoed');
  }
  const notJson = await fetch(`${apiUrl}/cvms/${cvm.id}/envs`, {
    method: 'PATCH',
    headers: { 'X-API-Key': apiKey, 'Content-Type': 'application/json' },
    body: '{not json',
  });
  assert.equal(notJson.status, 422);
  const summary = await admin.cvm(cvm.id);
  assert.equal(summary.inProgress, false, 'a refused request changes nothing');
  assert.equal((await admin.appliedEnv(cvm.id)).correlation_id, null);
});

test('two-phase flow on chain: 465 with the hash to register, addComposeHash, phase 2 → 202 and the new env applied', async () => {
  const { cvm, app } = await freshOnchainCvm();
  const env = { APP_MODE: 'blue', NEW_SECRET: 's3cr3t' };
  const p1 = await phase1(cvm, ['APP_MODE', 'NEW_SECRET'], env);
  const read = readPreconditionRequired(p1.answer.json);
  assert.ok(read.ok, 'our client reads the 465 the way the official SDK does');
  assert.equal(read.value.compose_hash, p1.composeHash);
  assert.equal(read.value.app_id, app.slice(2).toLowerCase());
  assert.match(read.value.device_id, /^[0-9a-f]{64}$/);
  assert.equal(read.value.kms_info.chain_id, stack.info.chainId);
  assert.ok(read.value.kms_info.id && read.value.kms_info.url && read.value.kms_info.version);
  assert.equal(Object.hasOwn(read.value.kms_info, 'rpc_endpoint'), false, 'a 465 kms_info carries no RPC URL');
  // The hash is the one of the compose the CVM will boot: same document, new allowed_envs.
  const current = AppComposeSchema.parse((await api('GET', `/cvms/${cvm.id}/compose_file`)).json);
  assert.equal(getComposeHash({ ...current, allowed_envs: ['APP_MODE', 'NEW_SECRET'] }), p1.composeHash);

  const tx = await send('addComposeHash', app, p1.composeHash);
  const p2 = await api('PATCH', `/cvms/${cvm.id}/envs`, {
    body: { encrypted_env: p1.encrypted, env_keys: ['APP_MODE', 'NEW_SECRET'], compose_hash: p1.composeHash, transaction_hash: tx },
  });
  assert.equal(p2.status, 202, p2.text);
  const accepted = UpdateCvmEnvsAcceptedSchema.parse(p2.json);
  assert.equal(accepted.allowed_envs_changed, true);
  const during = CvmDetailSchema.parse((await api('GET', `/cvms/${cvm.id}`)).json);
  assert.equal(during.progress?.correlation_id, accepted.correlation_id);
  await admin.waitUntilIdle(cvm.id);
  const detail = CvmDetailSchema.parse((await api('GET', `/cvms/${cvm.id}`)).json);
  assert.equal(detail.compose_hash, p1.composeHash, 'the CVM now runs the registered compose');
  assert.deepEqual((await admin.appliedEnv(cvm.id)).env, env);
  // The pending hash was consumed: replaying phase 2 is not a second update.
  const replay = await api('PATCH', `/cvms/${cvm.id}/envs`, {
    body: { encrypted_env: p1.encrypted, env_keys: ['APP_MODE', 'NEW_SECRET'], compose_hash: p1.composeHash, transaction_hash: tx },
  });
  assert.equal(replay.status, 202, 'same keys as now: a value-only update');
  assert.equal(replay.json.allowed_envs_changed, false);
  await admin.waitUntilIdle(cvm.id);
});

test('466: a hash that is not pending, an expired one, one whose compose moved on, or env_keys that differ from phase 1', async () => {
  const { cvm, app } = await freshOnchainCvm();
  const k1 = ['APP_MODE', 'K1'];
  const k2 = ['APP_MODE', 'K2'];
  const first = await phase1(cvm, k1, { K1: 'a' });
  const unknown = await api('PATCH', `/cvms/${cvm.id}/envs`, {
    body: { encrypted_env: first.encrypted, env_keys: k1, compose_hash: randomHash().slice(2), transaction_hash: randomHash() },
  });
  expectStructured(unknown, 466, 'ERR-01-006');
  const differ = await api('PATCH', `/cvms/${cvm.id}/envs`, {
    body: {
      encrypted_env: first.encrypted,
      env_keys: ['APP_MODE', 'OTHER'],
      compose_hash: first.composeHash,
      transaction_hash: randomHash(),
    },
  });
  expectStructured(differ, 466, 'ERR-01-006');

  // A second client's phase 1 and phase 2 land first: the first hash was issued for a compose that is gone.
  const second = await phase1(cvm, k2, { K2: 'b' });
  assert.notEqual(second.composeHash, first.composeHash);
  const tx2 = await send('addComposeHash', app, second.composeHash);
  const ok = await api('PATCH', `/cvms/${cvm.id}/envs`, {
    body: { encrypted_env: second.encrypted, env_keys: k2, compose_hash: second.composeHash, transaction_hash: tx2 },
  });
  assert.equal(ok.status, 202, ok.text);
  await admin.waitUntilIdle(cvm.id);
  const tx1 = await send('addComposeHash', app, first.composeHash);
  const stale = await api('PATCH', `/cvms/${cvm.id}/envs`, {
    body: { encrypted_env: first.encrypted, env_keys: k1, compose_hash: first.composeHash, transaction_hash: tx1 },
  });
  const { body } = expectStructured(stale, 466, 'ERR-01-006');
  assert.match(body.message, /changed/);

  const short = await freshOnchainCvm({ pendingTtlMs: 1 });
  const p = await phase1(short.cvm, ['APP_MODE', 'X'], { X: '1' });
  const tx = await send('addComposeHash', short.app, p.composeHash);
  await new Promise((r) => setTimeout(r, 20));
  const expired = await api('PATCH', `/cvms/${short.cvm.id}/envs`, {
    body: { encrypted_env: p.encrypted, env_keys: ['APP_MODE', 'X'], compose_hash: p.composeHash, transaction_hash: tx },
  });
  const exp = expectStructured(expired, 466, 'ERR-01-006');
  assert.match(exp.body.message, /expired/);
});

test('467: receipt missing, reverted, sent to another contract, or without ComposeHashAdded for this hash', async () => {
  const { cvm, app } = await freshOnchainCvm();
  const keys = ['APP_MODE', 'NEW'];
  const p = await phase1(cvm, keys, { NEW: 'v' });
  const phase2 = (tx: string) =>
    api('PATCH', `/cvms/${cvm.id}/envs`, {
      body: { encrypted_env: p.encrypted, env_keys: keys, compose_hash: p.composeHash, transaction_hash: tx },
    });

  const missing = expectStructured(await phase2(randomHash()), 467, 'ERR-01-007');
  assert.match(missing.body.message, /receipt not found/);

  const reverted = await send('addComposeHash', app, p.composeHash, 'stranger');
  assert.match(expectStructured(await phase2(reverted), 467, 'ERR-01-007').body.message, /reverted/);

  // Another app's registration of the same hash: relays are accepted, but not someone else's event.
  const otherApp = await deployApp();
  const elsewhere = await send('addComposeHash', otherApp, p.composeHash);
  assert.match(expectStructured(await phase2(elsewhere), 467, 'ERR-01-007').body.message, /no ComposeHashAdded event of the app contract/);

  const wrongHash = await send('addComposeHash', app, randomHash());
  assert.match(expectStructured(await phase2(wrongHash), 467, 'ERR-01-007').body.message, /no ComposeHashAdded/);

  // Still pending after all those: the right transaction goes through.
  const good = await send('addComposeHash', app, p.composeHash);
  assert.equal((await phase2(good)).status, 202);
  await admin.waitUntilIdle(cvm.id);
});

test('468: the registration transaction is valid but the hash was removed from the contract since', async () => {
  const { cvm, app } = await freshOnchainCvm();
  const keys = ['APP_MODE', 'GONE'];
  const p = await phase1(cvm, keys, { GONE: 'x' });
  const tx = await send('addComposeHash', app, p.composeHash);
  await send('removeComposeHash', app, p.composeHash);
  const a = await api('PATCH', `/cvms/${cvm.id}/envs`, {
    body: { encrypted_env: p.encrypted, env_keys: keys, compose_hash: p.composeHash, transaction_hash: tx },
  });
  const { fields } = expectStructured(a, 468, 'ERR-01-008');
  assert.equal(fields.get('compose_hash'), p.composeHash);
  assert.equal((await admin.cvm(cvm.id)).inProgress, false);
});

test('boot check at apply: a hash removed after phase 2 makes the restart fail, the old env and compose stay', async () => {
  const { cvm, app } = await freshOnchainCvm({ applyDelayMs: 2500 });
  const before = await admin.appliedEnv(cvm.id);
  const keys = ['APP_MODE', 'LATE'];
  const p = await phase1(cvm, keys, { LATE: 'x' });
  const tx = await send('addComposeHash', app, p.composeHash);
  const a = await api('PATCH', `/cvms/${cvm.id}/envs`, {
    body: { encrypted_env: p.encrypted, env_keys: keys, compose_hash: p.composeHash, transaction_hash: tx },
  });
  assert.equal(a.status, 202, a.text);
  await send('removeComposeHash', app, p.composeHash);
  await admin.waitUntilIdle(cvm.id);
  const op = CvmOperationsPageSchema.parse((await api('GET', `/cvms/${cvm.id}/operations`)).json).items[0]!;
  assert.equal(op.correlation_id, a.json.correlation_id);
  assert.equal(op.status, 'failed');
  assert.equal(op.error_message, 'boot refused by the KMS: Compose hash not allowed');
  const after = await admin.appliedEnv(cvm.id);
  assert.deepEqual(after.allowed_envs, before.allowed_envs, 'the CVM still runs the old compose');
  assert.deepEqual(after.env, before.env);
});

test('boot check at apply: an app the KMS never registered does not boot, whatever its contract allows', async () => {
  // A constructor-deployed app: its own contract allows the hash, but DstackKms does not know it.
  const { publicClient, ownerWallet } = chainClients();
  const { abi, bytecode } = loadArtifact('DstackApp');
  const deployed = await publicClient.waitForTransactionReceipt({
    hash: await ownerWallet.deployContract({ abi, bytecode, args: [owner.address, true] }),
    pollingInterval: 50,
  });
  const app = getAddress(deployed.contractAddress!);
  const cvm = await admin.createCvm({ kms: 'onchain', appId: app, applyDelayMs: 100 });
  const keys = ['APP_MODE', 'UNREG'];
  const p = await phase1(cvm, keys, { UNREG: 'x' });
  const tx = await send('addComposeHash', app, p.composeHash);
  const a = await api('PATCH', `/cvms/${cvm.id}/envs`, {
    body: { encrypted_env: p.encrypted, env_keys: keys, compose_hash: p.composeHash, transaction_hash: tx },
  });
  assert.equal(a.status, 202, a.text);
  await admin.waitUntilIdle(cvm.id);
  const op = CvmOperationsPageSchema.parse((await api('GET', `/cvms/${cvm.id}/operations`)).json).items[0]!;
  assert.equal(op.status, 'failed');
  assert.equal(op.error_message, 'boot refused by the KMS: App not registered');
});

test('409: no second update while one runs on the CVM; other CVMs are unaffected', async () => {
  const slow = await admin.createCvm({ kms: 'phala', applyDelayMs: 1500 });
  const first = await api('PATCH', `/cvms/${slow.id}/envs`, { body: { encrypted_env: await encrypt(slow.id, { APP_MODE: 'one' }) } });
  assert.equal(first.status, 202);
  const second = await api('PATCH', `/cvms/${slow.id}/envs`, { body: { encrypted_env: await encrypt(slow.id, { APP_MODE: 'two' }) } });
  assert.equal(second.status, 409, second.text);
  assert.equal(typeof second.json.detail, 'string');
  const other = await admin.createCvm({ kms: 'phala', applyDelayMs: 50 });
  assert.equal(
    (await api('PATCH', `/cvms/${other.id}/envs`, { body: { encrypted_env: await encrypt(other.id, { APP_MODE: 'x' }) } })).status,
    202,
  );
  await admin.waitUntilIdle(slow.id);
  assert.deepEqual((await admin.appliedEnv(slow.id)).env, { APP_MODE: 'one' });
  assert.equal(
    (await api('PATCH', `/cvms/${slow.id}/envs`, { body: { encrypted_env: await encrypt(slow.id, { APP_MODE: 'three' }) } })).status,
    202,
  );
  await admin.waitUntilIdle(slow.id);
  await admin.waitUntilIdle(other.id);
});

test('two CVMs of one app share the compose hash: one registration serves both', async () => {
  const app = await deployApp();
  const a = await admin.createCvm({ kms: 'onchain', appId: app, applyDelayMs: 50 });
  const b = await admin.createCvm({ kms: 'onchain', appId: app, applyDelayMs: 50 });
  assert.equal(a.composeHash, b.composeHash);
  assert.equal(await encryptionKey(a.id), await encryptionKey(b.id), 'the KMS derives one env key per app');
  const keys = ['APP_MODE', 'SHARED'];
  const pa = await phase1(a, keys, { SHARED: 'a' });
  const pb = await phase1(b, keys, { SHARED: 'b' });
  assert.equal(pa.composeHash, pb.composeHash);
  const tx = await send('addComposeHash', app, pa.composeHash);
  for (const [cvm, p] of [
    [a, pa],
    [b, pb],
  ] as const) {
    const r = await api('PATCH', `/cvms/${cvm.id}/envs`, {
      body: { encrypted_env: p.encrypted, env_keys: keys, compose_hash: p.composeHash, transaction_hash: tx },
    });
    assert.equal(r.status, 202, r.text);
  }
  await admin.waitUntilIdle(a.id);
  await admin.waitUntilIdle(b.id);
  assert.deepEqual((await admin.appliedEnv(a.id)).env, { SHARED: 'a' });
  assert.deepEqual((await admin.appliedEnv(b.id)).env, { SHARED: 'b' });
});

test('operations: newest first, cursor pagination, operation_types filter; an env the guest rejects fails its operation', async () => {
  const cvm = await admin.createCvm({ kms: 'phala', applyDelayMs: 0, allowedEnvs: ['APP_MODE'] });
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await api('PATCH', `/cvms/${cvm.id}/envs`, { body: { encrypted_env: await encrypt(cvm.id, { APP_MODE: String(i) }) } });
    assert.equal(r.status, 202);
    ids.unshift(r.json.correlation_id);
    await admin.waitUntilIdle(cvm.id);
  }
  const page1 = CvmOperationsPageSchema.parse((await api('GET', `/cvms/${cvm.id}/operations?limit=2`)).json);
  assert.equal(page1.total, 3);
  assert.deepEqual(
    page1.items.map((o) => o.correlation_id),
    ids.slice(0, 2),
  );
  assert.ok(page1.next_cursor);
  const page2 = CvmOperationsPageSchema.parse((await api('GET', `/cvms/${cvm.id}/operations?limit=2&cursor=${page1.next_cursor}`)).json);
  assert.deepEqual(
    page2.items.map((o) => o.correlation_id),
    ids.slice(2),
  );
  assert.equal(page2.next_cursor, null);
  assert.equal(CvmOperationsPageSchema.parse((await api('GET', `/cvms/${cvm.id}/operations?operation_types=power_on`)).json).total, 0);
  assert.equal((await api('GET', `/cvms/${cvm.id}/operations?limit=0`)).status, 422);

  // A key the guest refuses (too long) decrypts fine but fails at boot: the previous env stays.
  const bad = await api('PATCH', `/cvms/${cvm.id}/envs`, {
    body: { encrypted_env: await encrypt(cvm.id, { APP_MODE: 'x'.repeat(128 * 1024 + 1) }) },
  });
  assert.equal(bad.status, 202);
  await admin.waitUntilIdle(cvm.id);
  const ops = CvmOperationsPageSchema.parse((await api('GET', `/cvms/${cvm.id}/operations`)).json);
  assert.equal(ops.items[0]?.status, 'failed');
  assert.match(ops.items[0]?.error_message ?? '', /APP_MODE/);
  assert.doesNotMatch(ops.items[0]?.error_message ?? '', /xxxx/);
  assert.deepEqual((await admin.appliedEnv(cvm.id)).env, { APP_MODE: '2' });
});
