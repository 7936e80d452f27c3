import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { keccak256, parseGwei, toHex, type Address } from 'viem';
import { getTransactionCount } from 'viem/actions';
import { startChainFixture, type ChainFixture } from '../../test/fixtures/chain-anvil.ts';
import { broadcastTransaction, classifyBroadcastError } from './broadcast.ts';
import { createChainClients } from './clients.ts';
import { ChainError } from './errors.ts';
import { signTransaction } from './sign-transaction.ts';

let chain: ChainFixture;
let app: Address;
before(async () => {
  chain = await startChainFixture({ name: 'broadcast' });
  app = await chain.deployApp(chain.accounts.owner.address);
});
after(async () => {
  await chain?.stop();
});
beforeEach(async () => {
  await chain.setAutomine(true);
});

async function sign(
  nonce: number | 'pending',
  label: string,
  fees = { maxFeePerGas: parseGwei('10'), maxPriorityFeePerGas: parseGwei('1') },
) {
  return signTransaction(chain.client, {
    account: chain.accounts.owner,
    chainId: chain.chainId,
    to: app,
    composeHash: keccak256(toHex(label)),
    nonce,
    fees,
    gas: 100_000n,
  });
}

test('sign then broadcast: accepted, then mined under the recorded hash', async () => {
  const signed = await sign('pending', 'mined');
  const result = await broadcastTransaction(chain.client, { raw: signed.raw, hash: signed.hash });
  assert.deepEqual(result, { outcome: 'accepted', hash: signed.hash });
  assert.equal((await chain.receipt(signed.hash)).status, 'success');
});

test('the same raw bytes twice: the second is "maybe ours" (anvil: transaction already imported), not an error', async () => {
  await chain.setAutomine(false);
  const signed = await sign('pending', 'twice');
  assert.equal((await broadcastTransaction(chain.client, { raw: signed.raw })).outcome, 'accepted');
  const second = await broadcastTransaction(chain.client, { raw: signed.raw });
  assert.deepEqual(second, {
    outcome: 'maybe-ours',
    reason: 'already-known',
    hash: signed.hash,
    nodeMessage: 'transaction already imported',
  });
  await chain.mine();
  assert.equal((await chain.receipt(signed.hash)).status, 'success');
  // Once mined, anvil (like geth) no longer knows it as pending and says "nonce too low".
  const third = await broadcastTransaction(chain.client, { raw: signed.raw });
  assert.deepEqual(third, { outcome: 'maybe-ours', reason: 'nonce-too-low', hash: signed.hash, nodeMessage: 'nonce too low' });
});

test('another signing at a pooled nonce without a fee bump: "maybe ours" (replacement-underpriced)', async () => {
  await chain.setAutomine(false);
  const first = await sign('pending', 'held');
  await broadcastTransaction(chain.client, { raw: first.raw });
  const rival = await sign(first.nonce, 'rival');
  const result = await broadcastTransaction(chain.client, { raw: rival.raw });
  assert.equal(result.outcome, 'maybe-ours');
  assert.equal(result.outcome === 'maybe-ours' && result.reason, 'replacement-underpriced');
  await chain.mine();
  assert.equal((await chain.receipt(first.hash)).status, 'success');
});

test('refusals the same bytes cannot overcome come back as rejected with a reason', async () => {
  const nonce = await getTransactionCount(chain.client, { address: chain.accounts.owner.address, blockTag: 'pending' });
  const wrongChain = await signTransaction(undefined, {
    account: chain.accounts.owner,
    chainId: 1,
    to: app,
    data: '0x',
    nonce,
    gas: 50_000n,
    fees: { maxFeePerGas: parseGwei('10'), maxPriorityFeePerGas: 1n },
  });
  const r1 = await broadcastTransaction(chain.client, { raw: wrongChain.raw });
  assert.equal(r1.outcome === 'rejected' && r1.reason, 'wrong-chain', JSON.stringify(r1));

  const cheap = await sign(nonce, 'cheap', { maxFeePerGas: 1n, maxPriorityFeePerGas: 1n });
  const r2 = await broadcastTransaction(chain.client, { raw: cheap.raw });
  assert.equal(r2.outcome === 'rejected' && r2.reason, 'fee-too-low', JSON.stringify(r2));

  const lowGas = await chain.accounts.owner.signTransaction({
    type: 'eip1559',
    chainId: chain.chainId,
    nonce,
    to: app,
    gas: 20_000n,
    maxFeePerGas: parseGwei('10'),
    maxPriorityFeePerGas: 1n,
  });
  const r3 = await broadcastTransaction(chain.client, { raw: lowGas });
  assert.equal(r3.outcome === 'rejected' && r3.reason, 'gas-too-low', JSON.stringify(r3));

  const poor = chain.accounts.fourth;
  const tooRich = await poor.signTransaction({
    type: 'eip1559',
    chainId: chain.chainId,
    nonce: 0,
    to: app,
    gas: 21_000n,
    value: 10n ** 30n,
    maxFeePerGas: parseGwei('10'),
    maxPriorityFeePerGas: 1n,
  });
  const r4 = await broadcastTransaction(chain.client, { raw: tooRich });
  assert.equal(r4.outcome === 'rejected' && r4.reason, 'insufficient-funds', JSON.stringify(r4));
});

