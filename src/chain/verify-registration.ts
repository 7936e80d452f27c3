import { getAddress, parseEventLogs, type Address, type Client, type Hex } from 'viem';
import { readContract } from 'viem/actions';
import { dstackAppAbi } from './dstack-app-abi.ts';
import { ChainError, withChainErrors } from './errors.ts';
import { normalizeComposeHash, parseAddress, toSafeNumber } from './inputs.ts';
import { receiptOrNull, transactionOrNull } from './reads.ts';

export interface VerifyRegistrationParams {
  app: Address;
  composeHash: string;
  /** As supplied by an operator: untrusted text. */
  txHash: string;
}

/**
 * Why a supplied registration tx does not do:
 *  - invalid-tx-hash: not a 32-byte 0x hash.
 *  - tx-not-found: the node knows no such tx (wrong hash, wrong chain, or an RPC that has
 *    not caught up yet: worth a few retries before asking the operator again).
 *  - tx-pending: known but not mined yet: wait.
 *  - reverted: mined with status 0.
 *  - no-matching-log: mined, but no ComposeHashAdded for this hash emitted by the app
 *    (a tx to another contract, another app, or another hash).
 *  - not-allowed-now: the log is there but allowedComposeHashes(hash) is false now
 *    (removed since).
 */
export type VerifyRegistrationFailure =
  'invalid-tx-hash' | 'tx-not-found' | 'tx-pending' | 'reverted' | 'no-matching-log' | 'not-allowed-now';

export type VerifyRegistrationResult =
  | {
      ok: true;
      txHash: Hex;
      blockNumber: number;
      blockHash: Hex;
      logIndex: number;
      from: Address;
      to: Address | null;
      /** 'direct': sent to the app itself; 'relayed': through another contract (a multisig). */
      via: 'direct' | 'relayed';
    }
  | { ok: false; reason: VerifyRegistrationFailure; message: string };

/**
 * Checks a registration transaction someone else sent (e.g. a multisig owner). What
 * counts is the app's own ComposeHashAdded event for this hash in a successful receipt,
 * plus the hash still being allowed: the tx's `to` may be a Safe or any relayer.
 * A registration that does not hold is a value, not an error; only RPC trouble throws.
 */
export async function verifyRegistration(client: Client, params: VerifyRegistrationParams): Promise<VerifyRegistrationResult> {
  const app = parseAddress(params.app, 'app');
  const composeHash = normalizeComposeHash(params.composeHash);
  const txHash = typeof params.txHash === 'string' ? params.txHash.trim().toLowerCase() : '';
  if (!/^0x[0-9a-f]{64}$/.test(txHash)) {
    return fail('invalid-tx-hash', 'the transaction hash must be 0x followed by 64 hex digits');
  }
  const hash = txHash as Hex;

  const receipt = await receiptOrNull(client, hash);
  if (!receipt) {
    const tx = await transactionOrNull(client, hash);
    if (tx) return fail('tx-pending', `transaction ${hash} is known to the node but not mined yet`);
    return fail('tx-not-found', `transaction ${hash} is not known to the node (wrong hash or chain, or the RPC lags behind)`);
  }
  if (receipt.status !== 'success') {
    return fail('reverted', `transaction ${hash} was mined in block ${receipt.blockNumber} but reverted`);
  }

  const events = parseEventLogs({ abi: dstackAppAbi, eventName: 'ComposeHashAdded', logs: receipt.logs, strict: true });
  const fromApp = events.filter((e) => e.address.toLowerCase() === app.toLowerCase());
  const match = fromApp.find((e) => e.args.composeHash.toLowerCase() === composeHash);
  if (!match) {
    const elsewhere = events.some((e) => e.args.composeHash.toLowerCase() === composeHash);
    const detail = elsewhere
      ? 'it registers this hash on a different contract'
      : fromApp.length > 0
        ? 'it registers a different compose hash on this app'
        : 'it emits no ComposeHashAdded event from this app';
    return fail('no-matching-log', `transaction ${hash} does not register ${composeHash} on app ${app}: ${detail}`);
  }

  const allowed = await withChainErrors('reading allowedComposeHashes', () =>
    readContract(client, { address: app, abi: dstackAppAbi, functionName: 'allowedComposeHashes', args: [composeHash] }),
  );
  if (!allowed) {
    return fail('not-allowed-now', `transaction ${hash} registered ${composeHash}, but the app no longer allows it (removed since)`);
  }

  if (match.logIndex === null) throw new ChainError('INCONSISTENT', `the node returned a mined log without a log index for ${hash}`);
  return {
    ok: true,
    txHash: hash,
    blockNumber: toSafeNumber(receipt.blockNumber, 'block number'),
    blockHash: receipt.blockHash,
    logIndex: match.logIndex,
    from: getAddress(receipt.from),
    to: receipt.to ? getAddress(receipt.to) : null,
    via: receipt.to?.toLowerCase() === app.toLowerCase() ? 'direct' : 'relayed',
  };
}

function fail(reason: VerifyRegistrationFailure, message: string): VerifyRegistrationResult {
  return { ok: false, reason, message };
}
