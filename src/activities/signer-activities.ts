// Activities of the per-signer transaction manager. Each is stateless: the manager
// workflow holds every nonce, signed byte and receipt in its own (durable) state.
import { ApplicationFailure, Context, heartbeat, sleep } from '@temporalio/activity';
import type { Hex, LocalAccount, PublicClient } from 'viem';
import { estimateFeesPerGas, getTransactionCount, readContract } from 'viem/actions';
import { broadcastTransaction, bumpFees, dstackAppAbi, normalizeComposeHash, signTransaction } from '../chain/index.ts';
import { chainCall } from './chain-activities.ts';
import { latestBlock, observeSigner } from '../chain/observe-signer.ts';
import type { ChainSettings } from '../config.ts';
import { FAILURE } from '../failure-types.ts';
import {
  registerSignal,
  signerWorkflowId,
  SIGNER_WORKFLOW_TYPE,
  type RegistrationRequest,
  type SignerManagerInput,
} from '../workflows/signer-manager/definitions.ts';
import type {
  BroadcastOutcome,
  NewRegistrationResult,
  ObserveSignerInput,
  ReplacementResult,
  SignerObservationResult,
  SignerSettings,
  SignedTx,
  TxPayload,
} from './types.ts';

export interface SignerActivityDeps {
  chains: ReadonlyMap<number, ChainSettings>;
  signer?: LocalAccount;
  /** How often the watcher looks for a new block; default 250 ms. */
  signerPollIntervalMs?: number;
}

const SELF_SEND_GAS = '21000';

