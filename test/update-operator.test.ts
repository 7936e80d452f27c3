// The paths that need a person: a signer that does not own the app, an operator's own
// registration handed over with useTransaction, abort, and one change per CVM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowFailedError, WorkflowUpdateFailedError } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { AesGcmPayloadCodec, parsePayloadKeys } from '../src/codec.ts';
import { createPublicClient, createWalletClient, http, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { dstackAppAbi } from '../src/chain/dstack-app-abi.ts';
import {
  abortEnvUpdate,
  awaitEnvUpdate,
  getEnvUpdateStatus,
  OperatorActionRefusedError,
  retryEnvUpdate,
  startEnvUpdate,
  UpdateAlreadyRunningError,
  useRegistrationTransaction,
} from '../src/client.ts';
import { useUpdateHarness } from './support/update-harness.ts';
import { waitForStatus } from './support/wait.ts';

const setup = useUpdateHarness();

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

/** The summaries the UI shows on the activity rows of a run's history (tasks and local activities), in order. */
async function activitySummaries(workflowId: string): Promise<string[]> {
  const history = await setup.h.client.workflow.getHandle(workflowId).fetchHistory();
  const codec = new AesGcmPayloadCodec(parsePayloadKeys(setup.stack.env.PAYLOAD_ENCRYPTION_KEYS!));
  const out: string[] = [];
  for (const e of history.events ?? []) {
    const summary = e.activityTaskScheduledEventAttributes || e.markerRecordedEventAttributes ? e.userMetadata?.summary : undefined;
    if (!summary) continue;
    const [plain] = await codec.decode([summary as Payload]);
    out.push(defaultPayloadConverter.fromPayload<string>(plain!));
  }
  return out;
}

/** The Update's refusal reason, as the UI or `temporal workflow update` gets it. */
async function refusalOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof OperatorActionRefusedError) return err.reason;
    if (err instanceof WorkflowUpdateFailedError) return String((err.cause as Error | undefined)?.message);
    throw err;
  }
  assert.fail('the action was accepted');
}

test("signer not the owner: waits for an operator, rejects a wrong transaction, finishes with the owner's", async () => {
  const cvm = await setup.h.newCvm({ kms: 'onchain', appId: setup.h.appId(false), allowedEnvs: ['A'] });
  const env = { A: randomBytes(8).toString('hex'), B_NEW: randomBytes(8).toString('hex') };
  const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env }, { taskQueue: setup.h.taskQueue });

  const waiting = await waitForStatus(setup.h.client, cvm.id, (s) => s.phase === 'awaiting_operator');
  assert.match(waiting.waitingFor ?? '', /not the owner/);
  assert.match(waiting.composeHash ?? '', /^[0-9a-f]{64}$/);
  assert.equal(waiting.sentTransactions.length, 0, 'nothing may be sent with a key that does not own the app');

  // What the UI shows: the start's summary, and current details naming the wait and its actions.
  const described = await handle.describe();
  assert.equal(await described.staticSummary(), `env update of CVM ${cvm.id}`);
  assert.match((await described.staticDetails()) ?? '', /\*\*Variables:\*\* 2/);
  const meta = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
  assert.match(meta.currentDetails ?? '', /\*\*Waiting for an operator:\*\* .*not the owner/);
  assert.match(meta.currentDetails ?? '', /\*\*useTransaction\*\* \(Update/);
  assert.doesNotMatch(meta.currentDetails ?? '', /\*\*retry\*\*/);
  for (const value of Object.values(env)) assert.ok(!`${meta.currentDetails}${await described.staticDetails()}`.includes(value));

  const { wallet, client } = ownerWallet();
  // A mined transaction that registers nothing: must be refused, and the workflow keeps waiting.
  const unrelated = await wallet.sendTransaction({ to: wallet.account.address, value: 0n });
  await client.waitForTransactionReceipt({ hash: unrelated, pollingInterval: 100 });
  const reason = await refusalOf(useRegistrationTransaction(setup.h.client, cvm.id, unrelated));
  assert.match(reason, new RegExp(`^this transaction does not register compose hash ${waiting.composeHash} on app ${cvm.appId}: `, 'i'));
  const refused = await getEnvUpdateStatus(setup.h.client, cvm.id);
  assert.equal(refused.phase, 'awaiting_operator', 'a refused transaction leaves the wait as it was');
  assert.match(refused.lastError ?? '', new RegExp(unrelated));
  // This wait takes a transaction, not a retry.
  assert.match(
    await refusalOf(retryEnvUpdate(setup.h.client, cvm.id)),
    /^not waiting for a retry: it waits for .*not the owner.*\(it takes: useTransaction, abort\)/,
  );

  const good = await wallet.writeContract({
    address: cvm.appId as Hex,
    abi: dstackAppAbi,
    functionName: 'addComposeHash',
    args: [`0x${waiting.composeHash}`],
  });
  await client.waitForTransactionReceipt({ hash: good, pollingInterval: 100 });
  const accepted = await useRegistrationTransaction(setup.h.client, cvm.id, good);
  assert.equal(accepted.via, 'update');
  assert.ok(accepted.via === 'update' && typeof accepted.blockNumber === 'number', 'checked on chain before it was accepted');

  const result = await awaitEnvUpdate(handle);
  assert.equal(result.transactionHash, good);
  assert.deepEqual((await setup.h.sim.appliedEnv(cvm.id)).env, env);
  const final = await getEnvUpdateStatus(setup.h.client, cvm.id);
  assert.ok(final.timings.operatorMs > 0);

  const summaries = await activitySummaries(handle.workflowId);
  assert.ok(summaries.includes('phase 1: submit the encrypted env'), summaries.join(' | '));
  assert.ok(summaries.includes(`phase 2: submit the env with registration ${good}`), summaries.join(' | '));
  assert.ok(summaries.includes(`resolve CVM ${cvm.id}`), summaries.join(' | '));
});

