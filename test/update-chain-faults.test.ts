// The update workflow against chain faults it cannot prevent: a node that forgets our
// transaction, a transaction that sits unmined, and a reorg that takes the registration
// back out. The chain is driven by hand, so the file runs on a private automine stack.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  awaitEnvUpdate,
  getEnvUpdateStatus,
  getSignerStatus,
  retryEnvUpdate,
  startEnvUpdate,
  type UpdateEnvResult,
  type UpdateStatus,
} from '../src/client.ts';
import type { SimCvmSummary } from '../src/simulator/admin-client.ts';
import { registrationsOf } from './support/registrations.ts';
import { anvilDriver } from './support/anvil-driver.ts';
import { waitFor } from './support/wait.ts';
import { useStack, type TestStack } from './support/stack.ts';
import { createHarness, type Harness } from './support/update-harness.ts';

let stack: TestStack;

before(async () => {
  // Automine: no block appears unless a transaction or the test asks for one.
  stack = await useStack({ private: true, blockTime: 0 });
});
after(async () => {
  await stack?.release();
});

const chain = () => anvilDriver(stack.info.rpcUrl);
const rpc = <T = unknown>(method: string, params: unknown[] = []) => chain().rpc<T>(method, params);
const latestBlock = () => chain().latestBlock();
const mine = (blocks = 1) => chain().mine(blocks);
const inPool = (hash: string) => chain().inPool(hash);
const startMiner = () => chain().startMiner();

const statusOf = (h: Harness, cvmId: string) => getEnvUpdateStatus(h.client, cvmId);
const managerOf = (h: Harness) => getSignerStatus(h.client, stack.info.chainId, h.signer.address);
const describeStatus = (s: UpdateStatus) =>
  JSON.stringify({
    phase: s.phase,
    sent: s.sentTransactions,
    tx: s.transactionHash,
    block: s.blockNumber,
    lastError: s.lastError,
    attempts: s.attempts,
  });

/** What every case must end with, whatever the chain did on the way. */
async function assertLandedOnce(h: Harness, cvm: SimCvmSummary, env: Record<string, string>, result: UpdateEnvResult): Promise<void> {
  assert.equal(result.applied, true);
  assert.ok(result.composeHash && result.transactionHash, JSON.stringify(result));
  assert.deepEqual((await h.sim.appliedEnv(cvm.id)).env, env);
  assert.deepEqual(await registrationsOf(stack.info.rpcUrl, cvm.appId, result.composeHash), [result.transactionHash]);
  const receipt = await rpc<{ blockHash: string; blockNumber: string; status: string }>('eth_getTransactionReceipt', [
    result.transactionHash,
  ]);
  assert.ok(receipt, 'the registration has a receipt');
  assert.equal(receipt.status, '0x1');
  assert.equal(Number(BigInt(receipt.blockNumber)), result.blockNumber);
  const canonical = await rpc<{ hash: string }>('eth_getBlockByNumber', [receipt.blockNumber, false]);
  assert.equal(canonical.hash, receipt.blockHash, 'the registration block is the canonical one at its height');
}

/** A fresh CVM whose env adds a key, so phase 1 asks for a new compose hash on chain. */
async function newTwoPhaseCase(h: Harness) {
  const cvm = await h.newCvm({ kms: 'onchain', appId: h.appId(true), allowedEnvs: ['BASE'] });
  const env = {
    BASE: randomBytes(8).toString('hex'),
    [`K_${randomBytes(4).toString('hex').toUpperCase()}`]: randomBytes(8).toString('hex'),
  };
  return { cvm, env };
}

/** One harness and worker per case; the chain is put back to automine whatever happened. */
async function withCase(workerEnv: Record<string, string>, body: (h: Harness, miner: { start(): void }) => Promise<void>): Promise<void> {
  const h = await createHarness(stack);
  let stopMiner: (() => Promise<void>) | undefined;
  try {
    await h.startWorker({ LOG_LEVEL: 'ERROR', ...workerEnv });
    await body(h, { start: () => void (stopMiner ??= startMiner()) });
  } finally {
    await stopMiner?.();
    await rpc('evm_setAutomine', [true]).catch(() => {});
    // Leave nothing pending for the next case's nonce.
    await mine().catch(() => {});
    await h.close();
  }
}

