// How many registration transactions our service signed for one scenario. The one place that
// knows where the service keeps that count.
import type { Client } from '@temporalio/client';
import { getEnvUpdateStatus } from '../../src/client.ts';

/**
 * Call before a scenario starts; the returned function, given the scenario's CVMs once it has
 * finished, resolves to the transactions signed in between (fee replacements and re-signs
 * after a lost nonce race included).
 *
 * Today every update workflow signs its own registration and lists what it signed in its
 * `status` query (`sentTransactions`), so the count is the sum over the scenario's workflows
 * and needs nothing from before. With one transaction manager per signer, the count moves to
 * the manager: query the status of workflow `signer-<chainId>-<address>` (from `_signer`) here
 * and again in the returned function, and return the difference of its signed-transaction count.
 */
export async function beginSignedCount(
  client: Client,
  _signer: { chainId: number; address: string },
): Promise<(cvmIds: string[]) => Promise<number>> {
  return async (cvmIds) => {
    let signed = 0;
    // A few at a time: each query of a finished workflow makes the worker replay it.
    for (let i = 0; i < cvmIds.length; i += 20) {
      const statuses = await Promise.all(cvmIds.slice(i, i + 20).map((id) => getEnvUpdateStatus(client, id)));
      for (const s of statuses) signed += s.sentTransactions.length;
    }
    return signed;
  };
}
