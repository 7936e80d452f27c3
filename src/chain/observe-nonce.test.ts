import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicClient, custom, keccak256, parseGwei, toHex, type Address, type Hex } from 'viem';
import { chainFor } from './clients.ts';
import { getBlock } from 'viem/actions';
import { startChainFixture, type ChainFixture } from '../../test/fixtures/chain-anvil.ts';
import { broadcastTransaction } from './broadcast.ts';
import { replacementFees } from './bump-fees.ts';
import { ChainError } from './errors.ts';
import { observeNonce } from './observe-nonce.ts';
import { observeSigner } from './observe-signer.ts';
import { CONSUMED_DEPTH } from './nonce-settled.ts';
import { signTransaction, type SignedTransaction } from './sign-transaction.ts';

let chain: ChainFixture;
let app: Address;
before(async () => {
  chain = await startChainFixture({ name: 'observe' });
  app = await chain.deployApp(chain.accounts.owner.address);
});
after(async () => {
  await chain?.stop();
});
beforeEach(async () => {
  await chain.setAutomine(true);
});

const fees = { maxFeePerGas: parseGwei('3'), maxPriorityFeePerGas: parseGwei('1') };
const sign = (
  label: string,
  nonce: number | 'pending' = 'pending',
  f: { maxFeePerGas: bigint | string; maxPriorityFeePerGas: bigint | string } = fees,
) =>
  signTransaction(chain.client, {
    account: chain.accounts.owner,
    chainId: chain.chainId,
    to: app,
    composeHash: keccak256(toHex(label)),
    nonce,
    fees: f,
    gas: 100_000n,
  });
const observe = (tx: SignedTransaction, hashes: Hex[] = [tx.hash]) =>
  observeNonce(chain.client, { from: tx.from, nonce: tx.nonce, hashes });
const send = async (tx: SignedTransaction) => broadcastTransaction(chain.client, { raw: tx.raw });

test('a mined transaction is observed as mined with its block and status', async () => {
  const tx = await sign('plain');
  await send(tx);
  const receipt = await chain.receipt(tx.hash);
  const seen = await observe(tx);
  assert.equal(seen.state, 'mined');
  assert.ok(seen.state === 'mined');
  assert.equal(seen.hash, tx.hash);
  assert.equal(seen.blockNumber, Number(receipt.blockNumber));
  assert.equal(seen.blockHash, receipt.blockHash);
  assert.equal(seen.status, 'success');
  assert.equal(seen.accountNonce, tx.nonce + 1);
  assert.equal(seen.gasUsed, receipt.gasUsed.toString());
  assert.deepEqual(JSON.parse(JSON.stringify(seen)), seen);
});

test('dropped from the pool: observe says dropped, the same bytes rebroadcast, then mined', async () => {
  await chain.setAutomine(false);
  const tx = await sign('dropped');
  assert.equal((await send(tx)).outcome, 'accepted');
  assert.equal((await observe(tx)).state, 'pending');
  await chain.rpc('anvil_dropTransaction', [tx.hash]);
  const seen = await observe(tx);
  assert.equal(seen.state, 'dropped');
  assert.equal(seen.accountNonce, tx.nonce);

  assert.equal((await send(tx)).outcome, 'accepted');
  await chain.mine();
  const after = await observe(tx);
  assert.equal(after.state === 'mined' && after.hash, tx.hash);
});

async function replace(original: SignedTransaction) {
  const bumped = await replacementFees(chain.client, original);
  for (const field of ['maxFeePerGas', 'maxPriorityFeePerGas'] as const) {
    assert.ok(BigInt(bumped[field]) * 100n >= BigInt(original[field]) * 110n, `${field} ${bumped[field]} vs ${original[field]}`);
  }
  const replacement = await signTransaction(chain.client, {
    account: chain.accounts.owner,
    chainId: chain.chainId,
    to: original.to,
    data: original.data,
    nonce: original.nonce,
    fees: bumped,
    gas: original.gas,
  });
  assert.notEqual(replacement.hash, original.hash);
  return replacement;
}