test('a transaction dropped from the pool is rebroadcast as the same bytes, not signed again', async () => {
  await withCase({}, async (h, miner) => {
    const { cvm, env } = await newTwoPhaseCase(h);
    await rpc('evm_setAutomine', [false]);
    const { handle } = await startEnvUpdate(h.client, { cvmId: cvm.id, env }, { taskQueue: h.taskQueue });

    const first = await waitFor('the registration to be signed and pooled', async () => {
      const s = await statusOf(h, cvm.id);
      const tx = s.sentTransactions[0];
      return s.sentTransactions.length === 1 && tx && (await inPool(tx.hash)) ? tx : undefined;
    });
    await rpc('anvil_dropTransaction', [first.hash]);
    assert.equal(await rpc('eth_getTransactionByHash', [first.hash]), null, 'anvil forgot the transaction');

    // With no blocks the manager still looks every few seconds: it must see "dropped" and resend.
    await waitFor(
      'the manager to rebroadcast',
      async () => (await inPool(first.hash)) || (await rpc('eth_getTransactionByHash', [first.hash])) !== null,
      15_000,
    );
    const resent = await statusOf(h, cvm.id);
    assert.equal(resent.sentTransactions.length, 1, describeStatus(resent));
    assert.ok((await managerOf(h)).stats.rebroadcast >= 1, `broadcast again after the drop: ${JSON.stringify((await managerOf(h)).stats)}`);

    await rpc('evm_setAutomine', [true]);
    await mine();
    miner.start();
    const result = await awaitEnvUpdate(handle);

    const status = await statusOf(h, cvm.id);
    assert.equal(result.transactionHash, first.hash, 'the mined registration is the first signing');
    assert.equal(status.sentTransactions.length, 1, describeStatus(status));
    assert.equal((await managerOf(h)).stats.signed, 1, 'signed once');
    await assertLandedOnce(h, cvm, env, result);
  });
});

test('a transaction stuck past the stall time is replaced at the same nonce with both fees raised ≥ 10%', async () => {
  await withCase({ CHAIN_STALL_SECONDS: '2' }, async (h, miner) => {
    const { cvm, env } = await newTwoPhaseCase(h);
    await rpc('evm_setAutomine', [false]);
    const { handle } = await startEnvUpdate(h.client, { cvmId: cvm.id, env }, { taskQueue: h.taskQueue });

    // Read while pooled: anvil forgets a transaction once a replacement takes its place.
    const gasOf = async (hash: string) => (await rpc<{ gas: string } | null>('eth_getTransactionByHash', [hash]))?.gas;
    const originalGas = await waitFor('the original in the pool', async () => {
      const tx = (await statusOf(h, cvm.id)).sentTransactions[0];
      return tx && (await gasOf(tx.hash));
    });

    const stalled = await waitFor(
      'a fee-bumped replacement',
      async () => {
        const s = await statusOf(h, cvm.id);
        return s.sentTransactions.length >= 2 ? s : undefined;
      },
      20_000,
    );
    const [a, b] = stalled.sentTransactions as [UpdateStatus['sentTransactions'][0], UpdateStatus['sentTransactions'][0]];
    assert.equal(b.nonce, a.nonce, 'a replacement reuses the nonce');
    assert.notEqual(b.hash, a.hash);
    // Geth's rule; anvil would take less, so the check has to be ours.
    const min110 = (wei: string) => (BigInt(wei) * 110n + 99n) / 100n;
    for (const field of ['maxFeePerGas', 'maxPriorityFeePerGas'] as const) {
      assert.ok(BigInt(b[field]) >= min110(a[field]), `${field}: ${b[field]} < 110% of ${a[field]}`);
    }
    // Same call, same gas. Estimated afresh, anvil runs it on a pending state in which
    // the pooled original has already allowed the hash, and the replacement, some 22k
    // gas short, reverts when it is mined.
    const replacementGas = await gasOf(b.hash);
    if (replacementGas !== undefined) assert.equal(BigInt(replacementGas), BigInt(originalGas), 'the replacement keeps the gas limit');

    await rpc('evm_setAutomine', [true]);
    await mine();
    miner.start();
    const result = await awaitEnvUpdate(handle);

    const status = await statusOf(h, cvm.id);
    const sent = status.sentTransactions;
    assert.ok(sent.length >= 2, describeStatus(status));
    assert.equal(new Set(sent.map((t) => t.nonce)).size, 1, `all signings share one nonce: ${describeStatus(status)}`);
    for (let i = 1; i < sent.length; i++) {
      for (const field of ['maxFeePerGas', 'maxPriorityFeePerGas'] as const) {
        assert.ok(BigInt(sent[i]![field]) >= min110(sent[i - 1]![field]), `signing ${i} ${field}: ${describeStatus(status)}`);
      }
    }
    assert.ok(
      sent.some((t) => t.hash === result.transactionHash),
      'the mined registration is one we signed',
    );
    for (const t of sent.filter((t) => t.hash !== result.transactionHash)) {
      assert.equal(await rpc('eth_getTransactionReceipt', [t.hash]), null, `the replaced ${t.hash} was not mined too`);
    }
    await assertLandedOnce(h, cvm, env, result);
  });
});

