// Records workflow histories from the current code as replay fixtures
// (test/histories/<version>-<scenario>.json): an on-chain two-phase update, a Phala-KMS
// update, an operator wait (the signer does not own the app; the owner's transaction is
// handed over) and a reorg during confirmations. test/workflow-replay.test.ts replays
// every fixture for good, so a change that would break in-flight workflows fails CI.
//
//   npm run record-histories             # writes fixtures for package.json's version
//   npm run record-histories -- --force  # overwrites them (only before that version ships)
//   npm run record-histories -- --tag local-reads --only onchain,phala-kms
//        # <version>-<tag>-<scenario>.json: a workflow change within one version gets
//        # fixtures of its own beside the ones recorded before it
//
// Fixtures of released versions are never re-recorded: they stand for workflows that
// may still be running somewhere.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { createPublicClient, createWalletClient, http, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { dstackAppAbi } from '../src/chain/dstack-app-abi.ts';
import { anvilRpc } from '../src/dev/anvil.ts';
import {
  awaitEnvUpdate,
  getEnvUpdateStatus,
  getSignerStatus,
  startEnvUpdate,
  useRegistrationTransaction,
  type UpdateStatus,
} from '../src/client.ts';
import { signerWorkflowId } from '../src/workflows/signer-manager/definitions.ts';
import { useStack, type TestStack } from '../test/support/stack.ts';
import { createHarness, type Harness } from '../test/support/update-harness.ts';
import { anvilDriver } from '../test/support/anvil-driver.ts';
import { waitFor } from '../test/support/wait.ts';
import { FIXTURE_PAYLOAD_KEYS, FIXTURE_SECRET_PREFIX } from '../test/histories/fixture-key.ts';

