// An app owned by a Safe (the official 1.4.1 contracts on the suite's anvil, 3 owners,
// threshold 2). The pieces a change waiting for such an owner uses: the kms-info answer names
// the Safe, the proposal says exactly what to sign, the chain read sees nothing until the Safe
// executes and then finds the Safe's transaction, and the simulator accepts that relayed
// transaction as phase 2's proof and boots the CVM with the new env.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicClient, createWalletClient, decodeFunctionData, getAddress, http, type Address } from 'viem';
import { generatePrivateKey, mnemonicToAccount, privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { dstackAppAbi } from '../src/chain/dstack-app-abi.ts';
import { readOwnerRegistration } from '../src/chain/owner-registration.ts';
import { buildRegistrationProposal, describeRegistrationProposal } from '../src/chain/registration-proposal.ts';
import { ANVIL_MNEMONIC } from '../src/dev/anvil.ts';
import { appIdFromDeployment, sendDeployAndRegisterApp } from '../src/dev/deploy-dstack.ts';
import { PhalaCloudClient } from '../src/phala/api-client.ts';
import { encryptEnvVars } from '../src/phala/env-crypto.ts';
import { SimAdminClient } from '../src/simulator/admin-client.ts';
import { ChainVerifier } from '../src/simulator/chain-verifier.ts';
import { randomBytes } from 'node:crypto';
import { awaitEnvUpdate, getEnvUpdateStatus, startEnvUpdate, type UpdateStatus } from '../src/client.ts';
import { deploySafe, type SafeFixture } from './support/safe.ts';
import { createHarness } from './support/update-harness.ts';
import { useStack, type TestStack } from './support/stack.ts';

let stack: TestStack;
let safe: SafeFixture;
let app: Address;
// A dev account no other test file sends from: deploys the Safe and executes its transactions.
const executor = mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: 2 });
const owners = [0, 1, 2].map(() => privateKeyToAccount(generatePrivateKey()));

before(async () => {
  stack = await useStack();
  safe = await deploySafe({ rpcUrl: stack.info.rpcUrl, chainId: stack.info.chainId, deployer: executor, owners, threshold: 2 });
  const chain = { ...foundry, id: stack.info.chainId };
  const wallet = createWalletClient({ chain, transport: http(stack.info.rpcUrl), account: executor });
  const pub = createPublicClient({ chain, transport: http(stack.info.rpcUrl), pollingInterval: 50 });
  app = await appIdFromDeployment(
    pub,
    await sendDeployAndRegisterApp({ wallet, kms: getAddress(stack.info.kmsAddress as string), owner: safe.address }),
  );
});
after(async () => {
  await stack?.release();
});

test('a Safe-owned app: propose, 2 of 3 owners sign, one executes; the chain read finds it and phase 2 accepts the relay', async () => {
  const pub = createPublicClient({
    chain: { ...foundry, id: stack.info.chainId },
    transport: http(stack.info.rpcUrl),
    pollingInterval: 50,
  });
  const phala = new PhalaCloudClient({ baseUrl: stack.info.apiUrl as string, apiKey: stack.info.apiKey as string });
  const admin = new SimAdminClient(stack.info.apiUrl as string, stack.info.simAdminToken as string);
  const startBlock = Number(await pub.getBlockNumber());
  const cvm = await admin.createCvm({ kms: 'onchain', appId: app, allowedEnvs: ['APP_MODE'], applyDelayMs: 200 });

  // Phase 1 asks for a registration.
  const kms = (await phala.listKms({ isOnchain: true })).items[0]!;
  const pubkey = await phala.getAppEnvEncryptPubkey(kms.slug ?? kms.id, app);
  const env = [
    { key: 'APP_MODE', value: 'safe' },
    { key: 'SAFE_KEY', value: 'multisig-set' },
  ];
  const encrypted = await encryptEnvVars(env, pubkey.public_key);
  const keys = env.map((e) => e.key);
  const first = await phala.updateCvmEnvs({ id: cvm.id, encrypted_env: encrypted, env_keys: keys });
  assert.equal(first.status, 'precondition_required');
  const composeHash = (first as { compose_hash: string }).compose_hash;

  // What to propose: the API names the Safe, the proposal carries chain, to, data, value.
  const info = await phala.getAppKmsInfo(app);
  assert.equal(info.deployer_type, 'safe');
  assert.equal(info.is_contract, true);
  assert.equal(getAddress(info.deployer_address!), safe.address);
  const proposal = buildRegistrationProposal({ chainId: stack.info.chainId, appId: app, composeHash, kmsInfo: info });
  assert.equal(proposal.to, getAddress(app));
  assert.equal(proposal.value, '0');
  assert.equal(proposal.owner, safe.address);
  assert.equal(proposal.deployerType, 'safe');
  const decoded = decodeFunctionData({ abi: dstackAppAbi, data: proposal.data });
  assert.equal(decoded.functionName, 'addComposeHash');
  assert.equal(decoded.args[0], `0x${composeHash}`);
  assert.ok(describeRegistrationProposal(proposal).some((l) => l.includes(proposal.data)));

  // Nothing on chain yet.
  assert.deepEqual(await readOwnerRegistration(pub, { app, composeHash, fromBlock: startBlock }), { allowed: false });

  // One owner is not enough: the Safe refuses (GS020) and nothing is registered.
  await assert.rejects(safe.execute({ to: proposal.to, data: proposal.data }, [owners[0]!], executor), /GS020/);
  assert.equal((await readOwnerRegistration(pub, { app, composeHash, fromBlock: startBlock })).allowed, false);

  // Two of three sign, the executor (not an owner) sends it.
  const exec = await safe.execute({ to: proposal.to, data: proposal.data }, [owners[2]!, owners[0]!], executor);
  assert.equal(exec.success, true);
  const receipt = await pub.getTransactionReceipt({ hash: exec.hash });
  assert.equal(getAddress(receipt.to!), safe.address, 'the registration transaction went to the Safe, not the app');

  const seen = await readOwnerRegistration(pub, { app, composeHash, fromBlock: startBlock });
  assert.equal(seen.allowed, true);
  assert.equal(seen.allowed && seen.registration?.txHash, exec.hash, 'the Safe transaction is found for the record');

  // The simulator's setting decides relays: txMustTargetApp=true refuses the Safe's transaction.
  const verifier = new ChainVerifier({ rpcUrl: stack.info.rpcUrl });
  const args = { appId: app.slice(2).toLowerCase(), composeHash, txHash: exec.hash, requiredConfirmations: 1 };
  assert.deepEqual(await verifier.verify({ ...args, txMustTargetApp: true }), {
    ok: false,
    status: 467,
    reason: 'transaction was not sent to the app contract',
  });
  assert.equal((await verifier.verify({ ...args, txMustTargetApp: false })).ok, true);

  // Phase 2 with the Safe's transaction: accepted (relays are the simulator's default), then boots.
  const second = await phala.updateCvmEnvs({
    id: cvm.id,
    encrypted_env: encrypted,
    env_keys: keys,
    compose_hash: composeHash,
    transaction_hash: exec.hash,
  });
  assert.equal(second.status, 'in_progress');
  await admin.waitUntilIdle(cvm.id);
  const applied = await admin.appliedEnv(cvm.id);
  assert.deepEqual(applied.env, { APP_MODE: 'safe', SAFE_KEY: 'multisig-set' });
});

