import { BlockNotFoundError, type Client, type Hex } from 'viem';
import { getBlock, getBlockNumber } from 'viem/actions';
import { setTimeout as sleep } from 'node:timers/promises';
import { ChainError, toChainError, withChainErrors } from './errors.ts';
import { parseBlockNumber, parseTxHash, toSafeNumber } from './inputs.ts';
import { receiptOrNull } from './reads.ts';

/**
 * How deep is deep enough: a block count (1 = included in a block, 2 = one block on top,
 * the convention of viem's and ethers' `confirmations`), or a block tag the node
 * maintains: confirmed once the tag's block has reached ours.
 */
export type ConfirmationTarget = number | 'safe' | 'finalized';

export interface CheckConfirmationsParams {
  /** The transaction and where it was mined, as observeNonce reported it. */
  hash: Hex;
  blockNumber: number;
  blockHash: Hex;
  confirmations: ConfirmationTarget;
}

/**
 *  - pending: still where we saw it, not deep enough yet.
 *  - confirmed: deep enough, and its block is still canonical at this read.
 *  - reorged: the receipt is gone (`receipt-missing`: back to observe/rebroadcast), it
 *    now sits in another block (`moved`: `current` says where; confirm that instead), or
 *    the block at our height has another hash (`block-replaced`).
 * `confirmations` counts blocks from ours to the head, ours included (0 when reorged).
 */
export type ConfirmationCheck =
  | { state: 'pending' | 'confirmed'; confirmations: number; latestBlock: number; status: 'success' | 'reverted' }
  | {
      state: 'reorged';
      confirmations: 0;
      latestBlock: number;
      reason: 'receipt-missing' | 'moved' | 'block-replaced';
      current?: { blockNumber: number; blockHash: Hex; status: 'success' | 'reverted' };
    };

function validate(params: CheckConfirmationsParams) {
  const hash = parseTxHash(params.hash, 'hash');
  const blockHash = parseTxHash(params.blockHash, 'blockHash');
  const blockNumber = parseBlockNumber(params.blockNumber, 'blockNumber');
  const target = params.confirmations;
  if (target !== 'safe' && target !== 'finalized' && (!Number.isSafeInteger(target) || target < 1)) {
    throw new ChainError('INVALID_INPUT', `confirmations must be a positive integer, 'safe' or 'finalized'`);
  }
  return { hash, blockHash, blockNumber, target };
}

/**
 * One look at a mined transaction. It re-reads the receipt (a reorg can drop it or move
 * it) and the canonical block at its height (some nodes keep serving receipts from
 * blocks that lost a reorg), so a 'confirmed' answer never rests on the original sighting.
 */
export async function checkConfirmations(client: Client, params: CheckConfirmationsParams): Promise<ConfirmationCheck> {
  const { hash, blockHash, blockNumber, target } = validate(params);

  // Head first: if the receipt or block is then read from a newer head, the count errs low.
  const latest = await withChainErrors('reading the latest block number', () => getBlockNumber(client, { cacheTime: 0 }));
  const latestBlock = toSafeNumber(latest, 'latest block');

  const receipt = await receiptOrNull(client, hash);
  if (!receipt) return { state: 'reorged', confirmations: 0, latestBlock, reason: 'receipt-missing' };
  if (receipt.blockHash.toLowerCase() !== blockHash || receipt.blockNumber !== blockNumber) {
    return {
      state: 'reorged',
      confirmations: 0,
      latestBlock,
      reason: 'moved',
      current: { blockNumber: toSafeNumber(receipt.blockNumber, 'block number'), blockHash: receipt.blockHash, status: receipt.status },
    };
  }

  const canonical = await blockOrNull(client, { blockNumber });
  // A lagging node behind a load balancer may not have our block yet: not a reorg, just early.
  if (canonical === null) return { state: 'pending', confirmations: 0, latestBlock, status: receipt.status };
  if (canonical.hash?.toLowerCase() !== blockHash) return { state: 'reorged', confirmations: 0, latestBlock, reason: 'block-replaced' };

  const depth = latest >= blockNumber ? toSafeNumber(latest - blockNumber + 1n, 'confirmations') : 0;
  let deepEnough: boolean;
  if (typeof target === 'number') {
    deepEnough = depth >= target;
  } else {
    const tagged = await blockOrNull(client, { blockTag: target });
    if (tagged === null || tagged.number === null) {
      throw new ChainError('CONFIG', `the node does not serve the '${target}' block tag; configure a block count instead`);
    }
    deepEnough = tagged.number >= blockNumber;
  }
  return { state: deepEnough ? 'confirmed' : 'pending', confirmations: depth, latestBlock, status: receipt.status };
}

async function blockOrNull(client: Client, at: { blockNumber: bigint } | { blockTag: 'safe' | 'finalized' }) {
  try {
    return await getBlock(client, { ...at, includeTransactions: false });
  } catch (err) {
    if (err instanceof BlockNotFoundError) return null;
    throw toChainError(err, `reading block ${'blockNumber' in at ? at.blockNumber : at.blockTag}`);
  }
}

export interface WaitForConfirmationsParams extends CheckConfirmationsParams {
  /** Default 2000 ms. */
  pollingIntervalMs?: number;
  /** Give up waiting after this long and return the last 'pending' check; default: no limit. */
  timeoutMs?: number;
  /** Called after every check: an activity heartbeats from here. */
  onProgress?: (check: ConfirmationCheck) => void;
  /** Aborting rejects with the signal's reason (Temporal activity cancellation). */
  signal?: AbortSignal;
}

/**
 * Polls checkConfirmations until 'confirmed' or 'reorged' (or the timeout, returning the
 * last 'pending'). RPC errors are not retried here: the check is stateless, so the
 * activity's own retry resumes exactly where this left off.
 */
export async function waitForConfirmations(client: Client, params: WaitForConfirmationsParams): Promise<ConfirmationCheck> {
  const interval = params.pollingIntervalMs ?? 2000;
  if (!Number.isFinite(interval) || interval < 0) throw new ChainError('INVALID_INPUT', 'pollingIntervalMs must be a non-negative number');
  const deadline = params.timeoutMs === undefined ? Infinity : Date.now() + params.timeoutMs;
  const signal = params.signal;
  for (;;) {
    signal?.throwIfAborted();
    const check = await checkConfirmations(client, params);
    signal?.throwIfAborted();
    params.onProgress?.(check);
    if (check.state !== 'pending' || Date.now() + interval > deadline) return check;
    await sleep(interval, undefined, signal ? { signal } : undefined).catch((err: unknown) => {
      throw signal?.aborted ? signal.reason : err;
    });
  }
}
