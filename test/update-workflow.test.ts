import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { awaitEnvUpdate, getEnvUpdateStatus, startEnvUpdate } from '../src/client.ts';
import { createPublicClient, createWalletClient, http } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { dstackAppAbi } from '../src/chain/dstack-app-abi.ts';
import { registrationsOf } from './support/registrations.ts';
import { useUpdateHarness } from './support/update-harness.ts';

const setup = useUpdateHarness();

const secret = () => `s3cr3t-${randomBytes(12).toString('hex')}`;

test('on-chain KMS, new allowed keys: phase 1 → registration → confirmations → phase 2 → applied', async () => {
  const cvm = await setup.h.newCvm({ kms: 'onchain', appId: setup.h.appId(true), allowedEnvs: ['OLD_KEY'] });
  const env = { API_TOKEN: secret(), DATABASE_URL: `postgres://u:${secret()}@db/app` };
  const { handle } = await startEnvUpdate(
    setup.h.client,
    { cvmId: cvm.id, env, requestId: `req-${cvm.id}` },
    { taskQueue: setup.h.taskQueue },
  );
  const result = await awaitEnvUpdate(handle);

  assert.equal(result.kms, 'onchain');
  assert.equal(result.applied, true);
  assert.equal(result.allowedEnvsChanged, true);
  assert.match(result.composeHash ?? '', /^[0-9a-f]{64}$/);
  assert.match(result.transactionHash ?? '', /^0x[0-9a-f]{64}$/);
  assert.deepEqual(await registrationsOf(setup.stack.info.rpcUrl, cvm.appId, result.composeHash!), [result.transactionHash]);

  const applied = await setup.h.sim.appliedEnv(cvm.id);
  assert.deepEqual(applied.env, env);
  assert.equal(applied.compose_hash, result.composeHash);
  assert.equal(applied.correlation_id, result.correlationId);

  const status = await getEnvUpdateStatus(setup.h.client, cvm.id);
  assert.equal(status.phase, 'completed');
  assert.ok((status.confirmations ?? 0) >= (status.requiredConfirmations ?? 1));
  assert.ok(result.timings.chainMs > 0 && result.timings.apiMs > 0);
});

test('Phala KMS: one phase, no chain', async () => {
  const cvm = await setup.h.newCvm({ kms: 'phala' });
  const env = { ONLY_HERE: secret() };
  const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env }, { taskQueue: setup.h.taskQueue });
  const result = await awaitEnvUpdate(handle);
  assert.equal(result.kms, 'phala');
  assert.equal(result.transactionHash, undefined);
  assert.equal(result.timings.chainMs, 0);
  assert.deepEqual((await setup.h.sim.appliedEnv(cvm.id)).env, env);
});

test('on-chain KMS, same keys new values: no registration', async () => {
  const cvm = await setup.h.newCvm({ kms: 'onchain', appId: setup.h.appId(true), allowedEnvs: ['A', 'B'] });
  const env = { A: secret(), B: secret() };
  const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env }, { taskQueue: setup.h.taskQueue });
  const result = await awaitEnvUpdate(handle);
  assert.equal(result.allowedEnvsChanged, false);
  assert.equal(result.transactionHash, undefined);
  assert.deepEqual((await setup.h.sim.appliedEnv(cvm.id)).env, env);
});

test('a compose hash removed on chain before the CVM restarts: the KMS refuses the boot and the workflow says so, waiting for an operator', async () => {
  const { h, stack } = setup;
  const cvm = await h.newCvm({ kms: 'onchain', appId: h.appId(true), allowedEnvs: ['BASE'], applyDelayMs: 4000 });
  const env = { BASE: secret(), [`BOOT_${randomBytes(3).toString('hex').toUpperCase()}`]: secret() };
  const { handle } = await startEnvUpdate(h.client, { cvmId: cvm.id, env }, { taskQueue: h.taskQueue });

  let s = await getEnvUpdateStatus(h.client, cvm.id).catch(() => undefined);
  for (
    const deadline = Date.now() + 30_000;
    s?.phase !== 'applying';
    s = await getEnvUpdateStatus(h.client, cvm.id).catch(() => undefined)
  ) {
    if (Date.now() > deadline) throw new Error(`never reached applying: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  // The app's owner takes the hash back while the CVM is still restarting.
  const chain = { ...foundry, id: stack.info.chainId };
  const owner = createWalletClient({ chain, transport: http(stack.info.rpcUrl), account: privateKeyToAccount(h.signer.key) });
  const removed = await owner.writeContract({
    address: cvm.appId as `0x${string}`,
    abi: dstackAppAbi,
    functionName: 'removeComposeHash',
    args: [`0x${s.composeHash!.replace(/^0x/, '')}`],
  });
  await createPublicClient({ chain, transport: http(stack.info.rpcUrl) }).waitForTransactionReceipt({
    hash: removed,
    pollingInterval: 100,
  });

  let waiting = s;
  for (const deadline = Date.now() + 30_000; waiting.phase !== 'awaiting_operator'; waiting = await getEnvUpdateStatus(h.client, cvm.id)) {
    if (Date.now() > deadline) throw new Error(`never waited for an operator: ${JSON.stringify(waiting)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.match(waiting.waitingFor ?? '', /boot refused by the KMS/);
  assert.ok(!JSON.stringify(waiting).includes(env.BASE), 'no value in the status');
  assert.notDeepEqual((await h.sim.appliedEnv(cvm.id)).env, env, 'the CVM kept its old env');
  await handle.terminate('test over');
});