test('a reorg during confirmations removes the registration: the manager sends the same signed bytes again and they confirm', async () => {
  await withCase({ CHAIN_CONFIRMATIONS: '31337=4' }, async (h, miner) => {
    const { cvm, env } = await newTwoPhaseCase(h);
    const { handle } = await startEnvUpdate(h.client, { cvmId: cvm.id, env }, { taskQueue: h.taskQueue });

    // No miner yet: under automine the registration stays at 1 of 4 confirmations.
    const confirming = await waitFor('the confirming phase', async () => {
      const s = await statusOf(h, cvm.id);
      return s.phase === 'confirming' && s.blockNumber !== undefined && s.transactionHash ? s : undefined;
    });
    const first = confirming.transactionHash!;
    const minedAt = confirming.blockNumber!;
    const original = await rpc<{ blockHash: string }>('eth_getTransactionReceipt', [first]);
    const head = await latestBlock();
    // anvil_reorg rewinds `depth` blocks and mines as many new ones: the chain keeps its
    // height, and an empty tx list leaves the registration out of the new branch.
    await rpc('anvil_reorg', [head - minedAt + 1, []]);
    const replaced = await rpc<{ hash: string }>('eth_getBlockByNumber', [`0x${minedAt.toString(16)}`, false]);
    assert.notEqual(replaced.hash, original.blockHash, 'the registration block was reorganised away');
    assert.equal(await latestBlock(), head, 'the reorg kept the chain height');

    await waitFor('the manager to notice the reorg', async () => ((await managerOf(h)).stats.reorgs >= 1 ? true : undefined), 15_000);

    miner.start();
    const result = await awaitEnvUpdate(handle);

    const status = await statusOf(h, cvm.id);
    // anvil does not return reorged-out transactions to its pool, so the nonce was free
    // again and the recorded bytes were sent as they were: one signing, one hash.
    assert.equal(status.sentTransactions.length, 1, describeStatus(status));
    assert.equal(result.transactionHash, first, 'the same signed transaction was mined again');
    assert.ok(result.blockNumber! > minedAt, `mined again in a later block (${result.blockNumber} vs ${minedAt})`);
    assert.ok((status.confirmations ?? 0) >= 4, describeStatus(status));
    await assertLandedOnce(h, cvm, env, result);
  });
});

