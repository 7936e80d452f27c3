// The paths that need a person: a signer that does not own the app, an operator's own
// registration handed over with useTransaction, abort, and one change per CVM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowFailedError } from '@temporalio/client';
import { createPublicClient, createWalletClient, http, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { dstackAppAbi } from '../src/chain/dstack-app-abi.ts';
import {
  abortEnvUpdate,
  awaitEnvUpdate,
  getEnvUpdateStatus,
  startEnvUpdate,
  UpdateAlreadyRunningError,
  useRegistrationTransaction,
  type UpdateStatus,
} from '../src/client.ts';
import { useUpdateHarness } from './support/update-harness.ts';

const setup = useUpdateHarness();

async function waitForStatus(cvmId: string, pred: (s: UpdateStatus) => boolean, timeoutMs = 30_000): Promise<UpdateStatus> {
  const deadline = Date.now() + timeoutMs;
  let last: UpdateStatus | undefined;
  for (;;) {
    last = await getEnvUpdateStatus(setup.h.client, cvmId).catch(() => last);
    if (last && pred(last)) return last;
    if (Date.now() > deadline) throw new Error(`status never matched; last: ${JSON.stringify(last)}`);
    await sleep(200);
  }
}

function ownerWallet() {
  const chain = { ...foundry, id: setup.stack.info.chainId };
  return {
    wallet: createWalletClient({
      chain,
      transport: http(setup.stack.info.rpcUrl),
      account: privateKeyToAccount(setup.stack.devKeys.other),
    }),
    client: createPublicClient({ chain, transport: http(setup.stack.info.rpcUrl) }),
  };
}

test("signer not the owner: waits for an operator, rejects a wrong transaction, finishes with the owner's", async () => {
  const cvm = await setup.h.newCvm({ kms: 'onchain', appId: setup.h.appId(false), allowedEnvs: ['A'] });
  const env = { A: randomBytes(8).toString('hex'), B_NEW: randomBytes(8).toString('hex') };
  const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env }, { taskQueue: setup.h.taskQueue });

  const waiting = await waitForStatus(cvm.id, (s) => s.phase === 'awaiting_operator');
  assert.match(waiting.waitingFor ?? '', /not the owner/);
  assert.match(waiting.composeHash ?? '', /^[0-9a-f]{64}$/);
  assert.equal(waiting.sentTransactions.length, 0, 'nothing may be sent with a key that does not own the app');

  const { wallet, client } = ownerWallet();
  // A mined transaction that registers nothing: must be refused, and the workflow keeps waiting.
  const unrelated = await wallet.sendTransaction({ to: wallet.account.address, value: 0n });
  await client.waitForTransactionReceipt({ hash: unrelated, pollingInterval: 100 });
  await useRegistrationTransaction(setup.h.client, cvm.id, unrelated);
  const refused = await waitForStatus(cvm.id, (s) => s.phase === 'awaiting_operator' && (s.lastError ?? '').includes(unrelated));
  assert.match(refused.lastError ?? '', /does not register the hash/);

  const good = await wallet.writeContract({
    address: cvm.appId as Hex,
    abi: dstackAppAbi,
    functionName: 'addComposeHash',
    args: [`0x${waiting.composeHash}`],
  });
  await client.waitForTransactionReceipt({ hash: good, pollingInterval: 100 });
  await useRegistrationTransaction(setup.h.client, cvm.id, good);

  const result = await awaitEnvUpdate(handle);
  assert.equal(result.transactionHash, good);
  assert.deepEqual((await setup.h.sim.appliedEnv(cvm.id)).env, env);
  const final = await getEnvUpdateStatus(setup.h.client, cvm.id);
  assert.ok(final.timings.operatorMs > 0);
});

