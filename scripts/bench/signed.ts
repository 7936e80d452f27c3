// How many registration transactions our service signed for one scenario. The one place that
// knows where the service keeps that count: the signer's transaction manager.
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { getSignerStatus } from '../../src/client.ts';

/**
 * Call before a scenario starts; the returned function resolves, once it has finished, to the
 * transactions the manager signed in between: new registrations, fee replacements, cancels and
 * gap fills (its counters are carried across continue-as-new).
 */
export async function beginSignedCount(
  client: Client,
  signer: { chainId: number; address: string },
): Promise<(cvmIds: string[]) => Promise<number>> {
  const signedNow = async () => {
    try {
      const s = (await getSignerStatus(client, signer.chainId, signer.address)).stats;
      return s.signed + s.replaced + s.filled;
    } catch (err) {
      // Not started yet: nothing signed.
      if (err instanceof WorkflowNotFoundError) return 0;
      throw err;
    }
  };
  const before = await signedNow();
  return async () => (await signedNow()) - before;
}