test('stuck in the pool: the bumped replacement raises both fees ≥ 110% and observe finds it whichever order', async () => {
  await chain.setAutomine(false);
  const original = await sign('stuck');
  assert.equal((await send(original)).outcome, 'accepted');
  const stuck = await observe(original);
  assert.equal(stuck.state, 'pending');
  assert.deepEqual(stuck.state === 'pending' && stuck.pendingHashes, [original.hash]);

  const replacement = await replace(original);
  assert.equal((await send(replacement)).outcome, 'accepted');
  const both = await observe(original, [original.hash, replacement.hash]);
  assert.deepEqual(both.state === 'pending' && both.pendingHashes, [replacement.hash], 'the pool swapped ours for ours');
  await chain.mine();

  for (const hashes of [
    [original.hash, replacement.hash],
    [replacement.hash, original.hash],
  ]) {
    const seen = await observe(original, hashes);
    assert.equal(seen.state === 'mined' && seen.hash, replacement.hash);
    assert.equal(seen.state === 'mined' && seen.status, 'success');
  }
  // The loser's bytes are now "nonce too low": maybe ours, and observing settles it.
  const late = await send(original);
  assert.equal(late.outcome === 'maybe-ours' && late.reason, 'nonce-too-low');
});

test('priced out by a base-fee spike: anvil evicts (dropped), the same bytes are refused, a bumped replacement mines', async (t) => {
  t.after(async () => {
    await chain.rpc('anvil_setNextBlockBaseFeePerGas', [toHex(parseGwei('1'))]);
    await chain.mine();
  });
  await chain.setAutomine(false);
  const original = await sign('priced out');
  assert.equal((await send(original)).outcome, 'accepted');
  await chain.rpc('anvil_setNextBlockBaseFeePerGas', [toHex(parseGwei('50'))]);
  await chain.mine();
  const block = await getBlock(chain.client, { blockTag: 'latest' });
  assert.ok(block.baseFeePerGas! > BigInt(original.maxFeePerGas));
  // geth would keep it pending in the pool; anvil drops it when it cannot pay the base fee.
  assert.equal((await observe(original)).state, 'dropped');
  const again = await send(original);
  assert.equal(again.outcome === 'rejected' && again.reason, 'fee-too-low');

  const replacement = await replace(original);
  assert.ok(BigInt(replacement.maxFeePerGas) > block.baseFeePerGas!, 'the replacement bids at least the network suggestion');
  assert.equal((await send(replacement)).outcome, 'accepted');
  await chain.mine();
  const seen = await observe(original, [original.hash, replacement.hash]);
  assert.equal(seen.state === 'mined' && seen.hash, replacement.hash);
});

test('a replacement signed but never sent (crash): the original mines and observe finds it among both hashes', async () => {
  await chain.setAutomine(false);
  const original = await sign('original wins');
  await send(original);
  const replacement = await signTransaction(chain.client, {
    account: chain.accounts.owner,
    chainId: chain.chainId,
    to: original.to,
    data: original.data,
    nonce: original.nonce,
    fees: await replacementFees(chain.client, original),
    gas: original.gas,
  });
  await chain.mine();
  assert.notEqual(replacement.hash, original.hash);
  const seen = await observe(original, [replacement.hash, original.hash]);
  assert.equal(seen.state === 'mined' && seen.hash, original.hash);
});

test('nonce consumed by another tx from the same key: observe says consumed, and a re-sign gets a fresh nonce', async () => {
  // Worker A signs and records, then stalls before broadcasting.
  const ours = await sign('worker A');
  // Worker B, same key, takes the same nonce and gets mined.
  const theirs = await sign('worker B', ours.nonce);
  await send(theirs);
  await chain.receipt(theirs.hash);

  // Just taken: a lagging node might still owe us our receipt, so not "consumed" yet.
  assert.equal((await observe(ours)).state, 'pending');
  await chain.mine(CONSUMED_DEPTH);
  const seen = await observe(ours);
  assert.equal(seen.state, 'consumed');
  assert.equal(seen.accountNonce, ours.nonce + 1);
  const late = await send(ours);
  assert.equal(late.outcome === 'maybe-ours' && late.reason, 'nonce-too-low');
  assert.equal((await observe(ours)).state, 'consumed');

  const again = await sign('worker A', 'pending');
  assert.equal(again.nonce, ours.nonce + 1);
  await send(again);
  assert.equal((await observe(again)).state, 'mined');
});

test('two workers sign at the same pending nonce: the loser learns "consumed" without any coordination', async () => {
  await chain.setAutomine(false);
  const [a, b] = await Promise.all([sign('race A'), sign('race B')]);
  assert.equal(a.nonce, b.nonce);
  assert.equal((await send(a)).outcome, 'accepted');
  const second = await send(b);
  assert.equal(second.outcome === 'maybe-ours' && second.reason, 'replacement-underpriced');
  // Before mining, B's view is "dropped" (the node holds A's bytes, not B's) and the nonce
  // is not yet used: rebroadcasting B is refused again and costs nothing.
  assert.equal((await observe(b)).state, 'dropped');
  await chain.mine(CONSUMED_DEPTH + 1);
  assert.equal((await observe(a)).state, 'mined');
  assert.equal((await observe(b)).state, 'consumed');
});

