import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { keccak256, parseGwei, parseTransaction, recoverTransactionAddress, toHex, type Address } from 'viem';
import { estimateFeesPerGas, estimateGas, readContract } from 'viem/actions';
import { startChainFixture, type ChainFixture } from '../../test/fixtures/chain-anvil.ts';
import { broadcastTransaction } from './broadcast.ts';
import { dstackAppAbi } from './dstack-app-abi.ts';
import { ChainError } from './errors.ts';
import { encodeAddComposeHash, signTransaction } from './sign-transaction.ts';

let chain: ChainFixture;
let app: Address;
before(async () => {
  chain = await startChainFixture({ name: 'sign' });
  app = await chain.deployApp(chain.accounts.owner.address);
});
after(async () => {
  await chain?.stop();
});

const hashOf = (label: string) => keccak256(toHex(label));
const ownerKey = () => toHex(chain.accounts.owner.getHdKey().privateKey!);

test('with nonce, fees and gas given it signs offline, and the result survives a JSON round trip', async () => {
  const composeHash = hashOf('offline').slice(2); // bare hex, as the Phala API sends it
  const signed = await signTransaction(undefined, {
    account: chain.accounts.owner,
    chainId: 8453,
    to: app,
    composeHash,
    nonce: 7,
    fees: { maxFeePerGas: '3000000000', maxPriorityFeePerGas: 1_000_000n },
    gas: '60000',
  });
  assert.deepEqual(JSON.parse(JSON.stringify(signed)), signed);
  assert.equal(signed.hash, keccak256(signed.raw));
  assert.equal(signed.from, chain.accounts.owner.address);
  assert.equal(signed.data, encodeAddComposeHash(composeHash));
  assert.deepEqual(
    {
      nonce: signed.nonce,
      gas: signed.gas,
      maxFeePerGas: signed.maxFeePerGas,
      maxPriorityFeePerGas: signed.maxPriorityFeePerGas,
      chainId: signed.chainId,
    },
    { nonce: 7, gas: '60000', maxFeePerGas: '3000000000', maxPriorityFeePerGas: '1000000', chainId: 8453 },
  );
  const tx = parseTransaction(signed.raw);
  assert.equal(tx.type, 'eip1559');
  assert.equal(tx.chainId, 8453);
  assert.equal(tx.nonce, 7);
  assert.equal(tx.to?.toLowerCase(), app.toLowerCase());
  assert.equal(await recoverTransactionAddress({ serializedTransaction: signed.raw as never }), chain.accounts.owner.address);
  // Signing is deterministic (RFC 6979): a retried activity records the same bytes.
  const again = await signTransaction(undefined, {
    account: chain.accounts.owner,
    chainId: 8453,
    to: app,
    composeHash,
    nonce: 7,
    fees: { maxFeePerGas: '3000000000', maxPriorityFeePerGas: '1000000' },
    gas: 60000n,
  });
  assert.equal(again.raw, signed.raw);
});

test('omitted nonce, fees and gas come from the node, with a 20% gas margin; the tx is mined', async () => {
  const composeHash = hashOf('estimated');
  const data = encodeAddComposeHash(composeHash);
  const estimate = await estimateGas(chain.client, { account: chain.accounts.owner.address, to: app, data });
  const suggested = await estimateFeesPerGas(chain.client);
  const signed = await signTransaction(chain.client, {
    account: chain.accounts.owner,
    chainId: chain.chainId,
    to: app,
    composeHash,
    nonce: 'pending',
  });
  assert.equal(BigInt(signed.gas), (estimate * 120n + 99n) / 100n);
  assert.equal(signed.maxFeePerGas, suggested.maxFeePerGas.toString());
  assert.equal(signed.maxPriorityFeePerGas, suggested.maxPriorityFeePerGas.toString());

  const sent = await broadcastTransaction(chain.client, { raw: signed.raw, hash: signed.hash });
  assert.deepEqual(sent, { outcome: 'accepted', hash: signed.hash });
  const receipt = await chain.receipt(signed.hash);
  assert.equal(receipt.status, 'success');
  assert.equal(receipt.transactionHash, signed.hash);
  assert.equal(
    await readContract(chain.client, { address: app, abi: dstackAppAbi, functionName: 'allowedComposeHashes', args: [composeHash] }),
    true,
  );
});

