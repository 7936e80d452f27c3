import {
  BaseError,
  decodeErrorResult,
  encodeFunctionData,
  keccak256,
  recoverTransactionAddress,
  type Address,
  type Client,
  type Hex,
  type LocalAccount,
} from 'viem';
import { estimateFeesPerGas, estimateGas, getTransactionCount } from 'viem/actions';
import { dstackAppAbi, dstackAppErrorsAbi } from './dstack-app-abi.ts';
import { ChainError, toChainError, withChainErrors } from './errors.ts';
import { normalizeComposeHash, parseAddress, parseNonce, parseWei } from './inputs.ts';

/** Fees as they cross the history boundary: decimal strings of wei. */
export interface FeesInput {
  maxFeePerGas: string | bigint;
  maxPriorityFeePerGas: string | bigint;
}

export interface SignTransactionParams {
  account: LocalAccount;
  chainId: number;
  to: Address;
  /** Builds `addComposeHash(composeHash)` calldata. Give this or `data`, not both. */
  composeHash?: string;
  /** Raw calldata; `'0x'` with `to` = the signer makes the 0-value self-send that fills a nonce. */
  data?: Hex;
  /**
   * An explicit nonce (a re-sign or replacement keeps the recorded one), or 'pending' to
   * take the node's next nonce for the account. 'pending' races between workers by design:
   * observeNonce reports 'consumed' for the loser, who re-signs.
   */
  nonce: number | 'pending';
  /** Omitted: the node's suggestion (estimateFeesPerGas). */
  fees?: FeesInput;
  /** Omitted: eth_estimateGas plus `gasMarginPercent`. */
  gas?: string | bigint;
  /** Default 20. */
  gasMarginPercent?: number;
  /** Refuse to sign above this maxFeePerGas (wei); protects against a fee spike. */
  maxFeePerGasCap?: string | bigint;
}

/** Everything the workflow records before broadcasting. JSON-only: bigints are decimal strings. */
export interface SignedTransaction {
  hash: Hex;
  raw: Hex;
  nonce: number;
  from: Address;
  to: Address;
  data: Hex;
  maxFeePerGas: string;
  maxPriorityFeePerGas: string;
  gas: string;
  chainId: number;
}

export function encodeAddComposeHash(composeHash: string): Hex {
  return encodeFunctionData({ abi: dstackAppAbi, functionName: 'addComposeHash', args: [normalizeComposeHash(composeHash)] });
}

/**
 * Signs an EIP-1559 transaction with an explicit nonce and fees and returns its raw bytes
 * and hash without sending it: the caller records both durably, then broadcasts. With
 * nonce, fees and gas all given it makes no RPC call at all (the client may be omitted).
 */