test('the proposal for a Safe on Base links the Safe app; an EOA owner gets none', () => {
  const appId = '0x1234567890abcdef1234567890abcdef12345678';
  const hash = 'ab'.repeat(32);
  const owner = '0x00000000000000000000000000000000000000a1';
  const p = buildRegistrationProposal({
    chainId: 8453,
    appId,
    composeHash: hash,
    kmsInfo: { deployer_address: owner, deployer_type: 'safe' },
  });
  assert.equal(p.safeAppUrl, `https://app.safe.global/home?safe=base:${getAddress(owner)}`);
  const given = buildRegistrationProposal({
    chainId: 1,
    appId,
    composeHash: hash,
    kmsInfo: { deployer_address: owner, deployer_type: 'safe', safe_app_url: 'https://app.safe.global/x' },
  });
  assert.equal(given.safeAppUrl, 'https://app.safe.global/x', "the API's link wins");
  const eoa = buildRegistrationProposal({
    chainId: 1,
    appId,
    composeHash: hash,
    kmsInfo: { deployer_address: owner, deployer_type: 'eoa' },
  });
  assert.equal(eoa.safeAppUrl, undefined);
  assert.throws(() => buildRegistrationProposal({ chainId: 1, appId: 'nope', composeHash: hash }), /appId/);
  assert.throws(() => buildRegistrationProposal({ chainId: 1, appId, composeHash: 'xyz' }), /composeHash/);
});

test('the update workflow waits for the Safe, shows what to propose, and finishes by itself once 2 of 3 owners execute it', async () => {
  const h = await createHarness(stack);
  try {
    await h.startWorker({ LOG_LEVEL: 'ERROR' });
    const cvm = await h.newCvm({ kms: 'onchain', appId: app, allowedEnvs: ['APP_MODE'] });
    const env = { APP_MODE: 'safe', [`SAFE_${randomBytes(4).toString('hex').toUpperCase()}`]: 'wf' };
    const { handle } = await startEnvUpdate(h.client, { cvmId: cvm.id, env }, { taskQueue: h.taskQueue });

    let waiting: UpdateStatus | undefined;
    for (const deadline = Date.now() + 30_000; !waiting?.ownerProposal; await new Promise((r) => setTimeout(r, 200))) {
      if (Date.now() > deadline) throw new Error(`no proposal in the status: ${JSON.stringify(waiting)}`);
      waiting = await getEnvUpdateStatus(h.client, cvm.id).catch(() => undefined);
    }
    const proposal = waiting.ownerProposal;
    assert.equal(waiting.phase, 'awaiting_operator');
    assert.equal(proposal.deployerType, 'safe');
    assert.equal(proposal.owner, safe.address);
    // No Safe app link here: Safe's web app does not serve the local chain (31337).

    const exec = await safe.execute({ to: proposal.to, data: proposal.data }, [owners[1]!, owners[2]!], executor);
    assert.equal(exec.success, true);
    const result = await awaitEnvUpdate(handle);
    assert.equal(result.transactionHash, exec.hash, "the Safe's own transaction is the registration of record");
    assert.deepEqual((await h.sim.appliedEnv(cvm.id)).env, env);
  } finally {
    await h.close();
  }
});
