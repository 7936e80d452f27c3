// The baseline: what a backend writes without this service — the official @phala/cloud SDK's
// inline two-phase flow with viem for the registration, every update concurrently in one
// process, one signer key. Runs in a process of its own (baseline-process.ts) so its peak
// memory is measured like the worker's.
import { createClient, encryptEnvVars, updateCvmEnvs, verifyEnvEncryptPublicKey } from '@phala/cloud';
import { createPublicClient, createWalletClient, getAddress, http, nonceManager, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { dstackAppAbi } from '../../src/chain/dstack-app-abi.ts';
import { applyPollDelayMs } from '../../src/activities/phala-activities.ts';
import type { EnvVar } from '../../src/workflows/definitions.ts';

export interface BaselineUpdate {
  cvmId: string;
  env: EnvVar[];
  envKeys: string[];
}

export interface BaselineSetup {
  apiUrl: string;
  apiKey: string;
  rpcUrl: string;
  chainId: number;
  blockTimeMs: number;
  /** Blocks the registration must have before phase 2: the same depth the service waits for. */
  confirmations: number;
}

export interface BaselineOutcome {
  cvmId: string;
  ok: boolean;
  /** From the flow's start (the common start, for a batch) to the CVM running the new env. */
  ms: number;
  /** Registration transactions this update signed. */
  signed: number;
  error?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const statusOf = (err: unknown): number | undefined => {
  const s = (err as { status?: unknown } | null)?.status;
  return typeof s === 'number' ? s : undefined;
};

type RetryOn = (status: number | undefined) => boolean;

/** 409 (another operation), 429 and 5xx; and no status at all: the request never got an answer (timeout, reset). */
const TRANSIENT: RetryOn = (s) => s === undefined || s === 409 || s === 429 || s >= 500;

/**
 * What a careful backend does with the API's transient answers: retried with backoff, six
 * attempts in all. Anything else fails the update, with the status in the message.
 */
async function withRetries<T>(what: string, fn: () => Promise<T>, retryOn: RetryOn = TRANSIENT): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const status = statusOf(err);
      if (attempt >= 6 || !retryOn(status)) {
        throw new Error(`${what}: ${status ?? 'no answer'} after ${attempt} attempt(s): ${(err as Error).message}`);
      }
      await sleep(Math.min(4000, 250 * 2 ** attempt));
    }
  }
}

/** One client per backend process: the SDK client, viem clients and the signer account are shared by every update. */
export function createBaselineBackend(setup: BaselineSetup, signerKey: Hex) {
  const sdk = createClient({ apiKey: setup.apiKey, baseURL: setup.apiUrl });
  // viem's pollingInterval default is half the chain's block time when the chain says it.
  const chain = { ...foundry, id: setup.chainId, blockTime: setup.blockTimeMs };
  const transport = http(setup.rpcUrl);
  const publicClient = createPublicClient({ chain, transport });
  // nonceManager: every update signs with the same key at the same moment. Without it each
  // writeContract asks the node for the pending nonce, concurrent calls get the same one, and
  // all but one fail with "nonce too low" / "replacement underpriced". viem's nonceManager hands
  // out consecutive nonces inside this process — which is all one backend process needs (it
  // does not coordinate two processes sharing a key, nor recover a nonce whose tx was dropped).
  const account = privateKeyToAccount(signerKey, { nonceManager });
  const wallet = createWalletClient({ chain, transport, account });
  let kmsSlug: Promise<string> | undefined;

  async function update(u: BaselineUpdate, startedAt: number): Promise<BaselineOutcome> {
    let signed = 0;
    try {
      const cvm = await withRetries('getCvmInfo', () => sdk.getCvmInfo({ id: u.cvmId }));
      if (!cvm.app_id || cvm.kms_info?.chain_id !== setup.chainId)
        throw new Error(`CVM ${u.cvmId} is not an on-chain KMS CVM of chain ${setup.chainId}`);
      // The KMS list does not change during a run: fetched once for all updates.
      kmsSlug ??= withRetries('getKmsList', () => sdk.getKmsList()).then((list) => {
        const kms = list.items.find(
          (k) => k.chain_id === setup.chainId && k.kms_contract_address?.toLowerCase() === cvm.kms_info?.dstack_kms_address?.toLowerCase(),
        );
        if (!kms?.slug) throw new Error(`no KMS listed for chain ${setup.chainId}`);
        return kms.slug;
      });
      const pub = await withRetries('getAppEnvEncryptPubKey', async () =>
        sdk.getAppEnvEncryptPubKey({ kms: await kmsSlug!, app_id: cvm.app_id! }),
      );
      const hex = (h: string) => Uint8Array.from(Buffer.from(h.replace(/^0x/, ''), 'hex'));
      if (!verifyEnvEncryptPublicKey(hex(pub.public_key), hex(pub.signature), cvm.app_id))
        throw new Error('the env key is not signed by the KMS');
      const encrypted = await encryptEnvVars(u.env, pub.public_key);

      const first = await withRetries('phase 1', () => updateCvmEnvs(sdk, { id: u.cvmId, encrypted_env: encrypted, env_keys: u.envKeys }));
      if (first.status !== 'precondition_required')
        throw new Error(`phase 1 answered ${first.status}, not the registration request the new key needs`);
      const composeHash = `0x${first.compose_hash.replace(/^0x/, '')}` as Hex;
      const appAddress = getAddress(`0x${first.app_id.replace(/^0x/, '')}`);

      signed++;
      const txHash = await wallet.writeContract({
        address: appAddress,
        abi: dstackAppAbi,
        functionName: 'addComposeHash',
        args: [composeHash],
      });
      const receipt = await publicClient.waitForTransactionReceipt({ hash: txHash, confirmations: setup.confirmations, timeout: 120_000 });
      if (receipt.status !== 'success') throw new Error('addComposeHash reverted');

      const second = await withRetries(
        'phase 2',
        () =>
          updateCvmEnvs(sdk, {
            id: u.cvmId,
            encrypted_env: encrypted,
            env_keys: u.envKeys,
            compose_hash: first.compose_hash,
            transaction_hash: txHash,
          }),
        // 467: the API's RPC has not seen the transaction yet. Not a request that got no answer:
        // it may have been accepted, and a second one would start a second operation.
        (s) => s === 467 || s === 409 || s === 429 || (s !== undefined && s >= 500),
      );
      if (second.status !== 'in_progress') throw new Error(`phase 2 answered ${second.status}`);

      // Until the CVM runs it: the same adaptive polling as the service, so only the registration path differs.
      const watchStart = performance.now();
      for (;;) {
        const now = await withRetries('getCvmInfo', () => sdk.getCvmInfo({ id: u.cvmId }));
        if (now.progress?.correlation_id !== second.correlation_id) break;
        if (performance.now() - watchStart > 300_000) throw new Error('not applied within 300 s');
        await sleep(applyPollDelayMs(performance.now() - watchStart, 1000));
      }
      return { cvmId: u.cvmId, ok: true, ms: performance.now() - startedAt, signed };
    } catch (err) {
      return {
        cvmId: u.cvmId,
        ok: false,
        ms: performance.now() - startedAt,
        signed,
        error: (err as Error).message.split('\n')[0]!.slice(0, 300),
      };
    }
  }

  return { update };
}
