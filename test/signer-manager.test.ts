// The per-signer transaction manager end to end: real Temporal, anvil and simulator. Many
// updates of one key share one nonce sequence; CVMs that share a compose hash share one
// registration; an aborted update sends nothing new; a nonce gap does not stall the key.
// The chain is driven by hand here, so the file runs on a private automine stack.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createWalletClient, http, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { abortEnvUpdate, awaitEnvUpdate, getEnvUpdateStatus, getSignerStatus, startEnvUpdate } from '../src/client.ts';
import { main as cli } from '../src/cli.ts';
import { registrationsOf } from './support/registrations.ts';
import { useStack, type TestStack } from './support/stack.ts';
import { createHarness, type Harness } from './support/update-harness.ts';
import { anvilDriver } from './support/anvil-driver.ts';
import { waitFor } from './support/wait.ts';

let stack: TestStack;
before(async () => {
  stack = await useStack({ private: true, blockTime: 0 });
});
after(async () => {
  await stack?.release();
});

const chain = () => anvilDriver(stack.info.rpcUrl);
const rpc = <T = unknown>(method: string, params: unknown[] = []) => chain().rpc<T>(method, params);
const mine = (blocks = 1) => chain().mine(blocks);
const inPool = (hash: string) => chain().inPool(hash);
const startMiner = () => chain().startMiner();
const managerOf = (h: Harness) => getSignerStatus(h.client, stack.info.chainId, h.signer.address);

async function withHarness(workerEnv: Record<string, string>, body: (h: Harness) => Promise<void>): Promise<void> {
  const h = await createHarness(stack);
  try {
    await h.startWorker({ LOG_LEVEL: 'ERROR', ...workerEnv });
    await body(h);
  } finally {
    await rpc('evm_setAutomine', [true]).catch(() => {});
    await mine().catch(() => {});
    await h.close();
  }
}

const newKey = () => `K_${randomBytes(4).toString('hex').toUpperCase()}`;

test('concurrent updates of CVMs that share a compose hash: one registration per app, one signing each', async () => {
  await withHarness({}, async (h) => {
    const stopMiner = startMiner();
    try {
      const apps = [h.appId(true), await h.newApp()];
      const key = newKey();
      const cvms: Awaited<ReturnType<Harness['newCvm']>>[] = [];
      for (const appId of apps) for (let i = 0; i < 3; i++) cvms.push(await h.newCvm({ kms: 'onchain', appId, allowedEnvs: ['BASE'] }));
      const env = { BASE: 'b', [key]: 'v' };
      const started = await Promise.all(cvms.map((cvm) => startEnvUpdate(h.client, { cvmId: cvm.id, env }, { taskQueue: h.taskQueue })));
      const results = await Promise.all(started.map((s) => awaitEnvUpdate(s.handle)));

      for (const [i, cvm] of cvms.entries()) {
        assert.equal(results[i]!.applied, true);
        assert.deepEqual((await h.sim.appliedEnv(cvm.id)).env, env);
      }
      for (const appId of apps) {
        const ofApp = results.filter((_, i) => cvms[i]!.appId.toLowerCase() === appId.toLowerCase());
        assert.equal(ofApp.length, 3);
        const hashes = new Set(ofApp.map((r) => r.composeHash));
        assert.equal(hashes.size, 1, 'the CVMs of one app share the compose hash');
        const mined = await registrationsOf(stack.info.rpcUrl, appId, ofApp[0]!.composeHash!);
        assert.equal(mined.length, 1, `one ComposeHashAdded for app ${appId}: ${mined.join(', ')}`);
        assert.ok(
          ofApp.every((r) => r.transactionHash === mined[0]),
          'every CVM of the app used that one transaction',
        );
      }
      const manager = await managerOf(h);
      assert.equal(manager.stats.signed, 2, JSON.stringify(manager.stats));
      assert.equal(manager.stats.replaced, 0, JSON.stringify(manager.stats));

      // The operator's view of the same manager, found through its search attribute.
      const run = async (...args: string[]) => {
        let stdout = '';
        let stderr = '';
        const code = await cli(['signer', 'status', ...args], {
          stdout: (t) => void (stdout += t),
          stderr: (t) => void (stderr += t),
          env: h.env,
          cwd: process.cwd(),
          signal: new AbortController().signal,
        });
        return { code, stdout, stderr };
      };
      const asJson = await waitFor('the manager to be listed', async () => {
        const r = await run('--address', h.signer.address, '--json');
        const parsed = JSON.parse(r.stdout) as { signers: { signer: string; stats: { signed: number } }[] };
        return r.code === 0 && parsed.signers.length === 1 ? parsed : undefined;
      });
      assert.equal(asJson.signers[0]!.signer, h.signer.address.toLowerCase());
      assert.equal(asJson.signers[0]!.stats.signed, 2);
      const text = await run('--chain', String(stack.info.chainId), '--address', h.signer.address);
      assert.match(text.stdout, /signed 2, replaced 0/);
      assert.ok(!text.stdout.includes(h.signer.key.slice(2)), 'no key in the output');
      assert.equal((await run('--chain', 'abc')).code, 2);
    } finally {
      await stopMiner();
    }
  });
});

