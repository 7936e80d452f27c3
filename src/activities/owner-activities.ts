// While a change waits for an app owner who signs elsewhere (a Safe, a timelock, a hardware
// wallet): what exactly to propose, and a watch on the chain that notices the registration
// whoever sends it.
import { heartbeat, sleep, Context } from '@temporalio/activity';
import type { Hex, PublicClient } from 'viem';
import { buildRegistrationProposal, type RegistrationProposal } from '../chain/registration-proposal.ts';
import { readOwnerRegistration } from '../chain/owner-registration.ts';
import type { PhalaCloudClient } from '../phala/api-client.ts';
import type { MinedTx } from './types.ts';

export interface OwnerActivityDeps {
  phala: PhalaCloudClient;
  chainPollIntervalMs?: number;
}

export type OwnerWatch = { state: 'registered'; tx: MinedTx } | { state: 'waiting' };

export function createOwnerActivities(deps: OwnerActivityDeps, clientFor: (chainId: number) => PublicClient) {
  const pollMs = deps.chainPollIntervalMs ?? 1000;
  return {
    /** The transaction the owner should send; the API's kms-info adds the owner's kind and a Safe link. */
    async ownerRegistrationProposal(a: { chainId: number; appId: string; composeHash: string }): Promise<RegistrationProposal> {
      // The proposal does not depend on kms-info: without it (an older API, an outage) it is still right.
      const kmsInfo = await deps.phala.getAppKmsInfo(a.appId).catch(() => null);
      return buildRegistrationProposal({ ...a, kmsInfo: kmsInfo as Parameters<typeof buildRegistrationProposal>[0]['kmsInfo'] });
    },

    /** Polls until the app allows the hash (and its ComposeHashAdded is found) or maxWaitMs passes. */
    async watchOwnerRegistration(a: {
      chainId: number;
      appId: string;
      composeHash: string;
      fromBlock: number;
      maxWaitMs: number;
    }): Promise<OwnerWatch> {
      const client = clientFor(a.chainId);
      const deadline = Date.now() + a.maxWaitMs;
      const signal = Context.current().cancellationSignal;
      for (;;) {
        const seen = await readOwnerRegistration(client, {
          app: a.appId as Hex,
          composeHash: a.composeHash,
          fromBlock: a.fromBlock,
          signal,
        });
        if (seen.allowed && seen.registration) {
          const r = seen.registration;
          return { state: 'registered', tx: { hash: r.txHash, blockNumber: r.blockNumber, blockHash: r.blockHash } };
        }
        heartbeat({ allowed: seen.allowed });
        if (Date.now() + pollMs > deadline || signal.aborted) return { state: 'waiting' };
        await sleep(pollMs);
      }
    },
  };
}
