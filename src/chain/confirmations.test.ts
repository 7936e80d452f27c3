import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicClient, custom, keccak256, parseGwei, toHex, type Address, type Hex } from 'viem';
import { startChainFixture, type ChainFixture } from '../../test/fixtures/chain-anvil.ts';
import { broadcastTransaction } from './broadcast.ts';
import { chainFor } from './clients.ts';
import { checkConfirmations, waitForConfirmations, type ConfirmationCheck } from './confirmations.ts';
import { ChainError } from './errors.ts';
import { observeNonce } from './observe-nonce.ts';
import { signTransaction, type SignedTransaction } from './sign-transaction.ts';

let chain: ChainFixture;
let app: Address;
before(async () => {
  chain = await startChainFixture({ name: 'confirmations' });
  app = await chain.deployApp(chain.accounts.owner.address);
});
after(async () => {
  await chain?.stop();
});
beforeEach(async () => {
  await chain.setAutomine(true);
});

let counter = 0;
async function sendMined(): Promise<{ tx: SignedTransaction; at: { hash: Hex; blockNumber: number; blockHash: Hex } }> {
  const tx = await signTransaction(chain.client, {
    account: chain.accounts.owner,
    chainId: chain.chainId,
    to: app,
    composeHash: keccak256(toHex(`c${++counter}`)),
    nonce: 'pending',
    fees: { maxFeePerGas: parseGwei('10'), maxPriorityFeePerGas: parseGwei('1') },
    gas: 100_000n,
  });
  assert.equal((await broadcastTransaction(chain.client, { raw: tx.raw })).outcome, 'accepted');
  const r = await chain.receipt(tx.hash);
  return { tx, at: { hash: tx.hash, blockNumber: Number(r.blockNumber), blockHash: r.blockHash } };
}

test('counts confirmations as blocks from ours to the head, ours included', async () => {
  const { at } = await sendMined();
  const check = (confirmations: number) => checkConfirmations(chain.client, { ...at, confirmations });
  assert.deepEqual(await check(1), { state: 'confirmed', confirmations: 1, latestBlock: at.blockNumber, status: 'success' });
  assert.deepEqual(await check(3), { state: 'pending', confirmations: 1, latestBlock: at.blockNumber, status: 'success' });
  await chain.mine(1);
  assert.equal((await check(3)).state, 'pending');
  await chain.mine(1);
  assert.deepEqual(await check(3), { state: 'confirmed', confirmations: 3, latestBlock: at.blockNumber + 2, status: 'success' });
  await chain.mine(5);
  assert.equal((await check(3)).confirmations, 8);
});

test('a reorg that drops the block: reorged (receipt-missing); observe, rebroadcast, and confirm the new block', async () => {
  const { tx, at } = await sendMined();
  await chain.mine(2);
  assert.equal((await checkConfirmations(chain.client, { ...at, confirmations: 3 })).state, 'confirmed');

  await chain.rpc('anvil_reorg', [3, []]);
  const check = await checkConfirmations(chain.client, { ...at, confirmations: 3 });
  assert.deepEqual(check, { state: 'reorged', confirmations: 0, latestBlock: at.blockNumber + 2, reason: 'receipt-missing' });

  // anvil does not return reorged-out transactions to its pool (geth does): observe says
  // dropped and the recorded bytes go out again.
  const seen = await observeNonce(chain.client, { from: tx.from, nonce: tx.nonce, hashes: [tx.hash] });
  assert.equal(seen.state, 'dropped');
  assert.equal((await broadcastTransaction(chain.client, { raw: tx.raw })).outcome, 'accepted');
  const again = await observeNonce(chain.client, { from: tx.from, nonce: tx.nonce, hashes: [tx.hash] });
  assert.ok(again.state === 'mined');
  assert.notEqual(again.blockHash, at.blockHash);
  assert.equal(
    (
      await checkConfirmations(chain.client, {
        hash: tx.hash,
        blockNumber: again.blockNumber,
        blockHash: again.blockHash,
        confirmations: 1,
      })
    ).state,
    'confirmed',
  );
});

test('a reorg that re-includes the tx in another block: reorged (moved) with where it is now', async () => {
  const { tx, at } = await sendMined();
  await chain.mine(2);
  // Replace our block and the two on top; the new chain carries our tx one block later.
  await chain.rpc('anvil_reorg', [3, [[tx.raw, 1]]]);
  const check = await checkConfirmations(chain.client, { ...at, confirmations: 2 });
  assert.equal(check.state, 'reorged');
  assert.ok(check.state === 'reorged' && check.reason === 'moved' && check.current);
  assert.equal(check.current.blockNumber, at.blockNumber + 1);
  assert.notEqual(check.current.blockHash, at.blockHash);
  const moved = await checkConfirmations(chain.client, { hash: tx.hash, ...check.current, confirmations: 2 });
  assert.deepEqual(moved, { state: 'confirmed', confirmations: 2, latestBlock: at.blockNumber + 2, status: 'success' });
});