test('a 0-value self-send fills a nonce: data 0x, to the signer, 21000 gas before the margin', async () => {
  const me = chain.accounts.third;
  const signed = await signTransaction(chain.client, {
    account: me,
    chainId: chain.chainId,
    to: me.address,
    data: '0x',
    nonce: 'pending',
    gasMarginPercent: 0,
  });
  assert.equal(signed.gas, '21000');
  assert.equal(signed.nonce, 0);
  assert.equal((await broadcastTransaction(chain.client, { raw: signed.raw })).outcome, 'accepted');
  assert.equal((await chain.receipt(signed.hash)).status, 'success');
});

test('a signer that is not the owner gets WOULD_REVERT naming the contract error, before anything is signed', async () => {
  await assert.rejects(
    signTransaction(chain.client, {
      account: chain.accounts.other,
      chainId: chain.chainId,
      to: app,
      composeHash: hashOf('not mine'),
      nonce: 'pending',
    }),
    (err: unknown) => {
      assert.ok(err instanceof ChainError, String(err));
      assert.equal(err.code, 'WOULD_REVERT');
      assert.equal(err.retryable, false);
      assert.match(err.message, new RegExp(`would revert: NotOwner\\(${chain.accounts.other.address}\\)`));
      return true;
    },
  );
});

test('bad input fails with INVALID_INPUT/CONFIG/FEE_CAP_EXCEEDED and no message carries the key', async () => {
  const base = {
    account: chain.accounts.owner,
    chainId: chain.chainId,
    to: app,
    nonce: 0,
    gas: '50000',
    fees: { maxFeePerGas: '2000000000', maxPriorityFeePerGas: '1000000000' },
  };
  const cases: [Parameters<typeof signTransaction>, string, RegExp][] = [
    [[undefined, { ...base }], 'INVALID_INPUT', /exactly one of composeHash and data/],
    [[undefined, { ...base, composeHash: hashOf('x'), data: '0x' }], 'INVALID_INPUT', /exactly one/],
    [[undefined, { ...base, composeHash: 'abc' }], 'INVALID_INPUT', /composeHash must be 32 bytes/],
    [[undefined, { ...base, data: '0x1' }], 'INVALID_INPUT', /whole bytes/],
    [[undefined, { ...base, to: '0x1234' as Address, data: '0x' }], 'INVALID_INPUT', /^to must be a 20-byte/],
    [[undefined, { ...base, data: '0x', nonce: -1 }], 'INVALID_INPUT', /nonce must be a non-negative integer/],
    [[undefined, { ...base, data: '0x', nonce: 'pending' }], 'INVALID_INPUT', /nonce 'pending' needs an RPC client/],
    [[undefined, { ...base, data: '0x', fees: undefined }], 'INVALID_INPUT', /fee estimation needs an RPC client/],
    [[undefined, { ...base, data: '0x', gas: undefined }], 'INVALID_INPUT', /gas estimation needs an RPC client/],
    [[undefined, { ...base, data: '0x', gas: '20000' }], 'INVALID_INPUT', /at least 21000/],
    [[undefined, { ...base, data: '0x', fees: { maxFeePerGas: '1', maxPriorityFeePerGas: '2' } }], 'INVALID_INPUT', /exceeds maxFeePerGas/],
    [
      [undefined, { ...base, data: '0x', fees: { maxFeePerGas: 'lots', maxPriorityFeePerGas: '2' } }],
      'INVALID_INPUT',
      /fees.maxFeePerGas must be a decimal string/,
    ],
    [[undefined, { ...base, data: '0x', maxFeePerGasCap: parseGwei('1') }], 'FEE_CAP_EXCEEDED', /above the configured cap/],
    [[chain.client, { ...base, data: '0x', chainId: 1 }], 'CONFIG', /bound to chain 31337 but the transaction is for chain 1/],
  ];
  for (const [args, code, re] of cases) {
    await assert.rejects(signTransaction(...args), (err: unknown) => {
      assert.ok(err instanceof ChainError, String(err));
      assert.equal(err.code, code, err.message);
      assert.match(err.message, re);
      assert.ok(!err.message.toLowerCase().includes(ownerKey().slice(2).toLowerCase()));
      return true;
    });
  }
});