test('an owner who signs elsewhere: the status shows the exact proposal, and the change goes on by itself once the chain allows the hash', async () => {
  const cvm = await setup.h.newCvm({ kms: 'onchain', appId: setup.h.appId(false), allowedEnvs: ['A'] });
  // A key of its own: the app is shared by this file's tests, and its compose hash must be new.
  const env = {
    A: randomBytes(8).toString('hex'),
    [`OWNER_${randomBytes(4).toString('hex').toUpperCase()}`]: randomBytes(8).toString('hex'),
  };
  const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env }, { taskQueue: setup.h.taskQueue });

  const waiting = await waitForStatus(setup.h.client, cvm.id, (s) => s.phase === 'awaiting_operator' && s.ownerProposal !== undefined);
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

  await waitForStatus(setup.h.client, cvm.id, (s) => s.phase === 'awaiting_operator');
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
  await waitForStatus(setup.h.client, cvm.id, (s) => s.phase === 'applying');
  const t0 = Date.now();
  await abortEnvUpdate(setup.h.client, cvm.id, 'too slow');
  await assert.rejects(awaitEnvUpdate(handle), /Workflow execution failed/);
  assert.ok(Date.now() - t0 < 10_000, 'the running poll was cancelled, not waited out');
  const status = await getEnvUpdateStatus(setup.h.client, cvm.id);
  assert.equal(status.phase, 'aborted');
  assert.equal(status.lastError, 'too slow');
});