export function createSignerActivities(deps: SignerActivityDeps, clientFor: (chainId: number) => PublicClient) {
  const pollMs = deps.signerPollIntervalMs ?? 250;

  const settingsFor = (chainId: number): ChainSettings => {
    const s = deps.chains.get(chainId);
    if (!s)
      throw ApplicationFailure.nonRetryable(
        `no RPC configured for chain ${chainId}; set CHAIN_RPC_URLS on the worker`,
        FAILURE.ChainNotConfigured,
      );
    return s;
  };
  /** The worker's key, and only if it is the key the manager was started for. */
  const accountFor = (signer: string): LocalAccount => {
    if (!deps.signer) throw ApplicationFailure.nonRetryable('this worker has no signer key (SIGNER_PRIVATE_KEY)', FAILURE.NoSigner);
    if (deps.signer.address.toLowerCase() !== signer.toLowerCase()) {
      throw ApplicationFailure.nonRetryable(
        `this worker signs as ${deps.signer.address}, not as ${signer}: workers of one task queue must share the signer key`,
        FAILURE.SignerMismatch,
      );
    }
    return deps.signer;
  };
  const cappedAt = (settings: ChainSettings) => (settings.maxFeePerGasWei !== undefined ? BigInt(settings.maxFeePerGasWei) : undefined);

  const suggestedFees = async (client: PublicClient) =>
    chainCall(() => estimateFeesPerGas(client, { type: 'eip1559', chain: client.chain ?? null }));

  const sign = (
    client: PublicClient,
    account: LocalAccount,
    chainId: number,
    nonce: number,
    payload: TxPayload,
    fees: { maxFeePerGas: bigint | string; maxPriorityFeePerGas: bigint | string },
    gas?: string,
  ) =>
    chainCall(() =>
      signTransaction(client, {
        account,
        chainId,
        nonce,
        fees,
        ...(payload.kind === 'register'
          ? { to: payload.appId as Hex, composeHash: payload.composeHash }
          : { to: account.address, data: '0x' as Hex, gas: SELF_SEND_GAS }),
        ...(gas !== undefined && payload.kind === 'register' ? { gas } : {}),
      }),
    ).then((s): SignedTx => ({
      hash: s.hash,
      raw: s.raw,
      nonce: s.nonce,
      from: s.from,
      to: s.to,
      chainId: s.chainId,
      gas: s.gas,
      maxFeePerGas: s.maxFeePerGas,
      maxPriorityFeePerGas: s.maxPriorityFeePerGas,
    }));

  return {
    async signerSettings(a: { chainId: number; signer: string }): Promise<SignerSettings> {
      const s = settingsFor(a.chainId);
      accountFor(a.signer);
      return {
        chainId: a.chainId,
        confirmations: s.confirmations,
        stallMs: s.stallMs,
        ...(s.maxFeePerGasWei !== undefined ? { maxFeePerGasWei: s.maxFeePerGasWei } : {}),
      };
    },

    /**
     * Signs new registrations at consecutive nonces from max(the manager's next nonce, the
     * node's pending count): a transaction of this key sent from elsewhere is stepped over,
     * not collided with. A hash already allowed on chain takes no nonce.
     */
    async signNewRegistrations(a: {
      chainId: number;
      signer: string;
      nextNonce: number;
      registrations: { appId: string; composeHash: string }[];
    }): Promise<{ results: NewRegistrationResult[]; nextNonce: number }> {
      const settings = settingsFor(a.chainId);
      const account = accountFor(a.signer);
      const client = clientFor(a.chainId);
      const pendingCount = await chainCall(() => getTransactionCount(client, { address: account.address, blockTag: 'pending' }));
      let nonce = Math.max(a.nextNonce, pendingCount);
      const suggested = await suggestedFees(client);
      const cap = cappedAt(settings);
      const fees =
        cap !== undefined && suggested.maxFeePerGas > cap
          ? { maxFeePerGas: cap, maxPriorityFeePerGas: suggested.maxPriorityFeePerGas > cap ? cap : suggested.maxPriorityFeePerGas }
          : suggested;
      const results: NewRegistrationResult[] = [];
      for (const r of a.registrations) {
        const allowed = await chainCall(() =>
          readContract(client, {
            address: r.appId as Hex,
            abi: dstackAppAbi,
            functionName: 'allowedComposeHashes',
            args: [normalizeComposeHash(r.composeHash)],
          }),
        );
        if (allowed) {
          results.push({ appId: r.appId, composeHash: r.composeHash, outcome: 'already_allowed' });
          continue;
        }
        try {
          const signed = await sign(
            client,
            account,
            a.chainId,
            nonce,
            { kind: 'register', appId: r.appId, composeHash: r.composeHash },
            fees,
          );
          results.push({ appId: r.appId, composeHash: r.composeHash, outcome: 'signed', signed });
          nonce += 1;
        } catch (err) {
          // A registration that would revert (the key no longer owns the app) takes no nonce
          // and fails alone; an RPC outage fails the batch, to be retried whole.
          if (err instanceof ApplicationFailure && err.type === FAILURE.Chain_WOULD_REVERT) {
            results.push({ appId: r.appId, composeHash: r.composeHash, outcome: 'rejected', reason: err.message });
            continue;
          }
          throw err;
        }
        heartbeat({ signed: results.length });
      }
      return { results, nextNonce: nonce };
    },

    /**
     * A new signing for a nonce we already hold: both fees at least 10% over the previous
     * signing and never under the node's suggestion, the gas of the registration kept. At the
     * operator's fee cap it signs nothing and says so.
     */
    async signReplacement(a: {
      chainId: number;
      signer: string;
      nonce: number;
      payload: TxPayload;
      /** Absent for the first signing of a gap fill. */
      previous?: { maxFeePerGas: string; maxPriorityFeePerGas: string; gas: string };
    }): Promise<ReplacementResult> {
      const settings = settingsFor(a.chainId);
      const account = accountFor(a.signer);
      const client = clientFor(a.chainId);
      const suggested = await suggestedFees(client);
      // A gap fill may meet someone else's transaction in the pool: it bids like a replacement.
      const fees = bumpFees(a.previous ?? suggested, { suggested });
      const cap = cappedAt(settings);
      if (cap !== undefined && BigInt(fees.maxFeePerGas) > cap) {
        return { outcome: 'at_cap', capWei: cap.toString(), wantedWei: fees.maxFeePerGas };
      }
      const gas = a.payload.kind === 'register' ? a.previous?.gas : undefined;
      return { outcome: 'signed', signed: await sign(client, account, a.chainId, a.nonce, a.payload, fees, gas) };
    },

    async broadcastTransactions(a: { chainId: number; raws: string[] }): Promise<BroadcastOutcome[]> {
      const client = clientFor(a.chainId);
      return Promise.all(
        a.raws.map(async (raw): Promise<BroadcastOutcome> => {
          const res = await chainCall(() => broadcastTransaction(client, { raw: raw as Hex }));
          if (res.outcome === 'accepted') return { result: 'sent' };
          if (res.outcome === 'maybe-ours') return { result: 'known' };
          if (res.reason === 'fee-too-low') return { result: 'underpriced' };
          return { result: 'rejected', reason: `${res.reason} (${res.nodeMessage.slice(0, 200)})` };
        }),
      );
    },

    /**
     * Waits for a block after `afterBlock` (at most maxWaitMs), then looks at every nonce and
     * mined transaction of the signer at once: one activity per block, however many are in flight.
     */
    async observeSignerTransactions(a: ObserveSignerInput): Promise<SignerObservationResult> {
      const client = clientFor(a.chainId);
      const deadline = Date.now() + a.maxWaitMs;
      const cancelled = () => Context.current().cancellationSignal.aborted;
      if (a.afterBlock !== undefined) {
        while ((await chainCall(() => latestBlock(client))) <= a.afterBlock && Date.now() + pollMs < deadline && !cancelled()) {
          await sleep(pollMs);
        }
      }
      return chainCall(() =>
        observeSigner(client, {
          from: a.from as Hex,
          pending: a.pending.map((p) => ({ nonce: p.nonce, hashes: p.hashes as Hex[] })),
          mined: a.mined.map((m) => ({ ...m, hash: m.hash as Hex, blockHash: m.blockHash as Hex })),
        }),
      );
    },

    /**
     * Hands a registration to the signer's manager, starting it if it is not running.
     * Asking twice is harmless: the manager keys requests by requestId.
     */
    async requestRegistration(a: {
      chainId: number;
      signer: string;
      request: RegistrationRequest;
    }): Promise<{ managerWorkflowId: string }> {
      const ctx = Context.current();
      const workflowId = signerWorkflowId(a.chainId, a.signer);
      const input: SignerManagerInput = { chainId: a.chainId, signer: a.signer.toLowerCase() };
      await ctx.client.workflow.signalWithStart(SIGNER_WORKFLOW_TYPE, {
        workflowId,
        taskQueue: ctx.info.taskQueue,
        args: [input],
        signal: registerSignal,
        signalArgs: [a.request],
      });
      return { managerWorkflowId: workflowId };
    },
  };
}
