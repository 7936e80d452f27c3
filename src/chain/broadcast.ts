import { BaseError, keccak256, parseTransaction, type Client, type Hex } from 'viem';
import { ChainError, nodeMessageOf, toChainError } from './errors.ts';

/**
 * Why a node refused bytes that may well be ours already (in its pool or mined):
 *  - 'already-known': geth/op-geth/erigon "already known", anvil "transaction already
 *    imported", besu "known transaction", nethermind "AlreadyKnown"
 *  - 'nonce-too-low': the nonce is used, by this tx or by another one
 *  - 'replacement-underpriced': another tx holds the nonce in the pool (perhaps an
 *    earlier signing of ours), and these bytes do not outbid it
 * None is a failure: reconcile with observeNonce.
 */
export type MaybeOursReason = 'already-known' | 'nonce-too-low' | 'replacement-underpriced';

/**
 * Refusals that sending the same bytes again will not cure. Each needs a new signing or
 * an operator (funds, configuration).
 */
export type RejectedReason =
  | 'insufficient-funds'
  /** maxFeePerGas below the base fee, or below the pool's minimum tip ("transaction underpriced"). */
  | 'fee-too-low'
  /** The node's own RPC fee ceiling (geth --rpc.txfeecap). */
  | 'fee-cap-exceeded'
  | 'gas-too-low'
  | 'gas-limit-exceeded'
  /** Signed for another chain, or the node only takes replay-protected transactions. */
  | 'wrong-chain'
  | 'invalid-transaction';

export type BroadcastResult =
  | { outcome: 'accepted'; hash: Hex }
  | { outcome: 'maybe-ours'; hash: Hex; reason: MaybeOursReason; nodeMessage: string }
  | { outcome: 'rejected'; hash: Hex; reason: RejectedReason; nodeMessage: string };

export interface BroadcastParams {
  raw: Hex;
  /** The hash recorded with the bytes; checked against them to catch a mix-up in history. */
  hash?: Hex;
}

// Order matters: "replacement transaction underpriced" must win over "transaction underpriced".
const RULES: [
  RegExp,
  { outcome: 'maybe-ours'; reason: MaybeOursReason } | { outcome: 'rejected'; reason: RejectedReason } | 'transient',
][] = [
  [
    /already known|already imported|known transaction|alreadyknown|already in (the )?(tx|transaction)? ?pool/i,
    { outcome: 'maybe-ours', reason: 'already-known' },
  ],
  [/nonce too low|oldnonce|nonce has already been used|invalid nonce.*(lower|low)/i, { outcome: 'maybe-ours', reason: 'nonce-too-low' }],
  [
    /replacement (transaction )?underpriced|replacement_underpriced|replacement fee too low|replacementnotallowed/i,
    { outcome: 'maybe-ours', reason: 'replacement-underpriced' },
  ],
  [/insufficient funds|insufficient balance/i, { outcome: 'rejected', reason: 'insufficient-funds' }],
  [/exceeds the configured cap|tx ?fee .*exceeds/i, { outcome: 'rejected', reason: 'fee-cap-exceeded' }],
  [
    /(max )?fee (per gas |cap )?(is )?less than (the )?block base fee|fee cap (is )?(too low|less than)|transaction underpriced|underpriced|gas price too low|max priority fee per gas higher than max fee per gas|tip.*higher than.*fee cap/i,
    { outcome: 'rejected', reason: 'fee-too-low' },
  ],
  [/intrinsic gas too low|gas too low|out of gas/i, { outcome: 'rejected', reason: 'gas-too-low' }],
  [/exceeds block gas limit|gas limit (is )?too high|exceeds .*gas limit/i, { outcome: 'rejected', reason: 'gas-limit-exceeded' }],
  [/chain ?id|invalid sender|only replay-protected|replay protection/i, { outcome: 'rejected', reason: 'wrong-chain' }],
  [
    /decode|rlp|invalid (transaction|signature)|typed transaction too short|transaction type not supported|oversized data/i,
    { outcome: 'rejected', reason: 'invalid-transaction' },
  ],
  // A full pool is load, not a verdict on these bytes.
  [/txpool is full|pool is full|too many (pending )?transactions|rate limit|try again later/i, 'transient'],
];

/**
 * Sorts a node's refusal of eth_sendRawTransaction. Undefined means we do not recognise
 * the message: the caller should treat it as a transient RPC failure, not a verdict.
 */
export function classifyBroadcastError(
  nodeMessage: string,
): { outcome: 'maybe-ours'; reason: MaybeOursReason } | { outcome: 'rejected'; reason: RejectedReason } | 'transient' | undefined {
  for (const [re, verdict] of RULES) if (re.test(nodeMessage)) return verdict;
  return undefined;
}

/**
 * Sends the exact bytes recorded in history. Accepted and "maybe ours" come back as
 * values; so do refusals that the same bytes cannot overcome. Transport failures and
 * messages we do not recognise throw a retryable ChainError, since they say nothing
 * about whether the node has the transaction.
 */
export async function broadcastTransaction(client: Client, params: BroadcastParams): Promise<BroadcastResult> {
  const raw = params.raw;
  if (typeof raw !== 'string' || !/^0x([0-9a-fA-F]{2})+$/.test(raw)) {
    throw new ChainError('INVALID_INPUT', 'raw must be the 0x-prefixed signed transaction bytes');
  }
  try {
    parseTransaction(raw);
  } catch {
    throw new ChainError('INVALID_INPUT', 'raw does not decode as a signed transaction');
  }
  const hash = keccak256(raw);
  if (params.hash !== undefined && params.hash.toLowerCase() !== hash) {
    throw new ChainError('INCONSISTENT', `the recorded hash ${params.hash} is not the hash of the recorded bytes (${hash})`);
  }

  let returned: unknown;
  try {
    returned = await client.request({ method: 'eth_sendRawTransaction', params: [raw] });
  } catch (err) {
    const nodeMessage = nodeMessageOf(err) ?? (err instanceof BaseError ? undefined : err instanceof Error ? err.message : undefined);
    const verdict = nodeMessage !== undefined ? classifyBroadcastError(nodeMessage) : undefined;
    if (verdict === undefined || verdict === 'transient') {
      const wrapped = toChainError(err, `broadcasting ${hash}`);
      throw verdict === 'transient' ? new ChainError('RPC_UNAVAILABLE', wrapped.message) : wrapped;
    }
    return { ...verdict, hash, nodeMessage: nodeMessage! };
  }
  if (typeof returned !== 'string' || returned.toLowerCase() !== hash) {
    throw new ChainError('INCONSISTENT', `the node answered ${String(returned)} for a transaction whose hash is ${hash}`);
  }
  return { outcome: 'accepted', hash };
}
