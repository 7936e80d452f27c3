import type { Client } from 'viem';
import { estimateFeesPerGas } from 'viem/actions';
import { ChainError, withChainErrors } from './errors.ts';
import { parseWei } from './inputs.ts';
import type { FeesInput } from './sign-transaction.ts';

export interface Fees {
  maxFeePerGas: string;
  maxPriorityFeePerGas: string;
}

export interface BumpFeesOptions {
  /** At least 10 (geth's replacement rule; anvil takes less, real nodes do not). Default 10. */
  bumpPercent?: number;
  /** The network's current suggestion: the replacement never bids below it. */
  suggested?: FeesInput;
  /** Refuse to go above this maxFeePerGas (wei): FEE_CAP_EXCEEDED, for an operator to decide. */
  maxFeePerGasCap?: string | bigint;
}

/** Geth rejects a replacement unless both fee fields rise by this much. */
export const MIN_BUMP_PERCENT = 10;

/**
 * Fees for a replacement at the same nonce: each field raised by `bumpPercent` (rounded
 * up: geth compares against old*110/100 in integers, and rounding down could land one
 * wei short) and at least to the current suggestion. Pure arithmetic.
 */
export function bumpFees(previous: FeesInput, options: BumpFeesOptions = {}): Fees {
  const percent = options.bumpPercent ?? MIN_BUMP_PERCENT;
  if (!Number.isFinite(percent) || percent < MIN_BUMP_PERCENT || percent > 1000) {
    throw new ChainError('INVALID_INPUT', `bumpPercent must be between ${MIN_BUMP_PERCENT} and 1000`);
  }
  // Basis points keep fractional percentages (12.5) exact in integer arithmetic.
  const factor = BigInt(Math.round((100 + percent) * 100));
  const raise = (wei: bigint) => (wei * factor + 9_999n) / 10_000n;

  const prevFee = parseWei(previous.maxFeePerGas, 'previous.maxFeePerGas');
  const prevTip = parseWei(previous.maxPriorityFeePerGas, 'previous.maxPriorityFeePerGas');
  let fee = raise(prevFee);
  let tip = raise(prevTip);
  if (options.suggested) {
    const sFee = parseWei(options.suggested.maxFeePerGas, 'suggested.maxFeePerGas');
    const sTip = parseWei(options.suggested.maxPriorityFeePerGas, 'suggested.maxPriorityFeePerGas');
    if (sFee > fee) fee = sFee;
    if (sTip > tip) tip = sTip;
  }
  // Only reachable with inconsistent inputs (a tip above its fee cap); nodes refuse those.
  if (tip > fee) fee = tip;

  if (options.maxFeePerGasCap !== undefined) {
    const cap = parseWei(options.maxFeePerGasCap, 'maxFeePerGasCap');
    if (fee > cap) {
      throw new ChainError('FEE_CAP_EXCEEDED', `a replacement needs maxFeePerGas ${fee} wei, above the configured cap of ${cap} wei`);
    }
  }
  return { maxFeePerGas: fee.toString(), maxPriorityFeePerGas: tip.toString() };
}

/** bumpFees with the node's current suggestion fetched first. */
export async function replacementFees(
  client: Client,
  previous: FeesInput,
  options: Omit<BumpFeesOptions, 'suggested'> = {},
): Promise<Fees> {
  const suggested = await withChainErrors('estimating fees', () =>
    estimateFeesPerGas(client, { type: 'eip1559', chain: client.chain ?? null }),
  );
  return bumpFees(previous, { ...options, suggested });
}