const OUT_DIR = join(import.meta.dirname, '..', 'test', 'histories');
const force = process.argv.includes('--force');
const option = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  if (i < 0) return undefined;
  const value = process.argv[i + 1];
  if (!value || value.startsWith('--')) throw new Error(`${name} needs a value`);
  return value;
};
const tag = option('--tag');
if (tag !== undefined && !/^[a-z0-9][a-z0-9-]*$/.test(tag)) throw new Error(`--tag ${tag}: use lowercase letters, digits and dashes`);
const only = option('--only')?.split(',');
const version = (JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')) as { version: string }).version;
const commit = (() => {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
})();

const secret = () => `${FIXTURE_SECRET_PREFIX}${randomBytes(6).toString('hex')}`;

async function waitForStatus(h: Harness, cvmId: string, pred: (s: UpdateStatus) => boolean, timeoutMs = 60_000): Promise<UpdateStatus> {
  const deadline = Date.now() + timeoutMs;
  let last: UpdateStatus | undefined;
  for (;;) {
    last = await getEnvUpdateStatus(h.client, cvmId).catch(() => last);
    if (last && pred(last)) return last;
    if (Date.now() > deadline) throw new Error(`status never matched; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const startMiner = (rpcUrl: string) => anvilDriver(rpcUrl).startMiner();

type Scenario = (h: Harness, stack: TestStack) => Promise<{ workflowId: string }>;

const scenarios: Record<string, { workerEnv?: Record<string, string>; run: Scenario }> = {
  onchain: {
    async run(h) {
      const cvm = await h.newCvm({ kms: 'onchain', appId: h.appId(true), allowedEnvs: ['BASE'] });
      const { handle } = await startEnvUpdate(
        h.client,
        // With a requestId: the run looks for an earlier run that carried it first.
        { cvmId: cvm.id, env: { BASE: secret(), NEW_KEY: secret() }, requestId: `fixture-${randomBytes(4).toString('hex')}` },
        { taskQueue: h.taskQueue },
      );
      const r = await awaitEnvUpdate(handle);
      if (!r.transactionHash) throw new Error('the on-chain case registered nothing');
      return handle;
    },
  },
  'phala-kms': {
    async run(h) {
      const cvm = await h.newCvm({ kms: 'phala' });
      const { handle } = await startEnvUpdate(h.client, { cvmId: cvm.id, env: { API_TOKEN: secret() } }, { taskQueue: h.taskQueue });
      await awaitEnvUpdate(handle);
      return handle;
    },
  },
  'operator-use-tx': {
    async run(h, stack) {
      const cvm = await h.newCvm({ kms: 'onchain', appId: h.appId(false), allowedEnvs: ['A'] });
      const { handle } = await startEnvUpdate(
        h.client,
        { cvmId: cvm.id, env: { A: secret(), B_NEW: secret() } },
        { taskQueue: h.taskQueue },
      );
      const waiting = await waitForStatus(h, cvm.id, (s) => s.phase === 'awaiting_operator');
      const chain = { ...foundry, id: stack.info.chainId };
      const wallet = createWalletClient({ chain, transport: http(stack.info.rpcUrl), account: privateKeyToAccount(stack.devKeys.other) });
      const client = createPublicClient({ chain, transport: http(stack.info.rpcUrl) });
      const tx = await wallet.writeContract({
        address: cvm.appId as Hex,
        abi: dstackAppAbi,
        functionName: 'addComposeHash',
        args: [`0x${waiting.composeHash}`],
      });
      await client.waitForTransactionReceipt({ hash: tx, pollingInterval: 100 });
      await useRegistrationTransaction(h.client, cvm.id, tx);
      await awaitEnvUpdate(handle);
      return handle;
    },
  },
  // The manager of the signer key, after three updates of two apps at once (two share a hash):
  // one registration per app. The manager runs on, so its history is recorded up to that point.
  'signer-manager': {
    async run(h, stack) {
      const apps = [h.appId(true), h.appId(true), await h.newApp()];
      const cvms = await Promise.all(apps.map((appId) => h.newCvm({ kms: 'onchain', appId, allowedEnvs: ['BASE'] })));
      const started = await Promise.all(
        cvms.map((cvm) =>
          startEnvUpdate(h.client, { cvmId: cvm.id, env: { BASE: secret(), K_FLEET: secret() } }, { taskQueue: h.taskQueue }),
        ),
      );
      await Promise.all(started.map((s) => awaitEnvUpdate(s.handle)));
      const workflowId = signerWorkflowId(stack.info.chainId, h.signer.address);
      await waitFor('every registration done', async () =>
        (await getSignerStatus(h.client, stack.info.chainId, h.signer.address)).registrations.every((r) => r.state === 'done'),
      );
      return { workflowId };
    },
  },
  'reorg-during-confirmations': {
    workerEnv: { CHAIN_CONFIRMATIONS: '31337=4' },
    async run(h, stack) {
      const rpc = <T>(m: string, p: unknown[] = []) => anvilRpc<T>(stack.info.rpcUrl, m, p);
      const cvm = await h.newCvm({ kms: 'onchain', appId: h.appId(true), allowedEnvs: ['BASE'] });
      const { handle } = await startEnvUpdate(
        h.client,
        { cvmId: cvm.id, env: { BASE: secret(), K_REORG: secret() } },
        { taskQueue: h.taskQueue },
      );
      const confirming = await waitForStatus(h, cvm.id, (s) => s.phase === 'confirming' && s.blockNumber !== undefined);
      const head = Number(BigInt(await rpc<string>('eth_blockNumber')));
      await rpc('anvil_reorg', [head - confirming.blockNumber! + 1, []]);
      // The signer's transaction manager notices the reorg and sends the same bytes again.
      await waitFor(
        'every registration done',
        async () => (await getSignerStatus(h.client, stack.info.chainId, h.signer.address)).stats.reorgs >= 1,
      );
      const stopMiner = startMiner(stack.info.rpcUrl);
      try {
        await awaitEnvUpdate(handle);
      } finally {
        await stopMiner();
      }
      return handle;
    },
  },
};

const unknown = only?.filter((name) => !(name in scenarios)) ?? [];
if (unknown.length > 0) throw new Error(`--only: no scenario ${unknown.join(', ')} (there are: ${Object.keys(scenarios).join(', ')})`);

mkdirSync(OUT_DIR, { recursive: true });
// Automine: the reorg case needs a chain that stands still; the others get a miner.
const stack = await useStack({ private: true, blockTime: 0 });
stack.env.PAYLOAD_ENCRYPTION_KEYS = FIXTURE_PAYLOAD_KEYS;
try {
  for (const [name, scenario] of Object.entries(scenarios)) {
    if (only && !only.includes(name)) continue;
    const file = join(OUT_DIR, `${version}-${tag ? `${tag}-` : ''}${name}.json`);
    if (existsSync(file) && !force) {
      console.log(`kept ${file} (pass --force to re-record)`);
      continue;
    }
    const h = await createHarness(stack);
    const stopMiner = name === 'reorg-during-confirmations' ? undefined : startMiner(stack.info.rpcUrl);
    try {
      await h.startWorker({ LOG_LEVEL: 'ERROR', ...scenario.workerEnv });
      const { workflowId } = await scenario.run(h, stack);
      const history = await h.client.workflow.getHandle(workflowId).fetchHistory();
      const fixture = { workflowId, recordedWith: { version, commit, scenario: name }, history: JSON.parse(historyToJSON(history)) };
      writeFileSync(file, `${JSON.stringify(fixture, null, 1)}\n`);
      console.log(`wrote ${file} (${history.events?.length} events)`);
    } finally {
      await stopMiner?.();
      await h.close();
    }
  }
} finally {
  await stack.release();
}