test('a registration that reverts waits for an operator; retry signs a new one that lands', async () => {
  await withCase({}, async (h, miner) => {
    const { cvm, env } = await newTwoPhaseCase(h);
    await rpc('evm_setAutomine', [false]);
    const { handle } = await startEnvUpdate(h.client, { cvmId: cvm.id, env }, { taskQueue: h.taskQueue });
    const first = await waitFor('the registration to be pooled', async () => {
      const s = await statusOf(h, cvm.id);
      const tx = s.sentTransactions[0];
      return tx && (await inPool(tx.hash)) ? tx : undefined;
    });

    // Hand the app to someone else behind the workflow's back (the owner sits in OpenZeppelin's
    // ERC-7201 Ownable slot of the app proxy), so the pooled transaction reverts when mined.
    const ownerSlot = '0x9016d09d72d40fdae2fd8ceac6b6234c7706214fd39c1cd1e609a0528c199300';
    const slot0 = await rpc<string>('eth_getStorageAt', [cvm.appId, ownerSlot, 'latest']);
    const stranger = '0x000000000000000000000000000000000000dEaD'.slice(2).toLowerCase();
    const taken = `0x${slot0.slice(2, 26)}${stranger}`;
    await rpc('anvil_setStorageAt', [cvm.appId, ownerSlot, taken]);
    await rpc('evm_setAutomine', [true]);
    await mine();

    const waiting = await waitFor('the workflow to wait for an operator', async () => {
      const s = await statusOf(h, cvm.id);
      return s.phase === 'awaiting_operator' ? s : undefined;
    });
    assert.match(waiting.waitingFor ?? '', new RegExp(`${first.hash}.*reverted`));
    const receipt = await rpc<{ status: string }>('eth_getTransactionReceipt', [first.hash]);
    assert.equal(receipt.status, '0x0', 'the first registration reverted on chain');

    await rpc('anvil_setStorageAt', [cvm.appId, ownerSlot, slot0]);
    await retryEnvUpdate(h.client, cvm.id);
    miner.start();
    const result = await awaitEnvUpdate(handle);
    assert.notEqual(result.transactionHash, first.hash);
    const status = await statusOf(h, cvm.id);
    assert.equal(status.sentTransactions.length, 2, describeStatus(status));
    assert.notEqual(status.sentTransactions[1]!.nonce, first.nonce, 'the reverted nonce is spent; the new one is the next');
    await assertLandedOnce(h, cvm, env, result);
  });
});

test('a reorg that only moves a registration found on chain is followed to its new block, without an operator', async () => {
  await withCase({}, async (h) => {
    // Two replicas of one app: the first registers the compose hash, the second finds it on chain.
    const [a, b] = await h.sim.createCvms({ kms: 'onchain', appId: h.appId(true), allowedEnvs: ['BASE'] }, 2);
    const key = `K_${randomBytes(4).toString('hex').toUpperCase()}`;
    const envA = { BASE: randomBytes(8).toString('hex'), [key]: randomBytes(8).toString('hex') };
    const first = await awaitEnvUpdate(
      (await startEnvUpdate(h.client, { cvmId: a!.id, env: envA, confirmations: 1 }, { taskQueue: h.taskQueue })).handle,
    );
    const tx = first.transactionHash!;

    const envB = { BASE: randomBytes(8).toString('hex'), [key]: randomBytes(8).toString('hex') };
    const { handle } = await startEnvUpdate(h.client, { cvmId: b!.id, env: envB, confirmations: 20 }, { taskQueue: h.taskQueue });
    const confirming = await waitFor('the second update to confirm the existing registration', async () => {
      const s = await statusOf(h, b!.id);
      return s.phase === 'confirming' && s.transactionHash === tx ? s : undefined;
    });
    assert.equal(confirming.sentTransactions.length, 0, 'the second update found the registration instead of sending one');

    // The same signed transaction, mined one block later on a new branch: moved, not gone.
    const raw = await rpc<string>('eth_getRawTransactionByHash', [tx]);
    const minedAt = first.blockNumber!;
    await mine(2);
    const head = await latestBlock();
    await rpc('anvil_reorg', [head - minedAt + 1, [[raw, 1]]]);
    const moved = await rpc<{ blockNumber: string; blockHash: string }>('eth_getTransactionReceipt', [tx]);
    assert.notEqual(Number(moved.blockNumber), minedAt, 'the registration sits in another block now');

    await mine(25);
    const result = await awaitEnvUpdate(handle);
    const status = await statusOf(h, b!.id);
    assert.equal(result.transactionHash, tx);
    assert.equal(result.blockNumber, Number(moved.blockNumber), 'confirmed where it was mined again');
    assert.equal(status.timings.operatorMs, 0, `no operator was asked: ${describeStatus(status)}`);
    assert.match(status.lastError ?? '', /found again as/);
    assert.equal(status.attempts.chainPreflight, 2, 'looked for on chain once more after the reorg');
    assert.deepEqual((await h.sim.appliedEnv(b!.id)).env, envB);
  });
});