test('signals with no input or a wrong-shaped input never brick a waiting update', async () => {
  const cvm = await setup.h.newCvm({ kms: 'onchain', appId: setup.h.appId(false), allowedEnvs: ['A'] });
  const env = { A: randomBytes(8).toString('hex'), [`SIG_${randomBytes(4).toString('hex').toUpperCase()}`]: 'v' };
  const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env }, { taskQueue: setup.h.taskQueue });
  const waiting = await waitForStatus(setup.h.client, cvm.id, (s) => s.phase === 'awaiting_operator');

  // What the UI's signal form or `temporal workflow signal` without --input sends.
  const raw = setup.h.client.workflow.getHandle(handle.workflowId);
  await raw.signal('useTransaction');
  await raw.signal('useTransaction', null);
  await raw.signal('useTransaction', { transactionHash: 5 });
  await raw.signal('useTransaction', '0x1234');
  await raw.signal('retry', { unexpected: true });
  await raw.signal('registrationNotice');

  const status = await Promise.race([
    waitForStatus(setup.h.client, cvm.id, (s) => (s.lastError ?? '').includes('ignored')),
    sleep(15_000).then(() => assert.fail('the status query stopped answering')),
  ]);
  assert.equal(status.phase, 'awaiting_operator');
  assert.equal(status.composeHash, waiting.composeHash);
  const history = await raw.fetchHistory();
  const failedTasks = (history.events ?? []).filter((e) => e.workflowTaskFailedEventAttributes);
  assert.equal(failedTasks.length, 0, 'no workflow task failed');

  const { wallet, client } = ownerWallet();
  const good = await wallet.writeContract({
    address: cvm.appId as Hex,
    abi: dstackAppAbi,
    functionName: 'addComposeHash',
    args: [`0x${waiting.composeHash}`],
  });
  await client.waitForTransactionReceipt({ hash: good, pollingInterval: 100 });
  const result = await awaitEnvUpdate(handle);
  assert.equal(result.transactionHash, good);
  assert.deepEqual((await setup.h.sim.appliedEnv(cvm.id)).env, env);
});

test('updates are refused with their reason when nothing waits, and abort by update ends the change', async () => {
  const cvm = await setup.h.newCvm({ kms: 'phala', applyDelayMs: 60_000 });
  const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env: { A: 'refusals' } }, { taskQueue: setup.h.taskQueue });
  await waitForStatus(setup.h.client, cvm.id, (s) => s.phase === 'applying');
  const raw = setup.h.client.workflow.getHandle(handle.workflowId);
  const hash = `0x${randomBytes(32).toString('hex')}`;

  assert.equal(await refusalOf(retryEnvUpdate(setup.h.client, cvm.id)), 'not waiting for an operator (phase: applying)');
  assert.equal(await refusalOf(useRegistrationTransaction(setup.h.client, cvm.id, hash)), 'not waiting for an operator (phase: applying)');
  // What the UI's update form sends: nothing, or JSON of the wrong shape.
  assert.match(
    await refusalOf(raw.executeUpdate('useTransaction')),
    /^malformed hash: expected \{"transactionHash": "<0x followed by 64 hex digits>"\}, got nothing/,
  );
  assert.match(
    await refusalOf(raw.executeUpdate('useTransaction', { args: [{ transactionHash: 5 }] })),
    /^malformed hash: .*transactionHash was a number/,
  );
  assert.match(await refusalOf(raw.executeUpdate('useTransaction', { args: ['0x12'] })), /^malformed hash: .*got a string of 4 characters/);
  assert.match(await refusalOf(raw.executeUpdate('retry', { args: [{ now: true }] })), /^malformed argument: retry takes no argument/);
  assert.match(
    await refusalOf(raw.executeUpdate('abort', { args: [{ reason: 5 }] })),
    /^malformed argument: abort takes \{"reason": "<text>"\} or nothing, got reason as a number/,
  );
  assert.match(await refusalOf(raw.executeUpdate('abort', { args: [[1, 2]] })), /^malformed argument: .*got a list of 2/);

  const status = await getEnvUpdateStatus(setup.h.client, cvm.id);
  assert.equal(status.phase, 'applying', 'refusals change nothing');
  const history = await raw.fetchHistory();
  assert.equal((history.events ?? []).filter((e) => e.workflowTaskFailedEventAttributes).length, 0, 'no workflow task failed');

  // Abort from the UI's form with no argument.
  const answer = (await raw.executeUpdate('abort')) as { action: string; message: string };
  assert.equal(answer.action, 'abort');
  assert.match(answer.message, /abort accepted \(aborted by an operator\)/);
  await assert.rejects(awaitEnvUpdate(handle), /Workflow execution failed/);
  assert.equal((await getEnvUpdateStatus(setup.h.client, cvm.id)).phase, 'aborted');
  assert.match(await refusalOf(abortEnvUpdate(setup.h.client, cvm.id)), /the change has ended \(failed\)/);
});