test('an aborted update withdraws: its pending registration is cancelled by a self-send and never mined', async () => {
  await withHarness({}, async (h) => {
    const cvm = await h.newCvm({ kms: 'onchain', appId: h.appId(true), allowedEnvs: ['BASE'] });
    await rpc('evm_setAutomine', [false]);
    const { handle } = await startEnvUpdate(h.client, { cvmId: cvm.id, env: { BASE: 'x', [newKey()]: 'y' } }, { taskQueue: h.taskQueue });
    const sent = await waitFor('the registration to be sent', async () => (await getEnvUpdateStatus(h.client, cvm.id)).sentTransactions[0]);

    await abortEnvUpdate(h.client, cvm.id, 'changed my mind');
    await assert.rejects(awaitEnvUpdate(handle), (err: Error) => /aborted/.test(String((err.cause as Error | undefined)?.message)));
    const cancelling = await waitFor('the manager to sign the cancelling self-send', async () => {
      const m = await managerOf(h);
      const slot = m.pending.find((p) => p.nonce === sent.nonce);
      return slot && slot.txs.some((t) => t.kind === 'self') ? slot : undefined;
    });
    const cancel = cancelling.txs.at(-1)!;
    assert.equal(cancel.kind, 'self', JSON.stringify(cancelling));
    await waitFor('the self-send to replace the registration in the pool', () => inPool(cancel.hash));

    await rpc('evm_setAutomine', [true]);
    const stopBlocks = startMiner();
    const settled = await waitFor('the manager to settle the nonce', async () => {
      const m = await managerOf(h);
      return m.pending.length === 0 && m.registrations.length === 0 ? m : undefined;
    }).finally(stopBlocks);
    assert.ok(await rpc('eth_getTransactionReceipt', [cancel.hash]), 'the self-send took the nonce');
    assert.equal(await rpc('eth_getTransactionReceipt', [sent.hash]), null, 'the withdrawn registration was not mined');
    const after = await getEnvUpdateStatus(h.client, cvm.id);
    assert.equal(after.phase, 'aborted');
    assert.ok(settled.stats.replaced >= 1, JSON.stringify(settled.stats));

    // The key is not stalled: the next change goes straight through.
    const stopMiner = startMiner();
    try {
      const next = await startEnvUpdate(h.client, { cvmId: cvm.id, env: { BASE: 'z', [newKey()]: 'w' } }, { taskQueue: h.taskQueue });
      const result = await awaitEnvUpdate(next.handle);
      assert.equal(result.applied, true);
      assert.deepEqual(await registrationsOf(stack.info.rpcUrl, cvm.appId, result.composeHash!), [result.transactionHash]);
    } finally {
      await stopMiner();
    }
  });
});

test('a nonce gap left by another sender of the key is filled with a 0-value self-send, and the update lands', async () => {
  await withHarness({ CHAIN_STALL_SECONDS: '2' }, async (h) => {
    const cvm = await h.newCvm({ kms: 'onchain', appId: h.appId(true), allowedEnvs: ['BASE'] });
    await rpc('evm_setAutomine', [false]);
    // Someone else with the same key (an old script) sends at the next nonce, then the node
    // forgets it: the manager, which stepped over that nonce, must not wait for it for ever.
    const account = privateKeyToAccount(h.signer.key);
    const wallet = createWalletClient({ account, chain: { ...foundry, id: stack.info.chainId }, transport: http(stack.info.rpcUrl) });
    const nonce = Number(BigInt(await rpc<string>('eth_getTransactionCount', [account.address, 'pending'])));
    const stray = await wallet.sendTransaction({ to: account.address, value: 0n, nonce });

    const { handle } = await startEnvUpdate(h.client, { cvmId: cvm.id, env: { BASE: 'x', [newKey()]: 'y' } }, { taskQueue: h.taskQueue });
    const sent = await waitFor('the registration to be sent', async () => (await getEnvUpdateStatus(h.client, cvm.id)).sentTransactions[0]);
    assert.equal(sent.nonce, nonce + 1, 'the manager stepped over the nonce held by the other sender');
    await rpc('anvil_dropTransaction', [stray as Hex]);

    // Blocks come, but nothing of ours can be mined until the gap is filled.
    await rpc('evm_setAutomine', [true]);
    const stopMiner = startMiner();
    try {
      const result = await awaitEnvUpdate(handle);
      assert.equal(result.applied, true);
      const m = await managerOf(h);
      assert.ok(m.stats.filled >= 1, `the gap was filled: ${JSON.stringify(m.stats)}`);
      assert.deepEqual(await registrationsOf(stack.info.rpcUrl, cvm.appId, result.composeHash!), [result.transactionHash]);
    } finally {
      await stopMiner();
    }
  });
});
