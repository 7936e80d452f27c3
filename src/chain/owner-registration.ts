/**
 * "Has the owner registered the hash yet, and with which transaction?" — the chain read a
 * change waiting for an owner who signs elsewhere (a Safe, a timelock, a hardware wallet) polls.
 * The chain's truth decides, not who sent what: the app allows the hash now, and the newest
 * ComposeHashAdded(hash) of the app names the transaction for the record, whether it was sent
 * to the app itself or relayed through another contract.
 */
import type { Client } from 'viem';
import { readContract } from 'viem/actions';
import { dstackAppAbi } from './dstack-app-abi.ts';
import { withChainErrors } from './errors.ts';
import { findRegistration, type RegistrationLocation } from './find-registration.ts';
import { normalizeComposeHash, parseAddress } from './inputs.ts';

export type OwnerRegistrationState =
  /** Allowed on the app; `registration` is the transaction whose ComposeHashAdded allowed it. */
  | { allowed: true; registration: RegistrationLocation }
  /** Allowed, but no ComposeHashAdded in the scanned range (e.g. set at initialisation before fromBlock). */
  | { allowed: true; registration: null }
  | { allowed: false };

export async function readOwnerRegistration(
  client: Client,
  params: { app: string; composeHash: string; fromBlock: number; signal?: AbortSignal },
): Promise<OwnerRegistrationState> {
  const app = parseAddress(params.app, 'app');
  const composeHash = normalizeComposeHash(params.composeHash);
  const allowed = await withChainErrors(`reading allowedComposeHashes of ${app}`, () =>
    readContract(client, { address: app, abi: dstackAppAbi, functionName: 'allowedComposeHashes', args: [composeHash] }),
  );
  if (!allowed) return { allowed: false };
  const found = await findRegistration(client, {
    app,
    composeHash,
    fromBlock: params.fromBlock,
    ...(params.signal ? { signal: params.signal } : {}),
  });
  // Allowed now yet the newest event says removed: a re-add is still being indexed; the read wins.
  return {
    allowed: true,
    registration: found.found
      ? { txHash: found.txHash, blockNumber: found.blockNumber, blockHash: found.blockHash, logIndex: found.logIndex }
      : null,
  };
}