test('an abort signal with a reason it cannot read still aborts', async () => {
  const cvm = await setup.h.newCvm({ kms: 'phala', applyDelayMs: 60_000 });
  const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env: { A: 'abort-signal' } }, { taskQueue: setup.h.taskQueue });
  await waitForStatus(setup.h.client, cvm.id, (s) => s.phase === 'applying');
  await setup.h.client.workflow.getHandle(handle.workflowId).signal('abort', 42);
  await assert.rejects(awaitEnvUpdate(handle), (err: unknown) => {
    assert.match(String((err as WorkflowFailedError).cause?.message), /aborted: aborted by an operator/);
    return true;
  });
  assert.equal((await getEnvUpdateStatus(setup.h.client, cvm.id)).phase, 'aborted');
});

/** Waits for the owner's wait, then hands over a hash nobody ever sent: the check cannot end by itself. */
async function checkingAWrongHash(via: 'signal' | 'update') {
  const cvm = await setup.h.newCvm({ kms: 'onchain', appId: setup.h.appId(false), allowedEnvs: ['A'] });
  const env = { A: randomBytes(8).toString('hex'), [`FIX_${randomBytes(4).toString('hex').toUpperCase()}`]: 'v' };
  const { handle } = await startEnvUpdate(setup.h.client, { cvmId: cvm.id, env }, { taskQueue: setup.h.taskQueue });
  const waiting = await waitForStatus(setup.h.client, cvm.id, (s) => s.phase === 'awaiting_operator');
  const wrong = `0x${randomBytes(32).toString('hex')}`;
  if (via === 'signal') {
    await setup.h.client.workflow.getHandle(handle.workflowId).signal('useTransaction', { transactionHash: wrong });
  } else {
    const answer = await useRegistrationTransaction(setup.h.client, cvm.id, wrong);
    assert.match(answer.message, /is not mined yet/);
  }
  // The flow took it and checks it; only then does the owner register, so the chain watch of
  // the owner's wait cannot be what ends this.
  await waitForStatus(setup.h.client, cvm.id, (s) => s.phase === 'registering');
  const { wallet, client } = ownerWallet();
  const good = await wallet.writeContract({
    address: cvm.appId as Hex,
    abi: dstackAppAbi,
    functionName: 'addComposeHash',
    args: [`0x${waiting.composeHash}`],
  });
  await client.waitForTransactionReceipt({ hash: good, pollingInterval: 100 });
  return { cvm, env, handle, good };
}

test('a corrected hash replaces a wrong one the workflow is still checking (signals)', async () => {
  const { cvm, env, handle, good } = await checkingAWrongHash('signal');
  const t0 = Date.now();
  await setup.h.client.workflow.getHandle(handle.workflowId).signal('useTransaction', { transactionHash: good });
  const result = await awaitEnvUpdate(handle);
  assert.equal(result.transactionHash, good);
  // Before, the wrong hash was checked for minutes and then only a retry of it was taken.
  assert.ok(Date.now() - t0 < 30_000, `took ${Date.now() - t0} ms`);
  assert.deepEqual((await setup.h.sim.appliedEnv(cvm.id)).env, env);
});

test('a corrected hash replaces a wrong one the workflow is still checking (updates)', async () => {
  const { cvm, env, handle, good } = await checkingAWrongHash('update');
  const answer = await useRegistrationTransaction(setup.h.client, cvm.id, good);
  assert.ok(answer.via === 'update' && answer.blockNumber !== undefined, 'the correction was checked on chain');
  const result = await awaitEnvUpdate(handle);
  assert.equal(result.transactionHash, good);
  assert.deepEqual((await setup.h.sim.appliedEnv(cvm.id)).env, env);
});