test('a reorg undone with evm_snapshot/evm_revert and different blocks mined: reorged', async () => {
  const snapshot = await chain.rpc<Hex>('evm_snapshot');
  const { at } = await sendMined();
  await chain.rpc('evm_revert', [snapshot]);
  await chain.mine(3);
  assert.equal((await checkConfirmations(chain.client, { ...at, confirmations: 1 })).state, 'reorged');
});

test('a node serving a stale receipt from a block that lost a reorg: reorged (block-replaced)', async () => {
  const { at } = await sendMined();
  const staleReceipt = await chain.rpc<Record<string, unknown>>('eth_getTransactionReceipt', [at.hash]);
  await chain.rpc('anvil_reorg', [1, []]);
  const stale = createPublicClient({
    chain: chainFor(chain.chainId, chain.anvil.rpcUrl),
    transport: custom({
      request: ({ method, params }: { method: string; params: unknown[] }) =>
        method === 'eth_getTransactionReceipt' ? Promise.resolve(staleReceipt) : chain.rpc(method, params),
    }),
  });
  const check = await checkConfirmations(stale, { ...at, confirmations: 1 });
  assert.equal(check.state === 'reorged' && check.reason, 'block-replaced');
});

test("the 'safe' and 'finalized' tags confirm once they reach our block (anvil: head-32 and head-64)", async () => {
  const { at } = await sendMined();
  const check = (confirmations: 'safe' | 'finalized') => checkConfirmations(chain.client, { ...at, confirmations });
  assert.equal((await check('safe')).state, 'pending');
  await chain.mine(32);
  assert.equal((await check('safe')).state, 'confirmed');
  assert.equal((await check('finalized')).state, 'pending');
  await chain.mine(32);
  const final = await check('finalized');
  assert.equal(final.state, 'confirmed');
  assert.equal(final.confirmations, 65);
});

test('waitForConfirmations polls with progress until confirmed, while blocks arrive', async () => {
  const { at } = await sendMined();
  const miner = setInterval(() => void chain.mine(1).catch(() => {}), 40);
  try {
    const progress: ConfirmationCheck[] = [];
    const result = await waitForConfirmations(chain.client, {
      ...at,
      confirmations: 4,
      pollingIntervalMs: 20,
      onProgress: (c) => progress.push(c),
    });
    assert.equal(result.state, 'confirmed');
    assert.ok(result.confirmations >= 4);
    assert.ok(progress.length >= 2, `progress calls: ${progress.length}`);
    assert.equal(progress.at(-1), result);
    const counts = progress.map((p) => p.confirmations);
    assert.deepEqual(
      counts,
      [...counts].sort((a, b) => a - b),
      'confirmations never go down without a reorg',
    );
  } finally {
    clearInterval(miner);
  }
});

test('waitForConfirmations returns reorged at once, returns pending at the timeout, and rejects when aborted', async () => {
  const { at } = await sendMined();
  const timedOut = await waitForConfirmations(chain.client, { ...at, confirmations: 50, pollingIntervalMs: 20, timeoutMs: 150 });
  assert.equal(timedOut.state, 'pending');

  const controller = new AbortController();
  const waiting = waitForConfirmations(chain.client, {
    ...at,
    confirmations: 50,
    pollingIntervalMs: 10_000,
    signal: controller.signal,
    onProgress: () => controller.abort(new Error('activity cancelled')),
  });
  await assert.rejects(waiting, /activity cancelled/);

  await chain.rpc('anvil_reorg', [1, []]);
  const reorged = await waitForConfirmations(chain.client, { ...at, confirmations: 50, pollingIntervalMs: 20 });
  assert.equal(reorged.state, 'reorged');
});

test('bad parameters are INVALID_INPUT', async () => {
  const at = { hash: keccak256('0x01'), blockNumber: 1, blockHash: keccak256('0x02') };
  for (const bad of [
    { ...at, confirmations: 0 },
    { ...at, confirmations: 'latest' as never },
    { ...at, blockNumber: -1, confirmations: 1 },
    { ...at, blockHash: '0x12' as Hex, confirmations: 1 },
  ]) {
    await assert.rejects(checkConfirmations(chain.client, bad), (e: unknown) => e instanceof ChainError && e.code === 'INVALID_INPUT');
  }
});