test('a reverted transaction still consumes the nonce and is reported as mined with status reverted', async () => {
  const stranger = await signTransaction(chain.client, {
    account: chain.accounts.other,
    chainId: chain.chainId,
    to: app,
    composeHash: keccak256(toHex('not owner')),
    nonce: 'pending',
    fees,
    gas: 100_000n,
  });
  await send(stranger);
  await chain.receipt(stranger.hash);
  const seen = await observe(stranger);
  assert.equal(seen.state === 'mined' && seen.status, 'reverted');
});

test('observeNonce refuses empty or malformed hash lists', async () => {
  const from = chain.accounts.owner.address;
  await assert.rejects(
    observeNonce(chain.client, { from, nonce: 0, hashes: [] }),
    (e: unknown) => e instanceof ChainError && e.code === 'INVALID_INPUT',
  );
  await assert.rejects(
    observeNonce(chain.client, { from, nonce: 0, hashes: ['0x12'] }),
    (e: unknown) => e instanceof ChainError && /hashes\[0\]/.test(e.message),
  );
  await assert.rejects(
    observeNonce(chain.client, { from: '0x1' as Address, nonce: 0, hashes: [keccak256('0x')] }),
    (e: unknown) => e instanceof ChainError && /^from/.test(e.message),
  );
});

/**
 * A load-balanced RPC: head and nonce from an up-to-date node, receipts and transactions from
 * one that lags `lag` blocks behind (it knows nothing mined after its head).
 */
function laggingBalancer(lag: number) {
  return createPublicClient({
    chain: chainFor(chain.chainId, chain.anvil.rpcUrl),
    transport: custom({
      request: async ({ method, params }: { method: string; params: unknown[] }) => {
        if (method === 'eth_getTransactionReceipt' || method === 'eth_getTransactionByHash') {
          const found = await chain.rpc<{ blockNumber: Hex | null } | null>(method, params);
          const head = Number(await chain.rpc<Hex>('eth_blockNumber'));
          if (found?.blockNumber && Number(found.blockNumber) > head - lag) return null;
          return found;
        }
        return chain.rpc(method, params);
      },
    }),
  });
}

test('behind a load balancer whose receipt node lags, our own mined transaction is never called consumed', async () => {
  const lb = laggingBalancer(2);
  const tx = await sign('balanced');
  await send(tx);
  await chain.receipt(tx.hash);
  // The nonce node says the nonce moved; the receipt node has not seen the block yet.
  const early = await observeNonce(lb, { from: tx.from, nonce: tx.nonce, hashes: [tx.hash] });
  assert.equal(early.state, 'pending');
  assert.equal(early.accountNonce, tx.nonce + 1);
  const signerEarly = await observeSigner(lb, { from: tx.from, pending: [{ nonce: tx.nonce, hashes: [tx.hash] }], mined: [] });
  assert.equal(signerEarly.pending[0]!.state, 'pending');
  // Once the lagging node has caught up, the receipt is there: mined, never consumed.
  await chain.mine(2);
  assert.equal((await observeNonce(lb, { from: tx.from, nonce: tx.nonce, hashes: [tx.hash] })).state, 'mined');
  const signerLate = await observeSigner(lb, { from: tx.from, pending: [{ nonce: tx.nonce, hashes: [tx.hash] }], mined: [] });
  assert.equal(signerLate.pending[0]!.state, 'mined');
});

test('behind the same load balancer, a nonce really taken by another transaction is consumed once it is deep', async () => {
  const lb = laggingBalancer(2);
  const ours = await sign('balanced loser');
  const theirs = await sign('balanced winner', ours.nonce);
  await send(theirs);
  await chain.receipt(theirs.hash);
  const observeBoth = async () => [
    (await observeNonce(lb, { from: ours.from, nonce: ours.nonce, hashes: [ours.hash] })).state,
    (await observeSigner(lb, { from: ours.from, pending: [{ nonce: ours.nonce, hashes: [ours.hash] }], mined: [] })).pending[0]!.state,
  ];
  assert.deepEqual(await observeBoth(), ['pending', 'pending']);
  await chain.mine(CONSUMED_DEPTH);
  assert.deepEqual(await observeBoth(), ['consumed', 'consumed']);
});