test('an owner who signs elsewhere: the status shows the exact proposal, and the change goes on by itself once the chain allows the hash', async () => {
  const cvm = await setup.h.newCvm({ kms: 'onchain', appId: setup.h.appId(false), allowedEnvs: ['A'] });
  // A key of its own: the app is shared by this file's tests, and its compose hash must be new.
  const env = {
    A: randomBytes(8).toString('hex'),
    [`OWNER_${randomBytes(4).toString('hex').toUpperCase()}`]: randomBytes(8).toString('hex'),
  };
  const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env }, { taskQueue: setup.h.taskQueue });

  const waiting = await waitForStatus(cvm.id, (s) => s.phase === 'awaiting_operator' && s.ownerProposal !== undefined);
  const proposal = waiting.ownerProposal!;
  assert.equal(proposal.to.toLowerCase(), cvm.appId.toLowerCase());
  assert.equal(proposal.chainId, setup.stack.info.chainId);
  assert.equal(proposal.value, '0');
  assert.equal(proposal.call, `addComposeHash(0x${waiting.composeHash})`);

  // The owner sends exactly the proposed call, from its own wallet; nobody signals the workflow.
  const { wallet, client } = ownerWallet();
  const sent = await wallet.sendTransaction({ to: proposal.to, data: proposal.data, value: 0n });
  await client.waitForTransactionReceipt({ hash: sent, pollingInterval: 100 });

  const result = await awaitEnvUpdate(handle);
  assert.equal(result.transactionHash, sent, "the registration found on chain is the owner's");
  assert.deepEqual((await setup.h.sim.appliedEnv(cvm.id)).env, env);
  const final = await getEnvUpdateStatus(setup.h.client, cvm.id);
  assert.equal(final.ownerProposal, undefined, 'the proposal is gone once the wait is over');
});

test('abort ends a waiting change; one change per CVM; the same requestId attaches', async () => {
  const cvm = await setup.h.newCvm({ kms: 'onchain', appId: setup.h.appId(false), allowedEnvs: ['A'] });
  const input = { cvmId: cvm.id, env: { A: 'x', C_NEW: 'y' }, requestId: `req-${randomBytes(4).toString('hex')}` };
  const first = await startEnvUpdate(setup.h.client, input, { taskQueue: setup.h.taskQueue });
  assert.equal(first.attached, false);

  const again = await startEnvUpdate(setup.h.client, input, { taskQueue: setup.h.taskQueue });
  assert.equal(again.attached, true);
  assert.equal(again.workflowId, first.workflowId);

  await assert.rejects(
    startEnvUpdate(setup.h.client, { ...input, requestId: 'another-request' }, { taskQueue: setup.h.taskQueue }),
    (err: unknown) => err instanceof UpdateAlreadyRunningError && err.message.includes(first.workflowId),
  );

  await waitForStatus(cvm.id, (s) => s.phase === 'awaiting_operator');
  await abortEnvUpdate(setup.h.client, cvm.id, 'changed my mind');
  await assert.rejects(awaitEnvUpdate(first.handle), (err: unknown) => {
    assert.ok(err instanceof WorkflowFailedError);
    assert.match(String((err.cause as Error | undefined)?.message), /aborted: changed my mind/);
    return true;
  });
  assert.equal((await getEnvUpdateStatus(setup.h.client, cvm.id)).phase, 'aborted');
  // The CVM never saw the change.
  assert.notDeepEqual(Object.keys((await setup.h.sim.appliedEnv(cvm.id)).env), ['A', 'C_NEW']);
});

test('abort also stops a change that is not waiting for anyone (here: while the CVM applies it)', async () => {
  const cvm = await setup.h.newCvm({ kms: 'phala', applyDelayMs: 60_000 });
  const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env: { A: 'slow' } }, { taskQueue: setup.h.taskQueue });
  await waitForStatus(cvm.id, (s) => s.phase === 'applying');
  const t0 = Date.now();
  await abortEnvUpdate(setup.h.client, cvm.id, 'too slow');
  await assert.rejects(awaitEnvUpdate(handle), /Workflow execution failed/);
  assert.ok(Date.now() - t0 < 10_000, 'the running poll was cancelled, not waited out');
  const status = await getEnvUpdateStatus(setup.h.client, cvm.id);
  assert.equal(status.phase, 'aborted');
  assert.equal(status.lastError, 'too slow');
});
