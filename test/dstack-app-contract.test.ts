import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicClient, createWalletClient, http, keccak256, toHex, parseEventLogs, type Address } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { dstackAppAbi } from '../src/chain/dstack-app-abi.ts';
import { loadArtifact } from '../src/dev/compile-contracts.ts';
import { useStack, type TestStack } from './support/stack.ts';

let stack: TestStack;
before(async () => {
  stack = await useStack();
});
after(async () => {
  await stack.release();
});

function clients() {
  const chain = { ...foundry, id: stack.info.chainId };
  const transport = http(stack.info.rpcUrl);
  return {
    publicClient: createPublicClient({ chain, transport }),
    owner: createWalletClient({ chain, transport, account: privateKeyToAccount(stack.devKeys.signer) }),
    stranger: createWalletClient({ chain, transport, account: privateKeyToAccount(stack.devKeys.other) }),
  };
}

async function deployFresh(): Promise<Address> {
  const { publicClient, owner } = clients();
  const { abi, bytecode } = loadArtifact('DstackApp');
  const hash = await owner.deployContract({ abi, bytecode, args: [owner.account.address, false] });
  const receipt = await publicClient.waitForTransactionReceipt({ hash, pollingInterval: 50 });
  assert.equal(receipt.status, 'success');
  assert.ok(receipt.contractAddress);
  return receipt.contractAddress;
}

test('the stack deployed apps owned by the signer and one owned by another key', async () => {
  const { publicClient } = clients();
  const owners = await Promise.all(
    stack.info.apps.map((app) => publicClient.readContract({ address: app.appId, abi: dstackAppAbi, functionName: 'owner' })),
  );
  assert.ok(owners.some((o) => o === stack.info.signerAddress));
  assert.ok(owners.some((o) => o !== stack.info.signerAddress));
  stack.info.apps.forEach((app, i) => assert.equal(owners[i], app.owner));
});

test('addComposeHash by the owner allows the hash and emits ComposeHashAdded', async () => {
  const { publicClient, owner } = clients();
  const app = await deployFresh();
  const composeHash = keccak256(toHex(`compose-${Date.now()}`));
  assert.equal(
    await publicClient.readContract({ address: app, abi: dstackAppAbi, functionName: 'allowedComposeHashes', args: [composeHash] }),
    false,
  );

  const hash = await owner.writeContract({ address: app, abi: dstackAppAbi, functionName: 'addComposeHash', args: [composeHash] });
  const receipt = await publicClient.waitForTransactionReceipt({ hash, pollingInterval: 50 });
  assert.equal(receipt.status, 'success');
  const events = parseEventLogs({ abi: dstackAppAbi, logs: receipt.logs, eventName: 'ComposeHashAdded' });
  assert.equal(events.length, 1);
  assert.equal(events[0]!.args.composeHash, composeHash);
  assert.equal(events[0]!.address.toLowerCase(), app.toLowerCase());
  assert.equal(
    await publicClient.readContract({ address: app, abi: dstackAppAbi, functionName: 'allowedComposeHashes', args: [composeHash] }),
    true,
  );

  // Re-adding is allowed and emits again: callers must not count events as registrations.
  const again = await owner.writeContract({ address: app, abi: dstackAppAbi, functionName: 'addComposeHash', args: [composeHash] });
  const againReceipt = await publicClient.waitForTransactionReceipt({ hash: again, pollingInterval: 50 });
  assert.equal(parseEventLogs({ abi: dstackAppAbi, logs: againReceipt.logs, eventName: 'ComposeHashAdded' }).length, 1);

  const removed = await owner.writeContract({ address: app, abi: dstackAppAbi, functionName: 'removeComposeHash', args: [composeHash] });
  const removedReceipt = await publicClient.waitForTransactionReceipt({ hash: removed, pollingInterval: 50 });
  assert.equal(parseEventLogs({ abi: dstackAppAbi, logs: removedReceipt.logs, eventName: 'ComposeHashRemoved' }).length, 1);
  assert.equal(
    await publicClient.readContract({ address: app, abi: dstackAppAbi, functionName: 'allowedComposeHashes', args: [composeHash] }),
    false,
  );
});

test('a non-owner cannot add a compose hash or a device', async () => {
  const { publicClient, stranger } = clients();
  const app = await deployFresh();
  const composeHash = keccak256(toHex('not yours'));
  await assert.rejects(
    publicClient.simulateContract({
      account: stranger.account,
      address: app,
      abi: dstackAppAbi,
      functionName: 'addComposeHash',
      args: [composeHash],
    }),
    /revert/i,
  );
  await assert.rejects(
    publicClient.simulateContract({
      account: stranger.account,
      address: app,
      abi: dstackAppAbi,
      functionName: 'addDevice',
      args: [composeHash],
    }),
    /revert/i,
  );
  // Also as a mined transaction, not only a simulation.
  const gas = 100_000n;
  const hash = await stranger.writeContract({ address: app, abi: dstackAppAbi, functionName: 'addComposeHash', args: [composeHash], gas });
  const receipt = await publicClient.waitForTransactionReceipt({ hash, pollingInterval: 50 });
  assert.equal(receipt.status, 'reverted');
  assert.equal(
    await publicClient.readContract({ address: app, abi: dstackAppAbi, functionName: 'allowedComposeHashes', args: [composeHash] }),
    false,
  );
});

test('devices: the owner adds one; allowAnyDevice reads back the constructor flag', async () => {
  const { publicClient, owner } = clients();
  const app = await deployFresh();
  const device = keccak256(toHex('device-1'));
  assert.equal(await publicClient.readContract({ address: app, abi: dstackAppAbi, functionName: 'allowAnyDevice' }), false);
  const hash = await owner.writeContract({ address: app, abi: dstackAppAbi, functionName: 'addDevice', args: [device] });
  await publicClient.waitForTransactionReceipt({ hash, pollingInterval: 50 });
  assert.equal(
    await publicClient.readContract({ address: app, abi: dstackAppAbi, functionName: 'allowedDeviceIds', args: [device] }),
    true,
  );
});
