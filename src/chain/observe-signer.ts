import type { Address, Client, Hex } from 'viem';
import { getBlockNumber, getTransactionCount } from 'viem/actions';
import { checkConfirmations, type ConfirmationCheck } from './confirmations.ts';
import { withChainErrors } from './errors.ts';
import { nonceTakenDeep } from './nonce-settled.ts';
import { parseAddress, parseNonce, parseTxHash, toSafeNumber } from './inputs.ts';
import { receiptOrNull, transactionOrNull, type Receipt } from './reads.ts';

export interface ObservedSlot {
  nonce: number;
  /** Every hash signed for this nonce: original, replacements, a cancelling self-send. */
  hashes: Hex[];
}

export interface WatchedTx {
  nonce: number;
  hash: Hex;
  blockNumber: number;
  blockHash: Hex;
  /** Depth to report as confirmed (a block count, the tx's own block is 1). */
  confirmations: number;
}

export interface ObserveSignerParams {
  from: Address;
  /** Nonces we signed for and have not seen mined. */
  pending: ObservedSlot[];
  /** Our mined transactions that still need depth (or reorg watching). */
  mined: WatchedTx[];
  /** Blocks a nonce must have been taken for before "consumed"; default CONSUMED_DEPTH. */
  consumedDepth?: number;
}

export type SlotObservation =
  | { nonce: number; state: 'mined'; hash: Hex; blockNumber: number; blockHash: Hex; success: boolean }
  | { nonce: number; state: 'pending'; pendingHashes: Hex[] }
  /** None of ours mined, the node knows none, the nonce is still free: rebroadcast. */
  | { nonce: number; state: 'dropped' }
  /** None of ours mined and the account nonce moved past: another transaction took it. */
  | { nonce: number; state: 'consumed' };

export interface SignerObservation {
  head: number;
  /** The account's mined nonce at `head`. */
  accountNonce: number;
  pending: SlotObservation[];
  mined: ({ nonce: number; hash: Hex } & ConfirmationCheck)[];
}

/**
 * One look at everything a signer has in flight, for a whole tick at once: the head and
 * the account nonce are read once and pinned, then every receipt. Read-only and stateless,
 * so safe to retry and safe when several readers share a key.
 */
export async function observeSigner(client: Client, params: ObserveSignerParams): Promise<SignerObservation> {
  const from = parseAddress(params.from, 'from');
  const pendingSlots = params.pending.map((s, i) => ({
    nonce: parseNonce(s.nonce),
    hashes: [...new Set(s.hashes.map((h, j) => parseTxHash(h, `pending[${i}].hashes[${j}]`)))],
  }));

  // Nonce before receipts, both at one pinned head: read the other way round, a tx of ours
  // mined between the reads would look taken by someone else, and we would sign twice.
  const headBig = await withChainErrors('reading the latest block number', () => getBlockNumber(client, { cacheTime: 0 }));
  const accountNonce = toSafeNumber(
    BigInt(
      await withChainErrors(`reading the nonce of ${from}`, () => getTransactionCount(client, { address: from, blockNumber: headBig })),
    ),
    'account nonce',
  );
  const head = toSafeNumber(headBig, 'block number');

  const pending = await Promise.all(
    pendingSlots.map((slot) =>
      observeSlot(client, slot, accountNonce, () => nonceTakenDeep(client, from, slot.nonce, headBig, params.consumedDepth)),
    ),
  );
  const mined = await Promise.all(
    params.mined.map(async (m) => ({
      nonce: m.nonce,
      hash: m.hash,
      ...(await checkConfirmations(client, {
        hash: m.hash,
        blockNumber: m.blockNumber,
        blockHash: m.blockHash,
        confirmations: m.confirmations,
      })),
    })),
  );
  return { head, accountNonce, pending, mined };
}

async function observeSlot(
  client: Client,
  slot: { nonce: number; hashes: Hex[] },
  accountNonce: number,
  takenDeep: () => Promise<boolean>,
): Promise<SlotObservation> {
  const { nonce, hashes } = slot;
  const receipts = await Promise.all(hashes.map((hash) => receiptOrNull(client, hash)));
  const receipt = receipts.find((r) => r !== null);
  if (receipt) return mined(nonce, receipt);
  // Taken only recently: a lagging node may not serve our receipt yet (see CONSUMED_DEPTH).
  const unsettled = accountNonce > nonce && !(await takenDeep());
  if (accountNonce > nonce && !unsettled) return { nonce, state: 'consumed' };
  const txs = await Promise.all(hashes.map((hash) => transactionOrNull(client, hash)));
  // Mined between the receipt reads and now: take that receipt rather than call it pending.
  for (const tx of txs) {
    if (tx?.blockNumber != null) {
      const late = await receiptOrNull(client, tx.hash);
      if (late) return mined(nonce, late);
    }
  }
  const pendingHashes = txs.filter((tx) => tx !== null).map((tx) => tx.hash);
  return pendingHashes.length > 0 || unsettled ? { nonce, state: 'pending', pendingHashes } : { nonce, state: 'dropped' };
}

function mined(nonce: number, r: Receipt): SlotObservation {
  return {
    nonce,
    state: 'mined',
    hash: r.transactionHash,
    blockNumber: toSafeNumber(r.blockNumber, 'block number'),
    blockHash: r.blockHash,
    success: r.status === 'success',
  };
}

/** The head, for a watcher that waits for the next block before it looks again. */
export async function latestBlock(client: Client): Promise<number> {
  return toSafeNumber(
    await withChainErrors('reading the latest block number', () => getBlockNumber(client, { cacheTime: 0 })),
    'block number',
  );
}
