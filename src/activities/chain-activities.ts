import { ApplicationFailure, heartbeat, sleep, Context } from '@temporalio/activity';
import type { Hex, LocalAccount, PublicClient } from 'viem';
import {
  broadcastTransaction,
  ChainError,
  checkConfirmations as checkConfirmationsOnce,
  createChainClients,
  findRegistration,
  observeNonce,
  preflight,
  replacementFees,
  signTransaction,
  verifyRegistration as verifyRegistrationTx,
} from '../chain/index.ts';
import type { ChainSettings } from '../config.ts';
import { chainFailureType, FAILURE, type NonRetryableChainErrorCode } from '../failure-types.ts';
import { progress } from './heartbeat.ts';
import type { ChainPreflight, ConfirmationCheck, MinedTx, RegistrationVerification, SignedTx, TxObservation } from './types.ts';

export interface ChainActivityDeps {
  chains: ReadonlyMap<number, ChainSettings>;
  /** Absent: this worker cannot register hashes; every registration waits for an operator. */
  signer?: LocalAccount;
  /** How far back to look for an earlier ComposeHashAdded when a hash is already allowed. */
  registrationLookbackBlocks?: number;
  /** Poll interval of the mining and confirmation watchers. */
  chainPollIntervalMs?: number;
}

/** A chain error Temporal should not retry becomes a typed, non-retryable failure. */
function chainFailure(err: unknown): unknown {
  if (err instanceof ChainError && !err.retryable)
    return ApplicationFailure.nonRetryable(err.message, chainFailureType(err.code as NonRetryableChainErrorCode));
  return err;
}

export async function chainCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw chainFailure(err);
  }
}

/** One viem client per chain, made on first use. */
export function chainClientCache(deps: ChainActivityDeps): (chainId: number) => PublicClient {
  const clients = new Map<number, PublicClient>();
  return (chainId) => {
    let client = clients.get(chainId);
    if (!client) {
      const settings = deps.chains.get(chainId);
      if (!settings) {
        throw ApplicationFailure.nonRetryable(
          `no RPC configured for chain ${chainId}; set CHAIN_RPC_URLS (e.g. "${chainId}=https://…") on the worker`,
          FAILURE.ChainNotConfigured,
        );
      }
      client = createChainClients({ chainId, rpcUrl: settings.rpcUrl, pollingIntervalMs: deps.chainPollIntervalMs ?? 1000 }).publicClient;
      clients.set(chainId, client);
    }
    return client;
  };
}