export async function signTransaction(client: Client | undefined, params: SignTransactionParams): Promise<SignedTransaction> {
  const to = parseAddress(params.to, 'to');
  if (!Number.isSafeInteger(params.chainId) || params.chainId <= 0) {
    throw new ChainError('INVALID_INPUT', 'chainId must be a positive integer');
  }
  if (client?.chain && client.chain.id !== params.chainId) {
    throw new ChainError('CONFIG', `the client is bound to chain ${client.chain.id} but the transaction is for chain ${params.chainId}`);
  }
  if ((params.composeHash === undefined) === (params.data === undefined)) {
    throw new ChainError('INVALID_INPUT', 'give exactly one of composeHash and data');
  }
  const data: Hex = params.composeHash !== undefined ? encodeAddComposeHash(params.composeHash) : params.data!;
  if (!/^0x([0-9a-fA-F]{2})*$/.test(data)) throw new ChainError('INVALID_INPUT', 'data must be 0x-prefixed hex of whole bytes');
  const from = params.account.address;
  const needClient = (what: string): Client => {
    if (!client) throw new ChainError('INVALID_INPUT', `${what} needs an RPC client; pass one or give the value explicitly`);
    return client;
  };

  const nonce =
    params.nonce === 'pending'
      ? await withChainErrors('reading the pending nonce', () =>
          getTransactionCount(needClient("nonce 'pending'"), { address: from, blockTag: 'pending' }),
        )
      : parseNonce(params.nonce);

  let maxFeePerGas: bigint;
  let maxPriorityFeePerGas: bigint;
  if (params.fees) {
    maxFeePerGas = parseWei(params.fees.maxFeePerGas, 'fees.maxFeePerGas');
    maxPriorityFeePerGas = parseWei(params.fees.maxPriorityFeePerGas, 'fees.maxPriorityFeePerGas');
  } else {
    const c = needClient('fee estimation');
    ({ maxFeePerGas, maxPriorityFeePerGas } = await withChainErrors('estimating fees', () =>
      estimateFeesPerGas(c, { type: 'eip1559', chain: c.chain ?? null }),
    ));
  }
  if (maxPriorityFeePerGas > maxFeePerGas) {
    throw new ChainError('INVALID_INPUT', `maxPriorityFeePerGas (${maxPriorityFeePerGas}) exceeds maxFeePerGas (${maxFeePerGas})`);
  }
  if (params.maxFeePerGasCap !== undefined) {
    const cap = parseWei(params.maxFeePerGasCap, 'maxFeePerGasCap');
    if (maxFeePerGas > cap) {
      throw new ChainError('FEE_CAP_EXCEEDED', `maxFeePerGas ${maxFeePerGas} wei is above the configured cap of ${cap} wei`);
    }
  }

  let gas: bigint;
  if (params.gas !== undefined) {
    gas = parseWei(params.gas, 'gas');
    if (gas < 21_000n) throw new ChainError('INVALID_INPUT', 'gas must be at least 21000');
  } else {
    const margin = params.gasMarginPercent ?? 20;
    if (!Number.isInteger(margin) || margin < 0 || margin > 1000) {
      throw new ChainError('INVALID_INPUT', 'gasMarginPercent must be an integer between 0 and 1000');
    }
    const estimate = await estimateOrExplain(needClient('gas estimation'), { from, to, data });
    gas = ceilDiv(estimate * BigInt(100 + margin), 100n);
  }

  const raw = await params.account.signTransaction({
    type: 'eip1559',
    chainId: params.chainId,
    nonce,
    to,
    data,
    value: 0n,
    gas,
    maxFeePerGas,
    maxPriorityFeePerGas,
  });
  // A remote or misconfigured signer could hand back bytes for another key; the nonce
  // bookkeeping would then be for the wrong account. One local recovery settles it.
  const signer = await recoverTransactionAddress({ serializedTransaction: raw as never });
  if (signer.toLowerCase() !== from.toLowerCase()) {
    throw new ChainError('INCONSISTENT', `the account signed as ${signer}, not as its own address ${from}`);
  }

  return {
    hash: keccak256(raw),
    raw,
    nonce,
    from,
    to,
    data,
    maxFeePerGas: maxFeePerGas.toString(),
    maxPriorityFeePerGas: maxPriorityFeePerGas.toString(),
    gas: gas.toString(),
    chainId: params.chainId,
  };
}

function ceilDiv(a: bigint, b: bigint): bigint {
  return (a + b - 1n) / b;
}

async function estimateOrExplain(client: Client, tx: { from: Address; to: Address; data: Hex }): Promise<bigint> {
  try {
    return await estimateGas(client, { account: tx.from, to: tx.to, data: tx.data, value: 0n });
  } catch (err) {
    const reason = revertReasonOf(err);
    if (reason !== undefined) {
      throw new ChainError('WOULD_REVERT', `the transaction from ${tx.from} to ${tx.to} would revert: ${reason}`);
    }
    throw toChainError(err, 'estimating gas');
  }
}

/** A readable revert reason when the node reported a revert, else undefined (an RPC problem). */
function revertReasonOf(err: unknown): string | undefined {
  if (!(err instanceof BaseError)) return undefined;
  const reverted = err.walk(
    (e) => (e as { name?: string }).name === 'ExecutionRevertedError' || /revert/i.test((e as { details?: string }).details ?? ''),
  );
  if (!reverted) return undefined;
  const withData = err.walk((e) => typeof (e as { data?: unknown }).data === 'string') as { data?: Hex } | null;
  const data = withData?.data;
  if (data && data.length >= 10) {
    try {
      const decoded = decodeErrorResult({ abi: dstackAppErrorsAbi, data });
      return `${decoded.errorName}(${decoded.args.join(', ')})`;
    } catch {
      return `revert data ${data.slice(0, 10)}…`;
    }
  }
  return (reverted as BaseError).shortMessage ?? 'execution reverted';
}
