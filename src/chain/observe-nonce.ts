import type { Address, Client, Hex } from 'viem';
import { getBlockNumber, getTransactionCount } from 'viem/actions';
import { ChainError, withChainErrors } from './errors.ts';
import { nonceTakenDeep } from './nonce-settled.ts';
import { parseAddress, parseNonce, parseTxHash, toSafeNumber } from './inputs.ts';
import { receiptOrNull, transactionOrNull, type Receipt } from './reads.ts';

export interface ObserveNonceParams {
  from: Address;
  nonce: number;
  /** Every hash signed for this nonce (original and replacements), in any order. */
  hashes: Hex[];
  /** Blocks the nonce must have been taken for before "consumed"; default CONSUMED_DEPTH. */
  consumedDepth?: number;
}

interface Observed {
  /** The account's mined nonce (eth_getTransactionCount at `observedAtBlock`). */
  accountNonce: number;
  observedAtBlock: number;
}

/**
 * What became of a nonce we signed for:
 *  - mined: one of our hashes has a receipt (a replacement may have won: use `hash`);
 *    `status` 'reverted' still consumed the nonce. Confirm it with checkConfirmations.
 *  - pending: none mined, the node still holds some of ours (`pendingHashes`): wait, or bump.
 *  - dropped: none mined, the node knows none of them, and the nonce is still free:
 *    rebroadcast the same raw bytes (the latest signing).
 *  - consumed: none of ours mined but the account's nonce moved past ours, at least
 *    CONSUMED_DEPTH blocks ago: another transaction took the nonce (another worker, an
 *    operator). Ours can never be mined; sign again at a fresh nonce. Moved more recently
 *    than that, the nonce is reported pending: a lagging node may not have our receipt yet.
 */
export type NonceObservation =
  | ({
      state: 'mined';
      hash: Hex;
      blockNumber: number;
      blockHash: Hex;
      status: 'success' | 'reverted';
      gasUsed: string;
      effectiveGasPrice: string;
    } & Observed)
  | ({ state: 'pending'; pendingHashes: Hex[] } & Observed)
  | ({ state: 'dropped' } & Observed)
  | ({ state: 'consumed' } & Observed);

/**
 * Reconciles a nonce against the chain. Stateless and read-only, so safe to retry and
 * safe for many workers sharing one key.
 */
export async function observeNonce(client: Client, params: ObserveNonceParams): Promise<NonceObservation> {
  const from = parseAddress(params.from, 'from');
  const nonce = parseNonce(params.nonce);
  if (!Array.isArray(params.hashes) || params.hashes.length === 0) {
    throw new ChainError('INVALID_INPUT', 'hashes must list at least one transaction hash signed for this nonce');
  }
  const hashes = [...new Set(params.hashes.map((h, i) => parseTxHash(h, `hashes[${i}]`)))];

  // The account nonce is read before the receipts, at a pinned block. Read the other way
  // round, a tx of ours mined between the two reads would look like "consumed by someone
  // else" and we would sign the same registration twice.
  const head = await withChainErrors('reading the latest block number', () => getBlockNumber(client, { cacheTime: 0 }));
  const accountNonce = toSafeNumber(
    BigInt(await withChainErrors(`reading the nonce of ${from}`, () => getTransactionCount(client, { address: from, blockNumber: head }))),
    'account nonce',
  );
  const observed: Observed = { accountNonce, observedAtBlock: toSafeNumber(head, 'block number') };

  const receipts = await Promise.all(hashes.map((hash) => receiptOrNull(client, hash)));
  const minedIndex = receipts.findIndex((r) => r !== null);
  if (minedIndex >= 0) return mined(receipts[minedIndex]!, observed);

  // Taken, but not yet deep enough to rule out a receipt read from a lagging node: still
  // ours to wait for (see CONSUMED_DEPTH).
  const unsettled = accountNonce > nonce && !(await nonceTakenDeep(client, from, nonce, head, params.consumedDepth));
  if (accountNonce > nonce && !unsettled) return { state: 'consumed', ...observed };

  const txs = await Promise.all(hashes.map((hash) => transactionOrNull(client, hash)));
  // Mined between our receipt reads and now: fetch that receipt rather than call it pending.
  for (const tx of txs) {
    if (tx?.blockNumber != null) {
      const receipt = await receiptOrNull(client, tx.hash);
      if (receipt) return mined(receipt, observed);
    }
  }
  const pendingHashes = txs.filter((tx) => tx !== null).map((tx) => tx.hash);
  if (pendingHashes.length > 0 || unsettled) return { state: 'pending', pendingHashes, ...observed };
  return { state: 'dropped', ...observed };
}

function mined(receipt: Receipt, observed: Observed): NonceObservation {
  return {
    state: 'mined',
    hash: receipt.transactionHash,
    blockNumber: toSafeNumber(receipt.blockNumber, 'block number'),
    blockHash: receipt.blockHash,
    status: receipt.status,
    gasUsed: receipt.gasUsed.toString(),
    effectiveGasPrice: receipt.effectiveGasPrice.toString(),
    ...observed,
  };
}
