/**
 * Phase-2 proof checks against the chain, over plain JSON-RPC, the way the backend must do them:
 * the transaction exists, succeeded, went to the app contract and emitted ComposeHashAdded for
 * exactly this hash (→ 467 otherwise), and the contract allows the hash now (→ 468 otherwise).
 * RPC failures are not verdicts: they surface as ChainRpcError (the service's 500).
 */
import { createPublicClient, http, parseEventLogs, TransactionReceiptNotFoundError, type Hex, type PublicClient } from 'viem';
import { dstackAppAbi } from '../chain/dstack-app-abi.ts';

export type RegistrationVerdict = { ok: true; blockNumber: bigint } | { ok: false; status: 467 | 468; reason: string };

export class ChainRpcError extends Error {
  override readonly name = 'ChainRpcError';
}

export interface ChainVerifierOptions {
  rpcUrl: string;
  timeoutMs?: number;
}

export interface VerifyArgs {
  appId: string;
  composeHash: string;
  txHash: string;
  /** Blocks, counting the receipt's own, before a receipt counts as found. */
  requiredConfirmations: number;
  /** When false, the tx may target another contract (e.g. a multisig) if the app emitted the event. */
  txMustTargetApp: boolean;
}

export class ChainVerifier {
  readonly #client: PublicClient;

  constructor(opts: ChainVerifierOptions) {
    this.#client = createPublicClient({ transport: http(opts.rpcUrl, { retryCount: 0, timeout: opts.timeoutMs ?? 10_000 }) });
  }

  async verify(args: VerifyArgs): Promise<RegistrationVerdict> {
    const app = `0x${args.appId}`.toLowerCase();
    const hash = `0x${args.composeHash}`.toLowerCase() as Hex;
    const txHash = args.txHash as Hex;
    const required = args.requiredConfirmations;

    let receipt;
    try {
      receipt = await this.#client.getTransactionReceipt({ hash: txHash });
    } catch (err) {
      if (err instanceof TransactionReceiptNotFoundError) {
        return { ok: false, status: 467, reason: 'transaction receipt not found (not mined yet, or unknown to our RPC node)' };
      }
      throw new ChainRpcError(`could not fetch the transaction receipt: ${shortRpcMessage(err)}`);
    }
    if (required > 1) {
      let head: bigint;
      try {
        head = await this.#client.getBlockNumber({ cacheTime: 0 });
      } catch (err) {
        throw new ChainRpcError(`could not read the block number: ${shortRpcMessage(err)}`);
      }
      const confirmations = head - receipt.blockNumber + 1n;
      if (confirmations < BigInt(required)) {
        return { ok: false, status: 467, reason: `transaction has ${confirmations} confirmation(s); ${required} required` };
      }
    }
    if (receipt.status !== 'success') return { ok: false, status: 467, reason: 'transaction reverted' };
    if (args.txMustTargetApp && receipt.to?.toLowerCase() !== app) {
      return { ok: false, status: 467, reason: 'transaction was not sent to the app contract' };
    }
    const events = parseEventLogs({ abi: dstackAppAbi, eventName: 'ComposeHashAdded', logs: receipt.logs, strict: true });
    const registered = events.some((e) => e.address.toLowerCase() === app && e.args.composeHash.toLowerCase() === hash);
    if (!registered) {
      return { ok: false, status: 467, reason: 'transaction has no ComposeHashAdded event of the app contract for this compose hash' };
    }

    let allowed: boolean;
    try {
      allowed = await this.#client.readContract({
        address: app as Hex,
        abi: dstackAppAbi,
        functionName: 'allowedComposeHashes',
        args: [hash],
      });
    } catch (err) {
      throw new ChainRpcError(`could not read allowedComposeHashes: ${shortRpcMessage(err)}`);
    }
    if (!allowed) return { ok: false, status: 468, reason: 'the app contract does not allow this compose hash' };
    return { ok: true, blockNumber: receipt.blockNumber };
  }
}

/**
 * What kind of account owns an app, as GET /apps/{id}/kms-info reports it: no code is an EOA, a
 * contract answering getThreshold() a Safe, any other contract just a contract.
 */
export async function classifyOwner(rpcUrl: string, owner: string): Promise<'eoa' | 'safe' | 'contract'> {
  const client = createPublicClient({ transport: http(rpcUrl, { retryCount: 0, timeout: 10_000 }) });
  const address = owner as Hex;
  try {
    const code = await client.getCode({ address });
    if (!code || code === '0x') return 'eoa';
  } catch (err) {
    throw new ChainRpcError(`could not read the owner's code: ${shortRpcMessage(err)}`);
  }
  try {
    await client.readContract({ address, abi: SAFE_THRESHOLD_ABI, functionName: 'getThreshold' });
    return 'safe';
  } catch {
    return 'contract';
  }
}

const SAFE_THRESHOLD_ABI = [
  { type: 'function', name: 'getThreshold', stateMutability: 'view', inputs: [], outputs: [{ name: '', type: 'uint256' }] },
] as const;

/** owner() of an app contract; used when a test registers an app the seed did not know. */
export async function readAppOwner(rpcUrl: string, appId: string): Promise<string> {
  const client = createPublicClient({ transport: http(rpcUrl, { retryCount: 0, timeout: 10_000 }) });
  try {
    return await client.readContract({ address: `0x${appId}` as Hex, abi: dstackAppAbi, functionName: 'owner' });
  } catch (err) {
    throw new ChainRpcError(`could not read owner() of the app contract: ${shortRpcMessage(err)}`);
  }
}

function shortRpcMessage(err: unknown): string {
  const msg = err instanceof Error ? ((err as { shortMessage?: string }).shortMessage ?? err.message) : String(err);
  return msg.split('\n')[0]!.slice(0, 200);
}
