// The KMS key that vouches for an on-chain CVM's env key is taken from the KMS contract, or
// from a pin in KMS_PUBLIC_KEYS when the worker cannot read that chain; the API's own word is
// used only with KMS_TRUST_API_KEY=true. Each case runs a worker of its own settings on the
// real stack, and a refusal waits for an operator before anything is sent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { DefaultLogger, Runtime, type LogEntry } from '@temporalio/worker';
import { createPublicClient, http, type Hex } from 'viem';
import { abortEnvUpdate, awaitEnvUpdate, startEnvUpdate } from '../src/client.ts';
import { readKmsSigningKey } from '../src/chain/kms-key.ts';
import { kmsPublicKeyFromPrivate } from '../src/phala/kms-signature.ts';
import { createHarness, type Harness } from './support/update-harness.ts';
import { useStack, type TestStack } from './support/stack.ts';
import { waitForStatus } from './support/wait.ts';

// The workers of this file run in this process: their warnings are kept to be asserted on.
const warnings: LogEntry[] = [];
Runtime.install({
  logger: new DefaultLogger('WARN', (entry) => {
    if (entry.level === 'WARN') warnings.push(entry);
    else process.stderr.write(`${entry.level} ${entry.message}\n`);
  }),
});

let stack: TestStack;
/** The stack's DstackKms (lowercase) and the key it publishes in kmsInfo(). */
let kmsAddress: string;
let kmsKey: string;
const wrongKey = kmsPublicKeyFromPrivate(randomBytes(32).toString('hex'));
/** Settings that take the KMS chain away from a worker. */
const NO_RPC = { CHAIN_RPC_URL: '', CHAIN_ID: '', CHAIN_RPC_URLS: '' };

before(async () => {
  stack = await useStack();
  assert.equal(typeof stack.info.kmsAddress, 'string', 'the stack names its KMS contract');
  kmsAddress = (stack.info.kmsAddress as string).toLowerCase();
  const key = await readKmsSigningKey(createPublicClient({ transport: http(stack.info.rpcUrl) }), kmsAddress as Hex);
  assert.ok(key, 'the stack KMS publishes a key');
  kmsKey = key;
});
after(async () => {
  await stack?.release();
});

/** A harness with one worker started with `settings`, for one test. */
async function withWorker(settings: Record<string, string>, body: (h: Harness) => Promise<void>): Promise<void> {
  const h = await createHarness(stack);
  const worker = await h.startWorker(settings);
  try {
    await body(h);
  } finally {
    await worker.stop();
    await h.close();
  }
}

/** Starts an update of an on-chain CVM whose compose already allows the key (no registration needed). */
async function startOnchainUpdate(h: Harness) {
  const cvm = await h.newCvm({ kms: 'onchain', appId: h.appId(true), allowedEnvs: ['A'] });
  const env = { A: `secret-${randomBytes(8).toString('hex')}` };
  const { handle } = await startEnvUpdate(h.client, { cvmId: cvm.id, env }, { taskQueue: h.taskQueue });
  return { cvm, env, handle };
}

/** The update is refused with a message matching `reason`, nothing is sent, and an abort ends it. */
async function assertRefused(h: Harness, reason: RegExp): Promise<void> {
  const { cvm, env, handle } = await startOnchainUpdate(h);
  const waiting = await waitForStatus(h.client, cvm.id, (s) => s.phase === 'awaiting_operator');
  assert.match(waiting.waitingFor ?? '', reason);
  assert.match(waiting.waitingFor ?? '', /the env key is not trusted, nothing was sent/);
  assert.ok(!(waiting.waitingFor ?? '').includes(env.A), 'no env value in the reason');
  assert.equal(waiting.attempts.phase1, undefined, 'nothing was submitted');
  await abortEnvUpdate(h.client, cvm.id, 'KMS key not trusted');
  await assert.rejects(awaitEnvUpdate(handle));
  assert.deepEqual((await h.sim.appliedEnv(cvm.id)).env, {});
}

async function assertCompletes(h: Harness): Promise<void> {
  const { cvm, env, handle } = await startOnchainUpdate(h);
  const result = await awaitEnvUpdate(handle);
  assert.equal(result.applied, true);
  assert.deepEqual((await h.sim.appliedEnv(cvm.id)).env, env);
}

test('no RPC for the KMS chain and no pin: refused, naming what to configure', async () => {
  await withWorker(NO_RPC, async (h) => {
    await assertRefused(
      h,
      new RegExp(
        `key cannot be checked \\(the worker has no RPC for chain ${stack.info.chainId}\\): set CHAIN_RPC_URLS for chain ${stack.info.chainId}, ` +
          `or KMS_PUBLIC_KEYS=${stack.info.chainId}=0x… \\(or ${kmsAddress}=0x…\\), or KMS_TRUST_API_KEY=true`,
      ),
    );
  });
});

test('no RPC for the KMS chain, the key pinned by KMS contract: completes', async () => {
  await withWorker({ ...NO_RPC, KMS_PUBLIC_KEYS: `${kmsAddress}=${kmsKey}` }, assertCompletes);
});

test('no RPC for the KMS chain, the key pinned by chain id: completes', async () => {
  await withWorker({ ...NO_RPC, KMS_PUBLIC_KEYS: `${stack.info.chainId}=${kmsKey}` }, assertCompletes);
});

test('no RPC for the KMS chain and a wrong pin: refused', async () => {
  await withWorker({ ...NO_RPC, KMS_PUBLIC_KEYS: `${stack.info.chainId}=${wrongKey}` }, async (h) => {
    await assertRefused(
      h,
      new RegExp(
        `the API's key for KMS .* differs from the KMS_PUBLIC_KEYS pin ${stack.info.chainId}=… ` +
          `\\(the worker has no RPC for chain ${stack.info.chainId}\\)`,
      ),
    );
  });
});

test('no RPC for the KMS chain, no pin, KMS_TRUST_API_KEY=true: completes with a warning', async () => {
  const before = warnings.length;
  await withWorker({ ...NO_RPC, KMS_TRUST_API_KEY: 'true' }, assertCompletes);
  const warned = warnings.slice(before).filter((w) => /KMS_TRUST_API_KEY=true: the API-served key is trusted as served/.test(w.message));
  assert.equal(warned.length, 1, JSON.stringify(warnings.slice(before).map((w) => w.message)));
  assert.equal(warned[0]!.meta?.reason, `the worker has no RPC for chain ${stack.info.chainId}`);
  assert.equal(warned[0]!.meta?.kmsContract, kmsAddress);
});

test('the contract readable and a pin that disagrees with it: refused, even though the API agrees with the contract', async () => {
  await withWorker({ KMS_PUBLIC_KEYS: `${kmsAddress}=${wrongKey}`, KMS_TRUST_API_KEY: 'true' }, async (h) => {
    await assertRefused(
      h,
      new RegExp(
        `the KMS_PUBLIC_KEYS pin ${kmsAddress}=… disagrees with the key of the KMS contract on chain ${stack.info.chainId} ` +
          `\\(${kmsKey}\\): correct or remove the pin`,
      ),
    );
  });
});

test('the contract readable and a pin that agrees: completes', async () => {
  await withWorker({ KMS_PUBLIC_KEYS: `${stack.info.chainId}=${kmsKey}` }, assertCompletes);
});
