import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { keccak256, toHex, type Address } from 'viem';
import { getBalance } from 'viem/actions';
import { compileFixture, startChainFixture, type ChainFixture } from '../../test/fixtures/chain-anvil.ts';
import { createChainClients } from './clients.ts';
import { ChainError } from './errors.ts';
import { preflight } from './preflight.ts';

// A non-default chain id, as Base or mainnet would be: the check must read the node, not viem's chain object.
const CHAIN_ID = 8453;
let chain: ChainFixture;
let app: Address;
let strangersApp: Address;
const fresh = keccak256(toHex('fresh compose'));
const registered = keccak256(toHex('registered compose'));

before(async () => {
  chain = await startChainFixture({ name: 'preflight', chainId: CHAIN_ID });
  app = await chain.deployApp(chain.accounts.owner.address);
  strangersApp = await chain.deployApp(chain.accounts.other.address);
  await chain.addComposeHash(app, registered);
});
after(async () => {
  await chain?.stop();
});

test('the owner signer with a fresh hash: register', async () => {
  const result = await preflight(chain.client, {
    expectedChainId: CHAIN_ID,
    app,
    composeHash: fresh.slice(2),
    signer: chain.accounts.owner.address,
  });
  assert.ok(result.ok);
  assert.equal(result.next, 'register');
  assert.equal(result.chainId, CHAIN_ID);
  assert.equal(result.owner, chain.accounts.owner.address);
  assert.equal(result.signerIsOwner, true);
  assert.equal(result.composeHashAllowed, false);
  assert.equal(result.signerBalanceWei, (await getBalance(chain.client, { address: chain.accounts.owner.address })).toString());
  assert.deepEqual(JSON.parse(JSON.stringify(result)), result);
});

test('an allowed hash: already-allowed, whoever signs', async () => {
  for (const signer of [chain.accounts.owner.address, chain.accounts.third.address]) {
    const result = await preflight(chain.client, { expectedChainId: CHAIN_ID, app, composeHash: registered, signer });
    assert.equal(result.ok && result.next, 'already-allowed');
  }
});

test('a signer that is not the owner: needs-operator, with the owner named', async () => {
  const result = await preflight(chain.client, {
    expectedChainId: CHAIN_ID,
    app: strangersApp,
    composeHash: fresh,
    signer: chain.accounts.owner.address,
  });
  assert.ok(result.ok);
  assert.equal(result.next, 'needs-operator');
  assert.equal(result.signerIsOwner, false);
  assert.equal(result.owner, chain.accounts.other.address);
  const keyless = await preflight(chain.client, { expectedChainId: CHAIN_ID, app, composeHash: fresh });
  assert.ok(keyless.ok && keyless.next === 'needs-operator' && keyless.signer === null && keyless.signerBalanceWei === null);
});

test('a wrong chain id stops before any contract read, even when the client was built for the expected id', async () => {
  const result = await preflight(chain.client, { expectedChainId: 1, app, composeHash: fresh, signer: chain.accounts.owner.address });
  assert.deepEqual(result, {
    ok: false,
    reason: 'wrong-chain',
    expectedChainId: 1,
    actualChainId: CHAIN_ID,
    message: `the RPC serves chain ${CHAIN_ID} but the app is on chain 1`,
  });
  // A client whose viem chain object claims chain 1 still reports the node's real id.
  const { publicClient: misconfigured } = createChainClients({ rpcUrl: chain.anvil.rpcUrl, chainId: 1 });
  const again = await preflight(misconfigured, { expectedChainId: 1, app, composeHash: fresh });
  assert.equal(!again.ok && again.reason, 'wrong-chain');
});

test('no contract at the address, or a contract that is not an app', async () => {
  const empty = await preflight(chain.client, { expectedChainId: CHAIN_ID, app: chain.accounts.fourth.address, composeHash: fresh });
  assert.equal(!empty.ok && empty.reason, 'no-contract');
  const fwd = compileFixture('chain-forwarder.sol', 'ChainForwarder');
  const notAnApp = await chain.deploy(fwd.abi, fwd.bytecode, []);
  const result = await preflight(chain.client, { expectedChainId: CHAIN_ID, app: notAnApp, composeHash: fresh });
  assert.equal(!result.ok && result.reason, 'not-an-app', JSON.stringify(result));
});

test('a contract with code that answers no data is asked again (retryable), not taken for a non-app', async () => {
  const silent = compileFixture('silent-fallback.sol', 'SilentFallback');
  const address = await chain.deploy(silent.abi, silent.bytecode, []);
  await assert.rejects(
    preflight(chain.client, { expectedChainId: CHAIN_ID, app: address, composeHash: fresh }),
    (err: unknown) => err instanceof ChainError && err.retryable && /answered no data at block \d+, where it has code/.test(err.message),
  );
});

test('bad input is INVALID_INPUT; an unreachable RPC is retryable', async () => {
  await assert.rejects(
    preflight(chain.client, { expectedChainId: 0, app, composeHash: fresh }),
    (e: unknown) => e instanceof ChainError && e.code === 'INVALID_INPUT',
  );
  await assert.rejects(
    preflight(chain.client, { expectedChainId: CHAIN_ID, app, composeHash: 'nope' }),
    (e: unknown) => e instanceof ChainError && e.code === 'INVALID_INPUT',
  );
  const { publicClient: down } = createChainClients({ rpcUrl: 'http://127.0.0.1:9', chainId: CHAIN_ID, retryCount: 0 });
  await assert.rejects(
    preflight(down, { expectedChainId: CHAIN_ID, app, composeHash: fresh }),
    (e: unknown) => e instanceof ChainError && e.retryable,
  );
});
