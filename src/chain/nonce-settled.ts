import type { Address, Client } from 'viem';
import { getTransactionCount } from 'viem/actions';
import { withChainErrors } from './errors.ts';
import { toSafeNumber } from './inputs.ts';

/**
 * How deep the transaction that took a nonce must be before "consumed" is believed. Behind a
 * load balancer the head and the nonce may come from a node ahead of the one that answers the
 * receipt reads: our own transaction, just mined, then shows a moved nonce and no receipt. A
 * backend lagging less than this many blocks has our receipt by the time the nonce moved this
 * deep; a lag beyond it fails the pinned read instead of lying.
 */
export const CONSUMED_DEPTH = 3;

/**
 * True when the account's nonce had already passed `nonce` at `head - depth`: the nonce was
 * taken long enough ago that a missing receipt of ours means it is not ours.
 */
export async function nonceTakenDeep(client: Client, from: Address, nonce: number, head: bigint, depth = CONSUMED_DEPTH): Promise<boolean> {
  const at = head > BigInt(depth) ? head - BigInt(depth) : 0n;
  const settled = toSafeNumber(
    BigInt(
      await withChainErrors(`reading the nonce of ${from} at block ${at}`, () =>
        getTransactionCount(client, { address: from, blockNumber: at }),
      ),
    ),
    'account nonce',
  );
  return settled > nonce;
}