test('bytes that are not a transaction, or do not match the recorded hash, are refused before sending', async () => {
  await assert.rejects(
    broadcastTransaction(chain.client, { raw: '0x02f8' }),
    (e: unknown) => e instanceof ChainError && e.code === 'INVALID_INPUT',
  );
  await assert.rejects(
    broadcastTransaction(chain.client, { raw: 'nothex' as never }),
    (e: unknown) => e instanceof ChainError && e.code === 'INVALID_INPUT',
  );
  const signed = await sign(0, 'mismatch');
  await assert.rejects(
    broadcastTransaction(chain.client, { raw: signed.raw, hash: keccak256('0x00') }),
    (e: unknown) => e instanceof ChainError && e.code === 'INCONSISTENT' && /not the hash of the recorded bytes/.test(e.message),
  );
});

test('an unreachable node throws a retryable error: it says nothing about the transaction', async () => {
  const { publicClient } = createChainClients({ rpcUrl: 'http://127.0.0.1:9/key/SECRET', chainId: chain.chainId, retryCount: 0 });
  const signed = await sign(0, 'offline');
  await assert.rejects(broadcastTransaction(publicClient, { raw: signed.raw }), (e: unknown) => {
    assert.ok(e instanceof ChainError);
    assert.equal(e.code, 'RPC_UNAVAILABLE');
    assert.ok(e.retryable);
    assert.doesNotMatch(e.message, /SECRET/);
    return true;
  });
});

test('classifyBroadcastError knows the words of geth, anvil, besu and nethermind', () => {
  const cases: [string, ReturnType<typeof classifyBroadcastError>][] = [
    ['already known', { outcome: 'maybe-ours', reason: 'already-known' }],
    ['transaction already imported', { outcome: 'maybe-ours', reason: 'already-known' }],
    ['Known transaction', { outcome: 'maybe-ours', reason: 'already-known' }],
    ['AlreadyKnown', { outcome: 'maybe-ours', reason: 'already-known' }],
    ['nonce too low: address 0xabc, tx: 5 state: 7', { outcome: 'maybe-ours', reason: 'nonce-too-low' }],
    ['Nonce too low', { outcome: 'maybe-ours', reason: 'nonce-too-low' }],
    ['OldNonce', { outcome: 'maybe-ours', reason: 'nonce-too-low' }],
    ['replacement transaction underpriced', { outcome: 'maybe-ours', reason: 'replacement-underpriced' }],
    ['REPLACEMENT_UNDERPRICED', { outcome: 'maybe-ours', reason: 'replacement-underpriced' }],
    ['transaction underpriced: tip needed 1, tip permitted 0', { outcome: 'rejected', reason: 'fee-too-low' }],
    [
      'max fee per gas less than block base fee: address 0xabc, maxFeePerGas: 1, baseFee: 7',
      { outcome: 'rejected', reason: 'fee-too-low' },
    ],
    ['insufficient funds for gas * price + value: balance 0, tx cost 1, overshot 1', { outcome: 'rejected', reason: 'insufficient-funds' }],
    ['tx fee (1.10 ether) exceeds the configured cap (1.00 ether)', { outcome: 'rejected', reason: 'fee-cap-exceeded' }],
    ['intrinsic gas too low: gas 100, minimum needed 21000', { outcome: 'rejected', reason: 'gas-too-low' }],
    ['exceeds block gas limit', { outcome: 'rejected', reason: 'gas-limit-exceeded' }],
    ['invalid sender', { outcome: 'rejected', reason: 'wrong-chain' }],
    ['only replay-protected (EIP-155) transactions allowed over RPC', { outcome: 'rejected', reason: 'wrong-chain' }],
    ['invalid chain id for signer', { outcome: 'rejected', reason: 'wrong-chain' }],
    ['rlp: expected input list for types.DynamicFeeTx', { outcome: 'rejected', reason: 'invalid-transaction' }],
    ['txpool is full', 'transient'],
    ['something nobody has seen', undefined],
  ];
  for (const [message, expected] of cases) assert.deepEqual(classifyBroadcastError(message), expected, message);
});