export function createChainActivities(deps: ChainActivityDeps, clientFor: (chainId: number) => PublicClient = chainClientCache(deps)) {
  const pollMs = deps.chainPollIntervalMs ?? 1000;

  const settingsFor = (chainId: number): ChainSettings => {
    const s = deps.chains.get(chainId);
    if (!s) {
      throw ApplicationFailure.nonRetryable(
        `no RPC configured for chain ${chainId}; set CHAIN_RPC_URLS (e.g. "${chainId}=https://…") on the worker`,
        FAILURE.ChainNotConfigured,
      );
    }
    return s;
  };
  const signer = (): LocalAccount => {
    if (!deps.signer) throw ApplicationFailure.nonRetryable('this worker has no signer key (SIGNER_PRIVATE_KEY)', FAILURE.NoSigner);
    return deps.signer;
  };
  const cancelled = () => Context.current().cancellationSignal.aborted;

  return {
    async chainPreflight(a: { chainId: number; appId: string; composeHash: string }): Promise<ChainPreflight> {
      const settings = settingsFor(a.chainId);
      const client = clientFor(a.chainId);
      const pre = await chainCall(() =>
        preflight(client, { expectedChainId: a.chainId, app: a.appId as Hex, composeHash: a.composeHash, signer: deps.signer?.address }),
      );
      if (!pre.ok) throw ApplicationFailure.nonRetryable(pre.message, FAILURE.ChainMismatch);
      let existing: MinedTx | undefined;
      if (pre.composeHashAllowed) {
        const lookback = deps.registrationLookbackBlocks ?? 50_000;
        const found = await chainCall(() =>
          findRegistration(client, {
            app: a.appId as Hex,
            composeHash: a.composeHash,
            fromBlock: Math.max(0, pre.blockNumber - lookback),
            toBlock: pre.blockNumber,
            // Also a local activity (the update's quick reads): no heartbeat there.
            onProgress: (p) => progress(p),
            onBackoff: (b) => progress({ rateLimited: b }),
          }),
        );
        // Not found within the window: registering again is harmless (the contract accepts it).
        if (found.found) existing = { hash: found.txHash, blockNumber: found.blockNumber, blockHash: found.blockHash };
      }
      return {
        chainId: a.chainId,
        rpcChainId: pre.chainId,
        signer: pre.signer ?? '',
        owner: pre.owner,
        signerIsOwner: pre.signerIsOwner,
        alreadyAllowed: pre.composeHashAllowed,
        existing,
        blockNumber: pre.blockNumber,
        confirmations: settings.confirmations,
        stallMs: settings.stallMs,
      };
    },

    async signRegistration(a: {
      chainId: number;
      appId: string;
      composeHash: string;
      nonce?: number;
      /** gas is absent in histories recorded before replacements kept it. */
      replacing?: { maxFeePerGas: string; maxPriorityFeePerGas: string; gas?: string };
    }): Promise<SignedTx> {
      const client = clientFor(a.chainId);
      const fees = a.replacing ? await chainCall(() => replacementFees(client, a.replacing!)) : undefined;
      const signed = await chainCall(() =>
        signTransaction(client, {
          account: signer(),
          chainId: a.chainId,
          to: a.appId as Hex,
          composeHash: a.composeHash,
          nonce: a.nonce ?? 'pending',
          ...(fees ? { fees } : {}),
          // Not estimated again: nodes that estimate against the pending block (anvil) run
          // it after our own pooled original, which has already allowed the hash, and
          // answer ~22k gas short; the replacement would then revert out of gas.
          ...(a.replacing?.gas ? { gas: a.replacing.gas } : {}),
        }),
      );
      return {
        hash: signed.hash,
        raw: signed.raw,
        nonce: signed.nonce,
        from: signed.from,
        to: signed.to,
        chainId: signed.chainId,
        gas: signed.gas,
        maxFeePerGas: signed.maxFeePerGas,
        maxPriorityFeePerGas: signed.maxPriorityFeePerGas,
      };
    },

    async broadcastTransaction(a: { chainId: number; raw: string }): Promise<{ result: 'sent' | 'known' | 'underpriced' }> {
      const res = await chainCall(() => broadcastTransaction(clientFor(a.chainId), { raw: a.raw as Hex }));
      if (res.outcome === 'accepted') return { result: 'sent' };
      if (res.outcome === 'maybe-ours') return { result: 'known' };
      // The base fee outran our cap: only a replacement with higher fees can get in.
      if (res.reason === 'fee-too-low') return { result: 'underpriced' };
      throw ApplicationFailure.nonRetryable(
        `the node refused transaction ${res.hash}: ${res.reason} (${res.nodeMessage})`,
        FAILURE.BroadcastRejected,
      );
    },

    async observeTransactions(a: {
      chainId: number;
      from: string;
      nonce: number;
      hashes: string[];
      maxWaitMs: number;
    }): Promise<TxObservation> {
      const client = clientFor(a.chainId);
      const deadline = Date.now() + a.maxWaitMs;
      for (;;) {
        const seen = await chainCall(() => observeNonce(client, { from: a.from as Hex, nonce: a.nonce, hashes: a.hashes as Hex[] }));
        switch (seen.state) {
          case 'mined':
            return {
              state: 'mined',
              success: seen.status === 'success',
              hash: seen.hash,
              blockNumber: seen.blockNumber,
              blockHash: seen.blockHash,
            };
          case 'consumed':
            return { state: 'nonce_consumed', accountNonce: seen.accountNonce };
          case 'dropped':
            return { state: 'dropped' };
          case 'pending':
            heartbeat({ pending: seen.pendingHashes, block: seen.observedAtBlock });
        }
        if (Date.now() + pollMs > deadline || cancelled()) return { state: 'pending' };
        await sleep(pollMs);
      }
    },

    async checkConfirmations(a: { chainId: number; tx: MinedTx; confirmations: number; maxWaitMs: number }): Promise<ConfirmationCheck> {
      const client = clientFor(a.chainId);
      const deadline = Date.now() + a.maxWaitMs;
      for (;;) {
        const c = await chainCall(() =>
          checkConfirmationsOnce(client, {
            hash: a.tx.hash as Hex,
            blockNumber: a.tx.blockNumber,
            blockHash: a.tx.blockHash as Hex,
            confirmations: a.confirmations,
          }),
        );
        if (c.state === 'reorged') return { state: 'reorged', detail: c.reason };
        if (c.state === 'confirmed') return { state: 'confirmed', confirmations: c.confirmations };
        heartbeat({ confirmations: c.confirmations });
        if (Date.now() + pollMs > deadline || cancelled()) return { state: 'pending', confirmations: c.confirmations };
        await sleep(pollMs);
      }
    },

    async verifyRegistration(a: {
      chainId: number;
      appId: string;
      composeHash: string;
      transactionHash: string;
    }): Promise<RegistrationVerification> {
      const res = await chainCall(() =>
        verifyRegistrationTx(clientFor(a.chainId), { app: a.appId as Hex, composeHash: a.composeHash, txHash: a.transactionHash }),
      );
      if (res.ok) return { ok: true, hash: res.txHash, blockNumber: res.blockNumber, blockHash: res.blockHash };
      // Not mined yet, or our RPC lags the operator's: worth retrying before judging it.
      if (res.reason === 'tx-pending' || res.reason === 'tx-not-found') {
        throw ApplicationFailure.retryable(`transaction ${a.transactionHash}: ${res.message}`, FAILURE.RegistrationNotMinedYet);
      }
      return { ok: false, reason: res.message };
    },
  };
}
