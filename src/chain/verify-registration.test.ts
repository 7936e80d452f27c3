import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFunctionData, keccak256, parseEther, toHex, type Abi, type Address, type Hex } from 'viem';
import { compileFixture, startChainFixture, type ChainFixture } from '../../test/fixtures/chain-anvil.ts';
import { dstackAppAbi } from './dstack-app-abi.ts';
import { verifyRegistration } from './verify-registration.ts';

let chain: ChainFixture;
let app: Address;
let forwarder: Address;
let forwarderAbi: Abi;
let multisigApp: Address;
let otherMultisigApp: Address;

const h = (label: string) => keccak256(toHex(label));
const add = (hash: Hex) => encodeFunctionData({ abi: dstackAppAbi, functionName: 'addComposeHash', args: [hash] });

before(async () => {
  chain = await startChainFixture({ name: 'verify' });
  app = await chain.deployApp(chain.accounts.owner.address);
  const fwd = compileFixture('chain-forwarder.sol', 'ChainForwarder');
  forwarderAbi = fwd.abi;
  forwarder = await chain.deploy(fwd.abi, fwd.bytecode, []);
  // Apps owned by a contract, as a multisig would own them.
  multisigApp = await chain.deployApp(forwarder);
  otherMultisigApp = await chain.deployApp(forwarder);
});
after(async () => {
  await chain?.stop();
});

async function relay(target: Address, data: Hex) {
  const hash = await chain.send(chain.accounts.other, {
    to: forwarder,
    data: encodeFunctionData({ abi: forwarderAbi, functionName: 'forward', args: [target, data] }),
  });
  return chain.receipt(hash);
}

test('a direct addComposeHash by the owner verifies as direct', async () => {
  const hash = h('direct');
  const receipt = await chain.addComposeHash(app, hash);
  const result = await verifyRegistration(chain.client, {
    app,
    composeHash: hash.slice(2).toUpperCase(),
    txHash: receipt.transactionHash.toUpperCase().replace('0X', '0x'),
  });
  assert.deepEqual(result, {
    ok: true,
    txHash: receipt.transactionHash,
    blockNumber: Number(receipt.blockNumber),
    blockHash: receipt.blockHash,
    logIndex: receipt.logs[0]!.logIndex,
    from: chain.accounts.owner.address,
    to: app,
    via: 'direct',
  });
});

test('a registration relayed through a multisig-like contract verifies as relayed (tx.to is the relayer)', async () => {
  const hash = h('via multisig');
  const receipt = await relay(multisigApp, add(hash));
  assert.equal(receipt.status, 'success');
  const result = await verifyRegistration(chain.client, { app: multisigApp, composeHash: hash, txHash: receipt.transactionHash });
  assert.ok(result.ok, JSON.stringify(result));
  assert.equal(result.via, 'relayed');
  assert.equal(result.to?.toLowerCase(), forwarder.toLowerCase());
  assert.equal(result.from, chain.accounts.other.address);
});

test('a reverted transaction is refused with reason reverted', async () => {
  const hash = h('reverted');
  // A stranger calls the app directly: NotOwner, mined with status 0 (explicit gas skips estimation).
  const receipt = await chain.receipt(await chain.send(chain.accounts.other, { to: app, data: add(hash), gas: 100_000n }));
  assert.equal(receipt.status, 'reverted');
  const result = await verifyRegistration(chain.client, { app, composeHash: hash, txHash: receipt.transactionHash });
  assert.equal(!result.ok && result.reason, 'reverted');
});

test('the same hash registered on another contract does not count for this app', async () => {
  const hash = h('wrong app');
  const receipt = await relay(otherMultisigApp, add(hash));
  const result = await verifyRegistration(chain.client, { app: multisigApp, composeHash: hash, txHash: receipt.transactionHash });
  assert.equal(result.ok, false);
  assert.ok(!result.ok && result.reason === 'no-matching-log');
  assert.match(result.message, /registers this hash on a different contract/);
});

test('a transaction without the log is refused: a plain transfer, or another hash on this app', async () => {
  const transfer = await chain.receipt(
    await chain.send(chain.accounts.owner, { to: chain.accounts.third.address, value: parseEther('0.01') }),
  );
  const r1 = await verifyRegistration(chain.client, { app, composeHash: h('anything'), txHash: transfer.transactionHash });
  assert.ok(
    !r1.ok && r1.reason === 'no-matching-log' && /emits no ComposeHashAdded event from this app/.test(r1.message),
    JSON.stringify(r1),
  );

  const other = await chain.addComposeHash(app, h('some other hash'));
  const r2 = await verifyRegistration(chain.client, { app, composeHash: h('the hash we wanted'), txHash: other.transactionHash });
  assert.ok(!r2.ok && r2.reason === 'no-matching-log' && /different compose hash/.test(r2.message), JSON.stringify(r2));
});

test('an unknown, a pending and a malformed transaction hash each get their own reason', async () => {
  const unknown = await verifyRegistration(chain.client, { app, composeHash: h('x'), txHash: h('no such tx') });
  assert.equal(!unknown.ok && unknown.reason, 'tx-not-found');

  await chain.setAutomine(false);
  try {
    const pending = await chain.send(chain.accounts.owner, { to: app, data: add(h('pending')) });
    const r = await verifyRegistration(chain.client, { app, composeHash: h('pending'), txHash: pending });
    assert.equal(!r.ok && r.reason, 'tx-pending');
  } finally {
    await chain.setAutomine(true);
    await chain.mine();
  }

  for (const txHash of ['', '0x1234', 'not a hash', `${h('a').slice(2)}`]) {
    const r = await verifyRegistration(chain.client, { app, composeHash: h('x'), txHash });
    assert.equal(!r.ok && r.reason, 'invalid-tx-hash', txHash);
  }
});

test('a registration removed since is refused with not-allowed-now', async () => {
  const hash = h('removed since');
  const receipt = await chain.addComposeHash(app, hash);
  await chain.receipt(
    await chain.send(chain.accounts.owner, {
      to: app,
      data: encodeFunctionData({ abi: dstackAppAbi, functionName: 'removeComposeHash', args: [hash] }),
    }),
  );
  const result = await verifyRegistration(chain.client, { app, composeHash: hash, txHash: receipt.transactionHash });
  assert.equal(!result.ok && result.reason, 'not-allowed-now');
});
